import { Agent } from 'node:http';
import axios, { type AxiosInstance } from 'axios';
import type { Logger } from '../shared/log.js';
import { flushTargets } from './flush-targets.js';
import { DNSDIST_FLUSH_PATH } from './dnsdist-conf.js';
import type { BackendMetrics } from './metrics.js';

export interface FlusherOptions {
  url: string;
  /** PowerDNS's API (PUT .../cache/flush), or dnsdist's flush endpoint of its generated config. */
  target?: 'pdns' | 'dnsdist';
  serverId: string;
  apiKey: string;
  timeoutMs: number;
  retries: number;
  /** First retry delay; doubles each time (up to 5 s). */
  backoffMs?: number;
  /**
   * A third flush this long after each change; the second follows the first at once (0: neither).
   * A query PowerDNS sent just before the change can come back with the old answer and be cached
   * after the first flushes; this clears it.
   */
  settleMs?: number;
  /** The served zones: changed names are coalesced per zone (see flush-targets.ts). */
  zones?: readonly string[];
  /** PowerDNS API calls in flight at most (its web server has few threads; lookups come first). */
  concurrency?: number;
  /**
   * A cache in front of this one (dnsdist before PowerDNS): flushed with the same targets after
   * each pass here has finished, so it cannot refill from this cache's old entry.
   */
  next?: Flusher;
}

/**
 * Flushes the names whose answer changed from PowerDNS's packet and query caches, in the fewest
 * API calls: one `PUT /api/v1/servers/ID/cache/flush?domain=SUFFIX` per zone covers every changed
 * name of it (PowerDNS purges the name and everything below). Asynchronous: a lookup never waits
 * on it, and the per-change work is one linear pass over the names. A target asked again while its
 * flush is in flight is flushed once more afterwards, so a cache refilled between the first flush
 * and the newest change is cleared too. A failing PowerDNS API is logged once when it starts
 * failing and once when it works again, not per name.
 */
/** Refused connections for this long are no longer taken for "PowerDNS is starting". */
const REFUSED_WARN_MS = 60_000;

export class Flusher {
  private readonly http: AxiosInstance;
  private readonly inFlight = new Map<string, Promise<boolean>>();
  private readonly again = new Set<string>();
  /** Callers waiting for a target's next flush (enqueue), resolved when it finishes. */
  private readonly waiting = new Map<string, { promise: Promise<boolean>; resolve: (ok: boolean) => void }>();
  /** Targets waiting for a free slot, in order. */
  private readonly queue = new Set<string>();
  private readonly concurrency: number;
  private stopped = false;
  /** Flushes that gave up since the API last worked (0: it works). */
  private failing = 0;
  private retrying = false;
  /** performance.now() of the first refused connection since the last flush that worked. */
  private refusedSince: number | undefined;
  private refusedWarned = false;
  /** "PowerDNS" or "dnsdist", in log lines. */
  private readonly what: string;
  private readonly counter: BackendMetrics['flushes'] | undefined;
  private readonly counterName: string;

  constructor(
    private readonly opts: FlusherOptions,
    private readonly logger: Logger,
    private readonly metrics?: BackendMetrics,
  ) {
    this.concurrency = opts.concurrency ?? 4;
    const dnsdist = opts.target === 'dnsdist';
    this.what = dnsdist ? 'dnsdist' : 'PowerDNS';
    this.counter = dnsdist ? metrics?.dnsdistFlushes : metrics?.flushes;
    this.counterName = `multisite_backend_${dnsdist ? 'dnsdist_' : ''}cache_flushes_total`;
    this.http = axios.create({
      baseURL: opts.url.replace(/\/+$/, ''),
      timeout: opts.timeoutMs,
      httpAgent: new Agent({ keepAlive: true, maxSockets: this.concurrency }),
      headers: { 'X-API-Key': opts.apiKey },
      validateStatus: () => true,
    });
  }

