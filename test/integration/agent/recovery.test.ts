import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/index.js';
import { startAgent, type RunningAgent } from '../../../src/haproxy-agent/index.js';
import { generateHaproxyConfig } from '../../../src/haproxy-config/index.js';
import { RuntimeClient, type StatRow } from '../../../src/haproxy/index.js';
import { startHaproxy, startWebServer, type Haproxy, type WebServer } from '../../../src/lab/haproxy.js';
import { freePort } from '../../../src/lab/ports.js';
import { startSite, type SiteUnderTest } from '../support/cluster.js';
import { until } from './support.js';

/**
 * Recovery after HAProxy's own `check` has failed too (a long outage): the server line of
 * `multisite haproxy-config` (docs/agent.md) with its `inter` and `agent-inter` raised to a minute,
 * so that neither HAProxy's steady checks nor its agent poll can bring the server back within the
 * test: only the line's `downinter`/`fastinter` (HAProxy's own check, once failed) and the agent's
 * Runtime API push (`up`, asked again until HAProxy's check agrees) can. Without either, the server
 * stays DOWN for 2 × inter and the waits below time out. The agent rises in one 50 ms check and
 * HAProxy's check needs `rise 4` (300 ms at fastinter): the agent's `up` always comes first and is
 * deferred, so only asking again delivers it.
 */
const agentYaml = (agentPort: number, dir: string, web: WebServer, socket: string) => `site: a
sites: [{ name: a }, { name: b }]
agent:
  listen: 127.0.0.1:${agentPort}
  control: ${dir}/agent.sock
  state-file: ${dir}/agent-state.json
  haproxy: { runtime-api: [${socket}] }
  servers:
    - name: web/w1
      address: 127.0.0.1:${web.port}
      checks: { message: { interval-ms: 50, timeout-ms: 500, rise: 1, fall: 2 } }
`;

describe("recovery after HAProxy's own check failed (real haproxy, agent, backend, pdns_server)", () => {
  let dir: string;
  let web: WebServer;
  let haproxy: Haproxy;
  let agent: RunningAgent;
  let site: SiteUnderTest;
  let lb: RuntimeClient;
  let serverLine = '';

  const w1 = async (): Promise<StatRow> => (await lb.showStat({ proxy: 'web', serversOnly: true }))[0]!;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ms-recovery-it-'));
    web = await startWebServer({ host: '127.0.0.1', port: await freePort('127.0.0.1'), database: 'unused' });
    // Dead from the start: HAProxy's own check fails before the test begins.
    await web.kill();
    const agentPort = await freePort('127.0.0.1');
    const generated = generateHaproxyConfig(
      parseConfig(agentYaml(agentPort, dir, web, '/unused.sock'), 'gen.yaml').config,
    );
    serverLine = generated.split('\n').find((l) => l.trim().startsWith('server w1 '))!;
    const body = generated
      .replace(/ inter \d+m?s/, ' inter 1m')
      .replace(/ check agent-check/, ' check inter 1m agent-check') // a line without its own inter
      .replace(/ agent-inter \d+m?s/, ' agent-inter 1m rise 4');
    haproxy = await startHaproxy({ body });
    lb = new RuntimeClient(haproxy.socket);
    const yaml = agentYaml(agentPort, dir, web, haproxy.socket);
    writeFileSync(join(dir, 'agent.yaml'), yaml);
    agent = await startAgent(parseConfig(yaml, join(dir, 'agent.yaml')), {
      logger: pino({ level: process.env.TEST_LOG ?? 'silent' }),
      registry: new Registry(),
    });
    site = await startSite({
      host: '127.0.0.6',
      config: `site: a
sites: [{ name: a }, { name: b }]
backend: { socket: "{{DIR}}/backend.sock", control: "{{DIR}}/control.sock", state-file: "{{DIR}}/state.json" }
pdns: { url: "{{API_URL}}", api-key-file: api-key }
health:
  load-balancers: [${haproxy.socket}]
  backend: web
  interval-ms: 60000
  safety-interval-ms: 600000
zones:
  - name: example.com
    records: ["@ 3600 IN SOA ns1 hostmaster 1 3600 600 86400 60", "@ NS ns1", "ns1 A 192.0.2.53"]
balanced:
  - { name: www.example.com, ttl: 300, addresses: { a: [192.0.2.1], b: [198.51.100.1] } }
`,
    });
  }, 60_000);

  afterAll(async () => {
    await Promise.allSettled([site?.stop(), agent?.stop(), haproxy?.stop(), web?.kill()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('the shipped line rechecks a failed server fast', () => {
    expect(serverLine).toMatch(/ check inter 2s fastinter 100ms downinter 100ms agent-check /);
  });

  it("revived after HAProxy's own check failed: the backend sees the server up without 2 × inter", async () => {
    await until(
      "HAProxy's own check failed (health 0) and the agent says down",
      async () => {
        const r = await w1();
        return (
          r.fields.check_health === '0' && r.status.startsWith('DOWN') && agent.servers.get('web/w1')!.verdict === false
        );
      },
      performance.now(),
      20_000,
    );
    expect(site.backend.table.isUsable('a')).toBe(false);
    expect((await w1()).fields.check_status).toMatch(/^(\* )?L4CON/); // '* ': HAProxy's next check is running (paired run 5)
    await web.revive();
    await until('the backend sees site a usable', () => site.backend.table.isUsable('a'), performance.now(), 20_000);
    const r = await w1();
    expect(r.status).toBe('UP');
    expect(Number(r.fields.check_health)).toBeGreaterThanOrEqual(Number(r.fields.check_rise));
    expect(agent.servers.get('web/w1')!.replyText).toBe('up\n');
  }, 60_000);
});
