import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Coordinator, coordinatorRoute, verifyServer, type ServerCheck } from '../../../src/coordinator/index.js';
import { FailoverClient, type FailoverEvent } from '../../../src/failover-client/index.js';
import { RuntimeClient } from '../../../src/haproxy/index.js';
import { realTimers } from '../../../src/shared/timers.js';
import { startHaproxy, type Haproxy } from '../../../src/lab/haproxy.js';
import { freePort } from '../../../src/lab/ports.js';
import { serveMetrics } from '../../../src/shared/metrics.js';
import { until } from '../agent/support.js';

/** A web server answering "NAME PATH" that can die (stop listening, drop connections) and come back. */
async function webServer(name: string) {
  const port = await freePort('127.0.0.1');
  const sockets = new Set<Socket>();
  let server: Server;
  const listen = () =>
    new Promise<void>((resolve) => {
      server = createServer((req, res) => res.end(`${name} ${req.url}`));
      server.on('connection', (s) => {
        sockets.add(s);
        s.on('close', () => sockets.delete(s));
      });
      server.listen(port, '127.0.0.1', () => resolve());
    });
  await listen();
  return {
    name,
    port,
    url: `http://127.0.0.1:${port}`,
    kill: () => new Promise<void>((r) => (server.close(() => r()), sockets.forEach((s) => s.destroy()))),
    revive: listen,
  };
}

const key = Buffer.from('coordinator-integration-key-0123');
let haproxy: Haproxy;
let servers: Awaited<ReturnType<typeof webServer>>[];
let metricsServer: Server;
let coordinator: Coordinator;

beforeAll(async () => {
  servers = await Promise.all(['s1', 's2', 'f1'].map(webServer));
  const [s1, s2] = servers;
  const front = await freePort('127.0.0.1');
  haproxy = await startHaproxy({
    body: `frontend fe\n    bind 127.0.0.1:${front}\n    default_backend web\n\nbackend web\n    server s1 127.0.0.1:${s1!.port}\n    server s2 127.0.0.1:${s2!.port}\n`,
  });
  const checks: ServerCheck[] = [s1!, s2!].map((s) => ({
    name: `web/${s.name}`,
    address: { host: '127.0.0.1', port: s.port },
    check: 'http',
    path: '/health',
    status: 200,
  }));
  coordinator = new Coordinator({
    servers: checks,
    loadBalancers: [new RuntimeClient(haproxy.socket)],
    verify: (s) => verifyServer(s, 300, 2),
    recheckMs: 200,
    timers: realTimers,
    wallNow: Date.now,
    logger: pino({ level: 'silent' }),
  });
  metricsServer = await serveMetrics(new Registry(), '127.0.0.1', 0, [
    coordinatorRoute(coordinator, key, 30_000, pino({ level: 'silent' })),
  ]);
});

afterAll(async () => {
  await coordinator?.stop();
  await new Promise((r) => metricsServer?.close(r));
  await haproxy?.stop();
  await Promise.allSettled(servers.map((s) => s.kill()));
});

const haproxyStatus = async (server: string) =>
  (await new RuntimeClient(haproxy.socket).showStat({ proxy: 'web', serversOnly: true })).find((r) => r.name === server)
    ?.status;

describe('FailoverClient against real HTTP servers, the coordinator and a real haproxy', () => {
  it('fails over, gets the server verified and put in maintenance, and comes back when it answers', async () => {
    const [s1, , f1] = servers;
    const events: FailoverEvent[] = [];
    const client = new FailoverClient({
      servers: {
        p1: { url: s1!.url, failover: f1!.url, name: 'web/s1' },
        p2: { url: servers[1]!.url, failover: f1!.url, name: 'web/s2' },
      },
      retries: 2,
      retryDelayMs: 20,
      failoverMs: 1000,
      timeoutMs: 500,
      coordinator: {
        url: `http://127.0.0.1:${(metricsServer.address() as AddressInfo).port}`,
        key,
        reporter: 'it-test',
      },
      onEvent: (e) => events.push(e),
    });
    expect(await client.request('p1', '/a')).toMatchObject({ body: 's1 /a', failover: false });
    expect(await haproxyStatus('s1')).not.toBe('MAINT');

    await s1!.kill();
    expect(await client.request('p1', '/b')).toMatchObject({ body: 'f1 /b', failover: true, servedBy: f1!.url });
    await Promise.all(client.pending);
    const reported = events.find((e) => e.type === 'reported');
    expect(reported).toMatchObject({ state: 'offline', answer: { server: 'web/s1', state: 'offline' } });
    expect(await haproxyStatus('s1')).toBe('MAINT');
    expect(await haproxyStatus('s2')).not.toBe('MAINT');
    expect(await client.request('p2', '/c')).toMatchObject({ body: 's2 /c', failover: false });

    await s1!.revive();
    // The coordinator re-checks every 200 ms and marks it ready in haproxy.
    await until(
      'haproxy s1 ready again',
      async () => (await haproxyStatus('s1')) !== 'MAINT',
      performance.now(),
      5000,
      20,
    );
    // The client tries the original once its failover time has passed.
    await until(
      'client back on s1',
      async () => (await client.request('p1', '/d')).failover === false,
      performance.now(),
      5000,
      50,
    );
    await Promise.all(client.pending);
    expect(client.inFailover()).toEqual([]);
    expect(
      events.filter((e) => e.type !== 'retry').map((e) => `${e.type}${'state' in e ? `:${e.state}` : ''}`),
    ).toEqual(['failover', 'reported:offline', 'recovered', 'reported:online']);
    expect(coordinator.status()).toEqual([
      { server: 'web/s1', state: 'online' },
      { server: 'web/s2', state: 'online' },
    ]);
  });
});