  /**
   * Resolves true once PowerDNS (and `next`, dnsdist in front of it) acknowledged a flush of every
   * target that started after this call (a target in flight is waited for in its repeat), false
   * when some target failed or the flusher stopped first. Callers need not wait: lookups never do.
   */
  flush(names: Iterable<string>): Promise<boolean> {
    const targets = flushTargets(names, this.opts.zones);
    if (targets.length === 0) return Promise.resolve(true);
    const started = performance.now();
    const settle = this.opts.settleMs ?? 250;
    const { here, all } = this.pass(targets);
    void here.then((results) => {
      // Failures and a PowerDNS not running are said by flushWithRetry, once.
      if (!results.some((r) => r.status === 'fulfilled' && r.value)) return;
      this.logger.info(
        { targets: targets.slice(0, 5), calls: targets.length, ms: +(performance.now() - started).toFixed(2) },
        `flushed ${this.what} caches`,
      );
      // Once more at once: PowerDNS purges its packet cache, then its query cache
      // (auth-caches.cc purgeAuthCaches); a lookup between the two refills the packet cache with
      // the old answer from the query cache, which only the next flush clears. Measured: a name
      // asked every few ms kept its old answer until the settle flush (+250 ms) in most changes.
      if (!this.stopped && settle > 0) void this.pass(targets);
    });
    if (settle > 0) setTimeout(() => void this.pass(targets), settle).unref();
    return all;
  }

  /**
   * One pass over the targets here, then (whatever its result) the same targets in `next`. `all`:
   * true once every target was flushed here and in `next`.
   */
  private pass(targets: string[]): { here: Promise<PromiseSettledResult<boolean>[]>; all: Promise<boolean> } {
    const here = this.enqueue(targets);
    const next = this.opts.next;
    const after = next ? here.then(() => (this.stopped ? [] : next.enqueue(targets))) : Promise.resolve([]);
    const all = Promise.all([here, after]).then(([a, b]) =>
      [...a, ...b].every((r) => r.status === 'fulfilled' && r.value),
    );
    return { here, all };
  }

  /** Resolves when each target's next flush (one not yet started when asked) has finished. */
  private enqueue(targets: string[]): Promise<PromiseSettledResult<boolean>[]> {
    const waits: Promise<boolean>[] = [];
    for (const t of targets) {
      if (this.stopped) break;
      if (this.inFlight.has(t)) this.again.add(t);
      else this.queue.add(t);
      waits.push(this.nextFlushOf(t));
    }
    this.pump();
    return Promise.allSettled(waits);
  }

  private nextFlushOf(target: string): Promise<boolean> {
    let w = this.waiting.get(target);
    if (!w) {
      let resolve!: (ok: boolean) => void;
      const promise = new Promise<boolean>((r) => (resolve = r));
      w = { promise, resolve };
      this.waiting.set(target, w);
    }
    return w.promise;
  }

  private pump(): void {
    for (const t of this.queue) {
      if (this.stopped || this.inFlight.size >= this.concurrency) return;
      this.queue.delete(t);
      const waiter = this.waiting.get(t);
      this.waiting.delete(t);
      const p = this.flushWithRetry(t).finally(() => {
        this.inFlight.delete(t);
        if (this.again.delete(t)) this.queue.add(t);
        this.pump();
      });
      if (waiter) void p.then(waiter.resolve, () => waiter.resolve(false));
      this.inFlight.set(t, p);
    }
  }

  /** Resolves when every flush requested so far has finished (tests and shutdown). */
  async settled(): Promise<void> {
    while (this.inFlight.size > 0 || (this.queue.size > 0 && !this.stopped))
      await Promise.allSettled([...this.inFlight.values()]);
  }

