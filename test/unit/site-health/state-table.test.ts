import { describe, expect, it } from 'vitest';
import { SiteStateTable, UnknownSiteError } from '../../../src/site-health/state-table.js';

describe('SiteStateTable', () => {
  const make = () => {
    let now = 1000;
    const table = new SiteStateTable(['a', 'b', 'c'], () => now);
    const changes: string[][] = [];
    table.on('change', (c) => changes.push(c.sites));
    return { table, changes, tick: (ms: number) => (now += ms) };
  };

  it('counts a site nobody reported on as usable', () => {
    const { table } = make();
    expect(['a', 'b', 'c'].map((s) => table.isUsable(s))).toEqual([true, true, true]);
    expect(table.version).toBe(0);
  });

  it('makes a site unusable while any source says down, and says why', () => {
    const { table, changes, tick } = make();
    table.setHealth('b', 'pool', false, 'no server up');
    tick(500);
    table.setHealth('b', 'peer', false, 'heartbeats lost');
    expect(table.isUsable('b')).toBe(false);
    expect(table.get('b')!.reason).toBe('pool: no server up; peer: heartbeats lost');
    expect(table.get('b')!.since).toBe(1000);
    table.setHealth('b', 'pool', true, 'ok');
    expect(table.isUsable('b')).toBe(false);
    table.setHealth('b', 'peer', true, 'ok');
    expect(table.isUsable('b')).toBe(true);
    expect(changes).toEqual([['b'], ['b']]);
    expect(table.version).toBe(2);
  });

  it('ignores repeated identical reports (no version bump, no event)', () => {
    const { table, changes } = make();
    table.setHealth('a', 'pool', false, 'x');
    table.setHealth('a', 'pool', false, 'x');
    table.setHealth('a', 'pool', false, 'y');
    expect(changes).toEqual([['a']]);
    expect(table.get('a')!.reason).toBe('pool: y');
  });

  it('drains and undrains; a drain wins over health', () => {
    const { table, changes } = make();
    expect(table.setDrained('c', true)).toBe(true);
    expect(table.setDrained('c', true)).toBe(false);
    expect(table.isUsable('c')).toBe(false);
    expect(table.get('c')!.reason).toBe('drained by an operator');
    expect(table.drainedSites()).toEqual(['c']);
    table.setDrained('c', false);
    expect(table.isUsable('c')).toBe(true);
    expect(changes).toEqual([['c'], ['c']]);
  });

  it('rejects unknown sites with the list of known ones', () => {
    const { table } = make();
    expect(() => table.setDrained('x', true)).toThrow(UnknownSiteError);
    expect(() => table.setDrained('x', true)).toThrow("unknown site 'x' (known: a, b, c)");
  });
});
