/** One state change the Timeline section lists, newest first. */
export interface TimelineEntry {
  at: number;
  /** `site b`, `partition p1`. */
  subject: string;
  /** The new state: up, down, draining, ..., or `active at b (epoch 3)`. */
  to: string;
  reason: string;
  /** How long the subject was in its previous state (the stage this change ends). */
  lastedMs?: number;
}

/**
 * The last changes of sites and partitions, kept in memory (a restart starts an empty timeline:
 * the logs keep the full history). Bounded: the oldest entry goes when `size` is reached.
 */
export class Timeline {
  private readonly entries: TimelineEntry[] = [];
  private readonly lastAt = new Map<string, number>();

  constructor(
    private readonly size: number,
    started: number,
    subjects: string[],
  ) {
    for (const s of subjects) this.lastAt.set(s, started);
  }

  add(subject: string, to: string, reason: string, at: number): void {
    const prev = this.lastAt.get(subject);
    const entry: TimelineEntry = { at, subject, to, reason };
    if (prev !== undefined) entry.lastedMs = at - prev;
    this.lastAt.set(subject, at);
    this.entries.unshift(entry);
    if (this.entries.length > this.size) this.entries.length = this.size;
  }

  list(): TimelineEntry[] {
    return this.entries.map((e) => ({ ...e }));
  }
}
