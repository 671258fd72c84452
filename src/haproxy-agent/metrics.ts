import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { PushResult } from './push.js';
import type { CheckState, RunEvent } from './runner.js';
import type { CheckKind } from './server-health.js';

/** Why a request was not served: closed unanswered (timeout, too-many) or answered `down #why`. */
export type Refusal = 'timeout' | 'overlong' | 'junk' | 'unknown-server' | 'too-many';

/** What an operator graphs: check results and latency per server, replies, refusals. */
export class AgentMetrics {
  private readonly checkUp: Gauge<'server' | 'check'>;
  private readonly checkOk: Gauge<'server' | 'check'>;
  private readonly checkSeconds: Histogram<'server' | 'check'>;
  private readonly checkRuns: Counter<'server' | 'check' | 'result'>;
  private readonly replies: Counter<'server' | 'reply'>;
  private readonly refused: Counter<'why'>;
  private readonly localErrors: Counter<'server' | 'check'>;
  private readonly verdictSeconds: Histogram<'check'>;
  private readonly verdictAt: Gauge<'server'>;
  private readonly pushSeconds: Histogram<'socket' | 'result'>;
  private readonly pushedAt: Gauge<'server' | 'socket'>;
  /** Hot path: children bound once per label set. */
  private readonly replyChildren = new Map<string, Counter.Internal>();
  private readonly refusedChildren = new Map<string, Counter.Internal>();

  constructor(registry: Registry) {
    const registers = [registry];
    this.checkUp = new Gauge({
      name: 'multisite_agent_check_up',
      help: 'Check state after rise/fall (1 up, 0 down), per server and check',
      labelNames: ['server', 'check'],
      registers,
    });
    this.checkOk = new Gauge({
      name: 'multisite_agent_check_last_ok',
      help: 'Latest run of the check passed (1) or failed (0)',
      labelNames: ['server', 'check'],
      registers,
    });
    this.checkSeconds = new Histogram({
      name: 'multisite_agent_check_seconds',
      help: 'Duration of check runs, per server and check',
      labelNames: ['server', 'check'],
      buckets: [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.checkRuns = new Counter({
      name: 'multisite_agent_check_runs_total',
      help: 'Check runs, per server, check and result',
      labelNames: ['server', 'check', 'result'],
      registers,
    });
    this.replies = new Counter({
      name: 'multisite_agent_replies_total',
      help: 'Replies sent to HAProxy, per server and first health word (up, down, drain, none)',
      labelNames: ['server', 'reply'],
      registers,
    });
    this.refused = new Counter({
      name: 'multisite_agent_refused_total',
      help: 'Requests not served: closed unanswered (timeout, too-many) or answered down #why (unknown-server, junk, overlong)',
      labelNames: ['why'],
      registers,
    });
    this.localErrors = new Counter({
      name: 'multisite_agent_check_local_errors_total',
      help: 'Check runs that could not run for a local reason (EMFILE, ENOMEM...): the verdict was kept',
      labelNames: ['server', 'check'],
      registers,
    });
    const stageBuckets = [0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1, 2, 5];
    this.verdictSeconds = new Histogram({
      name: 'multisite_agent_verdict_seconds',
      help: 'Check verdict changes: from the start of the first run of the evidence to the verdict',
      labelNames: ['check'],
      buckets: stageBuckets,
      registers,
    });
    this.verdictAt = new Gauge({
      name: 'multisite_agent_verdict_timestamp_seconds',
      help: "Wall time of the server's last up/down verdict change",
      labelNames: ['server'],
      registers,
    });
    this.pushSeconds = new Histogram({
      name: 'multisite_agent_push_seconds',
      help: "From a verdict change to HAProxy's answer to the Runtime API push, per socket and result",
      labelNames: ['socket', 'result'],
      buckets: [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
      registers,
    });
    this.pushedAt = new Gauge({
      name: 'multisite_agent_push_timestamp_seconds',
      help: 'Wall time HAProxy last took a verdict push, per server and socket',
      labelNames: ['server', 'socket'],
      registers,
    });
  }

  /** Open connections, read from the service when scraped (nothing per connection). */
  watchConnections(count: () => number, registry: Registry): void {
    new Gauge({
      name: 'multisite_agent_connections',
      help: 'Open agent connections',
      registers: [registry],
      collect() {
        this.set(count());
      },
    });
  }

  check(server: string, kind: CheckKind, state: CheckState, event?: RunEvent): void {
    if (event?.couldNotRun) return void this.localErrors.inc({ server, check: kind });
    if (event?.verdictChanged && state.verdictMs !== undefined)
      this.verdictSeconds.observe({ check: kind }, state.verdictMs / 1000);
    if (state.up !== undefined) this.checkUp.set({ server, check: kind }, state.up ? 1 : 0);
    const ok = state.last?.ok === true;
    this.checkOk.set({ server, check: kind }, ok ? 1 : 0);
    this.checkRuns.inc({ server, check: kind, result: ok ? 'ok' : 'fail' });
    if (state.lastDurationMs !== undefined)
      this.checkSeconds.observe({ server, check: kind }, state.lastDurationMs / 1000);
  }

  verdict(server: string): void {
    this.verdictAt.set({ server }, Date.now() / 1000);
  }

  push(socket: string, server: string, result: PushResult, ms: number): void {
    this.pushSeconds.observe({ socket, result }, ms / 1000);
    if (result === 'ok') this.pushedAt.set({ server, socket }, Date.now() / 1000);
  }

  /** `word` is the reply's kind, e.g. "up", "down", "drain"; cached per server. */
  reply(server: string, word: string): void {
    const key = `${server}\0${word}`;
    let c = this.replyChildren.get(key);
    if (!c) {
      c = this.replies.labels({ server, reply: word });
      this.replyChildren.set(key, c);
    }
    c.inc();
  }

  refuse(why: Refusal): void {
    let c = this.refusedChildren.get(why);
    if (!c) {
      c = this.refused.labels({ why });
      this.refusedChildren.set(why, c);
    }
    c.inc();
  }
}

/** The metric label of a reply line: its health word, or the admin word, or "none". */
export function replyWord(reply: string): string {
  const m = /\b(up|down|drain|ready)\b/.exec(reply);
  if (!m) return 'none';
  if (m[1] === 'drain' || m[1] === 'ready') return reply.includes('down') ? `${m[1]}-down` : m[1];
  return m[1]!;
}
