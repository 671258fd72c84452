/**
 * Failover of a peer site's pool, measured at site a's PowerDNS (bench/failover.ts --scenario peer).
 * Two sites as an operator deploys them: per site a web server, HAProxy (docs/agent.md's server
 * line), `multisite agent`, `multisite backend` with `health:` on its own HAProxy and `peers:` at
 * every default; a real pdns_server at site a only. Events, each at a random phase of the checks
 * and heartbeats, A's answer asked every ~20 ms:
 *   - B down: b's web server killed → a's answer no longer lists b (b agent → b HAProxy → b backend
 *     → immediate heartbeat → a's table → a's flush → answer);
 *   - B back (A up): b's web server revived → listed again;
 *   - B back alone: a's web server down, b's down too (the name answers its fallback, `all`), b's
 *     web server revived → a answers b alone.
 * Beside it, PowerDNS LUA `ifportup` on the same two web servers (backupSelector 'all', like our
 * fallback) in the same run.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { startPdns } from '../../src/lab/pdns.js';
import { freePort } from '../../src/lab/ports.js';
import { aRecords, median, when } from './agent-failover.js';
import {
  commonPort,
  daemon,
  runCleanup,
  startLua,
  startSiteLb,
  type Cleanup,
  type Seen,
  type SiteLb,
} from './stack.js';
import { report } from './table.js';

const A = '127.0.0.21';
const B = '127.0.0.22';
const LUA = '127.0.0.23';
const HOST = { a: '127.0.0.24', b: '127.0.0.25' } as const;
const POLL_MS = 20;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Stages {
  bCheck?: number;
  bHaproxy?: number;
  bBackend?: number;
  aTable?: number;
  aFlushed?: number;
  answer?: number;
  lua?: number;
}
type EventName = 'B down' | 'B back (A up)' | 'B back alone';

interface Ports {
  hb: number;
  metrics: number;
}

/** One site's backend config: peers and health at their defaults; `pdnsApi` only where PowerDNS runs. */
function backendYaml(
  me: 'a' | 'b',
  dir: string,
  ports: Record<'a' | 'b', Ports>,
  lbSocket: string,
  names: number,
  pdnsApi?: number,
) {
  const site = (s: 'a' | 'b') =>
    `  - { name: ${s}, heartbeat: ["${HOST[s]}:${ports[s].hb}"], status-url: ["http://${HOST[s]}:${ports[s].metrics}/status"] }`;
  const balanced = Array.from(
    { length: names },
    (_, i) => `  - { name: n${i}.example.com, ttl: 300, addresses: { a: [${A}], b: [${B}] } }`,
  ).join('\n');
  return `site: ${me}
sites:
${site('a')}
${site('b')}
backend: { socket: ${dir}/${me}-backend.sock, control: ${dir}/${me}-control.sock, state-file: ${dir}/${me}-state.json, metrics: "${HOST[me]}:${ports[me].metrics}" }
${pdnsApi ? `pdns: { url: "http://${HOST[me]}:${pdnsApi}", api-key-file: api-key }\n` : ''}peers: { listen: "${HOST[me]}:${ports[me].hb}", key-file: peers.key }
health: { load-balancers: [${lbSocket}], backend: web }
zones:
  - name: example.com
    records: ["@ 3600 IN SOA ns1 hostmaster 1 3600 600 86400 60", "@ NS ns1", "ns1 A 192.0.2.53"]
balanced:
${balanced}
`;
}

