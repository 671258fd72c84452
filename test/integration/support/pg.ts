/**
 * Test databases on the local PostgreSQL (127.0.0.1:5432, trust auth). Each test creates its own,
 * uniquely named, and drops them after (also on failure: call dropDatabases in afterAll/finally).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort, waitFor } from '../../../src/lab/ports.js';
import { startProcess } from '../../../src/lab/processes.js';

export const PG_HOST = process.env.MULTISITE_TEST_PGHOST ?? '127.0.0.1';
export const PG_PORT = Number(process.env.MULTISITE_TEST_PGPORT ?? 5432);
export const PG_USER = process.env.MULTISITE_TEST_PGUSER ?? 'postgres';

export function dbUrl(name: string): string {
  return `postgres://${PG_USER}@${PG_HOST}:${PG_PORT}/${name}`;
}

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: dbUrl('postgres') });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** Creates `count` empty databases named ms_<prefix>_<random>_<i>; returns their names. */
export async function createDatabases(prefix: string, count: number): Promise<string[]> {
  const tag = randomBytes(4).toString('hex');
  const names = Array.from({ length: count }, (_, i) => `ms_${prefix}_${tag}_${i}`.toLowerCase());
  await admin(async (c) => {
    for (const n of names) await c.query(`CREATE DATABASE "${n}"`);
  });
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
 * idle peer on its own server shows. Runs the server as `postgres` when we are root.
 */
export async function startCluster(): Promise<Cluster> {
  const dir = mkdtempSync(join(tmpdir(), 'ms-pg-'));
  const asPostgres = process.getuid?.() === 0;
  if (asPostgres) execFileSync('chown', ['-R', 'postgres:', dir]);
  const run = (bin: string, args: string[]) =>
    asPostgres
      ? (['runuser', ['-u', 'postgres', '--', join(PG_BIN, bin), ...args]] as const)
      : ([join(PG_BIN, bin), args] as const);
  const data = join(dir, 'data');
  const [initCmd, initArgs] = run('initdb', ['-D', data, '-A', 'trust', '-U', PG_USER, '--no-sync', '-E', 'UTF8']);
  try {
    execFileSync(initCmd, [...initArgs], { stdio: 'pipe' });
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`initdb failed: ${(e as { stderr?: Buffer }).stderr?.toString() ?? String(e)}`);
  }
  const port = await freePort('127.0.0.1');
  const [cmd, args] = run('postgres', [
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
    '-c',
    'max_connections=100',
  ]);
  const server = startProcess(cmd, [...args]);
  let stopped = false;
  const url = (db: string) => `postgres://${PG_USER}@127.0.0.1:${port}/${db}`;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    server.child.kill('SIGINT'); // fast shutdown: ends the connections, no checkpoint wait
    const t = setTimeout(() => server.child.kill('SIGKILL'), 10_000);
    await server.exited;
    clearTimeout(t);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(
      `the test cluster on port ${port}`,
      async () => {
        if (server.child.exitCode !== null) throw new Error(`postgres exited: ${server.output()}`);
        const c = new pg.Client({ connectionString: url('postgres') });
        await c.connect();
        await c.end();
        return true;
      },
      60_000,
      50,
    );
  } catch (e) {
    await stop();
    throw new Error(`${(e as Error).message}\n${server.output()}`);
  }
  return {
    port,
    url,
    async createDatabases(prefix, count) {
      const tag = randomBytes(4).toString('hex');
      const names = Array.from({ length: count }, (_, i) => `ms_${prefix}_${tag}_${i}`.toLowerCase());
      const c = new pg.Client({ connectionString: url('postgres') });
      await c.connect();
      try {
        for (const n of names) await c.query(`CREATE DATABASE "${n}"`);
      } finally {
        await c.end();
      }
      return names;
    },
    stop,
  };
}
