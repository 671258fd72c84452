import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/** Drained sites, kept in a small JSON file so a drain survives a restart. */
export class DrainStore {
  constructor(readonly path: string) {}

  read(): string[] {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new Error(`cannot read state file ${this.path}: ${(err as Error).message}`);
    }
    try {
      const data = JSON.parse(text) as { drained?: unknown };
      if (!Array.isArray(data.drained) || !data.drained.every((s) => typeof s === 'string')) throw new Error('"drained" must be a list of site names');
      return data.drained as string[];
    } catch (err) {
      throw new Error(`state file ${this.path} is damaged (${(err as Error).message}); fix or remove it`);
    }
  }

  /** Written to a temporary file and renamed, so a crash never leaves half a file. */
  write(drained: string[]): void {
    mkdirSync(dirname(this.path), { recursive: true });
    const tmp = `${this.path}.${process.pid}.tmp`;
    writeFileSync(tmp, `${JSON.stringify({ version: 1, drained: [...drained].sort() }, null, 2)}\n`, { mode: 0o644 });
    renameSync(tmp, this.path);
  }
}
