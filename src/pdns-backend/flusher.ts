import { Agent } from 'node:http';
import axios, { type AxiosInstance } from 'axios';
import type { Logger } from '../log.js';
import type { BackendMetrics } from './metrics.js';

export interface FlusherOptions {
  url: string;
  serverId: string;
  apiKey: string;
  timeoutMs: number;
  retries: number;
  /** First retry delay; doubles each time. */
  backoffMs?: number;
  /**
   * A second flush this long after each change (0: none). A query PowerDNS sent just before the
   * change can come back with the old answer and be cached after the first flush; this clears it.
   */
  settleMs?: number;
}

/**
 * Flushes exactly the names whose answer changed from PowerDNS's packet and query caches
 * (PUT /api/v1/servers/ID/cache/flush?domain=NAME.). Asynchronous: a lookup never waits on it.
 * A name asked again while its flush is in flight is flushed once more afterwards, so a cache
 * refilled between the first flush and the newest change is cleared too.
 */
export class Flusher {
  private readonly http: AxiosInstance;
  private readonly inFlight = new Map<string, Promise<void>>();
  private readonly again = new Set<string>();
  private stopped = false;

  constructor(
    private readonly opts: FlusherOptions,
    private readonly logger: Logger,
    private readonly metrics?: BackendMetrics,
  ) {
    this.http = axios.create({
      baseURL: opts.url.replace(/\/+$/, ''),
      timeout: opts.timeoutMs,
      httpAgent: new Agent({ keepAlive: true, maxSockets: 4 }),
      headers: { 'X-API-Key': opts.apiKey },
      validateStatus: () => true,
    });
  }

  flush(names: Iterable<string>): void {
    const list = [...names];
    this.flushNow(list);
    const settle = this.opts.settleMs ?? 250;
    if (settle > 0 && list.length > 0) setTimeout(() => this.flushNow(list), settle).unref();
  }

  private flushNow(names: string[]): void {
    for (const name of names) {
      if (this.stopped) return;
      if (this.inFlight.has(name)) {
        this.again.add(name);
        continue;
      }
      const p = this.flushWithRetry(name).finally(() => {
        this.inFlight.delete(name);
        if (this.again.delete(name)) this.flushNow([name]);
      });
      this.inFlight.set(name, p);
    }
  }

  /** Resolves when every flush requested so far has finished (tests and shutdown). */
  async settled(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight.values()]);
  }

  async stop(): Promise<void> {
    const pending = Promise.allSettled([...this.inFlight.values()]);
    this.stopped = true;
    await Promise.race([pending, new Promise((r) => setTimeout(r, this.opts.timeoutMs).unref())]);
  }

  private async flushWithRetry(name: string): Promise<void> {
    const path = `/api/v1/servers/${encodeURIComponent(this.opts.serverId)}/cache/flush`;
    let delay = this.opts.backoffMs ?? 50;
    for (let attempt = 0; ; attempt++) {
      const started = performance.now();
      const why = await this.http.put(path, undefined, { params: { domain: name } }).then(
        (res) => (res.status === 200 ? undefined : `HTTP ${res.status} ${JSON.stringify(res.data).slice(0, 200)}`),
        (err: Error) => err.message,
      );
      if (why === undefined) {
        this.metrics?.flushes.inc({ result: 'ok' });
        this.logger.debug({ name, ms: +(performance.now() - started).toFixed(2) }, 'flushed PowerDNS cache');
        return;
      }
      if (this.stopped || attempt >= this.opts.retries) {
        this.metrics?.flushes.inc({ result: 'failed' });
        this.logger.error({ name, why, attempts: attempt + 1 }, 'could not flush PowerDNS cache; the old answer lives until its TTL');
        return;
      }
      this.metrics?.flushes.inc({ result: 'retry' });
      this.logger.warn({ name, why, retryInMs: delay }, 'PowerDNS cache flush failed; retrying');
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 5000);
    }
  }
}
