import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import {
  AUTH_HEADER,
  Coordinator,
  coordinatorRoute,
  signRequest,
  verifyRequest,
  type ServerCheck,
} from '../../../src/coordinator/index.js';
import type { AdminState } from '../../../src/haproxy/index.js';
import { serveMetrics } from '../../../src/shared/metrics.js';
import { VirtualTimers } from '../haproxy-agent/virtual-timers.js';

const silent = pino({ level: 'silent' });
const srv = (name: string): ServerCheck => ({
  name,
  address: { host: '127.0.0.1', port: 1 },
  check: 'http',
  path: '/health',
  status: 200,
});

/** A load balancer recording every `set server ... state`, failing while `broken`. */
function lb(socket: string) {
  const writes: string[] = [];
  const o = {
    socket,
    writes,
    broken: false,
    setServerState: async (backend: string, server: string, state: AdminState) => {
      if (o.broken) throw new Error('cannot connect (ECONNREFUSED)');
      writes.push(`${backend}/${server} ${state}`);
    },
  };
  return o;
}

function setup() {
  const timers = new VirtualTimers();
  const alive = new Map<string, boolean>([
    ['web/w1', true],
    ['web/w2', true],
  ]);
  const verifications: { server: string; at: number }[] = [];
  const lbs = [lb('lb1'), lb('lb2')];
  const registry = new Registry();
  const coordinator = new Coordinator({
    servers: [srv('web/w1'), srv('web/w2')],
    loadBalancers: lbs,
    verify: (s) => {
      verifications.push({ server: s.name, at: timers.now() });
      // Verification takes 20 ms (virtual).
      return new Promise((resolve) =>
        timers.setTimeout(
          () => resolve(alive.get(s.name) ? { ok: true, detail: 'HTTP 200' } : { ok: false, detail: 'ECONNREFUSED' }),
          20,
        ),
      );
    },
    recheckMs: 2000,
    timers,
    wallNow: () => 1_000_000 + timers.now(),
    logger: silent,
    registry,
  });
  return { timers, alive, verifications, lbs, coordinator, registry };
}

describe('coordinator', () => {
  it('a reported server that answers is not marked', async () => {
    const { timers, coordinator, lbs } = setup();
    const answer = coordinator.report('web/w1', 'app1', 'timeout');
    await timers.advance(20);
    expect(await answer).toEqual({ server: 'web/w1', state: 'online', detail: 'HTTP 200' });
    expect(lbs.flatMap((l) => l.writes)).toEqual([]);
  });

  it('verifies once for concurrent reports, then puts the server in maintenance on every load balancer', async () => {
    const { timers, coordinator, lbs, alive, verifications } = setup();
    alive.set('web/w1', false);
    const answers = [
      coordinator.report('web/w1', 'app1', 'connection refused'),
      coordinator.report('web/w1', 'app2', 'timeout'),
    ];
    await timers.advance(20);
    expect(await Promise.all(answers)).toEqual([
      { server: 'web/w1', state: 'offline', detail: 'ECONNREFUSED', since: 1_000_020 },
      { server: 'web/w1', state: 'offline', detail: 'ECONNREFUSED', since: 1_000_020 },
    ]);
    expect(verifications).toEqual([{ server: 'web/w1', at: 0 }]);
    expect(lbs.map((l) => l.writes)).toEqual([['web/w1 maint'], ['web/w1 maint']]);
    expect(await coordinator.report('web/w1', 'app3', 'again')).toMatchObject({
      state: 'offline',
      detail: expect.stringContaining('already marked offline'),
    });
    expect(coordinator.status()).toEqual([
      {
        server: 'web/w1',
        state: 'offline',
        since: 1_000_020,
        reason: 'ECONNREFUSED (reported by app1: connection refused)',
        reporters: ['app1', 'app3'],
      },
      { server: 'web/w2', state: 'online' },
    ]);
  });

  it('re-checks every recheck interval, keeps the mark while it fails, and marks ready on every load balancer when it answers', async () => {
    const { timers, coordinator, lbs, alive, verifications } = setup();
    alive.set('web/w1', false);
    const a = coordinator.report('web/w1', 'app1', 'x');
    await timers.advance(20);
    await a;
    await timers.advance(2020); // re-check at 2020 (+20 ms): still dead, mark written again
    expect(verifications.map((v) => v.at)).toEqual([0, 2020]);
    expect(lbs[0]!.writes).toEqual(['web/w1 maint', 'web/w1 maint']);
    alive.set('web/w1', true);
    await timers.advance(2020); // re-check at 4040: answers
    // the next re-check is 2000 ms after the previous one ended
    expect(verifications.map((v) => v.at)).toEqual([0, 2020, 4040]);
    expect(lbs.map((l) => l.writes.at(-1))).toEqual(['web/w1 ready', 'web/w1 ready']);
    expect(coordinator.status()[0]).toEqual({ server: 'web/w1', state: 'online' });
    await timers.advance(10_000);
    expect(verifications.length).toBe(3); // nothing marked: no more re-checks
  });

  it('reports a load balancer it cannot write to, and writes it at the next re-check', async () => {
    const { timers, coordinator, lbs, alive } = setup();
    alive.set('web/w2', false);
    lbs[1]!.broken = true;
    const a = coordinator.report('web/w2', 'app1', 'x');
    await timers.advance(20);
    expect(await a).toMatchObject({ state: 'offline', errors: ['lb2: cannot connect (ECONNREFUSED)'] });
    lbs[1]!.broken = false;
    await timers.advance(2020);
    expect(lbs[1]!.writes).toEqual(['web/w2 maint']);
  });

  it('a reporter saying the server is back gets it checked at once', async () => {
    const { timers, coordinator, lbs, alive } = setup();
    alive.set('web/w1', false);
    const a = coordinator.report('web/w1', 'app1', 'x');
    await timers.advance(20);
    await a;
    alive.set('web/w1', true);
    const b = coordinator.reportOnline('web/w1', 'app1');
    await timers.advance(20);
    expect(await b).toEqual({ server: 'web/w1', state: 'online', detail: 'HTTP 200' });
    expect(lbs[0]!.writes).toEqual(['web/w1 maint', 'web/w1 ready']);
    expect(await coordinator.reportOnline('web/w2', 'app1')).toEqual({
      server: 'web/w2',
      state: 'online',
      detail: 'not marked',
    });
  });

  it('refuses servers it does not know', () => {
    const { coordinator } = setup();
    expect(() => coordinator.report('web/zz', 'app', 'x')).toThrow("unknown server 'web/zz'");
  });
});

