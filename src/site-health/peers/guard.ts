import type { Message, RejectReason } from './codec.js';

export interface GuardOptions {
  /** This backend's site: its own messages (looped back, or replayed at it) are refused. */
  site: string;
  /** The peer sites a message may come from. */
  peers: ReadonlySet<string>;
  /** Largest accepted |sender's time - our time|, in ms. */
  maxSkewMs: number;
}

export type Verdict = { ok: true } | { ok: false; reason: RejectReason; detail: string };

/**
 * Accepts an authenticated message at most once and only while fresh: per sender, (boot, seq) must
 * grow (a restart has a later boot), and its time must be within `maxSkewMs` of ours. A replay
 * right after this process restarts (when it has no memory of the sequence) is still bounded by
 * the skew window.
 *
 * A boot is the sender's wall clock at its start, so a sender restarted after its clock was set
 * back has an earlier boot. That boot is accepted once the sender's previous boot has been silent
 * (nothing accepted) for more than twice the skew window, measured on our monotonic clock: every
 * message of the previous boot (or of any earlier one) was sent before that silence began, so its
 * time is now outside the skew window and a replay of it is refused as `skew`. Without this such a
 * sender stayed refused as a replay until this process restarted.
 * Pure: the caller passes the wall-clock time and a monotonic one.
 */
export class ReplayGuard {
  private readonly last = new Map<string, { boot: number; seq: number; at: number }>();

  constructor(private readonly opts: GuardOptions) {}

  /** `monoMs`: a monotonic clock for the silence before an earlier boot (default: `nowMs`). */
  check(msg: Message, nowMs: number, monoMs = nowMs): Verdict {
    if (msg.site === this.opts.site)
      return { ok: false, reason: 'own-site', detail: `a message from this site (${msg.sender})` };
    if (!this.opts.peers.has(msg.site))
      return { ok: false, reason: 'unknown-site', detail: `site '${msg.site}' is not configured` };
    const skew = msg.time - nowMs;
    if (Math.abs(skew) > this.opts.maxSkewMs) {
      return {
        ok: false,
        reason: 'skew',
        detail: `sender's clock is ${skew} ms off (at most ±${this.opts.maxSkewMs})`,
      };
    }
    const key = `${msg.site}\0${msg.sender}`;
    const prev = this.last.get(key);
    if (prev && (msg.boot < prev.boot || (msg.boot === prev.boot && msg.seq <= prev.seq))) {
      const clockSetBack = msg.boot < prev.boot && monoMs - prev.at > 2 * this.opts.maxSkewMs;
      if (!clockSetBack)
        return {
          ok: false,
          reason: 'replay',
          detail: `sequence ${msg.boot}/${msg.seq} is not after ${prev.boot}/${prev.seq}`,
        };
    }
    this.last.set(key, { boot: msg.boot, seq: msg.seq, at: monoMs });
    return { ok: true };
  }
}
