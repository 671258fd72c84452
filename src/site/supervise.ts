import { Counter, type Registry } from 'prom-client';
import type { Logger } from '../shared/log.js';
import { realTimers, type Timers } from '../shared/timers.js';

/** A part that runs a loop of its own (the replicator): `finished()` settles when the loop ends. */
export interface Loop {
  finished(): Promise<void>;
  stop(): Promise<void>;
}

export interface SuperviseOptions {
  /** The part's name, the `part` label of multisite_part_failures_total. */
  part: string;
  start(): Promise<Loop>;
  logger: Logger;
  failures: Counter<'part'>;
  timers?: Timers;
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

/** multisite_part_failures_total{part}: a part's loop that ended by itself and was restarted. */
export function partFailures(registry: Registry): Counter<'part'> {
  const name = 'multisite_part_failures_total';
  const existing = registry.getSingleMetric(name);
  if (existing) return existing as Counter<'part'>;
  return new Counter({
    name,
    help: 'Times a part of this process failed after it had started (it is restarted with backoff)',
    labelNames: ['part'],
    registers: [registry],
  });
}

/**
 * Keeps a looping part running: the first start's failure is the caller's (a failed start stops
 * the whole start); a loop that ends later without stop() is logged, counted and restarted after
 * a backoff doubling from minBackoffMs to maxBackoffMs (back to the minimum once a run lasted
 * longer than the maximum), so a part that keeps failing neither spins nor stays down for good.
 */
export class Supervisor {
  private current?: Loop;
  private stopping = false;
  private timer: unknown;
  private backoffMs: number;
  private startedAt = 0;
  private readonly timers: Timers;
  private readonly min: number;
  private readonly max: number;

  constructor(private readonly o: SuperviseOptions) {
    this.timers = o.timers ?? realTimers;
    this.min = o.minBackoffMs ?? 1000;
    this.max = o.maxBackoffMs ?? 30_000;
    this.backoffMs = this.min;
  }

  async start(): Promise<void> {
    this.watch(await this.o.start());
  }

  private watch(loop: Loop): void {
    this.current = loop;
    this.startedAt = this.timers.now();
    loop.finished().then(
      () => this.ended(new Error('its loop ended without being stopped')),
      (err: unknown) => this.ended(err instanceof Error ? err : new Error(String(err))),
    );
  }

  private ended(err: Error): void {
    if (this.stopping) return;
    this.current = undefined;
    if (this.timers.now() - this.startedAt > this.max) this.backoffMs = this.min;
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.max, this.backoffMs * 2);
    this.o.failures.inc({ part: this.o.part });
    this.o.logger.error({ part: this.o.part, err: err.message, restartInMs: delay }, 'part failed; restarting it');
    this.timer = this.timers.setTimeout(() => void this.restart(), delay);
  }

  private async restart(): Promise<void> {
    this.timer = undefined;
    if (this.stopping) return;
    try {
      const loop = await this.o.start();
      if (this.stopping) return void (await loop.stop());
      this.o.logger.info({ part: this.o.part }, 'part restarted');
      this.watch(loop);
    } catch (err) {
      this.startedAt = this.timers.now();
      this.ended(err as Error);
    }
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer !== undefined) this.timers.clearTimeout(this.timer);
    await this.current?.stop();
  }
}
