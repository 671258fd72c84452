import { Counter, Gauge, type Registry } from 'prom-client';
import type { AdminState } from '../haproxy/index.js';
import type { Timers } from '../shared/timers.js';
import type { Logger } from '../shared/log.js';
import type { CheckResult, ServerCheck } from './verify.js';

/** One HAProxy of the site, through its Runtime API. */
export interface LoadBalancer {
  socket: string;
  setServerState(backend: string, server: string, state: AdminState): Promise<void>;
}

export interface CoordinatorOptions {
  servers: ServerCheck[];
  loadBalancers: LoadBalancer[];
  /** Verification of one server (all attempts). */
  verify(server: ServerCheck): Promise<CheckResult>;
  recheckMs: number;
  timers: Timers;
  /** Wall-clock ms, for `since` in answers. */
  wallNow(): number;
  logger: Logger;
  registry?: Registry;
}

export type ServerVerdict = 'offline' | 'online';

export interface ReportAnswer {
  server: string;
  /** offline: verified and marked down in the site's HAProxies; online: it answered, nothing marked. */
  state: ServerVerdict;
  detail: string;
  /** Wall-clock ms since when it is marked (offline only). */
  since?: number;
  /** Load balancers the mark could not be written to (it is retried at each re-check). */
  errors?: string[];
}

interface Marked {
  since: number;
  reason: string;
  reporters: Set<string>;
  /** Load balancers that still need the current mark (written again at each re-check). */
  pending: Set<string>;
}

export class UnknownServerError extends Error {
  override name = 'UnknownServerError';
}

/**
 * The site's coordinator: takes "may be offline" reports, verifies them by contacting the server,
 * and only then puts it in maintenance on every HAProxy of the site; re-checks marked servers every
 * `recheckMs` and marks them ready again once they answer. Concurrent reports of one server share
 * one verification.
 */
export class Coordinator {
  private readonly servers: Map<string, ServerCheck>;
  private readonly marked = new Map<string, Marked>();
  private readonly verifying = new Map<string, Promise<ReportAnswer>>();
  private timer: unknown;
  private stopped = false;
  private rechecking?: Promise<void>;
  private readonly reports?: Counter<'result'>;
  private readonly rechecks?: Counter<'result'>;
  private readonly markedGauge?: Gauge;
  private readonly lbErrors?: Counter<'lb'>;

  constructor(private readonly o: CoordinatorOptions) {
    this.servers = new Map(o.servers.map((s) => [s.name, s]));
    if (o.registry) {
      const registers = [o.registry];
      this.reports = new Counter({
        name: 'multisite_coordinator_reports_total',
        help: 'Reports received, by outcome (offline, online, ready, unknown, refused)',
        labelNames: ['result'],
        registers,
      });
      this.rechecks = new Counter({
        name: 'multisite_coordinator_rechecks_total',
        help: 'Re-checks of marked servers, by result',
        labelNames: ['result'],
        registers,
      });
      this.markedGauge = new Gauge({
        name: 'multisite_coordinator_marked_servers',
        help: 'Servers the coordinator holds in maintenance',
        registers,
      });
      this.lbErrors = new Counter({
        name: 'multisite_coordinator_runtime_api_errors_total',
        help: 'Failed Runtime API writes, by load balancer',
        labelNames: ['lb'],
        registers,
      });
    }
  }

  /** A report that `name` may be offline. Resolves once verified (and marked, if it is offline). */
  report(name: string, reporter: string, reason: string): Promise<ReportAnswer> {
    const server = this.require(name);
    const marked = this.marked.get(name);
    if (marked) {
      marked.reporters.add(reporter);
      this.reports?.inc({ result: 'offline' });
      return Promise.resolve({
        server: name,
        state: 'offline',
        detail: `already marked offline: ${marked.reason}`,
        since: marked.since,
      });
    }
    let running = this.verifying.get(name);
    if (!running) {
      running = this.verifyAndMark(server, reporter, reason).finally(() => this.verifying.delete(name));
      this.verifying.set(name, running);
    }
    return running;
  }

  /** A reporter says `name` answers again: checked now, and marked ready if it does. */
  async reportOnline(name: string, reporter: string): Promise<ReportAnswer> {
    const server = this.require(name);
    const marked = this.marked.get(name);
    if (!marked) return { server: name, state: 'online', detail: 'not marked' };
    this.o.logger.info({ server: name, reporter }, 'server reported online; checking it');
    return this.recheckOne(server, marked);
  }

