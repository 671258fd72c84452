import { connect } from 'node:net';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentMetrics } from '../../../src/haproxy-agent/metrics.js';
import { ServerHealth } from '../../../src/haproxy-agent/server-health.js';
import { AgentService } from '../../../src/haproxy-agent/service.js';
import { parseAgentReply } from './haproxy-parser.js';
import { scriptedCheck, VirtualTimers } from './virtual-timers.js';

/** Sends `data` (or nothing), resolves with what came back and whether the agent closed first. */
function exchange(port: number, data: string | Buffer | null): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let out = '';
    s.on('connect', () => {
      if (data !== null) s.write(data);
    });
    s.on('data', (d) => (out += d.toString()));
    s.on('close', () => resolve(out));
    s.on('error', (err: NodeJS.ErrnoException) =>
      err.code === 'ECONNRESET' || err.code === 'EPIPE' ? resolve(out) : reject(err),
    );
  });
}

describe('AgentService (TCP, on loopback)', () => {
  const timers = new VirtualTimers();
  const registry = new Registry();
  const servers = new Map<string, ServerHealth>();
  let service: AgentService;
  let port: number;

  beforeAll(async () => {
    const timing = { intervalMs: 100, timeoutMs: 80, rise: 1, fall: 1 };
    servers.set(
      'web/w1',
      new ServerHealth(
        'web/w1',
        {
          message: { fn: scriptedCheck([true]), timing },
          load: { fn: scriptedCheck([25]), timing, capacity: 100, floor: 10 },
        },
        timers,
        1000,
      ),
    );
    servers.set(
      'web/w2',
      new ServerHealth(
        'web/w2',
        { keyword: { fn: scriptedCheck(["keyword 'db1' not found in /dbcheck"]), timing } },
        timers,
        1000,
      ),
    );
    servers.set(
      'web/w3',
      new ServerHealth('web/w3', { message: { fn: () => new Promise(() => {}), timing } }, timers, 1000),
    );
    for (const h of servers.values()) h.start();
    await timers.advance(0);
    service = new AgentService(
      servers,
      { host: '127.0.0.1', port: 0, clientTimeoutMs: 150, maxLineBytes: 64, maxConnections: 10_000 },
      new AgentMetrics(registry),
      pino({ level: 'silent' }),
    );
    await service.start();
    port = service.address.port;
  });
  afterAll(async () => {
    for (const h of servers.values()) h.stop();
    await service.stop();
  });

  it('answers the named server from its latest results and closes', async () => {
    expect(await exchange(port, 'web/w1\n')).toBe('up 78%\n');
    expect(await exchange(port, 'web/w2\r\n')).toBe("down #keyword 'db1' not found in /dbcheck\n");
    expect(await exchange(port, 'web/w3\n')).toBe('\n'); // no result yet: an empty line changes nothing
  });

  it('answers a request split over several packets', async () => {
    const out = await new Promise<string>((resolve) => {
      const s = connect(port, '127.0.0.1');
      let got = '';
      s.on('connect', () => {
        s.write('web/');
        setImmediate(() => s.write('w1\n'));
      });
      s.on('data', (d) => (got += d.toString()));
      s.on('close', () => resolve(got));
    });
    expect(out).toBe('up 78%\n');
  });

  it('answers unknown names, junk and overlong lines `down #why` (HAProxy logs it), and closes silent clients', async () => {
    const unknown = await exchange(port, 'web/nope\n');
    expect(unknown).toBe(
      "down #unknown server 'web/nope' (agent-send must name one of agent.servers: web/w1, web/w2, web/w3)\n",
    );
    // What HAProxy 2.6 makes of it: a health word (so the state change is logged) and the description.
    expect(parseAgentReply(unknown)).toMatchObject({
      complete: true,
      health: 'down',
      description: "unknown server 'web/nope' (agent-send must name one of agent.servers: web/w1, web/w2, web/w3)",
    });
    expect(parseAgentReply(unknown).error).toBeUndefined();
    expect(await exchange(port, Buffer.from([0, 1, 2, 255, 10]))).toBe("down #not a server name: '????'\n");
    expect(await exchange(port, '\n')).toBe('down #empty request: agent-send must name a server\n');
    expect(await exchange(port, `${'x'.repeat(65)}`)).toBe('down #request longer than 64 bytes (max-line-bytes)\n');
    expect(await exchange(port, `${'x'.repeat(100)}\n`)).toBe('down #request longer than 64 bytes (max-line-bytes)\n');
    expect(await exchange(port, null)).toBe('');
    expect(await exchange(port, 'web/w1')).toBe(''); // no line end and no half-close: the client timeout closes it
    const metrics = await registry.getSingleMetricAsString('multisite_agent_refused_total');
    for (const why of ['unknown-server', 'junk', 'overlong', 'timeout']) expect(metrics).toContain(`why="${why}"`);
  });

  it('answers a client that half-closes after a name without a line end', async () => {
    const out = await new Promise<string>((resolve, reject) => {
      const s = connect(port, '127.0.0.1');
      let got = '';
      s.on('connect', () => s.end('web/w1'));
      s.on('data', (d) => (got += d.toString()));
      s.on('close', () => resolve(got));
      s.on('error', reject);
    });
    expect(out).toBe('up 78%\n');
  });

  it('serves a thousand concurrent connections, and still answers afterwards', async () => {
    const replies = await Promise.all(
      Array.from({ length: 1000 }, (_, i) => exchange(port, i % 2 ? 'web/w1\n' : 'web/w2\n')),
    );
    expect(replies.filter((r) => r === 'up 78%\n')).toHaveLength(500);
    expect(await exchange(port, 'web/w1\n')).toBe('up 78%\n');
    const metrics = await registry.getSingleMetricAsString('multisite_agent_replies_total');
    expect(metrics).toMatch(/server="web\/w1",reply="up"} 50[0-9]/);
  });
});
