import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

/** PostgreSQL's own pgbench (PGBENCH overrides). */
export const PGBENCH = process.env.PGBENCH ?? '/usr/lib/postgresql/15/bin/pgbench';

/** pgbench's connection options for the server of a postgres:// URL (host, port, user; defaults 127.0.0.1, 5432, postgres). */
export function pgbenchConnection(base: string): string[] {
  const u = new URL(base);
  return ['-h', u.hostname || '127.0.0.1', '-p', u.port || '5432', '-U', decodeURIComponent(u.username) || 'postgres'];
}

/**
 * Runs pgbench with `args` and returns its tps (without the initial connection time). `prefix`:
 * a command pgbench runs under, e.g. `['taskset', '-c', '0']`.
 */
export async function pgbenchTps(args: string[], prefix: string[] = []): Promise<number> {
  const [cmd, ...rest] = [...prefix, PGBENCH, ...args];
  const r = await promisify(execFile)(cmd!, rest, { maxBuffer: 1 << 24 });
  const m = /tps = ([\d.]+) \(without initial connection time\)/.exec(r.stdout);
  if (!m) throw new Error(`pgbench printed no tps:\n${r.stdout}\n${r.stderr}`);
  return Number(m[1]);
}
