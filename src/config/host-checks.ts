import { accessSync, constants, lstatSync, realpathSync, statSync, type Stats } from 'node:fs';
import { dirname, join } from 'node:path';
import { KEY_MIN_BYTES, readSecret, type SecretOptions } from '../shared/secrets.js';
import { ConfigError, ConfigErrors } from './errors.js';
import { STATUS_PAGE_KEY_OPTIONS } from './keys.js';
import { keyPath, resolvePath, type LoadedConfig } from './load.js';

/**
 * What the schema cannot see: the files and sockets a config names, on this host. Run by
 * `check-config` and, the same function, by every daemon before it starts anything, so whatever
 * would stop a daemon is reported first, located (file:line:col and key). What is left to the
 * daemon's start is I/O that cannot be validated beforehand (a port taken, a race).
 */

/** The daemons a config can start; each checks what it will open. */
export type Part = 'backend' | 'agent' | 'replicate';

/** Longest unix socket path: sun_path is 108 bytes with the terminating NUL. */
export const MAX_SOCKET_PATH_BYTES = 107;

type Path = (string | number)[];
type Kind = 'socket' | 'file';

/** The parts a config configures: check-config checks all of them. */
export function partsOf(loaded: LoadedConfig): Part[] {
  return [
    'backend',
    ...(loaded.config.agent ? (['agent'] as const) : []),
    ...(loaded.config.replication ? (['replicate'] as const) : []),
  ];
}

/** Throws ConfigErrors for every problem found; returns located warnings (e.g. a world-readable key file). */
export function checkHost(loaded: LoadedConfig, parts: Part[]): string[] {
  const errors: ConfigError[] = [];
  const warnings: string[] = [];
  const at = (path: Path, problem: string) => {
    const { line, column } = loaded.locate(path);
    return new ConfigError(loaded.file, line, column, keyPath(path), problem);
  };
  const place = (path: Path, value: string | undefined, kind: Kind) => {
    if (value === undefined) return;
    const problem = placeProblem(resolvePath(loaded, value), kind);
    if (problem) errors.push(at(path, problem));
  };
  const secret = (section: Path, section_: object | undefined, names: [string, string], opts: SecretOptions) => {
    if (!section_) return;
    const src = section_ as Record<string, string | undefined>;
    const [fileKey, envKey] = names;
    const file = src[fileKey];
    const path = [...section, file !== undefined ? fileKey : envKey];
    if (file === undefined && src[envKey] === undefined) return;
    try {
      readSecret(file !== undefined ? { file: resolvePath(loaded, file) } : { env: src[envKey] }, {
        ...opts,
        onWarning: (m) => warnings.push(at(path, `warning: ${m}`).message),
      });
    } catch (err) {
      errors.push(at(path, (err as Error).message));
    }
  };
  const c = loaded.config;
  const key = { minBytes: KEY_MIN_BYTES };
  const keyNames: [string, string] = ['key-file', 'key-env'];
  if (parts.includes('backend')) {
    place(['backend', 'socket'], c.backend.socket, 'socket');
    place(['backend', 'control'], c.backend.control, 'socket');
    place(['backend', 'state-file'], c.backend['state-file'], 'file');
    if (c.partitions) place(['partitions', 'state-file'], c.partitions['state-file'], 'file');
    secret(['pdns'], c.pdns, ['api-key-file', 'api-key-env'], { text: true });
    if (c.dnsdist) secret(['dnsdist'], c.dnsdist, ['api-key-file', 'api-key-env'], { text: true });
    secret(['peers'], c.peers, keyNames, key);
    secret(['coordinator'], c.coordinator, keyNames, key);
    secret(['load-reports'], c['load-reports'], keyNames, key);
    // The status page's key, as the site reads it before it starts (keys.ts statusPageKey).
    if (c['status-page']?.enabled)
      secret(['status-page'], c['status-page'], ['api-key-file', 'api-key-env'], STATUS_PAGE_KEY_OPTIONS);
  }
  if (parts.includes('agent') && c.agent) {
    place(['agent', 'control'], c.agent.control, 'socket');
    place(['agent', 'state-file'], c.agent['state-file'], 'file');
    secret(['agent', 'load-report'], c.agent['load-report'], keyNames, key);
  }
  // The backend reads replica lag from the databases too (src/db-triggers/lag-reporter.ts).
  if ((parts.includes('replicate') || parts.includes('backend')) && c.replication) {
    for (const [site, db] of Object.entries(c.replication.sites))
      secret(['replication', 'sites', site], db, ['password-file', 'password-env'], { text: true });
  }
  if (errors.length > 0) throw new ConfigErrors(errors);
  return warnings;
}

/** Why a daemon could not create (or replace) a socket or state file at `path`, or undefined. */
export function placeProblem(path: string, kind: Kind): string | undefined {
  const bytes = Buffer.byteLength(path);
  if (kind === 'socket' && bytes > MAX_SOCKET_PATH_BYTES) {
    return `${path} is ${bytes} bytes; a unix socket path can have at most ${MAX_SOCKET_PATH_BYTES} (the kernel's sun_path): choose a shorter path`;
  }
  // The nearest existing ancestor, through symlinks: the daemon creates the directories below it.
  let dir = dirname(path);
  while (!exists(dir) && dirname(dir) !== dir) dir = dirname(dir);
  const real = safeRealpath(dir);
  const pseudo = /^\/(proc|sys)(\/|$)/.exec(real) ?? /^\/(proc|sys)(\/|$)/.exec(path);
  if (pseudo)
    return `${path} is under /${pseudo[1]}, a kernel pseudo-filesystem: no ${kind === 'socket' ? 'socket' : 'state file'} can live there`;
  if (!statSync(dir).isDirectory()) return `${path} cannot be created: ${dir} is not a directory`;
  try {
    accessSync(dir, constants.W_OK | constants.X_OK);
  } catch {
    return `${path} cannot be created: ${dir} is not writable`;
  }
  let st: Stats;
  try {
    st = lstatSync(path);
  } catch {
    return undefined;
  }
  if (st.isDirectory())
    return `${path} is a directory; give the ${kind}'s own path, e.g. ${join(path, kind === 'socket' ? 'control.sock' : 'state.json')}`;
  if (kind === 'socket' && !st.isSocket())
    return `${path} exists and is not a socket (${describe(st)}): refusing to replace it`;
  if (kind === 'file' && !st.isFile()) return `${path} exists and is not a regular file (${describe(st)})`;
  return undefined;
}

function exists(p: string): boolean {
  try {
    statSync(p);
    return true;
  } catch {
    return false;
  }
}

function safeRealpath(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}

function describe(st: Stats): string {
  if (st.isFile()) return 'a regular file';
  if (st.isSymbolicLink()) return 'a symbolic link';
  if (st.isFIFO()) return 'a named pipe';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  return 'not a socket';
}
