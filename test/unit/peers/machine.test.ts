import { describe, expect, it } from 'vitest';
import { PeerMachine, type PeerEffect } from '../../../src/site-health/peers/machine.js';

const P = 1000;
const opts = { periodMs: P, suspectAfterMs: 1500, recoverPeriods: 3, probeDeadlineMs: 1050 };
const fresh = (o = opts) => new PeerMachine('b', o, 0);
const kinds = (effects: PeerEffect[]) => effects.map((e) => (e.type === 'transition' ? `${e.from}->${e.to}` : e.type));

/** A machine walked to `suspect` at t=1500 (started at 0, heartbeat never came), probe id 1. */
function suspectAt1500() {
  const m = fresh();
  expect(kinds(m.handle({ type: 'tick', at: 1500 }))).toEqual(['up->suspect', 'probe']);
  return m;
}

function downAt1500() {
  const m = suspectAt1500();
  m.handle({ type: 'probe-result', at: 1500, probe: 1, ok: false, detail: 'ECONNREFUSED' });
  expect(m.current).toBe('down');
  return m;
}

describe('peer state machine', () => {
  it('starts up and asks for a tick one suspect interval after start', () => {
    const m = fresh();
    expect(m.current).toBe('up');
    expect(m.nextDeadline()).toBe(1500);
    expect(m.handle({ type: 'tick', at: 1499 })).toEqual([]);
  });

  it('up → up on a heartbeat: the silence is measured from the latest one', () => {
    const m = fresh();
    expect(m.handle({ type: 'heartbeat', at: 900, sender: 'b/1' })).toEqual([]);
    expect(m.nextDeadline()).toBe(2400);
    expect(m.handle({ type: 'tick', at: 2399 })).toEqual([]);
    const effects = m.handle({ type: 'tick', at: 2400 });
    expect(effects).toEqual([
      { type: 'transition', from: 'up', to: 'suspect', reason: 'no heartbeat for 1500 ms', at: 2400 },
      { type: 'probe', probe: 1 },
    ]);
    expect(m.snapshot()).toMatchObject({ state: 'suspect', since: 2400, lastHeartbeat: 900, lastSender: 'b/1' });
  });

  it('up → suspect with "no heartbeat yet" when none ever came', () => {
    const m = suspectAt1500();
    expect(m.snapshot().reason).toBe('no heartbeat yet');
  });

  it('suspect → up on a heartbeat, and the probe still running is then ignored', () => {
    const m = suspectAt1500();
    expect(kinds(m.handle({ type: 'heartbeat', at: 1600, sender: 'b/2' }))).toEqual(['suspect->up']);
    expect(m.snapshot().reason).toBe('heartbeat from b/2');
    expect(m.handle({ type: 'probe-result', at: 1700, probe: 1, ok: false, detail: 'late' })).toEqual([]);
    expect(m.current).toBe('up');
    expect(m.nextDeadline()).toBe(3100);
  });

  it('suspect → up when the probe answers; silence then counts from the probe', () => {
    const m = suspectAt1500();
    const effects = m.handle({ type: 'probe-result', at: 1510, probe: 1, ok: true, detail: 'status ok' });
    expect(effects).toEqual([
      {
        type: 'transition',
        from: 'suspect',
        to: 'up',
        reason: 'verified by probe (status ok) after: no heartbeat yet',
        at: 1510,
      },
    ]);
    expect(m.nextDeadline()).toBe(3010);
    // Heartbeats still lost: suspect again, a new probe (id 2), never down while probes answer.
    expect(m.handle({ type: 'tick', at: 3010 })).toEqual([
      expect.objectContaining({ to: 'suspect' }),
      { type: 'probe', probe: 2 },
    ]);
    expect(kinds(m.handle({ type: 'probe-result', at: 3020, probe: 2, ok: true, detail: 'ok' }))).toEqual([
      'suspect->up',
    ]);
  });

  it('suspect → down when the probe fails, announcing it', () => {
    const m = suspectAt1500();
    const effects = m.handle({
      type: 'probe-result',
      at: 1502,
      probe: 1,
      ok: false,
      detail: '2 attempts failed: ECONNREFUSED',
    });
    expect(effects).toEqual([
      {
        type: 'transition',
        from: 'suspect',
        to: 'down',
        reason: 'verified down: 2 attempts failed: ECONNREFUSED (after: no heartbeat yet)',
        at: 1502,
      },
      { type: 'announce-down', reason: '2 attempts failed: ECONNREFUSED' },
    ]);
    expect(m.nextDeadline()).toBeUndefined();
  });

  it('suspect → down when the probe gives no result by its deadline; the late result is ignored', () => {
    const m = suspectAt1500();
    expect(m.nextDeadline()).toBe(2550);
    expect(m.handle({ type: 'tick', at: 2549 })).toEqual([]);
    expect(kinds(m.handle({ type: 'tick', at: 2550 }))).toEqual(['suspect->down', 'announce-down']);
    expect(m.snapshot().reason).toContain('probe gave no result within 1050 ms');
    expect(m.handle({ type: 'probe-result', at: 2600, probe: 1, ok: true, detail: 'late' })).toEqual([]);
    expect(m.current).toBe('down');
  });

  it('a probe result with a stale id does not move a suspect', () => {
    const m = suspectAt1500();
    expect(m.handle({ type: 'probe-result', at: 1510, probe: 99, ok: false, detail: 'x' })).toEqual([]);
    expect(m.current).toBe('suspect');
  });

  it('up → suspect (and a probe) when another site announces it down; ignored when already suspect or down', () => {
    const m = fresh();
    m.handle({ type: 'heartbeat', at: 100, sender: 'b/1' });
    expect(m.handle({ type: 'announced-down', at: 200, by: 'c', reason: 'ECONNREFUSED' })).toEqual([
      { type: 'transition', from: 'up', to: 'suspect', reason: 'site c announced it down (ECONNREFUSED)', at: 200 },
      { type: 'probe', probe: 1 },
    ]);
    expect(m.handle({ type: 'announced-down', at: 210, by: 'd', reason: 'x' })).toEqual([]);
    const d = downAt1500();
    expect(d.handle({ type: 'announced-down', at: 1600, by: 'c', reason: 'x' })).toEqual([]);
  });

  it('down → up only after heartbeats in each of the last 3 periods', () => {
    const m = downAt1500();
    expect(m.handle({ type: 'heartbeat', at: 5000, sender: 'b/1' })).toEqual([]);
    expect(m.snapshot().recoveringSince).toBe(5000);
    expect(m.handle({ type: 'heartbeat', at: 6003, sender: 'b/1' })).toEqual([]);
    expect(m.handle({ type: 'heartbeat', at: 6998, sender: 'b/1' })).toEqual([
      {
        type: 'transition',
        from: 'down',
        to: 'up',
        reason: 'heartbeats in each of the last 3 periods (latest from b/1)',
        at: 6998,
      },
    ]);
    expect(m.nextDeadline()).toBe(8498);
  });

  it('down: a gap longer than the suspect interval starts the run again', () => {
    const m = downAt1500();
    m.handle({ type: 'heartbeat', at: 5000, sender: 'b/1' });
    m.handle({ type: 'heartbeat', at: 6000, sender: 'b/1' });
    expect(m.handle({ type: 'heartbeat', at: 7600, sender: 'b/1' })).toEqual([]); // one lost: 1600 ms gap
    expect(m.snapshot().recoveringSince).toBe(7600);
    m.handle({ type: 'heartbeat', at: 8600, sender: 'b/1' });
    expect(kinds(m.handle({ type: 'heartbeat', at: 9600, sender: 'b/1' }))).toEqual(['down->up']);
  });

  it('down: two backends of the site heartbeating count periods, not messages', () => {
    const m = downAt1500();
    for (const [at, sender] of [
      [5000, 'b/1'],
      [5300, 'b/2'],
      [6000, 'b/1'],
      [6300, 'b/2'],
    ] as const) {
      expect(m.handle({ type: 'heartbeat', at, sender })).toEqual([]);
    }
    expect(kinds(m.handle({ type: 'heartbeat', at: 7000, sender: 'b/1' }))).toEqual(['down->up']);
  });

  it('down → up at the first heartbeat with recover-periods 1; ticks and stale probes do nothing while down', () => {
    const m = new PeerMachine('b', { ...opts, recoverPeriods: 1 }, 0);
    m.handle({ type: 'tick', at: 1500 });
    m.handle({ type: 'probe-result', at: 1500, probe: 1, ok: false, detail: 'x' });
    expect(m.handle({ type: 'tick', at: 99_999 })).toEqual([]);
    expect(m.handle({ type: 'probe-result', at: 99_999, probe: 1, ok: true, detail: 'x' })).toEqual([]);
    expect(kinds(m.handle({ type: 'heartbeat', at: 100_000, sender: 'b/1' }))).toEqual(['down->up']);
  });
});
