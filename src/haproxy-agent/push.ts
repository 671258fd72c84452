import type { Logger } from '../shared/log.js';
import { RuntimeCommandError, type StatFilter, type StatRow } from '../haproxy/index.js';
import type { Timers } from '../shared/timers.js';

/** What the pusher needs of one HAProxy's Runtime API (RuntimeClient; tests fake it). */
export interface PushTarget {
  readonly socket: string;
  setServerAgent(backend: string, server: string, health: 'up' | 'down'): Promise<void>;
  showStat(filter?: StatFilter): Promise<StatRow[]>;
}

export interface HaproxyRef {
  backend: string;
  server: string;
}

/**
 * ok: HAProxy took it; deferred: `up` left to HAProxy's own check; rejected: HAProxy refused the command; failed: the
 * socket did not answer.
 */
export type PushResult = 'ok' | 'deferred' | 'rejected' | 'failed';

export interface PushOptions {
  timers: Timers;
  logger: Logger;
  /** First retry after a failure of the socket; doubles up to maxRetryMs. */
  retryMs: number;
  maxRetryMs: number;
  /** Commands in flight per socket at most (each is one connection). */
  concurrency?: number;
  /**
   * A deferred `up` (HAProxy's own check still down) is asked again every deferRecheckMs while the
   * verdict stays up, for at most deferLimitMs after the verdict change; by then HAProxy's own agent
   * poll (agent-inter) has long brought the server up, and the pusher stops asking.
   */
  deferRecheckMs?: number;
  deferLimitMs?: number;
  /** After every attempt: ms from the verdict change to HAProxy's answer. */
  onPush?(socket: string, server: string, result: PushResult, ms: number): void;
}

interface Slot {
  name: string;
  ref: HaproxyRef;
  want: boolean;
  /** Timers.now() of the verdict change being delivered. */
  since: number;
  busy: boolean;
  done: boolean;
  /** A recheck of a deferred `up` is scheduled. */
  recheck?: unknown;
}

/** One socket's queue: the latest verdict per server (older ones are moot), and its failure episode. */
interface Queue {
  target: PushTarget;
  slots: Map<string, Slot>;
  inFlight: number;
  retryTimer?: unknown;
  backoffMs: number;
  /** While the socket fails: the first error of the episode (logged once). */
  failing?: string;
  /** Command errors already logged, per server and text (logged once each). */
  rejected: Set<string>;
}

/**
 * Tells every HAProxy of the site of a server's verdict change at once, with the Runtime API's
 * `set server B/S agent up|down` (what an agent-check reply does, without waiting for agent-inter),
 * so detection is not delayed by HAProxy's polling. The agent-check reply stays the source HAProxy
 * polls; this only makes it arrive sooner. Never blocks or fails the agent: each command has the
 * client's timeout, at most `concurrency` run per socket, only the latest verdict of a server is
 * sent, a socket that fails is retried with backoff and logged once per episode.
 *
 * `up` is sent only when HAProxy's own health check of the server agrees (or there is none): the
 * CLI command, unlike an agent reply, does not wait for it (src/server.c srv_set_running). When it
 * does not agree, the pusher asks again every `deferRecheckMs` (HAProxy's own check, with the
 * shipped `downinter`/`fastinter`, comes back within ~2 × 100 ms), so recovery does not wait for
 * HAProxy's next agent poll; after `deferLimitMs` the poll is left to do it.
 */
export class HaproxyPusher {
  private readonly queues: Queue[];
  private stopped = false;

  constructor(
    targets: PushTarget[],
    private readonly o: PushOptions,
  ) {
    this.queues = targets.map((target) => ({
      target,
      slots: new Map(),
      inFlight: 0,
      backoffMs: o.retryMs,
      rejected: new Set(),
    }));
  }

  /** A server's verdict changed: deliver it to every HAProxy (replacing any undelivered older one). */
  verdict(name: string, ref: HaproxyRef, up: boolean): void {
    const since = this.o.timers.now();
    for (const q of this.queues) {
      const slot: Slot = q.slots.get(name) ?? { name, ref, want: up, since, busy: false, done: true };
      this.o.timers.clearTimeout(slot.recheck);
      Object.assign(slot, { want: up, since, done: false, recheck: undefined });
      q.slots.set(name, slot);
      this.pump(q);
    }
  }

