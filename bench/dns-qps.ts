/**
 * dnsperf (10 s runs) through PowerDNS against (a) the bind backend serving a zone file, (b) our
 * backend serving the same file, (c) a balanced name from our backend; caches at their defaults
 * and off; then our backend alone over 1 and 6 unix connections. Prints a table, writes JSON.
 * Then client-dependent names (topology, closest) asked with ECS from 1000 client networks, against
 * PowerDNS LUA records doing the same job (view+ifportup, pickclosest) and PowerDNS+bind with its
 * caches on, in the same run (bench/lib/ecs-runs.ts), and the backend's own lookup latency for those names.
 * Runs (b)-(d) use pdns.conf as shipped (README: consistent-backends=no).
 *   npx tsx bench/dns-qps.ts [--seconds 10] [--quick] [--only cached|uncached|alone|ecs] [--consistent-backends yes|no]
 *     [--repeat N (cached runs, taking turns; median)]
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startPdns, type Pdns } from '../src/lab/pdns.js';
import { waitFor } from '../src/lab/ports.js';
import { startProcess } from '../src/lab/processes.js';
import { report } from './lib/table.js';
import { backendAlone } from './lib/backend-alone.js';
import { backendLookupLatency, benchConfig, luaRecords, subnets } from './lib/ecs-compare.js';
import { ecsRuns } from './lib/ecs-runs.js';

const exec = promisify(execFile);
const seconds = Number(process.argv[process.argv.indexOf('--seconds') + 1]) || 10;
const quick = process.argv.includes('--quick');
const only = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1] : undefined;
/** Runs (b)-(d) with PowerDNS's own consistent-backends default (yes) instead of the shipped `no`. */
const cbArg = process.argv.includes('--consistent-backends')
  ? process.argv[process.argv.indexOf('--consistent-backends') + 1]
  : 'no';
const dir = mkdtempSync(join(tmpdir(), 'ms-bench-dns-'));
const HOSTS = 1000;
/**
 * The port LUA ifportup checks (a listener the bench opens on the sites' addresses is not possible: they are
 * documentation addresses; ifportup then answers all, as it does when every check fails).
 */
const UP_PORT = 80;

/**
 * The bench zone; with `lua` it also holds the LUA records the bind backend's ECS runs answer. Our
 * backend gets the zone without them: it answers those names as balanced names, and a LUA record
 * in its zone would make PowerDNS run the LUA script on top (that measured LUA, not us).
 */
