import { field, readStateFile, writeStateFile } from './state-file.js';

/** Drained sites (or servers), kept in a small JSON state file so a drain survives a restart. */
export class DrainStore {
  constructor(readonly path: string) {}

  /** The drained names; none without a file; a damaged file is refused (StateFileError). */
  read(): string[] {
    return readStateFile(this.path, parseDrains) ?? [];
  }

  write(drained: string[]): void {
    writeStateFile(this.path, { version: 1, drained: [...drained].sort() });
  }
}

function parseDrains(data: unknown): string[] {
  const drained = field(data, 'drained');
  if (!Array.isArray(drained) || !drained.every((s) => typeof s === 'string'))
    throw new Error('"drained" must be a list of site names');
  return drained;
}
