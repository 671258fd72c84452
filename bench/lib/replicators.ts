import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

/** The two sites of the replication benchmarks. */
export const SITE_NAMES = ['a', 'b'] as const;

/** A site's config for `multisite replicate`: sites a and b on the databases `urls` (a's, b's). */
export function replicatorYaml(site: string, urls: readonly string[], tables: readonly string[]): string {
  return (
    `site: ${site}\nsites:\n  - name: a\n  - name: b\nreplication:\n  tables: [${tables.join(', ')}]\n` +
    `  sites:\n    a: { db: "${urls[0]}" }\n    b: { db: "${urls[1]}" }\n  log-level: warn\n`
  );
}

export interface Replicators {
  pids(): number[];
  /** SIGTERM to each, waits for it to exit, then removes their configs. */
  stop(): Promise<void>;
}

/**
 * Both sites' `multisite replicate` processes on the databases `urls` (migrated already), once
 * each database shows both connected (its replicator's pool and the peer's reader): a workload
 * then measures replication, not the replicators' start. `node`: the node arguments before
 * `replicate` (default the source tree through tsx); `prefix(i)`: a command site i's process
 * runs under (e.g. `taskset -c i`).
 */
export async function startReplicators(
  urls: readonly string[],
  tables: readonly string[],
  opts: { node?: string[]; prefix?: (site: number) => string[] } = {},
): Promise<Replicators> {
  const dir = mkdtempSync(join(tmpdir(), 'ms-bench-rep-'));
  const children: ChildProcess[] = [];
  for (const [i, site] of SITE_NAMES.entries()) {
    const cfg = join(dir, `${site}.yaml`);
    writeFileSync(cfg, replicatorYaml(site, urls, tables));
    const [cmd, ...args] = [
      ...(opts.prefix?.(i) ?? []),
      process.execPath,
      ...(opts.node ?? ['--import', 'tsx', 'src/cli/main.ts']),
      ...['replicate', '--config', cfg],
    ];
    children.push(spawn(cmd!, args, { stdio: ['ignore', 'ignore', 'inherit'] }));
  }
  const stop = async () => {
    for (const c of children) {
      if (c.exitCode !== null || c.signalCode !== null) continue;
      const done = new Promise((r) => c.once('exit', r));
      c.kill('SIGTERM');
      await done;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (const url of urls) await connected(url);
  } catch (err) {
    await stop();
    throw err;
  }
  return { pids: () => children.map((c) => c.pid!), stop };
}

async function connected(url: string): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    for (let t = 0; ; t++) {
      const r = await c.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'multisite%'`,
      );
      if (r.rows[0]!.n >= 2) return;
      if (t > 600) throw new Error('replicators did not start in 60 s');
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await c.end();
  }
}

/**
 * Runs `once` for every mode in every round (modes interleaved, so the neighbours' load hits
 * each alike), printing each result as a JSON line; returns them in run order.
 */
export async function interleaved<M, R>(
  rounds: number,
  modes: readonly M[],
  once: (mode: M, round: number) => Promise<R>,
): Promise<R[]> {
  const out: R[] = [];
  for (let r = 0; r < rounds; r++)
    for (const m of modes) {
      const x = await once(m, r);
      out.push(x);
      process.stdout.write(`${JSON.stringify(x)}\n`);
    }
  return out;
}
