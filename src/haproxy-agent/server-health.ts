import type { AgentServerConfig } from '../config/index.js';
import { keywordCheck, loadCheck, messageCheck, type CheckFn } from './checks.js';
import { formatReply, loadToWeight, type ReplyState } from './reply.js';
import { CheckRunner, type CheckState, type RunEvent, type RunnerOptions } from './runner.js';
import type { Timers } from '../shared/timers.js';

export type CheckKind = 'message' | 'keyword' | 'load';

export interface ServerHealthHooks {
  /** After every check run: for metrics and logs. */
  onCheck?(server: string, kind: CheckKind, state: CheckState, event: RunEvent): void;
  /** When the reply changes: for logs. */
  onReply?(server: string, reply: string, previous: string): void;
  /** When the server's up/down verdict changes (not its reason, weight or drain): for the push to HAProxy. */
  onVerdict?(server: string, up: boolean, reason: string | undefined): void;
}

/** Per-server checks, given as functions (the daemon builds them from the config; tests fake them). */
export interface ServerChecks {
  message?: { fn: CheckFn; timing: RunnerOptions };
  keyword?: { fn: CheckFn; timing: RunnerOptions };
  load?: { fn: CheckFn; timing: RunnerOptions; capacity: number; floor: number };
}

/**
 * One web server as the agent sees it: its checks' runners, the operator's drain, and the reply
 * HAProxy gets, kept ready as a Buffer so answering is a map lookup and a write.
 */
export class ServerHealth {
  reply: Buffer = Buffer.from('\n');
  replyText = '\n';
  drained = false;
  /** The health verdict the reply carries: undefined until every health check has a result. */
  verdict: boolean | undefined;
  /** Until this time (Timers.now), answer `ready` (set by undrain). */
  private readyUntil = -Infinity;
  private readyTimer: unknown;
  readonly runners = new Map<CheckKind, CheckRunner>();
  private readonly load?: { capacity: number; floor: number };

  constructor(
    readonly name: string,
    checks: ServerChecks,
    private readonly timers: Timers,
    private readonly readyWindowMs: number,
    private readonly hooks: ServerHealthHooks = {},
  ) {
    for (const kind of ['message', 'keyword', 'load'] as const) {
      const c = checks[kind];
      if (!c) continue;
      this.runners.set(
        kind,
        new CheckRunner(`${name} ${kind}`, c.fn, c.timing, timers, (state, event) => {
          this.hooks.onCheck?.(name, kind, state, event);
          this.refresh();
        }),
      );
    }
    if (checks.load) this.load = { capacity: checks.load.capacity, floor: checks.load.floor };
  }

  start(): void {
    for (const r of this.runners.values()) r.start();
  }

  stop(): void {
    for (const r of this.runners.values()) r.stop();
    this.timers.clearTimeout(this.readyTimer);
  }

  setDrained(drained: boolean): boolean {
    if (this.drained === drained) return false;
    this.drained = drained;
    this.timers.clearTimeout(this.readyTimer);
    if (!drained) {
      // HAProxy keeps an agent's `drain` until the agent says `ready`: say it for a while, so every
      // load balancer polling this agent hears it, then go back to sending no admin word.
      this.readyUntil = this.timers.now() + this.readyWindowMs;
      this.readyTimer = this.timers.setTimeout(() => this.refresh(), this.readyWindowMs);
    } else this.readyUntil = -Infinity;
    this.refresh();
    return true;
  }

  /** The state the reply is made from: any health check down → down with its reason. */
  replyState(): ReplyState {
    const health = ['message', 'keyword']
      .map((k) => this.runners.get(k as CheckKind)?.state)
      .filter((s): s is CheckState => s !== undefined);
    const failing = health.find((s) => s.up === false);
    const up = failing ? false : health.some((s) => s.up === undefined) ? undefined : true;
    const state: ReplyState = { up, reason: failing?.reason };
    const load = this.runners.get('load')?.state;
    if (up && this.load && load?.last?.ok && load.value !== undefined)
      state.weightPercent = loadToWeight(load.value, this.load.capacity, this.load.floor);
    if (this.drained) state.admin = 'drain';
    else if (this.timers.now() < this.readyUntil) state.admin = 'ready';
    return state;
  }

  private refresh(): void {
    const state = this.replyState();
    const text = formatReply(state);
    if (text !== this.replyText) {
      const previous = this.replyText;
      this.replyText = text;
      this.reply = Buffer.from(text);
      this.hooks.onReply?.(this.name, text, previous);
    }
    // After the reply: HAProxy, told at once, may poll at once and must hear the same.
    if (state.up !== undefined && state.up !== this.verdict) {
      this.verdict = state.up;
      this.hooks.onVerdict?.(this.name, state.up, state.reason);
    }
  }
}

/** Builds a server's checks from its config. */
export function checksFromConfig(server: AgentServerConfig, databaseServer: string | undefined): ServerChecks {
  const target = { host: server.address.host, port: server.address.port, hostHeader: server['host-header'] };
  const timing = (c: { 'interval-ms': number; 'timeout-ms': number; rise?: number; fall?: number }): RunnerOptions => ({
    intervalMs: c['interval-ms'],
    timeoutMs: c['timeout-ms'],
    rise: c.rise ?? 1,
    fall: c.fall ?? 1,
  });
  const { message, keyword, load } = server.checks;
  return {
    message: message && { fn: messageCheck(target, message), timing: timing(message) },
    keyword: keyword && {
      fn: keywordCheck(target, keyword, keyword.keyword ?? databaseServer ?? ''),
      timing: timing(keyword),
    },
    load: load && {
      fn: loadCheck(target, load),
      timing: timing(load),
      capacity: load.capacity,
      floor: load['floor-percent'],
    },
  };
}
