import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/index.js';
import { agentRequest, startAgent, type RunningAgent } from '../../../src/haproxy-agent/index.js';
import { RuntimeClient, type StatRow } from '../../../src/haproxy/index.js';
import { agentConfigYaml, startHaproxy, type Haproxy, type WebServer } from '../../../src/lab/haproxy.js';
import { freePort } from '../../../src/lab/ports.js';
import { startSite, type SiteUnderTest } from '../support/cluster.js';
import { addresses, query } from '../support/dns.js';
import { createDatabase, startWebPool, until } from './support.js';

/**
 * The whole chain on real parts: three web servers (their /dbcheck queries a real PostgreSQL
 * database), the agent, a real haproxy 2.6 using it, our backend reading haproxy's Runtime API, and
 * a real pdns_server answering from the backend with its packet cache on.
 */
const DB = `ms_agent_${process.pid}`;
const A = '192.0.2.1';
const B = '198.51.100.1';

describe('agent → HAProxy → site health → PowerDNS (real haproxy, pdns_server, PostgreSQL)', () => {
  let dir: string;
  let db: Awaited<ReturnType<typeof createDatabase>>;
  let web: WebServer[] = [];
  let agent: RunningAgent;
  let haproxy: Haproxy;
  let site: SiteUnderTest;
  let lb: RuntimeClient;
  const timings: Record<string, number> = {};

  const pool = async (): Promise<Record<string, StatRow>> =>
    Object.fromEntries((await lb.showStat({ proxy: 'web', serversOnly: true })).map((r) => [r.name, r]));
  const answer = async () => addresses(await query(site.pdns.host, site.pdns.port, 'www.example.com.', 'A'));

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ms-agent-it-'));
    db = await createDatabase(DB, 'db1');
    web = await startWebPool(3, DB);
    const agentPort = await freePort('127.0.0.1');
    const agentYaml = agentConfigYaml({ port: agentPort, dir, web, intervalMs: 100, fall: 1 });
    writeFileSync(join(dir, 'agent.yaml'), agentYaml);
    agent = await startAgent(parseConfig(agentYaml, join(dir, 'agent.yaml')), {
      logger: pino({ level: process.env.TEST_LOG ?? 'silent' }),
      registry: new Registry(),
    });
    const frontPort = await freePort('127.0.0.1');
    haproxy = await startHaproxy({
      body: `frontend www
    bind 127.0.0.1:${frontPort}
    default_backend web

backend web
${web.map((w, i) => `    server w${i + 1} 127.0.0.1:${w.port} weight 100 check inter 2s agent-check agent-addr 127.0.0.1 agent-port ${agentPort} agent-send "web/w${i + 1}\\n" agent-inter 500ms`).join('\n')}
`,
    });
    lb = new RuntimeClient(haproxy.socket);
    site = await startSite({
      host: '127.0.0.4',
      config: `site: a
sites: [{ name: a }, { name: b }]
backend: { socket: "{{DIR}}/backend.sock", control: "{{DIR}}/control.sock", state-file: "{{DIR}}/state.json" }
pdns: { url: "{{API_URL}}", api-key-file: api-key }
health:
  load-balancers: [${haproxy.socket}]
  backend: web
zones:
  - name: example.com
    records: ["@ 3600 IN SOA ns1 hostmaster 1 3600 600 86400 60", "@ NS ns1", "ns1 A 192.0.2.53"]
balanced:
  - name: www.example.com
    ttl: 300
    addresses: { a: [${A}], b: [${B}] }
`,
    });
  });

  afterAll(async () => {
    console.log(
      `stage timings (ms): ${JSON.stringify(Object.fromEntries(Object.entries(timings).map(([k, v]) => [k, Math.round(v)])))}`,
    );
    await Promise.allSettled([site?.stop(), haproxy?.stop(), agent?.stop(), ...web.map((w) => w.kill())]);
    await db?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('starts with every server up through the agent and the site first in its own answer', async () => {
    await until(
      'all three servers UP via agent',
      async () => Object.values(await pool()).every((r) => r.status === 'UP' && r.lastAgent.includes('up')),
      performance.now(),
    );
    expect([...agent.servers.values()].map((h) => h.replyText)).toEqual(['up\n', 'up\n', 'up\n']);
    await until('site a first', async () => (await answer()).join() === `${A},${B}`, performance.now());
  });

  it('one web server killed: HAProxy marks it down through the agent; the site stays up', async () => {
    const t0 = performance.now();
    await web[1]!.kill();
    timings.killAgentDown = await until(
      'agent says w2 down',
      () => agent.servers.get('web/w2')!.replyText.startsWith('down'),
      t0,
    );
    timings.killHaproxyDown = await until(
      'HAProxy marks w2 down',
      async () => (await pool()).w2!.status.startsWith('DOWN'),
      t0,
    );
    const w2 = (await pool()).w2!;
    // refused once the server is gone; reset when a check was in flight as it died (paired runs 3, 8)
    expect(w2.lastAgent).toMatch(/^via agent : down \(connection (refused|reset) \(\/health\)\)$/);
    expect(agent.servers.get('web/w2')!.replyText).toMatch(/^down #connection (refused|reset) \(\/health\)\n$/);
    expect((await pool()).w1!.status).toBe('UP');
    expect(site.backend.table.isUsable('a')).toBe(true);
    expect(await answer()).toEqual([A, B]);
  });

  it('the keyword page broken (database renamed): every server down, the site down, PowerDNS answers without it', async () => {
    await answer(); // the packet cache holds [A, B]
    const t0 = performance.now();
    await db.rename(`${DB}_broken`);
    timings.breakAgentAllDown = await until(
      'agent says every server down',
      () => [...agent.servers.values()].every((h) => h.replyText.startsWith('down')),
      t0,
    );
    timings.breakHaproxyAllDown = await until(
      'HAProxy: every server down',
      async () => Object.values(await pool()).every((r) => r.status.startsWith('DOWN')),
      t0,
    );
    timings.breakTableDown = await until(
      'site a unusable in the table',
      () => !site.backend.table.isUsable('a'),
      t0,
      10_000,
      1,
    );
    timings.breakDnsChanged = await until(
      'PowerDNS answers without site a',
      async () => (await answer()).join() === B,
      t0,
      10_000,
      2,
    );
    // HAProxy may first take w1 down on an agent check that timed out on a loaded machine (no
    // text): what its log shows, and the table's reason, follow with the agent's next answer.
    const agentWhy =
      /^via agent : down \(status 500 from \/dbcheck \(expected 200\): database error: database "ms_agent_\d+" does not exist\)$/;
    await until("HAProxy shows the agent's reason for w1", async () => agentWhy.test((await pool()).w1!.lastAgent), t0);
    // w2 was killed earlier: its reason is the agent's, or HAProxy's own check's when that saw it
    // first (a loaded machine delays the agent's answer, not the refused connection).
    const tableWhy =
      /^pool: pool web: fewer than 1 usable servers on every load balancer: .*0 of 3 usable \(w1 DOWN \(agent\) \(via agent : down \(status 500 from \/dbcheck \(expected 200\): database error: database "ms_agent_\d+" does not exist\)\); w2 DOWN \(agent\) \((via agent : down \(connection (refused|reset) \(\/health\)\)|Connection refused)\); w3 DOWN/;
    // (the table's reason follows HAProxy's at the next read: an event, or the 5 s safety read)
    await until('the table gives both reasons', () => tableWhy.test(site.backend.table.get('a')!.reason), t0, 20_000);
  });

  it('all repaired: servers back up, the site back first', async () => {
    const t0 = performance.now();
    await db.rename(DB);
    await web[1]!.revive();
    timings.repairHaproxyAllUp = await until(
      'HAProxy: every server up',
      async () => Object.values(await pool()).every((r) => r.status === 'UP'),
      t0,
    );
    timings.repairDnsBack = await until(
      'site a first again',
      async () => (await answer()).join() === `${A},${B}`,
      t0,
      10_000,
      2,
    );
    expect(site.backend.table.isUsable('a')).toBe(true);
  });

  it('an operator drain through the control socket drains the server in HAProxy; undrain makes it ready again', async () => {
    const res = await agentRequest(agent.control, { cmd: 'drain', server: 'web/w3' });
    expect(res).toMatchObject({ ok: true, changed: true, drained: true, reply: 'drain up' });
    await until('HAProxy: w3 DRAIN', async () => (await pool()).w3!.status.startsWith('DRAIN'), performance.now());
    expect(site.backend.table.isUsable('a')).toBe(true); // two servers left
    expect(await agentRequest(agent.control, { cmd: 'drain', server: 'web/nope' })).toEqual({
      ok: false,
      error: "unknown server 'web/nope' (known: web/w1, web/w2, web/w3)",
    });
    await agentRequest(agent.control, { cmd: 'undrain', server: 'web/w3' });
    expect(agent.servers.get('web/w3')!.replyText).toBe('ready up\n');
    await until('HAProxy: w3 UP again', async () => (await pool()).w3!.status === 'UP', performance.now());
  });
});