  async stop(): Promise<void> {
    const pending = Promise.allSettled([...this.inFlight.values()]);
    this.stopped = true;
    this.queue.clear();
    for (const w of this.waiting.values()) w.resolve(false);
    this.waiting.clear();
    await Promise.race([pending, new Promise((r) => setTimeout(r, this.opts.timeoutMs).unref())]);
  }

  /** True when PowerDNS (dnsdist) flushed it. */
  private async flushWithRetry(name: string): Promise<boolean> {
    let delay = this.opts.backoffMs ?? 50;
    for (let attempt = 0; ; attempt++) {
      const started = performance.now();
      let refused = false;
      const why = await this.request(name).then(
        (res) => (res.status === 200 ? undefined : `HTTP ${res.status} ${JSON.stringify(res.data).slice(0, 200)}`),
        (err: Error & { code?: string }) => ((refused = err.code === 'ECONNREFUSED'), err.message),
      );
      if (why === undefined) return (this.succeeded(name, started), true);
      if (refused) return (this.notRunning(name), false);
      if (this.stopped || attempt >= this.opts.retries) return (this.gaveUp(name, why, attempt + 1), false);
      this.counter?.inc({ result: 'retry' });
      if (!this.retrying && this.failing === 0)
        this.logger.warn(
          { name, why, retryInMs: delay },
          `${this.what} cache flush failed; retrying (further retries are counted in ${this.counterName}, not logged)`,
        );
      this.retrying = true;
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 5000);
    }
  }

  /** PowerDNS: PUT /api/v1/servers/ID/cache/flush?domain=NAME; dnsdist: GET of the generated config's endpoint. */
  private request(name: string) {
    const params = { params: { domain: name } };
    if (this.opts.target === 'dnsdist') return this.http.get(DNSDIST_FLUSH_PATH, params);
    return this.http.put(`/api/v1/servers/${encodeURIComponent(this.opts.serverId)}/cache/flush`, undefined, params);
  }

  /**
   * Nothing listens on the API: PowerDNS is not running (a backend started before it, as systemd
   * orders them), so it has no cache to flush. Said once at info, not as an error on every start;
   * said as a warning once if it lasts, since a PowerDNS running without its API would keep old
   * answers until their TTL.
   */
  private notRunning(name: string): void {
    this.counter?.inc({ result: 'not-running' });
    const now = performance.now();
    if (this.refusedSince === undefined) {
      this.refusedSince = now;
      this.logger.info(
        { name, url: this.opts.url },
        `${this.what} API refuses connections: ${this.what} not running yet, nothing cached to flush`,
      );
    } else if (!this.refusedWarned && now - this.refusedSince >= REFUSED_WARN_MS) {
      this.refusedWarned = true;
      this.logger.warn(
        { url: this.opts.url, forMs: Math.round(now - this.refusedSince) },
        this.what === 'dnsdist'
          ? 'dnsdist web server still refuses connections: if dnsdist runs, its config is not the one multisite dnsdist-config writes or dnsdist.url is wrong, and cached answers live until their TTL'
          : 'PowerDNS API still refuses connections: if PowerDNS runs, its API is off (webserver=yes, api=yes) or pdns.url is wrong, and cached answers live until their TTL',
      );
    }
  }

  private succeeded(name: string, started: number): void {
    this.counter?.inc({ result: 'ok' });
    this.refusedSince = undefined;
    this.refusedWarned = false;
    this.retrying = false;
    if (this.failing > 0) this.logger.info({ failedMeanwhile: this.failing }, `${this.what} cache flushes work again`);
    this.failing = 0;
    this.logger.debug({ name, ms: +(performance.now() - started).toFixed(2) }, `flushed ${this.what} cache`);
  }

  private gaveUp(name: string, why: string, attempts: number): void {
    this.counter?.inc({ result: 'failed' });
    if (this.failing++ === 0)
      this.logger.error(
        { name, why, attempts },
        `could not flush ${this.what} cache; old answers live until their TTL (further failures are counted, logged again when flushes work)`,
      );
  }
}
