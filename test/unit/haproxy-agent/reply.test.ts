import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatReply, loadToWeight, MAX_REASON_CHARS, sanitizeReason } from '../../../src/haproxy-agent/reply.js';
import { parseAgentReply } from './haproxy-parser.js';

describe('agent reply grammar (HAProxy 2.6)', () => {
  it('writes the documented lines', () => {
    expect(formatReply({ up: true })).toBe('up\n');
    expect(formatReply({ up: true, weightPercent: 80 })).toBe('up 80%\n');
    expect(formatReply({ up: false, reason: "keyword 'db1' not found in /dbcheck" })).toBe(
      "down #keyword 'db1' not found in /dbcheck\n",
    );
    expect(formatReply({ up: false, reason: 'timeout after 800 ms', weightPercent: 50 })).toBe(
      'down #timeout after 800 ms\n',
    );
    expect(formatReply({ up: true, admin: 'drain' })).toBe('drain up\n');
    expect(formatReply({ up: false, reason: 'connection refused', admin: 'drain' })).toBe(
      'drain down #connection refused\n',
    );
    expect(formatReply({ up: true, admin: 'ready', weightPercent: 100 })).toBe('ready up 100%\n');
    // No result yet: an empty line, which HAProxy accepts and acts on in no way.
    expect(formatReply({ up: undefined })).toBe('\n');
  });

  it('never sends an admin word unless asked (an agent saying `ready` would undo an operator drain)', () => {
    for (const up of [true, false, undefined]) {
      expect(parseAgentReply(formatReply({ up, reason: 'x', weightPercent: 50 })).admin).toBeUndefined();
    }
  });

  it('is parsed by HAProxy as intended: a space before #, or the line is one unknown word and the server stays up', () => {
    expect(parseAgentReply('down#why\n')).toEqual({ complete: true, error: 'down#why', description: '' });
    expect(parseAgentReply(formatReply({ up: false, reason: 'why' }))).toEqual({
      complete: true,
      health: 'down',
      description: 'why',
    });
    expect(parseAgentReply(formatReply({ up: true, weightPercent: 75 }))).toEqual({
      complete: true,
      health: 'up',
      weight: '75%',
      description: '',
    });
  });

  it('keeps any reason on one line, bounded, and HAProxy reads it back as the description', () => {
    fc.assert(
      fc.property(
        fc.string({ maxLength: 500 }),
        fc.option(fc.integer({ min: -50, max: 500 })),
        fc.constantFrom(undefined, 'drain', 'ready'),
        (reason, weight, admin) => {
          const line = formatReply({
            up: false,
            reason,
            weightPercent: weight ?? undefined,
            admin: admin as 'drain' | 'ready' | undefined,
          });
          expect(line.endsWith('\n')).toBe(true);
          expect(line.slice(0, -1)).not.toMatch(/[\r\n]/);
          expect(line.length).toBeLessThanOrEqual(MAX_REASON_CHARS + 20);
          const parsed = parseAgentReply(line);
          expect([parsed.complete, parsed.health, parsed.admin, parsed.error, parsed.weight]).toEqual([
            true,
            'down',
            admin,
            undefined,
            undefined,
          ]);
          expect(parsed.description).toBe(sanitizeReason(reason));
        },
      ),
    );
    fc.assert(
      fc.property(fc.double({ noNaN: true }), (w) => {
        const parsed = parseAgentReply(formatReply({ up: true, weightPercent: w }));
        expect(parsed.health).toBe('up');
        expect(Number(parsed.weight!.slice(0, -1))).toBeGreaterThanOrEqual(0);
        expect(Number(parsed.weight!.slice(0, -1))).toBeLessThanOrEqual(100);
      }),
    );
  });

  it('cuts long reasons and strips control characters', () => {
    expect(sanitizeReason('a\r\nb\tc\u0000d')).toBe('a b c d');
    const long = sanitizeReason('x'.repeat(1000));
    expect(long).toHaveLength(MAX_REASON_CHARS);
    expect(long.endsWith('...')).toBe(true);
  });
});

describe('load → weight', () => {
  it('is 100% idle, falls linearly, and stops at the floor at capacity', () => {
    const cap = 8;
    const floor = 10;
    expect([0, 2, 4, 6, 8, 16, -1, NaN].map((l) => loadToWeight(l, cap, floor))).toEqual([
      100, 78, 55, 33, 10, 10, 100, 100,
    ]);
    expect(loadToWeight(50, 100, 20)).toBe(60);
  });

  it('is monotonic and bounded for any load', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0, max: 1e6, noNaN: true }),
        fc.double({ min: 0, max: 1e6, noNaN: true }),
        fc.integer({ min: 1, max: 100 }),
        (a, b, floor) => {
          const [lo, hi] = a <= b ? [a, b] : [b, a];
          expect(loadToWeight(lo, 10, floor)).toBeGreaterThanOrEqual(loadToWeight(hi, 10, floor));
          expect(loadToWeight(hi, 10, floor)).toBeGreaterThanOrEqual(floor);
        },
      ),
    );
  });
});
