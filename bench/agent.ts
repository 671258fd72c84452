/**
 * The HAProxy agent: (1) replies/s and latency with 200 concurrent agent connections for 10 s,
 * against the real `multisite agent` process; (2) end-to-end failover, "pool dead" (the web
 * servers' database renamed, so every keyword page fails) → PowerDNS answer changed, median of 5
 * runs with the stages broken down, on a real haproxy 2.6 and pdns_server, and in the same haproxy
 * HAProxy's own `http-check expect string` keyword check on the same web servers for comparison.
 *   npx tsx bench/agent.ts [--seconds 10] [--runs 5] [--health-interval 250] [--throughput-only] [--rate 20000]
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { parseConfig } from '../src/config/index.js';
import { startAgent } from '../src/haproxy-agent/index.js';
import { RuntimeClient } from '../src/haproxy/index.js';
import {
  agentConfigYaml,
  createKeywordDatabase,
  startHaproxy,
  startWebServer,
  type WebServer,
} from '../src/lab/haproxy.js';
import { startPdns } from '../src/lab/pdns.js';
import { freePort, waitFor } from '../src/lab/ports.js';
import { startProcess } from '../src/lab/processes.js';
import { aRecords, median, when } from './lib/agent-failover.js';
import { agentLoad } from './lib/agent-load.js';
import { report } from './lib/table.js';

const exec = promisify(execFile);
const arg = (name: string, def: number) =>
  process.argv.includes(name) ? Number(process.argv[process.argv.indexOf(name) + 1]) : def;
const seconds = arg('--seconds', 10);
const runs = arg('--runs', 5);
const healthInterval = arg('--health-interval', 250);
const rate = arg('--rate', 20_000);
const CONNECTIONS = 200;
const here = dirname(fileURLToPath(import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'ms-bench-agent-'));
const logger = pino({ level: 'warn' });

/** Does the agent on `port` answer "web/w1"? */
function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    let got = '';
    const s = connect(port, '127.0.0.1');
    s.on('connect', () => s.write('web/w1\n'));
    s.on('data', (d) => (got += d.toString()));
    s.on('close', () => resolve(got.endsWith('\n')));
    s.on('error', () => resolve(false));
  });
}

/** (1) Throughput: the agent as its own process, the client in C (like HAProxy's checker) when a compiler is there. */
async function throughput(): Promise<Record<string, string | number>[]> {
  const target = createServer((s) => s.destroy());
  await new Promise<void>((r) => target.listen(0, '127.0.0.1', () => r()));
  const targetPort = (target.address() as { port: number }).port;
  const port = await freePort('127.0.0.1');
  const names = Array.from({ length: 10 }, (_, i) => `web/w${i + 1}`);
  const config = join(dir, 'agent-throughput.yaml');
  writeFileSync(
    config,
    `site: a
sites: [{ name: a }]
agent:
  listen: 127.0.0.1:${port}
  control: ${dir}/agent-t.sock
  state-file: ${dir}/agent-t.json
  log-level: warn
  servers:
${names.map((n) => `    - { name: ${n}, address: "127.0.0.1:${targetPort}", checks: { message: { type: tcp, interval-ms: 250 } } }`).join('\n')}
`,
  );
  const agent = startProcess(process.execPath, [
    '--import',
    'tsx',
    join(here, '../src/cli/main.ts'),
    'agent',
    '--config',
    config,
  ]);
  const rows: Record<string, string | number>[] = [];
  try {
    await waitFor('the agent', () => answers(port));
    let cClient: string | undefined;
    try {
      cClient = join(dir, 'agent-load');
      await exec('cc', ['-O2', '-o', cClient, join(here, 'lib/agent-load.c')]);
    } catch {
      cClient = undefined;
    }
    if (cClient) {
      // Open loop at the target rate (latency from each check's scheduled start), then saturation.
      for (const [label, r] of [
        [`C epoll, open loop ${rate}/s`, rate],
        ['C epoll, closed loop (saturation)', 0],
      ] as const) {
        const { stdout } = await exec(cClient, [
          '127.0.0.1',
          String(port),
          String(CONNECTIONS),
          String(seconds),
          String(r),
          ...names,
        ]);
        const res = JSON.parse(stdout) as {
          perSecond: number;
          p50ms: number;
          p99ms: number;
          maxms: number;
          errors: number;
        };
        rows.push({
          client: label,
          connections: CONNECTIONS,
          'replies/s': res.perSecond,
          'p50 ms': res.p50ms,
          'p99 ms': res.p99ms,
          'max ms': res.maxms,
          errors: res.errors,
        });
      }
      // The same saturation load against a do-nothing Node server: this machine's ceiling, same run.
      const ceilingPort = await freePort('127.0.0.1');
      const ceiling = startProcess(process.execPath, [join(here, 'lib/agent-ceiling.mjs'), String(ceilingPort)]);
      try {
        await waitFor('the do-nothing server', () => ceiling.output().includes('ready'));
        const { stdout } = await exec(cClient, [
          '127.0.0.1',
          String(ceilingPort),
          String(CONNECTIONS),
          String(seconds),
          '0',
          ...names,
        ]);
        const res = JSON.parse(stdout) as {
          perSecond: number;
          p50ms: number;
          p99ms: number;
          maxms: number;
          errors: number;
        };
        rows.push({
          client: 'C epoll, closed loop → do-nothing Node server (ceiling)',
          connections: CONNECTIONS,
          'replies/s': res.perSecond,
          'p50 ms': res.p50ms,
          'p99 ms': res.p99ms,
          'max ms': res.maxms,
          errors: res.errors,
        });
      } finally {
        await ceiling.stop();
      }
    }
    const r = await agentLoad({ host: '127.0.0.1', port, names, connections: CONNECTIONS, seconds, threads: 1 });
    rows.push({
      client: 'Node, closed loop (1 thread)',
      connections: CONNECTIONS,
      'replies/s': r.perSecond,
      'p50 ms': r.p50ms,
      'p99 ms': r.p99ms,
      'max ms': r.maxms,
      errors: r.errors,
    });
  } finally {
    await agent.stop();
    target.close();
  }
  return rows;
}

