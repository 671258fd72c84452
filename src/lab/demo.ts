import { execFile } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { encodeLoadReport } from '../shared/load-report.js';
import { startPdns, type Pdns } from './pdns.js';
import { freePort, waitFor } from './ports.js';
import { startProcess, type Started } from './processes.js';

const exec = promisify(execFile);
const root = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');
const cli = join(root, 'dist/cli/main.js');
const KEY = 'demo-shared-key-0123456789abcdef';

interface Plan {
  name: 'a' | 'b';
  host: string;
  port: number;
  apiPort: number;
  metricsPort: number;
  hbPort: number;
  lrPort: number;
}

interface DemoSite extends Plan {
  dir: string;
  config: string;
  backend: Started;
  pdns: Pdns;
}

/**
 * `make demo`: two sites on loopback, each a real pdns_server with `multisite run`, heartbeats
 * between them. Shows the order, a drain everywhere, load reports reordering a name, a site
 * killed and verified down, replication with a conflict (embedded PGlite), then partitions on
 * real HAProxy: a web pool killed, the partition failing over, DNS following.
 */
export async function runDemo(opts: { keep: boolean }): Promise<number> {
  const sites: DemoSite[] = [];
  const say = (s: string) => process.stdout.write(`${s}\n`);
  const shared = mkdtempSync(join(tmpdir(), 'multisite-demo-'));
  writeFileSync(join(shared, 'peers.key'), `${KEY}\n`, { mode: 0o600 });
  try {
    const plans = [await plan('a', '127.0.0.2'), await plan('b', '127.0.0.3')];
    for (const p of plans) sites.push(await startSite(p, plans, shared));
    const a = sites[0]!;
    say('\nmultisite demo: two sites, each PowerDNS + `multisite run`, heartbeats every 250 ms.\n');
    await until(sites, 'www.example.com', (x) => x.length === 2);
    await show(sites, 'www.example.com', 'both sites up: each site answers itself first, the other second');
    say(
      `$ multisite site drain a --everywhere --config ${a.config}\n${await cliOut(['site', 'drain', 'a', '--everywhere', '--config', a.config])}`,
    );
    await until(sites, 'www.example.com', (x) => x.length === 1);
    await show(sites, 'www.example.com', 'a drained at every site, from one command: a leaves every answer');
    await cliOut(['site', 'undrain', 'a', '--everywhere', '--config', a.config]);
    await until(sites, 'www.example.com', (x) => x.length === 2);
    await show(sites, 'www.example.com', 'undrained everywhere: back in its place');
    await loadStep(sites, say);
    await killStep(sites);
    say(`site status at a:\n${await cliOut(['site', 'status', '--config', a.config])}`);
    await (await import('./replication-demo.js')).runReplicationDemo(say);
    await (await import('./partitions-demo.js')).runPartitionsDemo(say);
    if (opts.keep) {
      say(`running; try: dig @127.0.0.2 -p ${a.pdns.port} www.example.com A   (Ctrl-C stops)`);
      await new Promise<void>((r) => process.once('SIGINT', () => r()));
    }
    return 0;
  } finally {
    for (const s of sites) {
      await s.pdns.stop();
      const code = await s.backend.stop();
      say(`site ${s.name}: PowerDNS stopped, multisite run stopped on SIGTERM (exit ${code})`);
      rmSync(s.dir, { recursive: true, force: true });
    }
    rmSync(shared, { recursive: true, force: true });
  }
}

/** A least-load name follows the sites' load reports (what each site's agents send). */
async function loadStep(sites: DemoSite[], say: (s: string) => void): Promise<void> {
  const [a, b] = sites as [DemoSite, DemoSite];
  say("\n== load.example.com is `least-load`: each site's agents report their servers' load");
  // Sent every second, as agents do: a single report goes stale after stale-after-ms (10 s),
  // which a loaded machine can reach between two steps, and the order would fall back.
  const reporting = [keepReporting(b, 0.5), keepReporting(a, 2.0)];
  try {
    await until([a], 'load.example.com', (x) => x[0] === '198.51.100.20');
    await show([a], 'load.example.com', 'a reports load 2.0, b 0.5: a answers b first');
    reporting[1]!.load = 0.1;
    await report(a, 0.1);
    await until([a], 'load.example.com', (x) => x[0] === '192.0.2.20');
    await show(
      [a],
      'load.example.com',
      'a reports 0.1: a first again (past the hysteresis margin, so noise never flips it)',
    );
  } finally {
    for (const r of reporting) r.stop();
  }
}

/** Reports `load` for the site now and every second until stopped; `load` may change meanwhile. */
function keepReporting(s: DemoSite, load: number): { load: number; stop(): void } {
  const r = { load, stop: () => clearInterval(timer) };
  const timer = setInterval(() => void report(s, r.load), 1000);
  void report(s, load);
  return r;
}

let seq = 0;
/** One signed load report for the site's server web/w1, as its agent sends it. */
function report(s: DemoSite, load: number): Promise<void> {
  const msg = encodeLoadReport(
    { site: s.name, sender: 'demo-agent', server: 'web/w1', boot: 1, seq: ++seq, time: Date.now(), up: true, load },
    Buffer.from(KEY),
  );
  const sock = createSocket('udp4');
  return new Promise((r) => sock.send(msg, s.lrPort, s.host, () => sock.close(() => r())));
}

