/**
 * The state of one peer site, as a pure machine: events carry the (monotonic) time they happen at,
 * the machine returns what to do, and says when it next wants a `tick`. No clock, no I/O.
 *
 *   up      --no heartbeat for suspectAfterMs-->         suspect (+ probe)
 *   up      --another site announced it down-->           suspect (+ probe)
 *   suspect --heartbeat-->                                up
 *   suspect --probe answered-->                           up (the silence counts again from now)
 *   suspect --probe failed, or no result by probeDeadline--> down (+ announce to the other peers)
 *   down    --heartbeats spanning recoverPeriods periods, no gap > suspectAfterMs--> up
 *
 * `up` and `suspect` keep the site in answers; only a verified failure (`down`) takes it out.
 */

export type PeerState = 'up' | 'suspect' | 'down';

export interface MachineOptions {
  periodMs: number;
  /** Silence that makes an up peer suspect (default 1.5 periods: one period plus jitter). */
  suspectAfterMs: number;
  /** Periods in a row with heartbeats that bring a down peer back. */
  recoverPeriods: number;
  /** A probe without a result by then counts as failed (the prober's own timeouts should come first). */
  probeDeadlineMs: number;
}

export type PeerEvent =
  | { type: 'heartbeat'; at: number; sender: string }
  | { type: 'tick'; at: number }
  | { type: 'probe-result'; at: number; probe: number; ok: boolean; detail: string }
  | { type: 'announced-down'; at: number; by: string; reason: string };

export type PeerEffect =
  | { type: 'transition'; from: PeerState; to: PeerState; reason: string; at: number }
  | { type: 'probe'; probe: number }
  | { type: 'announce-down'; reason: string };

export interface PeerSnapshot {
  site: string;
  state: PeerState;
  since: number;
  reason: string;
  lastHeartbeat?: number;
  lastSender?: string;
  /** While down: when the current run of heartbeats began. */
  recoveringSince?: number;
}

export class PeerMachine {
  private state: PeerState = 'up';
  private since: number;
  private reason = 'no heartbeat yet';
  private lastHeartbeat?: number;
  private lastSender?: string;
  /** Up: the silence is measured from here (a heartbeat, a good probe, the start). */
  private aliveAt: number;
  private probeSeq = 0;
  private probing?: { id: number; startedAt: number };
  private runStart?: number;

  constructor(
    readonly site: string,
    private readonly opts: MachineOptions,
    startAt: number,
  ) {
    this.since = startAt;
    this.aliveAt = startAt;
  }

  snapshot(): PeerSnapshot {
    const s: PeerSnapshot = { site: this.site, state: this.state, since: this.since, reason: this.reason };
    if (this.lastHeartbeat !== undefined) s.lastHeartbeat = this.lastHeartbeat;
    if (this.lastSender !== undefined) s.lastSender = this.lastSender;
    if (this.state === 'down' && this.runStart !== undefined) s.recoveringSince = this.runStart;
    return s;
  }

  get current(): PeerState {
    return this.state;
  }

  /** When the machine wants a tick (undefined: only events move it). */
  nextDeadline(): number | undefined {
    if (this.state === 'up') return this.aliveAt + this.opts.suspectAfterMs;
    if (this.state === 'suspect' && this.probing) return this.probing.startedAt + this.opts.probeDeadlineMs;
    return undefined;
  }

  handle(e: PeerEvent): PeerEffect[] {
    switch (e.type) {
      case 'heartbeat':
        return this.onHeartbeat(e.at, e.sender);
      case 'tick':
        return this.onTick(e.at);
      case 'probe-result':
        return this.onProbe(e.at, e.probe, e.ok, e.detail);
      case 'announced-down':
        if (this.state !== 'up') return [];
        return this.suspect(e.at, `site ${e.by} announced it down (${e.reason})`);
    }
  }

  private onHeartbeat(at: number, sender: string): PeerEffect[] {
    const gap = this.lastHeartbeat === undefined ? Infinity : at - this.lastHeartbeat;
    this.lastHeartbeat = at;
    this.lastSender = sender;
    if (this.state === 'up') {
      if (gap === Infinity) this.reason = 'heartbeats arriving';
      this.aliveAt = Math.max(this.aliveAt, at);
      return [];
    }
    if (this.state === 'suspect') {
      this.probing = undefined;
      this.aliveAt = at;
      return [this.move('up', at, `heartbeat from ${sender}`)];
    }
    // down: a run of heartbeats with no gap longer than suspectAfterMs, long enough to cover
    // recoverPeriods periods (half a period of tolerance for jitter), brings it back.
    if (this.runStart === undefined || gap > this.opts.suspectAfterMs) this.runStart = at;
    const needed = (this.opts.recoverPeriods - 1) * this.opts.periodMs - this.opts.periodMs / 2;
    if (at - this.runStart >= needed) {
      this.runStart = undefined;
      this.aliveAt = at;
      return [
        this.move(
          'up',
          at,
          `heartbeats in each of the last ${this.opts.recoverPeriods} periods (latest from ${sender})`,
        ),
      ];
    }
    return [];
  }

  private onTick(at: number): PeerEffect[] {
    const deadline = this.nextDeadline();
    if (deadline === undefined || at < deadline) return [];
    if (this.state === 'up') {
      const silent =
        this.lastHeartbeat === undefined
          ? 'no heartbeat yet'
          : `no heartbeat for ${Math.round(at - this.lastHeartbeat)} ms`;
      return this.suspect(at, silent);
    }
    return this.fail(at, `probe gave no result within ${this.opts.probeDeadlineMs} ms`);
  }

  private onProbe(at: number, probe: number, ok: boolean, detail: string): PeerEffect[] {
    if (this.state !== 'suspect' || this.probing?.id !== probe) return [];
    this.probing = undefined;
    if (ok) {
      this.aliveAt = at;
      return [this.move('up', at, `verified by probe (${detail}) after: ${this.reason}`)];
    }
    return this.fail(at, detail);
  }

  private suspect(at: number, why: string): PeerEffect[] {
    this.probing = { id: ++this.probeSeq, startedAt: at };
    return [this.move('suspect', at, why), { type: 'probe', probe: this.probing.id }];
  }

  private fail(at: number, detail: string): PeerEffect[] {
    this.probing = undefined;
    this.runStart = undefined;
    const reason = `verified down: ${detail} (after: ${this.reason})`;
    return [this.move('down', at, reason), { type: 'announce-down', reason: detail }];
  }

  private move(to: PeerState, at: number, reason: string): PeerEffect {
    const from = this.state;
    this.state = to;
    this.since = at;
    this.reason = reason;
    return { type: 'transition', from, to, reason, at };
  }
}
