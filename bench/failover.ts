/**
 * Server failover, the whole chain on real parts: a web server dies → the agent's check says so →
 * HAProxy marks it DOWN → site health learns it (HAProxy's `ring`, `show events multisite -w`) →
 * the backend flushes PowerDNS's caches → PowerDNS answers without the dead site. Site a has one
 * web server (127.0.0.21), site b one (127.0.0.22); N balanced names (1,000 and 10,000) all answer
 * [a, b] while a is up, [b] when it is down; every name is in PowerDNS's packet cache when the
 * server dies. Beside it, in the same run: PowerDNS LUA records (`ifportup` on the same two web
 * servers, `lua-health-checks-interval=1`) in a second pdns_server with the bind backend.
 * The web server is killed at a random phase of every check cycle, then revived; each stage's time
 * is taken from its own signal (the agent's reply, HAProxy's ring event, the backend's table, the
 * flush log line, DNS answers polled every 5 ms).
 *   npx tsx bench/failover.ts [--scenario local|peer|all] [--runs 10] [--names 1000,10000]
 * --scenario peer (bench/lib/peer-failover.ts): site b with its own stack (HAProxy, agent,
 * backend), its pool's failure and recovery carried to site a by heartbeats; 5 runs by default,
 * at the first --names size. `all` (the default, `make bench`) runs both.
 * Components run at their defaults (agent checks, HAProxy line of docs/agent.md, health, pdns).
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { startWebServer, type WebServer } from '../src/lab/haproxy.js';
import { startPdns } from '../src/lab/pdns.js';
import { freePort } from '../src/lab/ports.js';
import { aRecords, median, when } from './lib/agent-failover.js';
import { commonPort, daemon, runCleanup, startLua, startSiteLb, type Cleanup } from './lib/stack.js';
import { peerFailover } from './lib/peer-failover.js';
import { report } from './lib/table.js';

const argValue = (name: string) =>
  process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : undefined;
const scenarioArg = argValue('--scenario') ?? 'all';
const runs = Number(argValue('--runs') ?? 10);
const sizes = (argValue('--names') ?? '1000,10000').split(',').map(Number);
if (!['local', 'peer', 'all'].includes(scenarioArg)) throw new Error('--scenario is local, peer or all');
const A = '127.0.0.21';
const B = '127.0.0.22';
const OURS = '127.0.0.24';
const LUA = '127.0.0.23';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const isDone = (s: { old: number; unanswered: number }) => s.old === 0 && s.unanswered === 0;

interface Times {
  check?: number;
  haproxy?: number;
  informed?: number;
  flushed?: number;
  answer?: number;
  lua?: number;
}

async function scenario(names: number): Promise<{
  down: Times[];
  up: Times[];
  wrong: number;
  answers: number;
  stales: number[];
  settings: Record<string, unknown>;
}> {
  const dir = mkdtempSync(join(tmpdir(), 'ms-bench-failover-'));
  const cleanup: Cleanup = [() => rmSync(dir, { recursive: true, force: true })];
  try {
    const port = await commonPort(A, B);
    // Site a's pool (web server, HAProxy, agent); site b is only an address here (bench --scenario peer has its stack).
    const site = await startSiteLb(dir, 'a', A, port, cleanup);
    const { haproxy, verdicts, ring, pushes, web: webA } = site;
    const reply = () => site.reply();
    const webB: WebServer = await startWebServer({ host: B, port, database: 'unused' });
    cleanup.push(() => webB.kill().catch(() => {}));

    // Our backend, every health/pdns setting at its default; its log lines timed.
    const flushes: number[] = [];
    const apiPort = await freePort(OURS);
    writeFileSync(join(dir, 'api-key'), `bench-${apiPort}\n`);
    const balanced = Array.from(
      { length: names },
      (_, i) => `  - { name: n${i}.example.com, ttl: 300, addresses: { a: [${A}], b: [${B}] } }`,
    ).join('\n');
    const siteYaml = `site: a
sites: [{ name: a }, { name: b }]
backend: { socket: ${dir}/backend.sock, control: ${dir}/control.sock, state-file: ${dir}/state.json }
pdns: { url: "http://${OURS}:${apiPort}", api-key-file: api-key }
health: { load-balancers: [${haproxy.socket}], backend: web }
zones:
  - name: example.com
    records: ["@ 3600 IN SOA ns1 hostmaster 1 3600 600 86400 60", "@ NS ns1", "ns1 A 192.0.2.53"]
balanced:
${balanced}
`;
    writeFileSync(join(dir, 'site.yaml'), siteYaml);
    const backend = daemon('backend', join(dir, 'site.yaml'));
    cleanup.push(() => backend.proc.stop());
    const table: { down: number[]; up: number[] } = { down: [], up: [] };
    backend.on('local pool verdict changed', (l, at) => table[l.up ? 'up' : 'down'].push(at));
    backend.on('flushed PowerDNS caches', (_l, at) => flushes.push(at));
    await when('the backend socket', () => existsSync(join(dir, 'backend.sock')), 60_000, 20);
    const ours = await startPdns({
      host: OURS,
      apiPort,
      apiKey: `bench-${apiPort}`,
      backend: { kind: 'remote', connection: `unix:path=${dir}/backend.sock` },
      probeName: 'example.com.',
      settings: { 'distributor-threads': 6 },
    });
    cleanup.push(() => ours.stop());

    // PowerDNS LUA records on the same two web servers, the same run.
    const lua = await startLua(dir, LUA, port, [A, B], "selector='all'", cleanup);

    const ourAnswer = async (i = 0) => (await aRecords(OURS, ours.port, `n${i}.example.com.`)).join();
    const luaAnswer = async () => (await aRecords(LUA, lua.port, 'www.lua.test.')).sort().join();
    const both = `${A},${B}`;
    /**
     * How many names answer other than `expect`, and how many did not answer twice (every name asked, 200 at a time).
     */
    const staleNames = async (expect: string) => {
      const stale: string[] = [];
      const unanswered: string[] = [];
      for (let i = 0; i < names; i += 200) {
        const got = await Promise.all(Array.from({ length: Math.min(200, names - i) }, (_, j) => ourAnswer(i + j)));
        // No answer within 200 ms (PowerDNS busy refilling its cache) is asked again, not counted as old.
        for (let j = 0; j < got.length; j++) {
          const g = got[j] === '' ? await ourAnswer(i + j) : got[j];
          if (g !== expect && g !== '') stale.push(`n${i + j}=${g}`);
          else if (g === '') unanswered.push(`n${i + j}`);
        }
      }
      if (stale.length + unanswered.length > 0)
        process.stdout.write(
          `  not yet ${expect}: ${stale.length} old (${stale.slice(0, 4).join(' ')}), ${unanswered.length} unanswered twice\n`,
        );
      return { old: stale.length, unanswered: unanswered.length };
    };

    // Continuous sampling of our first name for wrong answers (valid: [a, b] or [b], as the state allows).
    let sampling = true;
    let answers = 0;
    let wrong = 0;
    let expected: Set<string> = new Set([both]);
    const sampler = (async () => {
      while (sampling) {
        const got = await ourAnswer();
        answers++;
        if (!expected.has(got)) wrong++;
        await sleep(5);
      }
    })();
    cleanup.push(async () => ((sampling = false), await sampler));

    const steady = async (up: boolean) => {
      const want = up ? both : B;
      await when('the agent verdict', () => (reply() === '' ? up : reply().startsWith(up ? 'up' : 'down')), 20_000, 5);
      await when('our answer', async () => (await ourAnswer()) === want, 20_000, 5);
      await when('the LUA answer', async () => (await luaAnswer()) === want, 20_000, 5);
      await when('every name cached with its answer', async () => isDone(await staleNames(want)), 60_000, 50);
    };
    await steady(true);

    const down: Times[] = [];
    const up: Times[] = [];
    const stales: number[] = [];
    for (let run = 1; run <= runs; run++) {
      for (const dir2 of ['down', 'up'] as const) {
        await sleep(1000 + Math.random() * 1000); // a random phase of every check cycle
        const [v0, r0, t0, f0] = [verdicts[dir2].length, ring[dir2].length, table[dir2].length, flushes.length];
        const start = performance.now();
        expected = new Set([both, B]);
        await (dir2 === 'down' ? webA.kill() : webA.revive());
        const want = dir2 === 'down' ? B : both;
        const [answer, luaAt] = await Promise.all([
          when('our answer', async () => (await ourAnswer()) === want, 20_000, 5),
          when('the LUA answer', async () => (await luaAnswer()) === want, 20_000, 5),
        ]);
        // Cached names as fast as the one polled: right after it changed, no name answers the old order.
        const stale = await staleNames(want);
        stales.push(stale.old);
        await when('every name', async () => isDone(await staleNames(want)), 60_000, 5);
        expected = new Set([want]);
        const t: Times = { answer: answer - start, lua: luaAt - start };
        if (verdicts[dir2].length > v0) t.check = verdicts[dir2][v0]! - start;
        if (ring[dir2].length > r0) t.haproxy = ring[dir2][r0]! - start;
        if (table[dir2].length > t0) t.informed = table[dir2][t0]! - start;
        if (flushes.length > f0) t.flushed = flushes[f0]! - start;
        (dir2 === 'down' ? down : up).push(t);
        process.stdout.write(
          `${names} names, run ${run} ${dir2}: ${Object.entries(t)
            .map(([k, v]) => `${k} ${Math.round(v)}`)
            .join(', ')} ms\n`,
        );
      }
    }
    sampling = false;
    await sampler;
    return { down, up, wrong, answers, stales, settings: { agentPushesToHaproxy: pushes } };
  } finally {
    await runCleanup(cleanup);
  }
}