  status(): { server: string; state: ServerVerdict; since?: number; reason?: string; reporters?: string[] }[] {
    return [...this.servers.keys()].map((name) => {
      const m = this.marked.get(name);
      return m
        ? { server: name, state: 'offline', since: m.since, reason: m.reason, reporters: [...m.reporters] }
        : { server: name, state: 'online' };
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.o.timers.clearTimeout(this.timer);
    await Promise.allSettled([...this.verifying.values(), this.rechecking]);
  }

  private require(name: string): ServerCheck {
    const server = this.servers.get(name);
    if (!server) {
      this.reports?.inc({ result: 'unknown' });
      throw new UnknownServerError(`unknown server '${name}'`);
    }
    return server;
  }

  private async verifyAndMark(server: ServerCheck, reporter: string, reason: string): Promise<ReportAnswer> {
    const check = await this.o.verify(server);
    if (check.ok) {
      this.reports?.inc({ result: 'online' });
      this.o.logger.info(
        { server: server.name, reporter, reason, check: check.detail },
        'reported server answers; not marked',
      );
      return { server: server.name, state: 'online', detail: check.detail };
    }
    const marked: Marked = {
      since: this.o.wallNow(),
      reason: `${check.detail} (reported by ${reporter}: ${reason})`,
      reporters: new Set([reporter]),
      pending: new Set(this.o.loadBalancers.map((l) => l.socket)),
    };
    this.marked.set(server.name, marked);
    this.markedGauge?.set(this.marked.size);
    this.reports?.inc({ result: 'offline' });
    const errors = await this.write(server.name, marked, 'maint');
    this.o.logger.warn(
      { server: server.name, reporter, reason, check: check.detail, errors },
      'reported server verified offline; put in maintenance on every load balancer',
    );
    this.schedule();
    const answer: ReportAnswer = { server: server.name, state: 'offline', detail: check.detail, since: marked.since };
    if (errors.length) answer.errors = errors;
    return answer;
  }

  /** Writes `state` to every load balancer still pending; returns the failures. */
  private async write(name: string, marked: Marked, state: AdminState): Promise<string[]> {
    const [backend, srv] = name.split('/') as [string, string];
    const errors: string[] = [];
    await Promise.all(
      this.o.loadBalancers
        .filter((l) => marked.pending.has(l.socket))
        .map(async (l) => {
          try {
            await l.setServerState(backend, srv, state);
            marked.pending.delete(l.socket);
          } catch (err) {
            this.lbErrors?.inc({ lb: l.socket });
            errors.push(`${l.socket}: ${(err as Error).message}`);
          }
        }),
    );
    return errors;
  }

  private async recheckOne(server: ServerCheck, marked: Marked): Promise<ReportAnswer> {
    const check = await this.o.verify(server);
    this.rechecks?.inc({ result: check.ok ? 'answers' : 'offline' });
    if (this.marked.get(server.name) !== marked)
      return { server: server.name, state: this.marked.has(server.name) ? 'offline' : 'online', detail: check.detail };
    if (!check.ok) {
      // Keep the mark on every load balancer (an HAProxy restarted, or an agent said `ready`).
      marked.pending = new Set(this.o.loadBalancers.map((l) => l.socket));
      const errors = await this.write(server.name, marked, 'maint');
      return {
        server: server.name,
        state: 'offline',
        detail: check.detail,
        since: marked.since,
        ...(errors.length ? { errors } : {}),
      };
    }
    marked.pending = new Set(this.o.loadBalancers.map((l) => l.socket));
    const errors = await this.write(server.name, marked, 'ready');
    if (errors.length > 0)
      return {
        server: server.name,
        state: 'offline',
        detail: `answers, but could not be marked ready everywhere`,
        since: marked.since,
        errors,
      };
    this.marked.delete(server.name);
    this.markedGauge?.set(this.marked.size);
    this.reports?.inc({ result: 'ready' });
    this.o.logger.info(
      { server: server.name, check: check.detail, reporters: [...marked.reporters] },
      'marked server answers again; marked ready on every load balancer',
    );
    return { server: server.name, state: 'online', detail: check.detail };
  }

  private schedule(): void {
    if (this.stopped || this.timer !== undefined || this.marked.size === 0) return;
    this.timer = this.o.timers.setTimeout(() => {
      this.timer = undefined;
      this.rechecking = this.recheckAll().finally(() => {
        this.rechecking = undefined;
        this.schedule();
      });
    }, this.o.recheckMs);
  }

  private async recheckAll(): Promise<void> {
    await Promise.all(
      [...this.marked.entries()].map(([name, m]) =>
        this.recheckOne(this.servers.get(name)!, m).catch((err: Error) =>
          this.o.logger.error({ err, server: name }, 're-check failed'),
        ),
      ),
    );
  }
}