describe('coordinator request signatures', () => {
  const key = Buffer.from('coordinator key of 32 bytes ok!!');
  it('accepts a signed request within the skew, refuses anything else', () => {
    const h = signRequest(key, 'POST', '/coordinator/report', '{"server":"web/w1"}', 1000);
    expect(verifyRequest(key, h, 'POST', '/coordinator/report', '{"server":"web/w1"}', 1000, 5000)).toEqual({
      ok: true,
    });
    expect(verifyRequest(key, h, 'POST', '/coordinator/report', '{"server":"web/w2"}', 1000, 5000)).toEqual({
      ok: false,
      reason: 'bad signature',
    });
    expect(verifyRequest(key, h, 'POST', '/coordinator/online', '{"server":"web/w1"}', 1000, 5000)).toEqual({
      ok: false,
      reason: 'bad signature',
    });
    expect(
      verifyRequest(
        Buffer.from('another key, 16+ bytes'),
        h,
        'POST',
        '/coordinator/report',
        '{"server":"web/w1"}',
        1000,
        5000,
      ),
    ).toEqual({ ok: false, reason: 'bad signature' });
    expect(verifyRequest(key, h, 'POST', '/coordinator/report', '{"server":"web/w1"}', 7000, 5000)).toMatchObject({
      ok: false,
      reason: 'request time is -6000 ms off (at most ±5000)',
    });
    expect(verifyRequest(key, undefined, 'POST', '/x', '', 0, 5000)).toMatchObject({ ok: false });
  });

  it('serves report/online/servers on the metrics server: 401 unsigned, 404 unknown, 400 bad body, 200 signed', async () => {
    const { coordinator, registry } = setup();
    const server = await serveMetrics(registry, '127.0.0.1', 0, [coordinatorRoute(coordinator, key, 30_000, silent)]);
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const call = (path: string, body?: unknown, sign = true) => {
      const text = body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body);
      const method = body === undefined ? 'GET' : 'POST';
      const headers: Record<string, string> = sign ? { [AUTH_HEADER]: signRequest(key, method, path, text) } : {};
      return fetch(`${base}${path}`, { method, headers, ...(body === undefined ? {} : { body: text }) });
    };
    try {
      expect((await call('/coordinator/servers', undefined, false)).status).toBe(401);
      expect((await call('/coordinator/report', { server: 'web/w1' }, false)).status).toBe(401);
      expect((await call('/coordinator/report', { server: 'web/zz' })).status).toBe(404);
      expect((await call('/coordinator/report', 'not json')).status).toBe(400);
      expect((await call('/coordinator/report', { nope: 1 })).status).toBe(400);
      const servers = await call('/coordinator/servers');
      expect(await servers.json()).toEqual([
        { server: 'web/w1', state: 'online' },
        { server: 'web/w2', state: 'online' },
      ]);
      expect((await fetch(`${base}/metrics`)).status).toBe(200);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});
