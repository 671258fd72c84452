import { createServer, type Server } from 'node:http';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { Flusher } from '../../../src/pdns-backend/flusher.js';
import { waitFor } from '../../../src/lab/ports.js';
import { BackendMetrics } from '../../../src/pdns-backend/metrics.js';

interface Seen {
  method?: string;
  url?: string;
  key?: string;
}

let server: Server | undefined;
afterEach(() => new Promise<void>((r) => (server ? server.close(() => r()) : r())));

/** A stand-in for PowerDNS's API answering with the given statuses in turn (then 200). */
async function fakeApi(statuses: number[], delayMs = 0): Promise<{ url: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  server = createServer((req, res) => {
    seen.push({ method: req.method, url: req.url, key: req.headers['x-api-key'] as string });
    const status = statuses.shift() ?? 200;
    setTimeout(() => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(status === 200 ? '{"count": 1, "result": "Flushed cache."}' : '{"error": "boom"}');
    }, delayMs);
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
  return { url: `http://127.0.0.1:${(server!.address() as { port: number }).port}`, seen };
}

const make = (url: string, retries = 3, settleMs = 0) => {
  const registry = new Registry();
  const metrics = new BackendMetrics(registry);
  const flusher = new Flusher({ url, serverId: 'localhost', apiKey: 'sekrit', timeoutMs: 10_000, retries, backoffMs: 1, settleMs }, pino({ level: 'silent' }), metrics);
  const count = async (result: string) => (await registry.getSingleMetric('multisite_backend_cache_flushes_total')!.get()).values.find((v) => v.labels.result === result)?.value ?? 0;
  return { flusher, count };
};

describe('PowerDNS cache flusher', () => {
  it('flushes exactly the name, with its final dot and the API key', async () => {
    const api = await fakeApi([]);
    const { flusher, count } = make(api.url);
    flusher.flush(['www.example.com.']);
    await flusher.settled();
    expect(api.seen).toEqual([{ method: 'PUT', url: '/api/v1/servers/localhost/cache/flush?domain=www.example.com.', key: 'sekrit' }]);
    expect(await count('ok')).toBe(1);
  });

  it('retries with backoff until PowerDNS answers 200', async () => {
    const api = await fakeApi([500, 503]);
    const { flusher, count } = make(api.url);
    flusher.flush(['a.example.com.']);
    await flusher.settled();
    expect(api.seen).toHaveLength(3);
    expect([await count('retry'), await count('ok')]).toEqual([2, 1]);
  });

  it('gives up after the configured retries and counts the failure', async () => {
    const api = await fakeApi([500, 500, 500, 500]);
    const { flusher, count } = make(api.url, 2);
    flusher.flush(['a.example.com.']);
    await flusher.settled();
    expect(api.seen).toHaveLength(3);
    expect(await count('failed')).toBe(1);
  });

  it('flushes a name once more when it changes again during its flush, and never twice at once', async () => {
    const api = await fakeApi([], 30);
    const { flusher } = make(api.url);
    flusher.flush(['a.example.com.', 'b.example.com.']);
    flusher.flush(['a.example.com.']);
    flusher.flush(['a.example.com.']);
    await flusher.settled();
    const urls = api.seen.map((s) => s.url!.split('=')[1]);
    expect(urls.sort()).toEqual(['a.example.com.', 'a.example.com.', 'b.example.com.']);
  });

  it('survives PowerDNS being unreachable', async () => {
    const { flusher, count } = make('http://127.0.0.1:1', 1);
    flusher.flush(['a.example.com.']);
    await flusher.settled();
    expect(await count('failed')).toBe(1);
  });

  it('flushes each changed name a second time after settleMs, for answers re-cached by in-flight queries', async () => {
    const api = await fakeApi([]);
    const { flusher } = make(api.url, 3, 40);
    flusher.flush(['a.example.com.']);
    // (Not checked in between: on a loaded machine the settle flush may already be under way.)
    await waitFor('the settle flush', () => api.seen.length >= 2, 30_000, 5);
    await flusher.settled();
    expect(api.seen.map((s) => s.url)).toEqual(Array(2).fill('/api/v1/servers/localhost/cache/flush?domain=a.example.com.'));
  });
});