const STAGES: [keyof Times, string][] = [
  ['check', 'check verdict (agent)'],
  ['haproxy', 'HAProxy state (ring event)'],
  ['informed', 'backend informed (table)'],
  ['flushed', 'flush done'],
  ['answer', 'answer changed (ours)'],
  ['lua', 'PowerDNS LUA ifportup answer changed'],
];

async function main(): Promise<void> {
  if (scenarioArg !== 'peer') await localFailover();
  // A peer's pool: 5 runs of each event unless --runs says otherwise, at the first --names size.
  if (scenarioArg !== 'local') await peerFailover(Number(argValue('--runs') ?? 5), sizes[0]!);
}

async function localFailover(): Promise<void> {
  const rows: Record<string, string | number>[] = [];
  const raw: Record<string, unknown> = {};
  const context: Record<string, unknown> = {
    runs,
    sizes,
    cpus: cpus().length,
    loadavgAtStart: loadavg().map((x) => +x.toFixed(2)),
  };
  for (const n of sizes) {
    const r = await scenario(n);
    raw[n] = r;
    context[`settings-${n}`] = r.settings;
    for (const [key, label] of STAGES) {
      const d = r.down.map((t) => t[key]).filter((v): v is number => v !== undefined);
      const u = r.up.map((t) => t[key]).filter((v): v is number => v !== undefined);
      rows.push({
        names: n,
        stage: label,
        'fail median ms': d.length ? Math.round(median(d)) : '-',
        'fail max ms': d.length ? Math.round(Math.max(...d)) : '-',
        'recover median ms': u.length ? Math.round(median(u)) : '-',
        'recover max ms': u.length ? Math.round(Math.max(...u)) : '-',
        runs: `${d.length}/${u.length}`,
      });
    }
    rows.push({
      names: n,
      stage: `cached names answering the old order right after the polled one changed (of ${n}, per change)`,
      'fail median ms': `max ${Math.max(...r.stales)}`,
      'fail max ms': '',
      'recover median ms': '',
      'recover max ms': '',
      runs: r.stales.length,
    });
    rows.push({
      names: n,
      stage: `wrong answers (of ${r.answers} sampled every 5 ms)`,
      'fail median ms': r.wrong,
      'fail max ms': '',
      'recover median ms': '',
      'recover max ms': '',
      runs: '',
    });
  }
  context.loadavgAtEnd = loadavg().map((x) => +x.toFixed(2));
  report('failover', rows, { ...context, raw });
}

main().then(
  () => process.exit(0),
  (err: Error) => {
    process.stderr.write(`${err.stack ?? err.message}\n`);
    process.exit(1);
  },
);
