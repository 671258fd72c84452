import { AUTH_HEADER, signRequest } from '../coordinator/index.js';
import { realTimers, type Timers } from '../shared/timers.js';
import { KEY_MIN_BYTES, readSecretFile, secretBytes, SecretError } from '../shared/secrets.js';

/**
 * FailoverClient: for applications whose data is partitioned over servers (each normally serves
 * one partition, a failover server backs up its group). Per server:
 *   1. a failed request is retried `retries` times;
 *   2. then the server enters failover mode: it is reported to the site's coordinator (which
 *      verifies it and takes it out of every HAProxy) and requests go to the group's failover server;
 *   3. after `failoverMs` the next request tries the original again; when it answers, failover
 *      mode ends and the coordinator is told it is back.
 */

export interface ServerEntry {
  /** Base URL, e.g. http://10.0.0.11:8080. */
  url: string;
  /** Base URL of the failover server of its group. */
  failover: string;
  /** The server's name at the coordinator ("BACKEND/SERVER"); without it, it is not reported. */
  name?: string;
}

export interface CoordinatorLink {
  /** The backend's metrics address, e.g. http://127.0.0.1:9100. */
  url: string;
  /**
   * The coordinator key: the path of the key file (read as the coordinator reads it), or the
   * file's content (`readFileSync(file)`, a trailing newline and all). Rules: src/shared/secrets.ts.
   */
  keyFile?: string;
  key?: Buffer | string;
  /** Who reports (shown in the coordinator's log and status). */
  reporter: string;
}

export interface HttpRequest {
  method: string;
  url: string;
  headers: Record<string, string>;
  body?: string;
  timeoutMs: number;
}

export interface HttpResponse {
  status: number;
  body: string;
}

export type FailoverEvent =
  | { type: 'retry'; server: string; attempt: number; error: string }
  | { type: 'failover'; server: string; error: string }
  | { type: 'recovered'; server: string }
  | { type: 'reported'; server: string; state: 'offline' | 'online'; answer?: unknown; error?: string }
  /** The coordinator refused the report (401: the keys differ, or this clock is off): nobody was told. */
  | { type: 'rejected'; server: string; state: 'offline' | 'online'; error: string };

export interface FailoverClientOptions {
  servers: Record<string, ServerEntry>;
  /** Retries after the first failed attempt, before failover mode (default 2). */
  retries?: number;
  /** Pause between attempts (default 100 ms). */
  retryDelayMs?: number;
  /** Time in failover mode before the original is tried again (default 10 s). */
  failoverMs?: number;
  /** Per-request timeout (default 2 s). */
  timeoutMs?: number;
  coordinator?: CoordinatorLink;
  /** What counts as a failure besides a network error or timeout (default: status >= 500). */
  isFailure?(res: HttpResponse): boolean;
  onEvent?(e: FailoverEvent): void;
  timers?: Timers;
  /** Wall clock for request signatures (default Date.now). */
  wallNow?(): number;
  /** The HTTP call (default: fetch). */
  send?(req: HttpRequest): Promise<HttpResponse>;
  /** Where a rejected report is logged (default: a line on stderr): a rejection must not pass unseen. */
  logError?(message: string): void;
}

export interface FailoverResponse extends HttpResponse {
  /** Base URL of the server that answered. */
  servedBy: string;
  failover: boolean;
}

export interface RequestInit {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
}

export class FailoverClient {
  private readonly modes = new Map<string, { since: number; retryAt: number }>();
  private readonly timers: Timers;
  private readonly send: (req: HttpRequest) => Promise<HttpResponse>;
  private readonly o: Required<Pick<FailoverClientOptions, 'retries' | 'retryDelayMs' | 'failoverMs' | 'timeoutMs'>> &
    FailoverClientOptions;
  private readonly coordinatorKey?: Buffer;
  /** Reports to the coordinator still in flight (tests and shutdown wait for them). */
  readonly pending = new Set<Promise<void>>();
  /** Reports the coordinator refused (HTTP 401) since the client was made. */
  rejectedReports = 0;

  constructor(opts: FailoverClientOptions) {
    this.o = { retries: 2, retryDelayMs: 100, failoverMs: 10_000, timeoutMs: 2000, ...opts };
    this.timers = opts.timers ?? realTimers;
    this.send = opts.send ?? fetchSend;
    if (opts.coordinator) this.coordinatorKey = coordinatorKey(opts.coordinator);
  }

  /** Servers currently in failover mode. */
  inFailover(): string[] {
    return [...this.modes.keys()];
  }