function writeZone(lua: boolean): string {
  const lines = [
    '$ORIGIN bench.example.',
    '$TTL 300',
    '@ SOA ns1 hostmaster 1 3600 600 86400 60',
    '@ NS ns1',
    'ns1 A 192.0.2.53',
    '@ MX 10 mail',
    'mail A 192.0.2.25',
    ...(lua ? luaRecords(UP_PORT) : []),
  ];
  for (let i = 0; i < HOSTS; i++)
    lines.push(`host${i} A 10.${(i >> 8) & 255}.${i & 255}.1`, `host${i} TXT "host number ${i}"`);
  const file = join(dir, lua ? 'bench.example.lua.zone' : 'bench.example.zone');
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

function writeQueries(name: string, lines: string[]): string {
  const file = join(dir, name);
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

async function dnsperf(
  pdns: Pick<Pdns, 'host' | 'port'>,
  queries: string,
  binary = false,
): Promise<{ qps: number; avgMs: number; lost: number }> {
  const { stdout } = await exec(
    'dnsperf',
    [
      '-s',
      pdns.host,
      '-p',
      String(pdns.port),
      '-d',
      queries,
      '-l',
      String(seconds),
      '-c',
      '4',
      '-Q',
      '1000000',
      '-q',
      '200',
      ...(binary ? ['-B'] : []),
    ],
    { maxBuffer: 1 << 24 },
  );
  const num = (re: RegExp) => Number(re.exec(stdout)?.[1] ?? NaN);
  return {
    qps: num(/Queries per second:\s+([\d.]+)/),
    avgMs: num(/Average Latency \(s\):\s+([\d.]+)/) * 1000,
    lost: num(/Queries lost:\s+(\d+)/),
  };
}

/** Rounds of the cached runs, taking turns (`--repeat N`): on a shared machine one sample is noise. */
const repeat = Number(process.argv[process.argv.indexOf('--repeat') + 1]) || 1;

/** Rows of the same run (label, caches, threads) become one: the median qps, with the samples listed. */
function medianOfRepeats(rows: Record<string, string | number>[]): void {
  const groups = new Map<string, Record<string, string | number>[]>();
  for (const r of rows) {
    const key = `${r.run}|${r.caches}|${r['distributor-threads']}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  rows.length = 0;
  for (const g of groups.values()) {
    const sorted = [...g].sort((x, y) => Number(x.qps) - Number(y.qps));
    const mid = sorted[Math.floor(sorted.length / 2)]!;
    rows.push(g.length > 1 ? { ...mid, samples: g.map((x) => x.qps).join(' / ') } : mid);
  }
}

const CACHES_OFF = { 'cache-ttl': 0, 'query-cache-ttl': 0, 'negquery-cache-ttl': 0 };

async function main(): Promise<void> {
  const zone = writeZone(false);
  const luaZone = writeZone(true);
  const mixed = writeQueries(
    'mixed.txt',
    Array.from({ length: 5000 }, (_, i) =>
      i % 10 === 9 ? `nx${i}.bench.example A` : `host${(i * 7919) % HOSTS}.bench.example ${i % 3 === 0 ? 'TXT' : 'A'}`,
    ),
  );
  const balanced = writeQueries('balanced.txt', ['www.bench.example A']);
  const config = join(dir, 'multisite.yaml');
  writeFileSync(config, benchConfig(dir, zone));
  const backend = startProcess(process.execPath, ['dist/cli/main.js', 'backend', '--config', config]);
  await waitFor(
    'backend socket',
    () =>
      new Promise((r) =>
        createConnection(`${dir}/backend.sock`)
          .once('connect', function (this: import('node:net').Socket) {
            this.destroy();
            r(true);
          })
          .once('error', () => r(false)),
      ),
  );
  const rows: Record<string, string | number>[] = [];
  const run = async (
    label: string,
    backendKind: 'bind' | 'remote' | 'canned',
    caches: 'default' | 'off',
    queries: string,
    threads = 3,
  ) => {
    const sock = backendKind === 'canned' ? `${dir}/canned.sock` : `${dir}/backend.sock`;
    const pdns = await startPdns({
      host: '127.0.0.9',
      backend:
        backendKind === 'bind'
          ? { kind: 'bind', zones: [{ name: 'bench.example', file: zone }] }
          : { kind: 'remote', connection: `unix:path=${sock}` },
      settings: {
        ...(caches === 'off' ? CACHES_OFF : {}),
        ...(backendKind === 'bind' ? {} : { 'consistent-backends': cbArg }),
        'distributor-threads': threads,
        loglevel: 3,
      },
      probeName: 'bench.example.',
    });
    try {
      const r = await dnsperf(pdns, queries);
      rows.push({
        run: label,
        caches,
        'distributor-threads': threads,
        qps: Math.round(r.qps),
        'avg ms': +r.avgMs.toFixed(3),
        lost: r.lost,
      });
      process.stdout.write(`${label} caches=${caches} threads=${threads}: ${Math.round(r.qps)} qps\n`);
    } finally {
      await pdns.stop();
    }
  };
  try {
    const cacheModes = (['default', 'off'] as const).filter(
      (c) => !only || (only === 'cached' && c === 'default') || (only === 'uncached' && c === 'off'),
    );
    for (const caches of cacheModes) {
      const threadCounts = caches === 'off' && !quick ? [3, 6, 12] : [3];
      // Cached runs take turns `repeat` times (a, b, c, a, b, c, ...): each row is their median.
      for (let k = 0; k < (caches === 'default' ? repeat : 1); k++) {
        await run('(a) bind backend, zone file', 'bind', caches, mixed);
        for (const t of threadCounts) await run('(b) multisite backend, same zone', 'remote', caches, mixed, t);
        for (const t of threadCounts) await run('(c) multisite balanced name', 'remote', caches, balanced, t);
      }
      if (caches === 'off') {
        // The ceiling of any Node remote backend through PowerDNS here: canned answers, same queries, same run.
        const canned = startProcess(process.execPath, ['bench/lib/canned-backend.mjs', `${dir}/canned.sock`]);
        await waitFor('canned backend', () => canned.output().includes('ready'));
        try {
          for (const t of threadCounts)
            await run('(d) canned-answer Node backend (ceiling)', 'canned', caches, mixed, t);
        } finally {
          await canned.stop();
        }
      }
    }
    medianOfRepeats(rows);
    const bindQps = (caches: string) =>
      Number(rows.find((r) => r.caches === caches && String(r.run).startsWith('(a)'))?.qps);
    for (const r of rows) r['× bind'] = +(Number(r.qps) / bindQps(String(r.caches))).toFixed(2);
    const ecsRows: Record<string, string | number>[] = [];
    let latency: Record<string, string | number>[] = [];
    if (!only || only === 'ecs') {
      // Client-dependent names: ECS from 1000 networks, caches at their defaults (these answers are not packet-cached).
      const nets = subnets(1000);
      ecsRows.push(
        ...(await ecsRuns({ dir, nets, zone, luaZone, mixed, backendSock: `${dir}/backend.sock`, dnsperf })),
      );
      latency = backendLookupLatency(config, nets);
    }
    const alone: Record<string, string | number>[] = [];
    if (!only || only === 'alone') {
      // The same load against a do-nothing Node server: the ceiling on this machine, same run.
      const echo = startProcess(process.execPath, ['bench/lib/canned-backend.mjs', `${dir}/echo.sock`, '--nothing']);
      await waitFor('echo server', () => echo.output().includes('ready'));
      for (const conns of [1, 6]) {
        const ours = await backendAlone(`${dir}/backend.sock`, conns, Math.min(seconds, 5));
        const ceiling = await backendAlone(`${dir}/echo.sock`, conns, Math.min(seconds, 5));
        alone.push({
          connections: conns,
          'lookups/s': ours.perSecond,
          'p50 µs': ours.p50us,
          'p99 µs': ours.p99us,
          'echo server/s': ceiling.perSecond,
          'echo p99 µs': ceiling.p99us,
          '× echo': +(ours.perSecond / ceiling.perSecond).toFixed(2),
        });
      }
      await echo.stop();
    }
    if (rows.length > 0) report('dns-qps', rows, { seconds, backendAlone: alone });
    if (alone.length > 0) report('dns-backend-alone', alone);
    if (ecsRows.length > 0) report('dns-ecs', ecsRows, { seconds, backendLookupLatency: latency });
    if (latency.length > 0) report('dns-ecs-backend-latency', latency);
  } finally {
    await backend.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