/** (2) Failover through every real part, with HAProxy's own keyword check in the same haproxy. */
async function failover(): Promise<{
  rows: Record<string, string | number>[];
  summary: Record<string, string | number>[];
  load: Record<string, number>;
}> {
  const DB = `ms_bench_agent_${process.pid}`;
  const db = await createKeywordDatabase(DB, 'db1');
  const web: WebServer[] = [];
  const cleanup: (() => Promise<unknown>)[] = [() => db.drop()];
  try {
    for (let i = 0; i < 3; i++)
      web.push(await startWebServer({ host: '127.0.0.1', port: await freePort('127.0.0.1'), database: DB }));
    cleanup.push(() => Promise.all(web.map((w) => w.kill())));
    const agentPort = await freePort('127.0.0.1');
    const agentYaml = agentConfigYaml({ port: agentPort, dir, web, intervalMs: 100, fall: 1 });
    const agent = await startAgent(parseConfig(agentYaml, join(dir, 'agent.yaml')), {
      logger,
      registry: new Registry(),
    });
    cleanup.push(() => agent.stop());
    const servers = (backend: string, extra: (i: number) => string) =>
      web.map((w, i) => `    server w${i + 1} 127.0.0.1:${w.port} weight 100 ${extra(i)}`).join('\n');
    const haproxy = await startHaproxy({
      body: `backend web
${servers('web', (i) => `check inter 2s agent-check agent-addr 127.0.0.1 agent-port ${agentPort} agent-send "web/w${i + 1}\\n" agent-inter 500ms`)}

backend native_fall1
    option httpchk GET /dbcheck
    http-check expect string db1
${servers('native_fall1', () => 'check inter 500ms fall 1 rise 2')}

backend native_default
    option httpchk GET /dbcheck
    http-check expect string db1
${servers('native_default', () => 'check inter 500ms')}
`,
    });
    cleanup.push(() => haproxy.stop());
    const lb = new RuntimeClient(haproxy.socket);
    const host = '127.0.0.5';
    const apiPort = await freePort(host);
    writeFileSync(join(dir, 'api-key'), `bench-${apiPort}\n`);
    const siteYaml = `site: a
sites: [{ name: a }, { name: b }]
backend: { socket: ${dir}/backend.sock, control: ${dir}/control.sock, state-file: ${dir}/state.json }
pdns: { url: "http://${host}:${apiPort}", api-key-file: api-key }
health: { load-balancers: [${haproxy.socket}], backend: web, interval-ms: ${healthInterval} }
zones:
  - name: example.com
    records: ["@ 3600 IN SOA ns1 hostmaster 1 3600 600 86400 60", "@ NS ns1", "ns1 A 192.0.2.53"]
balanced:
  - { name: www.example.com, ttl: 300, addresses: { a: [192.0.2.1], b: [198.51.100.1] } }
`;
    writeFileSync(join(dir, 'site.yaml'), siteYaml);
    const { startSite: startBackend } = await import('../src/site/index.js');
    const backend = await startBackend(parseConfig(siteYaml, join(dir, 'site.yaml')), {
      logger,
      registry: new Registry(),
    });
    cleanup.push(() => backend.stop());
    const pdns = await startPdns({
      host,
      apiPort,
      apiKey: `bench-${apiPort}`,
      backend: { kind: 'remote', connection: `unix:path=${dir}/backend.sock` },
      probeName: 'example.com.',
    });
    cleanup.push(() => pdns.stop());

    const allStatus = async (backendName: string, pred: (s: string) => boolean) =>
      (await lb.showStat({ proxy: backendName, serversOnly: true })).every((r) => pred(r.status));
    const dns = () => aRecords(host, pdns.port, 'www.example.com.');
    const healthy = async () => {
      await when(
        'every pool up',
        async () =>
          (await allStatus('web', (s) => s === 'UP')) &&
          (await allStatus('native_fall1', (s) => s === 'UP')) &&
          (await allStatus('native_default', (s) => s === 'UP')),
        20_000,
        10,
      );
      await when('site a first', async () => (await dns()).join() === '192.0.2.1,198.51.100.1', 10_000, 5);
    };
    await healthy();
    const dbHitsBefore = web.map((w) => new Map(w.hits));
    const measuredFrom = performance.now();
    const rows: Record<string, string | number>[] = [];
    for (let run = 1; run <= runs; run++) {
      // Start at a random point of HAProxy's agent-inter cycle, as a real failure would.
      await new Promise((r) => setTimeout(r, Math.random() * 500));
      await dns(); // the packet cache holds the old answer
      let tableAt = 0;
      const onChange = () => {
        if (!backend.table.isUsable('a') && !tableAt) tableAt = performance.now();
      };
      backend.table.on('change', onChange);
      // "Pool dead" is the start of the rename (its first step ends the web servers' database sessions).
      const t0 = performance.now();
      await db.rename(`${DB}_broken`);
      const agentAt = when(
        'agent: every server down',
        () => [...agent.servers.values()].every((h) => h.replyText.startsWith('down')),
        15_000,
        1,
      );
      const haproxyAt = when(
        'HAProxy (agent): every server down',
        () => allStatus('web', (s) => s.startsWith('DOWN')),
        15_000,
        5,
      );
      const native1At = when(
        'HAProxy http-check fall 1: every server down',
        () => allStatus('native_fall1', (s) => s.startsWith('DOWN')),
        15_000,
        5,
      );
      const native3At = when(
        'HAProxy http-check default fall 3: every server down',
        () => allStatus('native_default', (s) => s.startsWith('DOWN')),
        15_000,
        5,
      );
      const dnsAt = when(
        'PowerDNS answers without site a',
        async () => (await dns()).join() === '198.51.100.1',
        15_000,
        2,
      );
      const [a, h, n1, n3, d] = await Promise.all([agentAt, haproxyAt, native1At, native3At, dnsAt]);
      backend.table.off('change', onChange);
      const r0 = performance.now();
      await db.rename(DB);
      const back = await when('site a back', async () => (await dns()).join() === '192.0.2.1,198.51.100.1', 15_000, 5);
      rows.push({
        run,
        'agent says down': a - t0,
        'HAProxy down (agent)': h - t0,
        'table: site down': tableAt - t0,
        'PowerDNS changed': d - t0,
        'HAProxy own check, fall 1': n1 - t0,
        'HAProxy own check, fall 3': n3 - t0,
        'recovery → site back': back - r0,
      });
      process.stdout.write(`failover run ${run}: PowerDNS answer changed after ${(d - t0).toFixed(0)} ms\n`);
      await healthy();
    }
    const elapsed = (performance.now() - measuredFrom) / 1000;
    const hits = (ua: (k: string) => boolean) =>
      web.reduce(
        (s, w, i) =>
          s +
          [...w.hits]
            .filter(([k]) => k.startsWith('/dbcheck') && ua(k))
            .reduce((x, [k, v]) => x + v - (dbHitsBefore[i]!.get(k) ?? 0), 0),
        0,
      );
    const load = {
      'agent /dbcheck per server per s': +(hits((k) => k.endsWith('multisite-agent')) / 3 / elapsed).toFixed(2),
      'HAProxy own checks /dbcheck per server per s (2 backends)': +(
        hits((k) => !k.endsWith('multisite-agent')) /
        3 /
        elapsed
      ).toFixed(2),
    };
    const keys = Object.keys(rows[0]!).filter((k) => k !== 'run');
    const summary = keys.map((k) => ({
      stage: k,
      'median ms': median(rows.map((r) => Number(r[k]))),
      'min ms': Math.min(...rows.map((r) => Number(r[k]))),
      'max ms': Math.max(...rows.map((r) => Number(r[k]))),
    }));
    return {
      rows: rows.map((r) =>
        Object.fromEntries(
          Object.entries(r).map(([k, v]) => [k, typeof v === 'number' && k !== 'run' ? Math.round(v) : v]),
        ),
      ),
      summary,
      load,
    };
  } finally {
    for (const c of cleanup.reverse()) await c().catch((err: unknown) => console.error(err));
  }
}

async function main(): Promise<void> {
  const context = { seconds, runs, cpus: cpus().length, loadavgAtStart: loadavg().map((x) => +x.toFixed(2)) };
  try {
    const t = await throughput();
    report('agent-throughput', t, context);
    if (process.argv.includes('--throughput-only')) return;
    const f = await failover();
    report('agent-failover-runs', f.rows, context);
    report('agent-failover', f.summary, {
      ...context,
      setup: `agent checks every 100 ms fall 1; HAProxy agent-inter 500ms; health interval-ms ${healthInterval}; own checks inter 500ms`,
      checkLoad: f.load,
    });
    process.stdout.write(`\nkeyword-page load: ${JSON.stringify(f.load)}\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
