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

const make = (
  url: string,
  retries = 3,
  settleMs = 0,
  extra: { zones?: string[]; concurrency?: number; logs?: string[] } = {},
) => {
  const registry = new Registry();
  const metrics = new BackendMetrics(registry);
  const { logs, ...more } = extra;
  const logger = logs
    ? pino({ level: 'warn' }, { write: (l: string) => void logs.push(JSON.parse(l).msg as string) })
    : pino({ level: 'silent' });
  const flusher = new Flusher(
    { url, serverId: 'localhost', apiKey: 'sekrit', timeoutMs: 500, retries, backoffMs: 1, settleMs, ...more },
    logger,
    metrics,
  );
  const count = async (result: string) =>
    (await registry.getSingleMetric('multisite_backend_cache_flushes_total')!.get()).values.find(
      (v) => v.labels.result === result,
    )?.value ?? 0;
  return { flusher, count };
};

describe('PowerDNS cache flusher', () => {
  it('flushes exactly the name, with its final dot and the API key', async () => {
    const api = await fakeApi([]);
    const { flusher, count } = make(api.url);
    flusher.flush(['www.example.com.']);
    await flusher.settled();
    expect(api.seen).toEqual([
      { method: 'PUT', url: '/api/v1/servers/localhost/cache/flush?domain=www.example.com.', key: 'sekrit' },
    ]);
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

  it('PowerDNS not running (connection refused): nothing to flush, said once at info, never an error', async () => {
    const infos: { level: number; msg: string }[] = [];
    const logger = pino({ level: 'info' }, { write: (l: string) => void infos.push(JSON.parse(l)) });
    const registry = new Registry();
    const flusher = new Flusher(
      { url: 'http://127.0.0.1:1', serverId: 'localhost', apiKey: 'k', timeoutMs: 500, retries: 3, backoffMs: 1 },
      logger,
      new BackendMetrics(registry),
    );
    flusher.flush(['a.example.com.', 'b.example.org.']);
    await flusher.settled();
    flusher.flush(['c.example.net.']);
    await flusher.settled();
    const counts = (await registry.getSingleMetric('multisite_backend_cache_flushes_total')!.get()).values;
    expect(counts.find((v) => v.labels.result === 'not-running')?.value).toBe(3);
    expect(counts.find((v) => v.labels.result === 'failed')).toBeUndefined();
    expect(infos.map((l) => [l.level, l.msg.split(':')[0]])).toEqual([[30, 'PowerDNS API refuses connections']]);
  });

  it('flushes each changed name again as soon as the first call returns (PowerDNS purges packets before queries)', async () => {
    const api = await fakeApi([]);
    const { flusher } = make(api.url, 3, 600_000); // the settle flush is far away: only the repeat at once can come
    flusher.flush(['a.example.com.']);
    await waitFor('the repeat at once', () => api.seen.length >= 2, 5000, 1);
    expect(api.seen.map((s) => s.url)).toEqual(
      Array(2).fill('/api/v1/servers/localhost/cache/flush?domain=a.example.com.'),
    );
    await flusher.stop();
  });

  it('flushes each changed name once more after settleMs, for answers re-cached by in-flight queries', async () => {
    const api = await fakeApi([]);
    const { flusher } = make(api.url, 3, 40);
    flusher.flush(['a.example.com.']);
    await waitFor('the settle flush', () => api.seen.length >= 3, 2000, 5);
    expect(api.seen.map((s) => s.url)).toEqual(
      Array(3).fill('/api/v1/servers/localhost/cache/flush?domain=a.example.com.'),
    );
  });

  it('covers 10,000 changed names of a zone with one call, and several zones with one call each', async () => {
    const api = await fakeApi([]);
    const { flusher } = make(api.url, 3, 0, { zones: ['example.com.', 'example.net.'] });
    flusher.flush(Array.from({ length: 10_000 }, (_, i) => `n${i}.lb.example.com.`));
    await flusher.settled();
    expect(api.seen.map((s) => s.url)).toEqual(['/api/v1/servers/localhost/cache/flush?domain=lb.example.com.']);
    flusher.flush(['a.example.com.', 'b.example.com.', 'www.example.net.']);
    await flusher.settled();
    expect(
      api.seen
        .slice(1)
        .map((s) => s.url!.split('=')[1])
        .sort(),
    ).toEqual(['example.com.', 'www.example.net.']);
  });

  it('keeps at most `concurrency` calls in flight and still flushes every target', async () => {
    let inFlight = 0;
    let most = 0;
    const seen: string[] = [];
    server = createServer((req, res) => {
      seen.push(req.url!);
      most = Math.max(most, ++inFlight);
      setImmediate(() => (inFlight--, res.end('{}')));
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
    const { flusher } = make(`http://127.0.0.1:${(server.address() as { port: number }).port}`, 3, 0, {
      concurrency: 2,
    });
    flusher.flush(Array.from({ length: 20 }, (_, i) => `n${i}.example.org.`));
    await flusher.settled();
    expect(seen).toHaveLength(20);
    expect(most).toBeLessThanOrEqual(2);
  });

  it('logs a failing API once (not per name), and once more when it works again', async () => {
    const api = await fakeApi(Array(12).fill(500));
    const logs: string[] = [];
    const { flusher, count } = make(api.url, 1, 0, { logs });
    flusher.flush(['a.example.com.', 'b.example.com.', 'c.example.com.']);
    await flusher.settled();
    flusher.flush(['d.example.com.', 'e.example.com.']);
    await flusher.settled();
    expect(await count('failed')).toBe(5);
    expect(logs.filter((l) => l.startsWith('could not flush'))).toHaveLength(1);
    expect(logs.filter((l) => l.startsWith('PowerDNS cache flush failed; retrying'))).toHaveLength(1);
    api.seen.length = 0;
    flusher.flush(['f.example.com.']);
    await flusher.settled();
    flusher.flush(['g.example.com.']);
    await flusher.settled();
    expect(await count('ok')).toBeGreaterThanOrEqual(1);
    expect(logs.filter((l) => l.startsWith('could not flush'))).toHaveLength(1);
  });

  it("resolves once PowerDNS acknowledged every target, waiting for the repeat of one in flight (failover stage 'flushed')", async () => {
    const api = await fakeApi([], 30);
    const { flusher } = make(api.url, 0, 0, { zones: ['example.com.', 'example.net.'] });
    const first = flusher.flush(['a.example.com.']);
    const second = flusher.flush(['a.example.com.', 'c.example.net.']);
    expect(await second).toBe(true);
    // a.example.com. was in flight for the first change when the second came: its repeat was waited for.
    expect(api.seen.map((s) => s.url?.split('=')[1])).toEqual(['a.example.com.', 'c.example.net.', 'a.example.com.']);
    expect(await first).toBe(true);
    expect(await flusher.flush([])).toBe(true);
  });

  it('resolves false when a target could not be flushed, or the flusher stopped before it', async () => {
    const api = await fakeApi([500]);
    const { flusher } = make(api.url, 0);
    expect(await flusher.flush(['a.example.com.'])).toBe(false);
    const slow = await fakeApi([], 200);
    const stopping = make(slow.url, 0, 0, { concurrency: 1, zones: ['example.com.', 'example.net.'] });
    const done = stopping.flusher.flush(['a.example.com.', 'b.example.net.']);
    await stopping.flusher.stop();
    expect(await done).toBe(false);
  });
});
