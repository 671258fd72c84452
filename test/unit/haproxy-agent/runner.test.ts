import { describe, expect, it } from 'vitest';
import { CheckRunner, type CheckState } from '../../../src/haproxy-agent/runner.js';
import { manualCheck, scriptedCheck, VirtualTimers } from './virtual-timers.js';

const timing = { intervalMs: 100, timeoutMs: 80, rise: 2, fall: 2 };

function runner(fn: (s: AbortSignal) => Promise<{ ok: true } | { ok: false; reason: string }>, opts = timing) {
  const timers = new VirtualTimers();
  const log: { at: number; up: boolean | undefined; reason: string; changed: boolean }[] = [];
  const r = new CheckRunner('w1 message', fn, opts, timers, (s: CheckState, e) =>
    log.push({ at: timers.now(), up: s.up, reason: s.reason, changed: e.changed }),
  );
  return { timers, r, log };
}

describe('CheckRunner', () => {
  it('runs at once, then every interval from the previous start, on an exact schedule', async () => {
    const timers = new VirtualTimers();
    const check = manualCheck(timers);
    const r = new CheckRunner('x', check.fn, timing, timers, () => {});
    r.start();
    await timers.advance(0);
    expect(check.runs.map((x) => x.at)).toEqual([0]);
    await timers.advance(30);
    check.runs[0]!.resolve({ ok: true }); // took 30 ms: next start at 100, not 130
    await timers.advance(70);
    expect(check.runs.map((x) => x.at)).toEqual([0, 100]);
    check.runs[1]!.resolve({ ok: true });
    await timers.advance(250);
    check.runs.slice(2).forEach((x) => x.resolve({ ok: true }));
    await timers.advance(0);
    expect(check.runs.map((x) => x.at)).toEqual([0, 100, 200, 300]);
    r.stop();
    await timers.advance(1000);
    expect(check.runs).toHaveLength(4);
    expect(timers.pending()).toBe(0);
  });

  it('fails a run at its timeout, aborts it, ignores its late answer, and never overlaps runs', async () => {
    const timers = new VirtualTimers();
    const check = manualCheck(timers);
    const states: string[] = [];
    const r = new CheckRunner('x', check.fn, { ...timing, timeoutMs: 150, fall: 1 }, timers, (s) =>
      states.push(`${s.up}:${s.reason}`),
    );
    r.start();
    await timers.advance(149);
    expect(states).toEqual([]);
    expect(check.runs).toHaveLength(1); // no second run at 100 while the first is still going
    await timers.advance(1);
    expect(states).toEqual(['false:timeout after 150 ms']);
    expect(check.runs[0]!.signal.aborted).toBe(true);
    check.runs[0]!.resolve({ ok: true }); // too late: ignored
    await timers.advance(0);
    expect(states).toHaveLength(1);
    // The overdue next run starts at once (t=150), not at 250.
    expect(check.runs.map((x) => x.at)).toEqual([0, 150]);
    r.stop();
  });

  it('takes the first result as the state, then needs `fall` failures and `rise` successes in a row', async () => {
    const { timers, r, log } = runner(
      scriptedCheck([
        true,
        'connection refused',
        true,
        'connection refused',
        'status 500 from /health (expected 200)',
        'timeout after 80 ms',
        true,
        true,
        true,
      ]),
    );
    r.start();
    await timers.advance(850);
    r.stop();
    expect(log.map((l) => [l.at, l.up, l.reason, l.changed])).toEqual([
      [0, true, 'ok', true],
      [100, true, 'ok', false], // one failure < fall 2
      [200, true, 'ok', false],
      [300, true, 'ok', false],
      [400, false, 'status 500 from /health (expected 200)', true], // second failure in a row
      [500, false, 'timeout after 80 ms', true], // while down, the latest reason
      [600, false, 'timeout after 80 ms', false], // one success < rise 2
      [700, true, 'ok', true],
      [800, true, 'ok', false],
    ]);
  });

  it('a first failure is down at once (no waiting for `fall` after start)', async () => {
    const { timers, r, log } = runner(scriptedCheck(['connection refused']));
    r.start();
    await timers.advance(0);
    r.stop();
    expect(log[0]).toMatchObject({ at: 0, up: false, reason: 'connection refused' });
  });

  it('turns a throwing or rejecting check into a failure, never a crash', async () => {
    const { timers, r, log } = runner(() => {
      throw new Error('boom');
    });
    r.start();
    await timers.advance(0);
    const rej = runner(() => Promise.reject(new Error('rejected')));
    rej.r.start();
    await rej.timers.advance(0);
    r.stop();
    rej.r.stop();
    expect(log[0]!.reason).toBe('boom');
    expect(rej.log[0]!.reason).toBe('rejected');
  });
});