/** Both backends started; the log lines each stage is timed by. */
async function startBackends(dir: string, lbs: Record<'a' | 'b', SiteLb>, names: number, cleanup: Cleanup) {
  const ports = {
    a: { hb: await freePort(HOST.a), metrics: await freePort(HOST.a) },
    b: { hb: await freePort(HOST.b), metrics: await freePort(HOST.b) },
  };
  const apiPort = await freePort(HOST.a);
  writeFileSync(join(dir, 'api-key'), `bench-${apiPort}\n`);
  writeFileSync(join(dir, 'peers.key'), 'bench-peers-key-0123456789abcdef\n', { mode: 0o600 });
  const signals = { bPool: { down: [], up: [] } as Seen, aSeesB: [] as number[], aFlushes: [] as number[] };
  for (const me of ['a', 'b'] as const) {
    const file = join(dir, `${me}-site.yaml`);
    writeFileSync(file, backendYaml(me, dir, ports, lbs[me].haproxy.socket, names, me === 'a' ? apiPort : undefined));
    const backend = daemon('backend', file);
    cleanup.push(() => backend.proc.stop());
    if (me === 'b') backend.on('local pool verdict changed', (l, at) => signals.bPool[l.up ? 'up' : 'down'].push(at));
    else {
      backend.on(
        'site state changed',
        (l, at) => void ((l.sites as string[]).includes('b') && signals.aSeesB.push(at)),
      );
      backend.on('flushed PowerDNS caches', (_l, at) => signals.aFlushes.push(at));
    }
  }
  const status = `http://${HOST.a}:${ports.a.metrics}/status`;
  await when('both backends', async () => (await fetch(status).catch(() => null))?.ok === true, 60_000, 50);
  await when(
    'b backend',
    async () => (await fetch(`http://${HOST.b}:${ports.b.metrics}/healthz`).catch(() => null))?.ok === true,
    60_000,
    50,
  );
  const pdns = await startPdns({
    host: HOST.a,
    apiPort,
    apiKey: `bench-${apiPort}`,
    backend: { kind: 'remote', connection: `unix:path=${dir}/a-backend.sock` },
    probeName: 'example.com.',
  });
  cleanup.push(() => pdns.stop());
  /** Whether site a's backend counts b usable (its /status). */
  const bUsableAtA = async () => {
    const j = (await (await fetch(status)).json()) as { sites: { site: string; usable: boolean }[] };
    return j.sites.find((s) => s.site === 'b')!.usable;
  };
  return { pdns, signals, bUsableAtA };
}

/** The first time in `xs` after index `from`, relative to `start`. */
const after = (xs: number[], from: number, start: number) => (xs.length > from ? xs[from]! - start : undefined);

