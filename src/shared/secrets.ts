import { readFileSync, statSync } from 'node:fs';

/**
 * The one way every part and every library entry point reads a key or a secret (heartbeat and
 * peer keys, the coordinator key, load-report keys, the PowerDNS api-key, database passwords,
 * FailoverClient's coordinator key). Both ends of a signature read a key with these functions, so
 * a key file written any usual way gives the same bytes everywhere. Rules (docs/peers.md "Key files"):
 *
 * - Text (valid UTF-8 without control characters once ASCII whitespace at both ends is trimmed):
 *   the key is the UTF-8 bytes of the trimmed text. Trimmed: spaces, tabs, CR and LF at the start
 *   and at the end (so `openssl rand -hex 32 > f`, an editor's CRLF, `echo` all work). Hex and
 *   base64 text are used as text, not decoded: the 64 characters of `openssl rand -hex 32` are a
 *   64-byte key, identical at every reader.
 * - Anything else is raw bytes (`openssl rand 32 > f`): used whole, nothing trimmed (a random key
 *   may end in a byte that looks like a newline).
 * - Empty (or whitespace only) is refused; keys shorter than `minBytes` are refused.
 * - A key file that other users may read (mode & 0o004) or write (0o002) is accepted with a warning
 *   (as PostgreSQL's clients and ssh do for configs): refusing would take a cluster down for a
 *   chmod; the warning names the file and its mode, never the key.
 * Secret values never appear in errors, warnings or logs.
 */

/** Shortest shared signing key (heartbeats, load reports, peer HTTP, the coordinator, FailoverClient). */
export const KEY_MIN_BYTES = 16;

/** A secret that cannot be used: says which source (file or variable) and why, never the value. */
export class SecretError extends Error {
  override name = 'SecretError';
  constructor(
    readonly source: string,
    readonly problem: string,
  ) {
    super(`${source}: ${problem}`);
  }
}

export interface SecretOptions {
  /** Shortest accepted key in bytes (default 1: not empty). Heartbeat and signing keys use 16. */
  minBytes?: number;
  /** Text only (passwords, API keys): raw bytes are refused. */
  text?: boolean;
  /** Told about a file other users may read or write. */
  onWarning?(message: string): void;
}

/** Where a secret comes from: a file or an environment variable (exactly one). */
export interface SecretSource {
  file?: string;
  env?: string;
}

/** Text after trimming ASCII whitespace at both ends, or undefined when the bytes are not text. */
function asText(raw: Buffer): string | undefined {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(raw);
  } catch {
    return undefined;
  }
  const trimmed = text.replace(/^[ \t\r\n]+|[ \t\r\n]+$/g, '');
  // Control characters inside (NUL, ESC, a newline between two lines) mean binary, not text.
  // eslint-disable-next-line no-control-regex -- control characters are exactly what this looks for
  return /[\u0000-\u001f\u007f]/.test(trimmed) ? undefined : trimmed;
}

/** The key bytes of a secret's raw content, by the rules above. */
export function secretBytes(raw: Buffer | string, source: string, opts: SecretOptions = {}): Buffer {
  const buf = typeof raw === 'string' ? Buffer.from(raw, 'utf8') : raw;
  const text = asText(buf);
  if (text === undefined && opts.text)
    throw new SecretError(source, 'is not text (a password or API key must be UTF-8 text on one line)');
  const key = text !== undefined ? Buffer.from(text, 'utf8') : buf;
  if (key.length === 0) throw new SecretError(source, 'is empty');
  const min = opts.minBytes ?? 1;
  if (key.length < min)
    throw new SecretError(
      source,
      `is ${key.length} bytes; a key must be at least ${min} (e.g. openssl rand -hex 32 > FILE)`,
    );
  return key;
}

/** Reads a key file (see the rules above); SecretError names the file and the problem. */
export function readSecretFile(path: string, opts: SecretOptions = {}): Buffer {
  let mode: number;
  try {
    const st = statSync(path);
    if (!st.isFile()) throw new SecretError(path, 'is not a regular file');
    mode = st.mode;
  } catch (err) {
    if (err instanceof SecretError) throw err;
    throw new SecretError(path, fsProblem(err));
  }
  if ((mode & 0o006) !== 0) {
    opts.onWarning?.(
      `${path}: mode ${(mode & 0o777).toString(8)} lets other users ${mode & 0o004 ? 'read' : 'write'} this secret (chmod 600 ${path})`,
    );
  }
  let raw: Buffer;
  try {
    raw = readFileSync(path);
  } catch (err) {
    throw new SecretError(path, fsProblem(err));
  }
  return secretBytes(raw, path, opts);
}

/** A secret from an environment variable (same rules as a file). */
export function readSecretEnv(name: string, opts: SecretOptions = {}, env: NodeJS.ProcessEnv = process.env): Buffer {
  const v = env[name];
  if (v === undefined) throw new SecretError(`environment variable ${name}`, 'is not set');
  return secretBytes(v, `environment variable ${name}`, opts);
}

/** A secret from its file or its environment variable. */
export function readSecret(src: SecretSource, opts: SecretOptions = {}): Buffer {
  if (src.file !== undefined) return readSecretFile(src.file, opts);
  if (src.env !== undefined) return readSecretEnv(src.env, opts);
  throw new SecretError('secret', 'give a file or an environment variable');
}

function fsProblem(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'EISDIR') return 'is a directory, not a file';
  return (err as Error).message;
}
