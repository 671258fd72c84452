import type { CheckFn } from './checks.js';
import type { Outcome } from './probe.js';
import type { Timers } from '../shared/timers.js';

export interface RunnerOptions {
  intervalMs: number;
  timeoutMs: number;
  rise: number;
  fall: number;
}

/** A check's state after hysteresis. `up` is undefined until the first result. */
export interface CheckState {
  up: boolean | undefined;
  /** Why it is down (the latest failure while down), or 'ok'. */
  reason: string;
  /** The latest run's outcome, whatever the hysteresis made of it. */
  last?: Outcome;
  lastDurationMs?: number;
  /** The latest successful value (load checks). */
  value?: number;
  successes: number;
  failures: number;
  runs: number;
  /** While runs cannot happen for a local reason (EMFILE, ENOMEM...): that reason; the verdict is kept. */
  localError?: string;
  /** When the verdict last changed: ms from the start of the first run that led to it. */
  verdictMs?: number;
}

/** What a run did to the state, for the hooks: logs and metrics. */
export interface RunEvent {
  /** The up/down state or the reason changed. */
  changed: boolean;
  /** The up/down verdict itself changed (not only the reason). */
  verdictChanged: boolean;
  /** The run could not happen for a local reason (its result was not used). */
  couldNotRun?: boolean;
  /** A local-error episode started (the reason) or ended (null). */
  local?: string | null;
}

/**
 * Runs one check on its own timer, never inside an agent connection. A run starts every
 * `intervalMs` (a run still going delays the next one, runs never overlap) and fails with
 * "timeout after N ms" when it takes longer than `timeoutMs`. Hysteresis: the first result sets
 * the state; after that `fall` failures in a row take it down and `rise` successes bring it back.
 * A certain failure (refused, reset) takes it down at once: the server's host said so, a second
 * sample adds nothing. A local failure (the check could not run here) changes nothing: it is no
 * evidence about the server, and answering `down` for it would let a client flood empty the pool.
 */
export class CheckRunner {
  readonly state: CheckState = { up: undefined, reason: 'not checked yet', successes: 0, failures: 0, runs: 0 };
  private timer: unknown;
  private stopped = true;
  private running?: AbortController;
  /** Start of the first run of the current streak of equal results (for verdictMs). */
  private streakStart = 0;

  constructor(
    readonly name: string,
    private readonly check: CheckFn,
    private readonly opts: RunnerOptions,
    private readonly timers: Timers,
    /** Called after every run. */
    private readonly onResult: (state: CheckState, event: RunEvent) => void,
  ) {}

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.run();
  }

  stop(): void {
    this.stopped = true;
    this.timers.clearTimeout(this.timer);
    this.running?.abort();
  }

  private run(): void {
    if (this.stopped) return;
    const started = this.timers.now();
    const ac = new AbortController();
    this.running = ac;
    let settled = false;
    const settle = (outcome: Outcome) => {
      if (settled) return;
      settled = true;
      this.timers.clearTimeout(timeout);
      this.running = undefined;
      if (this.stopped) return;
      const ended = this.timers.now();
      this.record(outcome, ended - started, started);
      // Next start: one interval after this one started, or at once if the run took longer.
      this.timer = this.timers.setTimeout(() => this.run(), Math.max(0, started + this.opts.intervalMs - ended));
    };
    const timeout = this.timers.setTimeout(() => {
      ac.abort();
      settle({ ok: false, reason: `timeout after ${this.opts.timeoutMs} ms` });
    }, this.opts.timeoutMs);
    let promise: Promise<Outcome>;
    try {
      promise = this.check(ac.signal);
    } catch (err) {
      promise = Promise.resolve({ ok: false, reason: (err as Error).message });
    }
    promise.then(settle, (err: unknown) =>
      settle({ ok: false, reason: err instanceof Error ? err.message : String(err) }),
    );
  }

  /** Applies one outcome to the hysteresis (public for tests of the state machine alone). */
  record(outcome: Outcome, durationMs: number, startedAt = this.timers.now() - durationMs): void {
    const s = this.state;
    if (!outcome.ok && outcome.local) return this.recordLocal(outcome.reason, durationMs);
    const before = `${s.up}|${s.reason}`;
    const wasUp = s.up;
    const local = s.localError !== undefined ? null : undefined;
    s.localError = undefined;
    s.runs++;
    s.last = outcome;
    s.lastDurationMs = durationMs;
    // A streak starts with the first run whose result differs from the previous one.
    if (outcome.ok ? s.successes === 0 : s.failures === 0) this.streakStart = startedAt;
    if (outcome.ok) {
      s.successes++;
      s.failures = 0;
      if (outcome.value !== undefined) s.value = outcome.value;
      if (s.up === undefined || (s.up === false && s.successes >= this.opts.rise)) {
        s.up = true;
        s.reason = 'ok';
      }
    } else {
      s.failures++;
      s.successes = 0;
      if (s.up === undefined || (s.up === true && (outcome.certain === true || s.failures >= this.opts.fall)))
        s.up = false;
      if (s.up === false) s.reason = outcome.reason;
    }
    const verdictChanged = s.up !== wasUp;
    if (verdictChanged) s.verdictMs = this.timers.now() - this.streakStart;
    this.onResult(s, {
      changed: `${s.up}|${s.reason}` !== before,
      verdictChanged,
      ...(local === null ? { local } : {}),
    });
  }

  /** The check could not run here: keep the verdict and the streaks, say why once per episode. */
  private recordLocal(reason: string, durationMs: number): void {
    const s = this.state;
    const starts = s.localError === undefined;
    s.localError = reason;
    s.runs++;
    s.lastDurationMs = durationMs;
    this.onResult(s, {
      changed: false,
      verdictChanged: false,
      couldNotRun: true,
      ...(starts ? { local: reason } : {}),
    });
  }
}