  /** Verdicts not yet delivered, over every socket. */
  get pending(): number {
    return this.queues.reduce((n, q) => n + [...q.slots.values()].filter((s) => !s.done).length, 0);
  }

  stop(): void {
    this.stopped = true;
    for (const q of this.queues) {
      this.o.timers.clearTimeout(q.retryTimer);
      for (const slot of q.slots.values()) this.o.timers.clearTimeout(slot.recheck);
    }
  }

  private pump(q: Queue): void {
    if (this.stopped || q.retryTimer !== undefined) return;
    for (const slot of q.slots.values()) {
      if (q.inFlight >= (this.o.concurrency ?? 4)) return;
      if (!slot.done && !slot.busy) void this.deliver(q, slot);
    }
  }

  private async deliver(q: Queue, slot: Slot): Promise<void> {
    const { want, since } = slot;
    slot.busy = true;
    q.inFlight++;
    let result: PushResult = 'ok';
    try {
      if (!want) await q.target.setServerAgent(slot.ref.backend, slot.ref.server, 'down');
      else if (await this.ownCheckAgrees(q.target, slot.ref))
        await q.target.setServerAgent(slot.ref.backend, slot.ref.server, 'up');
      else result = 'deferred';
      this.recovered(q);
    } catch (err) {
      result = err instanceof RuntimeCommandError ? 'rejected' : 'failed';
      if (result === 'rejected') this.rejected(q, slot, err as RuntimeCommandError);
      else this.failed(q, err as Error);
    } finally {
      slot.busy = false;
      q.inFlight--;
    }
    // A command error will not go away by repeating it: done until the next verdict.
    if (result !== 'failed' && slot.want === want && slot.since === since) {
      slot.done = true;
      if (result === 'deferred') this.recheckLater(q, slot);
    }
    this.o.onPush?.(q.target.socket, slot.name, result, this.o.timers.now() - since);
    this.pump(q);
  }

  /** A deferred `up`: asked again shortly, while the verdict it was for is still the latest. */
  private recheckLater(q: Queue, slot: Slot): void {
    const every = this.o.deferRecheckMs ?? 50;
    if (this.stopped || this.o.timers.now() - slot.since + every > (this.o.deferLimitMs ?? 3000)) return;
    const since = slot.since;
    slot.recheck = this.o.timers.setTimeout(() => {
      slot.recheck = undefined;
      if (slot.since !== since || !slot.want) return;
      slot.done = false;
      this.pump(q);
    }, every);
  }

  /** HAProxy's own check of the server is off, or up (health at least rise). */
  private async ownCheckAgrees(target: PushTarget, ref: HaproxyRef): Promise<boolean> {
    const row = (await target.showStat({ proxy: ref.backend, serversOnly: true })).find((r) => r.name === ref.server);
    const health = row?.fields.check_health;
    if (row === undefined || health === undefined || health === '') return true;
    return Number(health) >= Number(row.fields.check_rise);
  }

  private rejected(q: Queue, slot: Slot, err: RuntimeCommandError): void {
    const key = `${slot.name}\0${err.reply}`;
    if (q.rejected.has(key)) return;
    q.rejected.add(key);
    this.o.logger.warn(
      {
        socket: q.target.socket,
        server: slot.name,
        haproxy: `${slot.ref.backend}/${slot.ref.server}`,
        err: err.message,
      },
      'HAProxy refused the verdict push (check agent.servers[].haproxy-server and the server line); HAProxy still polls the agent',
    );
  }

  private failed(q: Queue, err: Error): void {
    if (q.failing === undefined) {
      q.failing = err.message;
      this.o.logger.warn(
        { socket: q.target.socket, err: err.message, retryMs: q.backoffMs },
        'HAProxy Runtime API unusable: verdicts are pushed when it answers again; HAProxy still polls the agent',
      );
    }
    if (q.retryTimer !== undefined || this.stopped) return;
    q.retryTimer = this.o.timers.setTimeout(() => {
      q.retryTimer = undefined;
      this.pump(q);
    }, q.backoffMs);
    q.backoffMs = Math.min(this.o.maxRetryMs, q.backoffMs * 2);
  }

  private recovered(q: Queue): void {
    q.backoffMs = this.o.retryMs;
    if (q.failing === undefined) return;
    this.o.logger.info({ socket: q.target.socket, after: q.failing }, 'HAProxy Runtime API answers again');
    q.failing = undefined;
  }
}
