import { describe, expect, it } from 'vitest';
import type { Message } from '../../../src/site-health/peers/codec.js';
import { ReplayGuard } from '../../../src/site-health/peers/guard.js';

const now = 1_700_000_000_000;
const hb = (over: Partial<Message> = {}): Message =>
  ({
    type: 'heartbeat',
    site: 'b',
    sender: 'b1',
    boot: now - 60_000,
    seq: 10,
    time: now,
    summary: { pool: 'up' },
    ...over,
  }) as Message;
const guard = () => new ReplayGuard({ site: 'a', peers: new Set(['b', 'c']), maxSkewMs: 5000 });

describe('replay and freshness guard', () => {
  it('accepts growing sequence numbers per sender, and each sender on its own', () => {
    const g = guard();
    expect(g.check(hb(), now)).toEqual({ ok: true });
    expect(g.check(hb({ seq: 11 }), now)).toEqual({ ok: true });
    expect(g.check(hb({ sender: 'b2', seq: 1 }), now)).toEqual({ ok: true });
    expect(g.check(hb({ site: 'c', seq: 1 }), now)).toEqual({ ok: true });
  });

  it('refuses the same message twice, an older sequence number, and an older boot', () => {
    const g = guard();
    g.check(hb({ seq: 10 }), now);
    expect(g.check(hb({ seq: 10 }), now)).toEqual({
      ok: false,
      reason: 'replay',
      detail: `sequence ${now - 60_000}/10 is not after ${now - 60_000}/10`,
    });
    expect(g.check(hb({ seq: 9 }), now)).toMatchObject({ ok: false, reason: 'replay' });
    expect(g.check(hb({ boot: now - 70_000, seq: 1000 }), now)).toMatchObject({ ok: false, reason: 'replay' });
  });

  it('accepts a restarted sender (later boot, sequence from 1)', () => {
    const g = guard();
    g.check(hb({ seq: 500 }), now);
    expect(g.check(hb({ boot: now - 1000, seq: 1 }), now)).toEqual({ ok: true });
    expect(g.check(hb({ seq: 501 }), now)).toMatchObject({ ok: false, reason: 'replay' });
  });

  it('refuses clocks beyond the skew bound either way, without remembering the sequence', () => {
    const g = guard();
    expect(g.check(hb({ time: now - 5001 }), now)).toEqual({
      ok: false,
      reason: 'skew',
      detail: "sender's clock is -5001 ms off (at most ±5000)",
    });
    expect(g.check(hb({ time: now + 5001 }), now)).toMatchObject({ ok: false, reason: 'skew' });
    expect(g.check(hb({ time: now + 5000 }), now)).toEqual({ ok: true });
  });

  it('refuses messages claiming this site or a site not configured', () => {
    const g = guard();
    expect(g.check(hb({ site: 'a' }), now)).toMatchObject({ ok: false, reason: 'own-site' });
    expect(g.check(hb({ site: 'zz' }), now)).toMatchObject({ ok: false, reason: 'unknown-site' });
  });
});

describe('a sender whose clock was set back and restarted (earlier boot)', () => {
  // Wall clocks moved back one hour together; the sender restarted: its boot is now earlier.
  const back = now - 3_600_000;
  const restarted = (seq: number, mono: number) => [hb({ boot: back - 1000, seq, time: back }), back, mono] as const;

  it('is accepted once its previous boot has been silent for more than twice the skew window', () => {
    const g = guard();
    expect(g.check(hb({ seq: 500 }), now, 0)).toEqual({ ok: true });
    expect(g.check(...restarted(1, 10_000))).toMatchObject({ ok: false, reason: 'replay' });
    expect(g.check(...restarted(2, 10_001))).toEqual({ ok: true });
    expect(g.check(...restarted(2, 10_002))).toMatchObject({ ok: false, reason: 'replay' });
    expect(g.check(...restarted(3, 10_003))).toEqual({ ok: true });
  });

  it('gives a replay of the previous boot nothing: it is outside the skew window by then', () => {
    const g = guard();
    g.check(hb({ seq: 500 }), now, 0);
    g.check(hb({ boot: back - 1000, seq: 1, time: back }), back, 10_001);
    expect(g.check(hb({ seq: 501 }), back + 1, 10_002)).toMatchObject({ ok: false, reason: 'skew' });
  });

  it('is still refused while the previous boot is heard from (a replay, not a restart)', () => {
    const g = guard();
    g.check(hb({ seq: 500 }), now, 0);
    g.check(hb({ seq: 501 }), now, 9_000);
    expect(g.check(hb({ boot: now - 120_000, seq: 1 }), now, 10_001)).toMatchObject({ ok: false, reason: 'replay' });
  });
});