  /** Sends `path` to the server `key` (or, in failover mode, to its group's failover server). */
  async request(key: string, path: string, init: RequestInit = {}): Promise<FailoverResponse> {
    const entry = this.o.servers[key];
    if (!entry) throw new Error(`unknown server '${key}'`);
    const mode = this.modes.get(key);
    if (mode && this.timers.now() < mode.retryAt) return this.viaFailover(entry, path, init);
    if (mode) {
      // Time to try the original again: once, without retries.
      const r = await this.attempt(entry.url, path, init);
      if (r.ok) {
        this.modes.delete(key);
        this.emit({ type: 'recovered', server: key });
        this.report(key, entry, 'online', 'answers again');
        return { ...r.res, servedBy: entry.url, failover: false };
      }
      mode.retryAt = this.timers.now() + this.o.failoverMs;
      return this.viaFailover(entry, path, init);
    }
    let error = '';
    for (let attempt = 0; attempt <= this.o.retries; attempt++) {
      if (attempt > 0) {
        this.emit({ type: 'retry', server: key, attempt, error });
        await this.sleep(this.o.retryDelayMs);
      }
      const r = await this.attempt(entry.url, path, init);
      if (r.ok) return { ...r.res, servedBy: entry.url, failover: false };
      error = r.error;
    }
    const now = this.timers.now();
    this.modes.set(key, { since: now, retryAt: now + this.o.failoverMs });
    this.emit({ type: 'failover', server: key, error });
    this.report(key, entry, 'offline', error);
    return this.viaFailover(entry, path, init);
  }

  private async viaFailover(entry: ServerEntry, path: string, init: RequestInit): Promise<FailoverResponse> {
    const r = await this.attempt(entry.failover, path, init);
    if (!r.ok)
      throw new Error(
        `${entry.url} is in failover mode and its failover server ${entry.failover} failed too: ${r.error}`,
      );
    return { ...r.res, servedBy: entry.failover, failover: true };
  }

  private async attempt(
    base: string,
    path: string,
    init: RequestInit,
  ): Promise<{ ok: true; res: HttpResponse } | { ok: false; error: string }> {
    try {
      const res = await this.send({
        method: init.method ?? 'GET',
        url: `${base}${path}`,
        headers: init.headers ?? {},
        body: init.body,
        timeoutMs: this.o.timeoutMs,
      });
      const failed = this.o.isFailure ? this.o.isFailure(res) : res.status >= 500;
      return failed ? { ok: false, error: `HTTP ${res.status}` } : { ok: true, res };
    } catch (err) {
      return { ok: false, error: (err as Error).message };
    }
  }

  /** Tells the coordinator, in the background (a request never waits for it). */
  private report(name: string, entry: ServerEntry, state: 'offline' | 'online', reason: string): void {
    const c = this.o.coordinator;
    const key = this.coordinatorKey;
    if (!c || !key || !entry.name) return;
    const path = state === 'offline' ? '/coordinator/report' : '/coordinator/online';
    const body = JSON.stringify({ server: entry.name, reporter: c.reporter, reason });
    const headers = {
      'content-type': 'application/json',
      [AUTH_HEADER]: signRequest(key, 'POST', path, body, (this.o.wallNow ?? Date.now)()),
    };
    const p = this.send({
      method: 'POST',
      url: `${c.url}${path}`,
      headers,
      body,
      timeoutMs: Math.max(this.o.timeoutMs, 10_000),
    }).then(
      (res) => {
        let answer: unknown = res.body;
        try {
          answer = JSON.parse(res.body);
        } catch {
          /* keep the text */
        }
        if (res.status === 401) this.rejected(name, entry.name!, state, c.url, res.body.trim());
        this.emit(
          res.status === 200
            ? { type: 'reported', server: name, state, answer }
            : { type: 'reported', server: name, state, error: `HTTP ${res.status}: ${res.body.trim()}` },
        );
      },
      (err: Error) => this.emit({ type: 'reported', server: name, state, error: err.message }),
    );
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
  }

  /** Logged loudly and counted: a refused report means the coordinator never heard of the failure. */
  private rejected(server: string, name: string, state: 'offline' | 'online', url: string, body: string): void {
    this.rejectedReports++;
    const error = `the coordinator at ${url} refused the ${state} report of ${name} (HTTP 401 ${body}): check that the client and the coordinator use the same key file, and the clocks`;
    (this.o.logError ?? ((m: string) => process.stderr.write(`FailoverClient: ${m}\n`)))(error);
    this.emit({ type: 'rejected', server, state, error });
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((r) => this.timers.setTimeout(r, ms));
  }

  private emit(e: FailoverEvent): void {
    this.o.onEvent?.(e);
  }
}

/** The key, read by the same rules as the coordinator's (src/shared/secrets.ts). */
function coordinatorKey(c: CoordinatorLink): Buffer {
  if ((c.keyFile === undefined) === (c.key === undefined))
    throw new SecretError('FailoverClient coordinator', 'give exactly one of keyFile or key');
  return c.keyFile !== undefined
    ? readSecretFile(c.keyFile, { minBytes: KEY_MIN_BYTES })
    : secretBytes(c.key!, 'FailoverClient coordinator.key', { minBytes: KEY_MIN_BYTES });
}

async function fetchSend(req: HttpRequest): Promise<HttpResponse> {
  const res = await fetch(req.url, {
    method: req.method,
    headers: req.headers,
    body: req.body,
    signal: AbortSignal.timeout(req.timeoutMs),
  });
  return { status: res.status, body: await res.text() };
}
