import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Outcome } from '../../../src/haproxy-agent/probe.js';
import { CheckRunner, type CheckState, type RunEvent } from '../../../src/haproxy-agent/runner.js';
import { VirtualTimers } from './virtual-timers.js';

/** Outcomes by kind, as the probes make them. */
const OK: Outcome = { ok: true };
const REFUSED: Outcome = { ok: false, reason: 'connection refused (/health)', certain: true };
const RESET: Outcome = { ok: false, reason: 'connection reset (/health)', certain: true };
const TIMEOUT: Outcome = { ok: false, reason: 'timeout after 80 ms' };
const STATUS: Outcome = { ok: false, reason: 'status 503 from /health (expected 200)' };
const EMFILE: Outcome = { ok: false, reason: 'check could not run: out of file descriptors (EMFILE)', local: true };

/** Runs a script of outcomes, one per interval, in virtual time; records verdicts and events. */
async function run(script: Outcome[], rise: number, fall: number) {
  const timers = new VirtualTimers();
  let i = 0;
  const verdicts: (boolean | undefined)[] = [];
  const events: RunEvent[] = [];
  const r = new CheckRunner(
    'w1 message',
    async () => script[i++] ?? OK,
    { intervalMs: 100, timeoutMs: 80, rise, fall },
    timers,
    (s: CheckState, e) => {
      verdicts.push(s.up);
      events.push(e);
    },
  );
  r.start();
  await timers.advance(100 * (script.length - 1));
  r.stop();
  return { verdicts, events, state: r.state };
}

describe('detection: certain, uncertain and local failures', () => {
  it('a refused connection or a reset takes an up check down at once, whatever fall is', async () => {
    for (const certain of [REFUSED, RESET]) {
      const { verdicts, state } = await run([OK, certain], 2, 5);
      expect(verdicts).toEqual([true, false]);
      expect(state.reason).toBe(certain.ok ? '' : certain.reason);
    }
  });

  it('a timeout or a wrong status is uncertain: down only after `fall` in a row', async () => {
    const { verdicts } = await run([OK, TIMEOUT, STATUS, TIMEOUT], 2, 3);
    expect(verdicts).toEqual([true, true, true, false]);
  });

  it('a slow server (timeouts fewer than fall in a row) never goes down', async () => {
    const { verdicts } = await run([OK, TIMEOUT, TIMEOUT, OK, TIMEOUT, TIMEOUT, OK, TIMEOUT, TIMEOUT, OK], 2, 3);
    expect(verdicts.every((v) => v === true)).toBe(true);
  });

  it('a check that cannot run here (EMFILE) keeps the verdict, up or down, and says so once per episode', async () => {
    const up = await run([OK, EMFILE, EMFILE, EMFILE, OK, EMFILE], 1, 1);
    expect(up.verdicts.every((v) => v === true)).toBe(true);
    expect(up.events.map((e) => e.local)).toEqual([
      undefined,
      EMFILE.ok ? '' : EMFILE.reason,
      undefined,
      undefined,
      null,
      EMFILE.ok ? '' : EMFILE.reason,
    ]);
    expect(up.events.filter((e) => e.couldNotRun)).toHaveLength(4);
    const down = await run([REFUSED, EMFILE, EMFILE], 1, 1);
    expect(down.verdicts).toEqual([false, false, false]);
    expect(down.state.reason).toBe('connection refused (/health)');
    const none = await run([EMFILE, EMFILE], 1, 1);
    expect(none.verdicts).toEqual([undefined, undefined]); // no evidence yet: the reply stays empty
  });

  it('local failures neither break nor extend a streak: rise and fall count real samples only', async () => {
    const { verdicts } = await run([OK, TIMEOUT, EMFILE, TIMEOUT], 2, 2);
    expect(verdicts).toEqual([true, true, true, false]);
  });

  it('recovery needs `rise` successes in a row, after a certain or an uncertain fall', async () => {
    const { verdicts } = await run([OK, REFUSED, OK, REFUSED, OK, OK], 2, 2);
    expect(verdicts).toEqual([true, false, false, false, false, true]);
  });

  it('reports when the verdict changed and how long the evidence took (first run of the streak to the verdict)', async () => {
    const { events, state } = await run([OK, TIMEOUT, TIMEOUT, TIMEOUT], 2, 3);
    expect(events.map((e) => e.verdictChanged)).toEqual([true, false, false, true]);
    expect(state.verdictMs).toBe(200); // the streak's first run started at 100, the verdict came at 300
  });

  it('property: a flapping check flips the verdict no more often than rise and fall allow', () => {
    const outcome = fc.constantFrom(OK, OK, REFUSED, TIMEOUT, STATUS, EMFILE);
    return fc.assert(
      fc.asyncProperty(
        fc.array(outcome, { minLength: 1, maxLength: 40 }),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 4 }),
        async (script, rise, fall) => {
          const { verdicts } = await run(script, rise, fall);
          // The reference model: the same rules, written from the docs, on the samples that count.
          let up: boolean | undefined;
          let oks = 0;
          let fails = 0;
          const expected = script.map((o) => {
            if (!o.ok && o.local) return up;
            if (o.ok) {
              oks++;
              fails = 0;
              if (up === undefined || (!up && oks >= rise)) up = true;
            } else {
              fails++;
              oks = 0;
              if (up === undefined || (up && (o.certain || fails >= fall))) up = false;
            }
            return up;
          });
          expect(verdicts).toEqual(expected);
        },
      ),
    );
  });
});