/** Runs the whole scenario: `runs` of each event. */
async function run(runs: number, names: number) {
  const dir = mkdtempSync(join(tmpdir(), 'ms-bench-peer-failover-'));
  const answers = { total: 0, wrong: 0, unanswered: 0 };
  const cleanup: Cleanup = [() => rmSync(dir, { recursive: true, force: true })];
  try {
    const port = await commonPort(A, B);
    const lbs = { a: await startSiteLb(dir, 'a', A, port, cleanup), b: await startSiteLb(dir, 'b', B, port, cleanup) };
    const { pdns, signals, bUsableAtA } = await startBackends(dir, lbs, names, cleanup);
    const lua = await startLua(dir, LUA, port, [A, B], "selector='all', backupSelector='all'", cleanup);
    const ours = async () => (await aRecords(HOST.a, pdns.port, 'n0.example.com.')).sort().join();
    const luas = async () => (await aRecords(LUA, lua.port, 'www.lua.test.')).sort().join();
    const settle = async (want: string, bUsable: boolean) => {
      await when('b at a', async () => (await bUsableAtA()) === bUsable, 30_000, 20);
      await when(`our answer ${want}`, async () => (await ours()) === want, 30_000, 20);
      await when(`the LUA answer ${want}`, async () => (await luas()) === want, 30_000, 20);
    };
    /** Every answer polled during a change: the old one or the new one is right, anything else is wrong. */
    const tally = (before: string, want: string, got: string) => {
      answers.total++;
      if (got === '') answers.unanswered++;
      else if (got !== before && got !== want) answers.wrong++;
      return got === want;
    };
    const times: Record<EventName, Stages[]> = { 'B down': [], 'B back (A up)': [], 'B back alone': [] };
    const event = async (name: EventName, dir2: 'down' | 'up', act: () => Promise<void>, want: string) => {
      await sleep(1000 + Math.random() * 1000); // a random phase of the checks and heartbeats
      const b = lbs.b;
      const idx = [b.verdicts[dir2].length, b.ring[dir2].length, signals.bPool[dir2].length];
      const [seen0, flush0] = [signals.aSeesB.length, signals.aFlushes.length];
      const before = await ours();
      const start = performance.now();
      await act();
      const [answer, luaAt] = await Promise.all([
        when('our answer', async () => tally(before, want, await ours()), 30_000, POLL_MS),
        when('the LUA answer', async () => (await luas()) === want, 30_000, POLL_MS),
      ]);
      const t: Stages = {
        bCheck: after(b.verdicts[dir2], idx[0]!, start),
        bHaproxy: after(b.ring[dir2], idx[1]!, start),
        bBackend: after(signals.bPool[dir2], idx[2]!, start),
        aTable: after(signals.aSeesB, seen0, start),
        aFlushed: after(signals.aFlushes, flush0, start),
        answer: answer - start,
        lua: luaAt - start,
      };
      times[name].push(t);
      const shown = Object.entries(t).filter(([, v]) => v !== undefined);
      process.stdout.write(`${name}: ${shown.map(([k, v]) => `${k} ${Math.round(v!)}`).join(', ')} ms\n`);
    };
    const [both, onlyA, onlyB] = [`${A},${B}`, A, B];
    await settle(both, true);
    for (let i = 0; i < runs; i++) {
      await event('B down', 'down', () => lbs.b.web.kill(), onlyA);
      await event('B back (A up)', 'up', () => lbs.b.web.revive(), both);
    }
    for (let i = 0; i < runs; i++) {
      await lbs.a.web.kill();
      await settle(onlyB, true);
      await lbs.b.web.kill();
      await settle(both, false); // every site down: the fallback (`all`) and LUA's backupSelector 'all'
      await event('B back alone', 'up', () => lbs.b.web.revive(), onlyB);
      await lbs.a.web.revive();
      await settle(both, true);
    }
    return { times, answers, pushes: lbs.a.pushes && lbs.b.pushes };
  } finally {
    await runCleanup(cleanup);
  }
}

const STAGES: [keyof Stages, string][] = [
  ['bCheck', "b's agent verdict"],
  ['bHaproxy', "b's HAProxy state (ring event)"],
  ['bBackend', "b's backend pool verdict"],
  ['aTable', "a's table changed (b's heartbeat applied)"],
  ['aFlushed', "a's flush done"],
  ['answer', "a's answer changed (ours)"],
  ['lua', 'PowerDNS LUA ifportup answer changed'],
];

/** bench/failover.ts --scenario peer: prints the table, writes bench/results/failover-peer.json. */
export async function peerFailover(runs: number, names: number): Promise<void> {
  const loadStart = loadavg().map((x) => +x.toFixed(2));
  const { times, answers, pushes } = await run(runs, names);
  const rows: Record<string, string | number>[] = [];
  for (const [event, ts] of Object.entries(times)) {
    for (const [key, label] of STAGES) {
      const xs = ts.map((t) => t[key]).filter((v): v is number => v !== undefined);
      rows.push({
        event,
        stage: label,
        'median ms': xs.length ? Math.round(median(xs)) : '-',
        'max ms': xs.length ? Math.round(Math.max(...xs)) : '-',
        runs: `${xs.length}/${ts.length}`,
        target: key === 'answer' ? '≤ 600' : '',
      });
    }
  }
  rows.push({
    event: 'all',
    stage: `wrong answers (of ${answers.total} polled during the changes; ${answers.unanswered} unanswered within 200 ms)`,
    'median ms': answers.wrong,
    'max ms': '',
    runs: '',
    target: '0',
  });
  const loadEnd = loadavg().map((x) => +x.toFixed(2));
  process.stdout.write(`load average at start ${loadStart.join(' ')}, at end ${loadEnd.join(' ')}\n`);
  report('failover-peer', rows, {
    runs,
    names,
    pollMs: POLL_MS,
    agentPushesToHaproxy: pushes,
    loadStart,
    loadEnd,
    raw: times,
  });
}
