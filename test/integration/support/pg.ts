/**
 * Test databases on the local PostgreSQL (127.0.0.1:5432, trust auth). Each test creates its own,
 * uniquely named, and drops them after (also on failure: call dropDatabases in afterAll/finally).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort, waitFor } from '../../../src/lab/ports.js';
import { startProcess, type Started } from '../../../src/lab/processes.js';

export const PG_HOST = process.env.MULTISITE_TEST_PGHOST ?? '127.0.0.1';
export const PG_PORT = Number(process.env.MULTISITE_TEST_PGPORT ?? 5432);
export const PG_USER = process.env.MULTISITE_TEST_PGUSER ?? 'postgres';

export function dbUrl(name: string): string {
  return `postgres://${PG_USER}@${PG_HOST}:${PG_PORT}/${name}`;
}

async function admin<T>(fn: (c: pg.Client) => Promise<T>, url = dbUrl): Promise<T> {
  const c = new pg.Client({ connectionString: url('postgres') });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/**
 * Creates `count` empty databases named ms_<prefix>_<random>_<i>; returns their names. `url`
 * names the server (the local PostgreSQL by default, or a Cluster's).
 */
export async function createDatabases(prefix: string, count: number, url = dbUrl): Promise<string[]> {
  const tag = randomBytes(4).toString('hex');
  const names = Array.from({ length: count }, (_, i) => `ms_${prefix}_${tag}_${i}`.toLowerCase());
  await admin(async (c) => {
    for (const n of names) await c.query(`CREATE DATABASE "${n}"`);
  }, url);
  return names;
}

/** Drops databases, ending their connections first. Never throws for a missing database. */
export async function dropDatabases(names: readonly string[]): Promise<void> {
  if (names.length === 0) return;
  await admin(async (c) => {
    for (const n of names) {
      await c.query(`DROP DATABASE IF EXISTS "${n}" WITH (FORCE)`).catch(() => undefined);
    }
  });
}

/** The one polling helper (src/lab/ports.ts), re-exported where the database tests import it. */
export { waitFor };

/** PostgreSQL's server binaries (Debian's layout), overridable with MULTISITE_TEST_PGBIN. */
const PG_BIN = process.env.MULTISITE_TEST_PGBIN ?? '/usr/lib/postgresql/15/bin';

export interface Cluster {
  port: number;
  url(db: string): string;
  createDatabases(prefix: string, count: number): Promise<string[]>;
  /** Fast shutdown, then the data directory is removed. Safe to call twice. */
  stop(): Promise<void>;
}

/**
 * A PostgreSQL cluster of its own: `initdb` in a temporary directory (trust auth, fsync off: only
 * clients are killed in these tests, never the server), listening on 127.0.0.1 and a free port.
 * Two sites in one cluster share transaction ids and snapshots, which real sites never do: a
 * peer's snapshot moves there whenever anything commits anywhere, and hides bugs that only an
 * idle peer on its own server shows. Runs the server as `postgres` when we are root. `settings`:
 * more server settings (`-c name=value`), e.g. `wal_level: 'logical'` for a logical-replication peer;
 * `opts.cpus`: pin the server to those CPUs (`taskset -c`), e.g. one site per core in a benchmark.
 */
export async function startCluster(
  settings: Record<string, string> = {},
  opts: { cpus?: string } = {},
): Promise<Cluster> {
  const dir = mkdtempSync(join(tmpdir(), 'ms-pg-'));
  // initdb refuses root: as root, the server runs as postgres (spawned as that user directly, so
  // our signals reach the server itself, not a wrapper that may not pass them on)
  const user: { uid?: number; gid?: number } = process.getuid?.() === 0 ? postgresIds() : {};
  if (user.uid !== undefined && user.gid !== undefined) chownSync(dir, user.uid, user.gid);
  const data = join(dir, 'data');
  try {
    execFileSync(join(PG_BIN, 'initdb'), ['-D', data, '-A', 'trust', '-U', PG_USER, '--no-sync', '-E', 'UTF8'], {
      stdio: 'pipe',
      ...user,
    });
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`initdb failed: ${(e as { stderr?: Buffer }).stderr?.toString() ?? String(e)}`);
  }
  // opts.cpus: the server and every backend on those CPUs only (taskset execs postgres in place)
  const [cmd, ...before] = [...(opts.cpus !== undefined ? ['taskset', '-c', opts.cpus] : []), join(PG_BIN, 'postgres')];
  let server: Started | undefined;
  let port = 0;
  // a free port can be taken between picking and binding it: another pick, at most three times
  for (let attempt = 1; !server; attempt++) {
    port = await freePort('127.0.0.1');
    const s = startProcess(
      cmd!,
      [
        ...before,
        '-D',
        data,
        '-p',
        String(port),
        '-c',
        'listen_addresses=127.0.0.1',
        '-c',
        `unix_socket_directories=${dir}`,
        '-c',
        'fsync=off',
        ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`]),
      ],
      user,
    );
    const ready = await waitFor(
      `the test cluster on port ${port}`,
      async () => s.child.exitCode !== null || (await accepts(clusterUrl(port, 'postgres'))),
      60_000,
      50,
    ).catch((e: Error) => e);
    if (ready instanceof Error || s.child.exitCode !== null) {
      await s.stop();
      if (attempt < 3 && /could not bind|in use/i.test(s.output())) continue;
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`the test cluster did not start: ${ready instanceof Error ? ready.message : ''}\n${s.output()}`);
    }
    server = s;
  }
  const url = (db: string) => clusterUrl(port, db);
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    server!.child.kill('SIGINT'); // fast shutdown: ends the connections, no checkpoint wait
    const t = setTimeout(() => server!.child.kill('SIGKILL'), 10_000);
    await server!.exited;
    clearTimeout(t);
    rmSync(dir, { recursive: true, force: true });
  };
  return {
    port,
    url,
    createDatabases: (prefix, count) => createDatabases(prefix, count, url),
    stop,
  };
}

function postgresIds(): { uid: number; gid: number } {
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres']).toString().trim());
  return { uid: id('-u'), gid: id('-g') };
}

function clusterUrl(port: number, db: string): string {
  return `postgres://${PG_USER}@127.0.0.1:${port}/${db}`;
}

async function accepts(url: string): Promise<boolean> {
  const c = new pg.Client({ connectionString: url });
  c.on('error', () => undefined);
  try {
    await c.connect();
    return true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => undefined);
  }
}
