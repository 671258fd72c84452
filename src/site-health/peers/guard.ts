import type { Message, RejectReason } from './codec.js';
import { followsSequence, type SequenceMark } from '../../shared/sequence.js';

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
 * A sender restarted after its clock was set back: see followsSequence.
 * Pure: the caller passes the wall-clock time and a monotonic one.
 */
export class ReplayGuard {
  private readonly last = new Map<string, SequenceMark>();

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
    if (!followsSequence(prev, msg.boot, msg.seq, monoMs, 2 * this.opts.maxSkewMs))
      return {
        ok: false,
        reason: 'replay',
        detail: `sequence ${msg.boot}/${msg.seq} is not after ${prev!.boot}/${prev!.seq}`,
      };
    this.last.set(key, { boot: msg.boot, seq: msg.seq, at: monoMs });
    return { ok: true };
  }
}
