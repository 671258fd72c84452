import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { flushTargets } from '../../../src/pdns-backend/flush-targets.js';

const under = (name: string, target: string) =>
  target === '.' || name.toLowerCase() === target || name.toLowerCase().endsWith(`.${target}`);

describe('flush targets', () => {
  it('covers the changed names of a zone with one call for their longest common suffix, never above the zone', () => {
    const zones = ['example.com.', 'sub.example.com.', 'example.net.'];
    expect(flushTargets(['www.example.com.'], zones)).toEqual(['www.example.com.']);
    expect(flushTargets(['a.lb.example.com.', 'b.lb.example.com.', 'c.lb.example.com.'], zones)).toEqual([
      'lb.example.com.',
    ]);
    expect(flushTargets(['a.example.com.', 'b.example.com.'], zones)).toEqual(['example.com.']);
    // Two zones, two calls; a sub-zone is its own zone (its parent's flush would be right too, but wider).
    expect(
      flushTargets(['a.example.com.', 'x.sub.example.com.', 'y.sub.example.com.', 'w.example.net.'], zones).sort(),
    ).toEqual(['a.example.com.', 'sub.example.com.', 'w.example.net.']);
    expect(flushTargets(['WWW.Example.COM', 'other.org.'], zones)).toEqual(['www.example.com.', 'other.org.']);
    expect(flushTargets(['a.example.com.', 'a.example.com.'], zones)).toEqual(['a.example.com.']);
    expect(flushTargets([], zones)).toEqual([]);
  });

  it('10,000 names of one zone are one call', () => {
    const names = Array.from({ length: 10_000 }, (_, i) => `n${i}.example.com.`);
    expect(flushTargets(names, ['example.com.'])).toEqual(['example.com.']);
  });

  it('every changed name is under some target, and no target is above its zone (property)', () => {
    const label = fc.constantFrom('a', 'b', 'c', 'www', 'lb');
    const zones = ['example.com.', 'b.example.com.', 'example.net.'];
    const name = fc
      .tuple(fc.array(label, { maxLength: 3 }), fc.constantFrom(...zones))
      .map(([ls, z]) => [...ls, z].join('.'));
    fc.assert(
      fc.property(fc.array(name, { maxLength: 20 }), (names) => {
        const targets = flushTargets(names, zones);
        for (const n of names) expect(targets.some((t) => under(n, t))).toBe(true);
        for (const t of targets) expect(zones.some((z) => under(t, z))).toBe(true);
        expect(targets.length).toBeLessThanOrEqual(Math.min(names.length, zones.length));
      }),
    );
  });
});
