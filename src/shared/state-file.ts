import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * Small JSON state files that survive a restart (drained sites and servers, partition ownership).
 * One policy for every one of them: a missing file is a first start; a file that cannot be read
 * or does not hold what its reader expects is refused with an error naming the file and the
 * problem, never read as empty (an empty state would silently undo an operator's drain or move
 * a partition back). Writes go to a temporary file that is renamed, so a crash never leaves half
 * a file.
 */

/** A state file that exists but cannot be used: says which file and why. */
export class StateFileError extends Error {
  override name = 'StateFileError';
  constructor(
    readonly path: string,
    readonly problem: string,
  ) {
    super(`state file ${path}: ${problem}; fix or remove it`);
  }
}

/**
 * The file's content as `parse` checks it (parse throws to say what is wrong), or undefined when
 * there is no file.
 */
export function readStateFile<T>(path: string, parse: (data: unknown) => T): T | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new StateFileError(path, `cannot be read (${(err as Error).message})`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new StateFileError(path, `is damaged: not JSON (${(err as Error).message})`);
  }
  try {
    return parse(data);
  } catch (err) {
    throw new StateFileError(path, `is damaged: ${(err as Error).message}`);
  }
}

/** Writes `data` as JSON through a temporary file and a rename. */
export function writeStateFile(path: string, data: unknown, mode = 0o644): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(data, null, 2)}\n`, { mode });
  renameSync(tmp, path);
}

/** For parsers: the value of `key` in a JSON object. */
export function field(data: unknown, key: string): unknown {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new Error('not a JSON object');
  return (data as Record<string, unknown>)[key];
}
