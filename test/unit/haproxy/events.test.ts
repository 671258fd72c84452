import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  EventLineParser,
  MAX_EVENT_LINE,
  parseEventLine,
  rfc5424Time,
  type HaproxyEvent,
} from '../../../src/haproxy/index.js';

/** What HAProxy 2.6.12 (Debian 12) printed for `show events RING -w` with `format rfc5424`. */
const STREAM = [
  '<129>1 2026-12-05T09:06:41.199046+00:00 - haproxy 21042 - - Server web/w1 is DOWN, reason: Layer4 connection problem, info: "Connection refused", check duration: 0ms. 1 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.',
  '<128>1 2026-12-05T09:06:41.264956+00:00 - haproxy 21042 - - backend web has no server available!',
  '<133>1 2026-12-05T09:06:42.611601+00:00 - haproxy 21042 - - Server web/w2 was DOWN and now enters maintenance.',
  '<133>1 2026-12-05T09:08:19.208005+00:00 - haproxy 23416 - - Server web/w1 is UP/READY (leaving forced maintenance).',
  '<133>1 2026-12-05T09:08:19.208005+00:00 - haproxy 23416 - - Backup Server part-x/w3 is UP, reason: Layer7 check passed, code: 200, check duration: 1ms. 1 active and 1 backup servers online. 0 sessions requeued, 0 total in queue.',
  '<133>1 2026-12-05T09:08:19.3+00:00 - haproxy 23416 - - Server web/w1 enters drain state.',
  '<133>1 2026-12-05T09:08:19.4+00:00 - haproxy 23416 - - Proxy web started. é',
  '',
].join('\n');

const EXPECTED: HaproxyEvent[] = [
  {
    type: 'server',
    backend: 'web',
    server: 'w1',
    kind: 'down',
    message: expect.stringMatching(/^Server web\/w1 is DOWN, reason: Layer4/) as unknown as string,
    loggedAt: Date.UTC(2026, 11, 5, 9, 6, 41) + 199.046,
    checkMs: 0,
  },
  {
    type: 'backend',
    backend: 'web',
    message: 'backend web has no server available!',
    loggedAt: Date.UTC(2026, 11, 5, 9, 6, 41) + 264.956,
  },
  {
    type: 'server',
    backend: 'web',
    server: 'w2',
    kind: 'maint',
    message: 'Server web/w2 was DOWN and now enters maintenance.',
    loggedAt: Date.UTC(2026, 11, 5, 9, 6, 42) + 611.601,
  },
  {
    type: 'server',
    backend: 'web',
    server: 'w1',
    kind: 'ready',
    message: 'Server web/w1 is UP/READY (leaving forced maintenance).',
    loggedAt: Date.UTC(2026, 11, 5, 9, 8, 19) + 208.005,
  },
  {
    type: 'server',
    backend: 'part-x',
    server: 'w3',
    kind: 'up',
    message: expect.stringMatching(/^Backup Server part-x\/w3 is UP/) as unknown as string,
    loggedAt: Date.UTC(2026, 11, 5, 9, 8, 19) + 208.005,
    checkMs: 1,
  },
  {
    type: 'server',
    backend: 'web',
    server: 'w1',
    kind: 'drain',
    message: 'Server web/w1 enters drain state.',
    loggedAt: Date.UTC(2026, 11, 5, 9, 8, 19) + 300,
  },
  { type: 'text', message: 'Proxy web started. é' },
];

describe('HAProxy ring events', () => {
  it('parses the server state changes HAProxy 2.6 logs, in each ring format', () => {
    const all = new EventLineParser().push(Buffer.from(STREAM));
    expect(all).toEqual(EXPECTED);
    const msg = 'Server web/w1 is DOWN, reason: Agent reports down.';
    for (const line of [
      `<129>Dec  5 09:06:41 host haproxy[21042]: ${msg}`,
      `<129>${msg}`,
      msg,
      `<129>1 not-a-time host haproxy 1 - [x@1 a="b"] ${msg}`,
    ]) {
      // Only rfc5424 says the time finely enough to time a failover: the others carry none.
      expect(parseEventLine(line)).toEqual({
        type: 'server',
        backend: 'web',
        server: 'w1',
        kind: 'down',
        message: msg,
      });
    }
    expect(parseEventLine('No such event sink')).toEqual({ type: 'text', message: 'No such event sink' });
    expect(parseEventLine('   ')).toBeUndefined();
  });

  it("reads HAProxy's rfc5424 time to the microsecond, in any offset, and nothing from a malformed one", () => {
    expect(rfc5424Time('2026-12-05T09:06:41Z')).toBe(Date.UTC(2026, 11, 5, 9, 6, 41));
    expect(rfc5424Time('2026-12-05T10:06:41.000001+01:00')).toBeCloseTo(Date.UTC(2026, 11, 5, 9, 6, 41) + 0.001, 6);
    expect(rfc5424Time('2026-12-05T09:06:41.5-02:30')).toBe(Date.UTC(2026, 11, 5, 11, 36, 41) + 500);
    for (const bad of ['-', '2026-12-05', '2026-13-45T99:99:99Z', '2026-12-05T09:06:41.x+00:00'])
      expect(rfc5424Time(bad)).toBeUndefined();
  });

  it('gives the same events whatever byte offset the stream is split at (even inside a UTF-8 character)', () => {
    const bytes = Buffer.from(STREAM);
    const whole = new EventLineParser().push(bytes);
    for (let cut = 0; cut <= bytes.length; cut++) {
      const p = new EventLineParser();
      expect([...p.push(bytes.subarray(0, cut)), ...p.push(bytes.subarray(cut))]).toEqual(whole);
    }
  });

  it('gives the same events for any split into many chunks (property)', () => {
    const bytes = Buffer.from(STREAM);
    const whole = new EventLineParser().push(bytes);
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 1, max: bytes.length - 1 }), { maxLength: 30 }), (cuts) => {
        const p = new EventLineParser();
        const edges = [0, ...cuts.sort((a, b) => a - b), bytes.length];
        const got = edges.slice(1).flatMap((end, i) => p.push(bytes.subarray(edges[i], end)));
        expect(got).toEqual(whole);
      }),
    );
  });

  it('never throws on arbitrary bytes, and skips a line longer than MAX_EVENT_LINE up to its newline', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 500 }), (b) => void new EventLineParser().push(Buffer.from(b))));
    const p = new EventLineParser();
    expect(p.push(Buffer.alloc(MAX_EVENT_LINE, 'x'))).toEqual([]);
    expect(p.push(Buffer.from('xx\nServer web/w1 is UP.\n'))).toEqual([
      { type: 'server', backend: 'web', server: 'w1', kind: 'up', message: 'Server web/w1 is UP.' },
    ]);
  });
});
