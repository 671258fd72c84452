import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/index.js';
import { startAgent, type RunningAgent } from '../../../src/haproxy-agent/index.js';
import { RuntimeClient, type StatRow } from '../../../src/haproxy/index.js';
import { startHaproxy, type Haproxy } from '../../../src/lab/haproxy.js';
import { freePort } from '../../../src/lab/ports.js';
import { until } from './support.js';

/** A web server whose /health answers 200, or never (hang), or is gone (kill: connections refused). */
async function webServer(port: number) {
  const state = { hang: false };
  let server: Server | undefined;
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      const s = createServer((req, res) => {
        if (!state.hang) res.end('ok\n');
      });
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => resolve());
      server = s;
    });
  await listen();
  return {
    port,
    state,
    revive: listen,
    kill: () =>
      new Promise<void>((resolve) => {
        server!.close(() => resolve());
        server!.closeAllConnections();
      }),
  };
}

/**
 * The agent's push to a real haproxy 2.6: HAProxy polls the agent only every 60 s (agent-inter), so
 * a state change seen within the test came from the Runtime API push (`set server B/S agent ...`).
 */
describe('agent → HAProxy Runtime API push (real haproxy)', () => {
  let dir: string;
  const web: Awaited<ReturnType<typeof webServer>>[] = [];
  let haproxy: Haproxy;
  let agent: RunningAgent;
  let lb: RuntimeClient;
  const registry = new Registry();
  /** Every run of web/w2's message check: failures in a row, and the verdict after it. */
  const w2Runs: { failures: number; up: boolean | undefined }[] = [];
  const FALL = 3;

  /**
   * Servers without `check` (HAProxy's own checks would run at a random time of their own): running reads "no check".
   */
  const running = (r: StatRow) => r.status === 'no check';
  const pool = async (): Promise<Record<string, StatRow>> =>
    Object.fromEntries((await lb.showStat({ proxy: 'web', serversOnly: true })).map((r) => [r.name, r]));
  const pushedOk = async (server: string) =>
    (await registry.getSingleMetricAsString('multisite_agent_push_timestamp_seconds')).includes(`server="${server}"`);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ms-agent-push-'));
    for (let i = 0; i < 3; i++) web.push(await webServer(await freePort('127.0.0.1')));
    const agentPort = await freePort('127.0.0.1');
    haproxy = await startHaproxy({
      body: `backend web
${web.map((w, i) => `    server w${i + 1} 127.0.0.1:${w.port} weight 100 agent-check agent-addr 127.0.0.1 agent-port ${agentPort} agent-send "web/w${i + 1}\\n" agent-inter 60s`).join('\n')}
`,
    });
    lb = new RuntimeClient(haproxy.socket);
    const yaml = `site: a
sites: [{ name: a }]
agent:
  listen: 127.0.0.1:${agentPort}
  control: ${dir}/agent.sock
  state-file: ${dir}/agent-state.json
  haproxy: { runtime-api: [${haproxy.socket}] }
  servers:
${web.map((w, i) => `    - name: web/w${i + 1}\n      address: 127.0.0.1:${w.port}\n      checks: { message: { interval-ms: 100, timeout-ms: 300, rise: 2, fall: ${FALL} } }`).join('\n')}
`;
    writeFileSync(join(dir, 'agent.yaml'), yaml);
    agent = await startAgent(parseConfig(yaml, join(dir, 'agent.yaml')), {
      logger: pino({ level: process.env.TEST_LOG ?? 'silent' }),
      registry,
      onCheck: (server, kind, state) => {
        if (server === 'web/w2') w2Runs.push({ failures: state.failures, up: state.up });
      },
    });
  });

  afterAll(async () => {
    await Promise.allSettled([agent?.stop(), haproxy?.stop(), ...web.map((w) => w.kill())]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('starts with every server up', async () => {
    await until(
      'agent: every server up',
      () => [...agent.servers.values()].every((h) => h.verdict === true),
      performance.now(),
    );
    // The agent's verdicts reach HAProxy by its push and its own agent-check: wait for them there.
    await until(
      'HAProxy: every server running',
      async () => Object.values(await pool()).every(running),
      performance.now(),
    );
  });

  it('a refused connection: the agent says down at once and pushes it; HAProxy marks the server DOWN without polling', async () => {
    await web[0]!.kill();
    await until('HAProxy: w1 DOWN', async () => (await pool()).w1!.status.startsWith('DOWN'), performance.now());
    expect(agent.servers.get('web/w1')!.replyText).toMatch(/^down #connection (refused|reset) \(\/health\)\n$/);
    expect(await pushedOk('web/w1')).toBe(true);
    // One refused run was enough, with fall 3.
    expect(agent.servers.get('web/w1')!.runners.get('message')!.state.failures).toBeGreaterThanOrEqual(1);
  });

  it('back: rise successes, pushed up, HAProxy marks it UP again without polling', async () => {
    await web[0]!.revive();
    await until('HAProxy: w1 running', async () => running((await pool()).w1!), performance.now());
    expect(agent.servers.get('web/w1')!.replyText).toBe('up\n');
  });

  it('timeouts are uncertain: the verdict flips only at the `fall`-th timeout in a row, then HAProxy hears it', async () => {
    w2Runs.length = 0;
    web[1]!.state.hang = true;
    await until('HAProxy: w2 DOWN', async () => (await pool()).w2!.status.startsWith('DOWN'), performance.now());
    const firstDown = w2Runs.findIndex((r) => r.up === false);
    expect(firstDown).toBeGreaterThanOrEqual(0);
    expect(w2Runs[firstDown]!.failures).toBe(FALL);
    expect(w2Runs.slice(0, firstDown).every((r) => r.up === true && r.failures < FALL)).toBe(true);
    expect(agent.servers.get('web/w2')!.replyText).toBe('down #timeout after 300 ms\n');
    web[1]!.state.hang = false;
    await until('HAProxy: w2 running', async () => running((await pool()).w2!), performance.now());
  });

  it("an operator's MAINT and DRAIN in HAProxy stay, whatever the agent pushes", async () => {
    await lb.setServerState('web', 'w3', 'maint');
    const pushes = async () =>
      (await registry.getSingleMetricAsString('multisite_agent_push_seconds'))
        .match(/multisite_agent_push_seconds_count\{[^}]*result="ok"\} (\d+)/g)
        ?.join() ?? '';
    const before = await pushes();
    await web[2]!.kill();
    await until(
      'agent: w3 down and pushed',
      async () => agent.servers.get('web/w3')!.verdict === false && (await pushes()) !== before,
      performance.now(),
    );
    expect((await pool()).w3!.status).toBe('MAINT');
    const mid = await pushes();
    await web[2]!.revive();
    await until(
      'agent: w3 up and pushed',
      async () => agent.servers.get('web/w3')!.verdict === true && (await pushes()) !== mid,
      performance.now(),
    );
    expect((await pool()).w3!.status).toBe('MAINT');
    await lb.setServerState('web', 'w3', 'drain');
    await web[2]!.kill();
    await until('agent: w3 down', () => agent.servers.get('web/w3')!.verdict === false, performance.now());
    await until(
      'HAProxy: w3 DOWN, still drained',
      async () => (await pool()).w3!.status.startsWith('DOWN'),
      performance.now(),
    );
    const s = (await lb.showServersState('web')).find((x) => x.server === 'w3')!;
    expect(s.drain).toBe(true);
    await web[2]!.revive();
    await until(
      'HAProxy: w3 running, still drained',
      async () =>
        (await lb.showServersState('web')).some((x) => x.server === 'w3' && x.operational === 'running' && x.drain),
      performance.now(),
    );
    await lb.setServerState('web', 'w3', 'ready');
    expect(running((await pool()).w3!)).toBe(true);
  });
});