/** b's process killed: a stops hearing it, probes it, verifies it down and drops it; b restarts. */
async function killStep(sites: DemoSite[]): Promise<void> {
  const [a, b] = sites as [DemoSite, DemoSite];
  const t0 = performance.now();
  b.backend.child.kill('SIGKILL');
  await b.backend.exited;
  await until([a], 'www.example.com', (x) => x.length === 1);
  await show(
    [a],
    'www.example.com',
    `site b's process killed: a missed its heartbeats, probed it, verified it down and dropped it (${(performance.now() - t0).toFixed(0)} ms)`,
  );
  b.backend = await startRun(b);
  const t1 = performance.now();
  await until([a], 'www.example.com', (x) => x.length === 2);
  await show(
    [a],
    'www.example.com',
    `b restarted: back in a's answer after heartbeats in 3 periods in a row (${(performance.now() - t1).toFixed(0)} ms)`,
  );
}

async function plan(name: 'a' | 'b', host: string): Promise<Plan> {
  const [port, apiPort, metricsPort, hbPort, lrPort] = [
    await freePort(host),
    await freePort(host),
    await freePort(host),
    await freePort(host),
    await freePort(host),
  ];
  return { name, host, port, apiPort, metricsPort, hbPort, lrPort };
}

async function startSite(p: Plan, plans: Plan[], shared: string): Promise<DemoSite> {
  const dir = mkdtempSync(join(tmpdir(), `multisite-demo-${p.name}-`));
  const apiKey = `demo-${Math.random().toString(36).slice(2)}`;
  writeFileSync(join(dir, 'api-key'), `${apiKey}\n`, { mode: 0o600 });
  const config = join(dir, 'multisite.yaml');
  const [pa, pb] = plans as [Plan, Plan];
  const fill: Record<string, string> = {
    SITE: p.name,
    DIR: dir,
    HOST: p.host,
    API_PORT: String(p.apiPort),
    METRICS_PORT: String(p.metricsPort),
    HB_PORT: String(p.hbPort),
    LR_PORT: String(p.lrPort),
    HB_A: String(pa.hbPort),
    HB_B: String(pb.hbPort),
    METRICS_A: String(pa.metricsPort),
    METRICS_B: String(pb.metricsPort),
    SHARED: shared,
    ZONES: join(root, 'examples/demo'),
  };
  const text = readFileSync(join(root, 'examples/demo/multisite.yaml.tmpl'), 'utf8').replace(
    /\{\{(\w+)\}\}/g,
    (_, k: string) => fill[k] ?? '',
  );
  writeFileSync(config, text);
  const site = { ...p, dir, config } as DemoSite;
  site.backend = await startRun(site);
  site.pdns = await startPdns({
    host: p.host,
    port: p.port,
    apiPort: p.apiPort,
    apiKey,
    backend: { kind: 'remote', connection: `unix:path=${join(dir, 'backend.sock')}` },
    probeName: 'example.com.',
  });
  process.stdout.write(
    `site ${p.name}: PowerDNS on ${p.host}:${p.port}, \`multisite run\` on ${dir}/backend.sock, metrics on http://${p.host}:${p.metricsPort}/metrics\n`,
  );
  return site;
}

/** `multisite run --config FILE` as its own process; resolves once its backend socket accepts. */
async function startRun(s: Pick<DemoSite, 'name' | 'dir' | 'config'>): Promise<Started> {
  const proc = startProcess(process.execPath, [cli, 'run', '--config', s.config], {
    env: { ...process.env, MULTISITE_LOG_LEVEL: 'warn', MULTISITE_LOG_FORMAT: 'text' },
  });
  await waitFor(`multisite run of site ${s.name}`, () => {
    if (proc.child.exitCode !== null) throw new Error(`multisite run exited:\n${proc.output()}`);
    return canConnect(join(s.dir, 'backend.sock'));
  });
  return proc;
}

async function dig(s: DemoSite, name: string): Promise<string[]> {
  const { stdout } = await exec('dig', ['+short', '+norec', `@${s.host}`, '-p', String(s.pdns.port), name, 'A']);
  return stdout.trim().split('\n').filter(Boolean);
}

/** Waits until every site's A answer for `name` satisfies `ok` (answers change within a second). */
async function until(sites: DemoSite[], name: string, ok: (addrs: string[]) => boolean): Promise<void> {
  for (const s of sites)
    await waitFor(`site ${s.name}'s answer for ${name}`, async () => ok(await dig(s, name)), 20_000, 20);
}

async function show(sites: DemoSite[], name: string, title: string): Promise<void> {
  process.stdout.write(`== ${title}\n`);
  for (const s of sites)
    process.stdout.write(
      `   dig @${s.host} -p ${s.pdns.port} ${name} A   (site ${s.name})  →  ${(await dig(s, name)).join(', ')}\n`,
    );
}

async function cliOut(args: string[]): Promise<string> {
  const { stdout } = await exec(process.execPath, [cli, ...args]);
  return stdout;
}

function canConnect(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = createConnection(path);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}
