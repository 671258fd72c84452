import { describe, expect, it } from 'vitest';
import { verifyRequest } from '../../../src/coordinator/auth.js';
import { FailoverClient, type FailoverEvent, type HttpRequest } from '../../../src/failover-client/index.js';
import { VirtualTimers } from '../haproxy-agent/virtual-timers.js';

const key = Buffer.from('coordinator key of 32 bytes ok!!');

/** Servers by base URL: up (200 "from URL") or down (connection refused); every call recorded in virtual ms. */
function net(timers: VirtualTimers) {
  const down = new Set<string>();
  const calls: { at: number; url: string; method: string }[] = [];
  const reports: { url: string; body: unknown; auth: boolean }[] = [];
  const send = async (req: HttpRequest) => {
    calls.push({ at: timers.now(), url: req.url, method: req.method });
    if (req.url.startsWith('http://coord')) {
      const path = new URL(req.url).pathname;
      const auth = verifyRequest(key, req.headers['x-multisite-auth'], 'POST', path, req.body ?? '', 5000, 30_000).ok;
      reports.push({ url: path, body: JSON.parse(req.body!), auth });
      return { status: 200, body: JSON.stringify({ state: path.endsWith('report') ? 'offline' : 'online' }) };
    }
    const base = new URL(req.url).origin;
    if (down.has(base)) throw new Error('connect ECONNREFUSED');
    return { status: 200, body: `from ${base}` };
  };
  return { down, calls, reports, send };
}

function setup() {
  const timers = new VirtualTimers();
  const n = net(timers);
  const events: FailoverEvent[] = [];
  const client = new FailoverClient({
    servers: {
      p1: { url: 'http://s1', failover: 'http://f1', name: 'web/s1' },
      p2: { url: 'http://s2', failover: 'http://f1', name: 'web/s2' },
    },
    retries: 2,
    retryDelayMs: 100,
    failoverMs: 5000,
    coordinator: { url: 'http://coord', key, reporter: 'app-1' },
    timers,
    wallNow: () => 5000,
    send: n.send,
    onEvent: (e) => events.push(e),
  });
  return { timers, n, events, client };
}

describe('FailoverClient (virtual time)', () => {
  it('sends each partition to its own server while it answers', async () => {
    const { client, n } = setup();
    expect(await client.request('p1', '/x')).toEqual({
      status: 200,
      body: 'from http://s1',
      servedBy: 'http://s1',
      failover: false,
    });
    expect(await client.request('p2', '/x')).toMatchObject({ servedBy: 'http://s2' });
    expect(n.calls.map((c) => c.url)).toEqual(['http://s1/x', 'http://s2/x']);
  });

  it('retries a failed server twice, 100 ms apart, then fails over, reports it (signed), and sends to the failover server', async () => {
    const { client, n, timers, events } = setup();
    n.down.add('http://s1');
    const res = client.request('p1', '/x');
    await timers.advance(200);
    expect(await res).toEqual({ status: 200, body: 'from http://f1', servedBy: 'http://f1', failover: true });
    expect(n.calls.filter((c) => c.url === 'http://s1/x').map((c) => c.at)).toEqual([0, 100, 200]);
    await Promise.all(client.pending);
    expect(n.reports).toEqual([
      {
        url: '/coordinator/report',
        body: { server: 'web/s1', reporter: 'app-1', reason: 'connect ECONNREFUSED' },
        auth: true,
      },
    ]);
    expect(events.map((e) => e.type)).toEqual(['retry', 'retry', 'failover', 'reported']);
    expect(client.inFailover()).toEqual(['p1']);
    // Other partitions are not affected.
    expect(await client.request('p2', '/x')).toMatchObject({ servedBy: 'http://s2', failover: false });
  });

  it('in failover mode goes straight to the failover server until failover time has passed', async () => {
    const { client, n, timers } = setup();
    n.down.add('http://s1');
    const first = client.request('p1', '/x');
    await timers.advance(200);
    await first;
    n.calls.length = 0;
    await timers.advance(4700); // t=4900 < 200 + 5000
    expect(await client.request('p1', '/y')).toMatchObject({ servedBy: 'http://f1' });
    expect(n.calls.map((c) => c.url)).toEqual(['http://f1/y']);
  });

  it('after the failover time tries the original once: still down → failover again for another period', async () => {
    const { client, n, timers } = setup();
    n.down.add('http://s1');
    const first = client.request('p1', '/x');
    await timers.advance(200);
    await first;
    await timers.advance(5000); // t=5200
    n.calls.length = 0;
    expect(await client.request('p1', '/y')).toMatchObject({ servedBy: 'http://f1', failover: true });
    expect(n.calls.map((c) => c.url)).toEqual(['http://s1/y', 'http://f1/y']);
    await timers.advance(4999);
    n.calls.length = 0;
    await client.request('p1', '/z');
    expect(n.calls.map((c) => c.url)).toEqual(['http://f1/z']);
  });

  it('leaves failover mode when the original answers again, and tells the coordinator', async () => {
    const { client, n, timers, events } = setup();
    n.down.add('http://s1');
    const first = client.request('p1', '/x');
    await timers.advance(200);
    await first;
    n.down.delete('http://s1');
    await timers.advance(5000);
    expect(await client.request('p1', '/y')).toEqual({
      status: 200,
      body: 'from http://s1',
      servedBy: 'http://s1',
      failover: false,
    });
    await Promise.all(client.pending);
    expect(client.inFailover()).toEqual([]);
    expect(n.reports.map((r) => r.url)).toEqual(['/coordinator/report', '/coordinator/online']);
    expect(events.map((e) => e.type)).toEqual(['retry', 'retry', 'failover', 'reported', 'recovered', 'reported']);
  });

  it('treats 5xx as failure by default, and throws when the failover server fails too', async () => {
    const { client, n, timers } = setup();
    n.down.add('http://s1');
    n.down.add('http://f1');
    const res = client.request('p1', '/x');
    const caught = res.catch((e: Error) => e.message);
    await timers.advance(200);
    expect(await caught).toBe(
      'http://s1 is in failover mode and its failover server http://f1 failed too: connect ECONNREFUSED',
    );
    await expect(client.request('nope', '/')).rejects.toThrow("unknown server 'nope'");
  });
});
