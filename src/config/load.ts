import { readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import {
  isAlias,
  isMap,
  isPair,
  isScalar,
  isSeq,
  LineCounter,
  parseDocument,
  visit,
  type Document,
  type Node,
  type Pair,
} from 'yaml';
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
  /** Whether the file itself sets this key (not a schema default). */
  has(path: (string | number)[]): boolean;
}

/** Aliases expanded at most (the yaml library's default): beyond, the file is refused as an alias bomb. */
const MAX_ALIASES = 100;

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
  const locateOffset = (offset: number, problem: string) => {
    const p = at(offset);
    return new ConfigError(file, p.line, p.column, keyPath(keyAt(doc, offset)), problem);
  };
  if (doc.errors.length > 0) {
    throw new ConfigErrors(
      doc.errors.map((e) =>
        locateOffset(
          e.pos[0],
          (e.message.split('\n')[0] ?? e.message).replace(
            /^Map keys must be unique$/,
            'duplicate key (each key may appear once in a mapping)',
          ),
        ),
      ),
    );
  }
  const locate = (path: (string | number)[]) => at(offsetOf(doc, path));
  let plain: unknown;
  try {
    plain = doc.toJS({ maxAliasCount: MAX_ALIASES });
  } catch (err) {
    // The yaml library refuses an alias bomb without saying where: point at its first alias.
    throw new ConfigErrors([
      locateOffset(
        firstAliasOffset(doc),
        `${(err as Error).message} (more than ${MAX_ALIASES} alias expansions): refused`,
      ),
    ]);
  }
  const result = checkedSchema.safeParse(plain ?? {});
  if (!result.success) {
    throw new ConfigErrors(result.error.issues.map((i) => toConfigError(i, file, locate)));
  }
  const dir = dirname(resolve(file));
  const loaded: LoadedConfig = {
    config: result.data,
    file,
    dir,
    locate,
    has: (path) => nodeAt(doc, path) !== undefined,
  };
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

function toConfigError(issue: z.core.$ZodIssue, file: string, locate: LoadedConfig['locate']): ConfigError {
  const path = issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p));
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0] ?? '';
    const { line, column } = locate([...path, key]);
    const keys = issue.keys.map((k) => `'${k}'`).join(', ');
    return new ConfigError(
      file,
      line,
      column,
      keyPath([...path, key]),
      `unknown key${issue.keys.length > 1 ? 's' : ''} ${keys}`,
    );
  }
  const { line, column } = locate(path);
  return new ConfigError(file, line, column, keyPath(path), issue.message);
}

/** zones[1].file style, as an operator would write it. */
export function keyPath(path: (string | number)[]): string {
  return path
    .map((p, i) =>
      typeof p === 'number' ? `[${p}]` : /^[A-Za-z_][\w-]*$/.test(p) ? `${i ? '.' : ''}${p}` : `["${p}"]`,
    )
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

/** The node at a key path, or undefined when the file does not set it. */
function nodeAt(doc: Document, path: (string | number)[]): unknown {
  let node: unknown = doc.contents;
  for (const part of path) {
    if (isMap(node))
      node = node.items.find((it: Pair) => isScalar(it.key) && String(it.key.value) === String(part))?.value;
    else if (isSeq(node) && typeof part === 'number') node = node.items[part];
    else return undefined;
    if (node === undefined || node === null) return undefined;
  }
  return node;
}

/** The key path of the deepest key or item whose text contains `offset` (for parse errors). */
function keyAt(doc: Document, offset: number): (string | number)[] {
  const path: (string | number)[] = [];
  let node: unknown = doc.contents;
  const within = (n: unknown) => {
    const r = (n as Node | null)?.range;
    return r != null && r[0] <= offset && offset < Math.max(r[2], r[1], r[0] + 1);
  };
  for (;;) {
    if (isMap(node)) {
      const pair = node.items.find((it) => within(it.key) || within(it.value));
      if (!pair || !isScalar(pair.key)) break;
      path.push(String(pair.key.value));
      if (within(pair.key)) break;
      node = pair.value;
    } else if (isSeq(node)) {
      const i = node.items.findIndex((it) => within(isPair(it) ? it.value : it));
      if (i < 0) break;
      path.push(i);
      node = node.items[i];
    } else break;
  }
  return path;
}

function firstAliasOffset(doc: Document): number {
  let offset = 0;
  visit(doc, {
    Alias(_key, node) {
      if (isAlias(node) && node.range) offset = node.range[0];
      return visit.BREAK;
    },
  });
  return offset;
}
