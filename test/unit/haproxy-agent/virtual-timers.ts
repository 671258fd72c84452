import type { Timers } from '../../../src/shared/timers.js';

/** Virtual time: timers fire only when the test advances the clock, in order, exactly on time. */
export class VirtualTimers implements Timers {
  private t = 0;
  private seq = 0;
  private queue: { at: number; seq: number; fn: () => void }[] = [];

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const h = { at: this.t + Math.max(0, ms), seq: this.seq++, fn };
    this.queue.push(h);
    return h;
  }

  clearTimeout(handle: unknown): void {
    this.queue = this.queue.filter((h) => h !== handle);
  }

  /** Lets pending promise callbacks run (no time passes). */
  async settle(): Promise<void> {
    for (let i = 0; i < 3; i++) await new Promise<void>((r) => setImmediate(r));
  }

  /** Moves the clock forward by `ms`, firing every timer due on the way at its exact time. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    await this.settle();
    for (;;) {
      const next = this.queue.filter((h) => h.at <= end).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!next) break;
      this.queue = this.queue.filter((h) => h !== next);
      this.t = next.at;
      next.fn();
      await this.settle();
    }
    this.t = end;
  }

  pending(): number {
    return this.queue.length;
  }
}

/** A check whose runs the test resolves by hand, recording when each started (virtual ms). */
export function manualCheck(timers: VirtualTimers) {
  const runs: {
    at: number;
    resolve: (o: { ok: true; value?: number } | { ok: false; reason: string }) => void;
    signal: AbortSignal;
  }[] = [];
  const fn = (signal: AbortSignal) =>
    new Promise<{ ok: true; value?: number } | { ok: false; reason: string }>((resolve) =>
      runs.push({ at: timers.now(), resolve, signal }),
    );
  return { fn, runs };
}

/** A check answering from a script of outcomes at once (ok, or a failure reason), then repeating the last. */
export function scriptedCheck(script: (true | string | number)[]) {
  let i = 0;
  return async () => {
    const step = script[Math.min(i++, script.length - 1)]!;
    if (step === true) return { ok: true as const };
    if (typeof step === 'number') return { ok: true as const, value: step };
    return { ok: false as const, reason: step };
  };
}
