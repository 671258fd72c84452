import { readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { isMap, isScalar, LineCounter, parseDocument, type Document, type Node, type Pair } from 'yaml';
import type { z } from 'zod';
import { crossCheck } from './cross-checks.js';
import { ConfigError, ConfigErrors } from './errors.js';
import { configSchema, type Config } from './schema.js';

export interface LoadedConfig {
  config: Config;
  /** The file it came from, and its directory (relative paths in the config are resolved there). */
  file: string;
  dir: string;
  /** Maps a key path to "file:line:col" for errors found after loading (zone files, records). */
  locate(path: (string | number)[]): { line: number; column: number };
}

const checkedSchema = configSchema.superRefine(crossCheck);

/** Reads, parses and validates a config file; throws ConfigErrors naming file, line, column and key. */
export function loadConfig(file: string): LoadedConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigErrors([new ConfigError(file, 1, 1, '', `cannot read: ${(err as Error).message}`)]);
  }
  return parseConfig(text, file);
}

export function parseConfig(text: string, file: string): LoadedConfig {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number) => {
    const p = lines.linePos(offset);
    return { line: p.line, column: p.col };
  };
  if (doc.errors.length > 0) {
    throw new ConfigErrors(
      doc.errors.map((e) => {
        const p = at(e.pos[0]);
        return new ConfigError(file, p.line, p.column, '', e.message.split('\n')[0] ?? e.message);
      }),
    );
  }
  const locate = (path: (string | number)[]) => at(offsetOf(doc, path));
  const result = checkedSchema.safeParse(doc.toJS() ?? {});
  if (!result.success) {
    throw new ConfigErrors(result.error.issues.map((i) => toConfigError(i, file, locate)));
  }
  const dir = dirname(resolve(file));
  const loaded: LoadedConfig = { config: result.data, file, dir, locate };
  checkFiles(loaded);
  return loaded;
}

/** Resolves a path from the config against the config file's directory. */
export function resolvePath(loaded: Pick<LoadedConfig, 'dir'>, p: string): string {
  return isAbsolute(p) ? p : resolve(loaded.dir, p);
}

function checkFiles(loaded: LoadedConfig): void {
  const errors: ConfigError[] = [];
  loaded.config.zones.forEach((zone, i) => {
    if (zone.file === undefined) return;
    const path = resolvePath(loaded, zone.file);
    let ok = false;
    try {
      ok = statSync(path).isFile();
    } catch {
      ok = false;
    }
    if (!ok) {
      const { line, column } = loaded.locate(['zones', i, 'file']);
      errors.push(new ConfigError(loaded.file, line, column, `zones[${i}].file`, `no such file: ${path}`));
    }
  });
  if (errors.length > 0) throw new ConfigErrors(errors);
}

function toConfigError(
  issue: z.core.$ZodIssue,
  file: string,
  locate: LoadedConfig['locate'],
): ConfigError {
  const path = issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p));
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0] ?? '';
    const { line, column } = locate([...path, key]);
    const keys = issue.keys.map((k) => `'${k}'`).join(', ');
    return new ConfigError(file, line, column, keyPath([...path, key]), `unknown key${issue.keys.length > 1 ? 's' : ''} ${keys}`);
  }
  const { line, column } = locate(path);
  return new ConfigError(file, line, column, keyPath(path), issue.message);
}

/** zones[1].file style, as an operator would write it. */
export function keyPath(path: (string | number)[]): string {
  return path
    .map((p, i) => (typeof p === 'number' ? `[${p}]` : /^[A-Za-z_][\w-]*$/.test(p) ? `${i ? '.' : ''}${p}` : `["${p}"]`))
    .join('');
}

/** Offset of the deepest key or item on the path that exists (a missing key points at its parent). */
function offsetOf(doc: Document, path: (string | number)[]): number {
  let node: unknown = doc.contents;
  let offset = (node as Node | null)?.range?.[0] ?? 0;
  for (const part of path) {
    if (isMap(node)) {
      const pair = node.items.find((it: Pair) => isScalar(it.key) && String(it.key.value) === String(part));
      if (!pair) break;
      // Point at the key, as an operator reads the file ("14:5: zones[1].file").
      offset = (pair.key as Node).range?.[0] ?? offset;
      node = pair.value;
    } else if (node && typeof node === 'object' && 'items' in node && typeof part === 'number') {
      const item = (node as { items: unknown[] }).items[part] as Node | undefined;
      if (!item) break;
      node = item;
      offset = item.range?.[0] ?? offset;
    } else break;
  }
  return offset;
}
