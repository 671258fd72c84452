import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/index.js';
import { startAgent, type RunningAgent } from '../../../src/haproxy-agent/index.js';
import { generateHaproxyConfig } from '../../../src/haproxy-config/index.js';
import { RuntimeClient } from '../../../src/haproxy/index.js';
import { startHaproxy, type Haproxy } from '../../../src/lab/haproxy.js';
import { freePort } from '../../../src/lab/ports.js';
import { startSite, type SiteUnderTest } from '../support/cluster.js';
import { until } from './support.js';

type Mode = 'ok' | 'slow' | 'flap' | 'broken';

/**
 * A web server whose /health answers by mode, counted per request: `slow` leaves every other
 * request unanswered (the agent's check times out), `flap` answers 200 and 503 in turn, `broken`
 * answers 503. So no two failures (slow, flap) or successes (flap) come in a row.
 */
async function patternServer(port: number) {
  const state = { mode: 'ok' as Mode, requests: 0 };
  const server: Server = createServer((_req, res) => {
    const n = state.requests++;
    if (state.mode === 'ok') return res.end('ok\n');
    if (state.mode === 'broken') return void res.writeHead(503).end('no\n');
    if (n % 2 === 0) return res.end('ok\n');
    if (state.mode === 'flap') return void res.writeHead(503).end('no\n');
    // slow: unanswered; the agent aborts it at its timeout.
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    state,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

const FALL = 2;
const RISE = 2;

/**
 * No false failover on real parts (the shipped server line, the agent, HAProxy, the backend, PowerDNS):
 * a slow server (timeouts fewer than `fall` in a row) and a flapping check (one failure, one success)
 * never take the site out of DNS, and a down server whose check flaps never comes back before `rise`
 * successes in a row. "Never" is over a counted number of checks, not a time.
 */
describe('no false failover: slow server, flapping check (real haproxy, agent, backend, pdns_server)', () => {
  let dir: string;
  let web: Awaited<ReturnType<typeof patternServer>>;
  let haproxy: Haproxy;
  let agent: RunningAgent;
  let site: SiteUnderTest;
  let lb: RuntimeClient;
  /** Every verdict the agent reached after each check run, and every change of site a in the backend's table. */
  const verdicts: (boolean | undefined)[] = [];
  const tableChanges: boolean[] = [];

  const agentYaml = (agentPort: number, port: number, socket: string) => `site: a
sites: [{ name: a }, { name: b }]
agent:
  listen: 127.0.0.1:${agentPort}
  control: ${dir}/agent.sock
  state-file: ${dir}/agent-state.json
  haproxy: { runtime-api: [${socket}] }
  servers:
    - name: web/w1
      address: 127.0.0.1:${port}
      checks: { message: { interval-ms: 100, timeout-ms: 300, rise: ${RISE}, fall: ${FALL} } }
`;
  /** Runs until the server has taken `n` more check requests. */
  const checksPass = (n: number) => {
    const target = web.state.requests + n;
    return until(`${n} more checks`, () => web.state.requests >= target, performance.now(), 30_000);
  };
  const w1Status = async () => (await lb.showStat({ proxy: 'web', serversOnly: true }))[0]!.status;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ms-no-false-it-'));
    const port = await freePort('127.0.0.1');
    web = await patternServer(port);
    const agentPort = await freePort('127.0.0.1');
    haproxy = await startHaproxy({
      body: generateHaproxyConfig(parseConfig(agentYaml(agentPort, port, '/unused.sock'), 'gen.yaml').config),
    });
    lb = new RuntimeClient(haproxy.socket);
    const yaml = agentYaml(agentPort, port, haproxy.socket);
    writeFileSync(join(dir, 'agent.yaml'), yaml);
    agent = await startAgent(parseConfig(yaml, join(dir, 'agent.yaml')), {
      logger: pino({ level: process.env.TEST_LOG ?? 'silent' }),
      registry: new Registry(),
      onCheck: (_server, _kind, state) => verdicts.push(state.up),
    });
    site = await startSite({
      host: '127.0.0.7',
      config: `site: a
sites: [{ name: a }, { name: b }]
backend: { socket: "{{DIR}}/backend.sock", control: "{{DIR}}/control.sock", state-file: "{{DIR}}/state.json" }
pdns: { url: "{{API_URL}}", api-key-file: api-key }
health: { load-balancers: [${haproxy.socket}], backend: web }
zones:
  - name: example.com
    records: ["@ 3600 IN SOA ns1 hostmaster 1 3600 600 86400 60", "@ NS ns1", "ns1 A 192.0.2.53"]
balanced:
  - { name: www.example.com, ttl: 300, addresses: { a: [192.0.2.1], b: [198.51.100.1] } }
`,
    });
    site.backend.table.on('change', ({ sites }) => {
      if (sites.includes('a')) tableChanges.push(site.backend.table.isUsable('a'));
    });
    await until(
      'w1 UP in HAProxy and site a usable',
      async () => (await w1Status()) === 'UP' && site.backend.table.isUsable('a'),
      performance.now(),
      20_000,
    );
  }, 60_000);

  afterAll(async () => {
    await Promise.allSettled([site?.stop(), agent?.stop(), haproxy?.stop(), web?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  for (const mode of ['slow', 'flap'] as const) {
    it(`a ${mode === 'slow' ? 'slow server (every other check times out)' : 'flapping check (200, 503, 200, ...)'} stays in: ${FALL - 1} failure in a row is below fall ${FALL}`, async () => {
      verdicts.length = 0;
      tableChanges.length = 0;
      web.state.mode = mode;
      await checksPass(16);
      web.state.mode = 'ok';
      expect(verdicts.length).toBeGreaterThan(0);
      expect(verdicts.every((v) => v === true)).toBe(true);
      expect(tableChanges).toEqual([]);
      expect(await w1Status()).toBe('UP');
    }, 60_000);
  }

  it(`a down server whose check flaps stays out: ${RISE - 1} success in a row is below rise ${RISE}`, async () => {
    web.state.mode = 'broken';
    await until('site a out', () => !site.backend.table.isUsable('a'), performance.now(), 20_000);
    verdicts.length = 0;
    tableChanges.length = 0;
    web.state.mode = 'flap';
    await checksPass(16);
    expect(verdicts.length).toBeGreaterThan(0);
    expect(verdicts.every((v) => v === false)).toBe(true);
    expect(tableChanges).toEqual([]);
    expect((await w1Status()).startsWith('DOWN')).toBe(true);
    // And it could come back: two successes in a row do it.
    web.state.mode = 'ok';
    await until('site a back', () => site.backend.table.isUsable('a'), performance.now(), 20_000);
  }, 60_000);
});
