import { describe, expect, it } from 'vitest';
import { addressesFor, compileBalanced, decide } from '../../../src/pdns-backend/balanced.js';
import type { BalancedConfig } from '../../../src/config/index.js';

const cfg = (over: Partial<BalancedConfig> = {}): BalancedConfig => ({
  name: 'www.example.com.',
  ttl: 20,
  fallback: 'all',
  policy: 'local-first',
  addresses: { a: ['192.0.2.1', '2001:db8::1'], b: ['198.51.100.1'], c: ['203.0.113.1', '203.0.113.2'] },
  ...over,
});
const sites = ['a', 'b', 'c'];
const up =
  (...s: string[]) =>
  (x: string) =>
    s.includes(x);

describe('balanced order', () => {
  it('puts the local site first, then the others in configured order', () => {
    const b = compileBalanced(cfg(), 'b', sites);
    expect(decide(b, up('a', 'b', 'c'))).toEqual({ kind: 'sites', sites: ['b', 'a', 'c'] });
  });

  it('leaves dead sites out, for every combination of three sites', () => {
    const b = compileBalanced(cfg(), 'a', sites);
    for (let mask = 1; mask < 8; mask++) {
      const alive = sites.filter((_, i) => mask & (1 << i));
      expect(decide(b, up(...alive))).toEqual({
        kind: 'sites',
        sites: ['a', 'b', 'c'].filter((s) => alive.includes(s)),
      });
    }
  });

  it('answers the fallback when no site is up', () => {
    expect(decide(compileBalanced(cfg(), 'c', sites), up())).toEqual({
      kind: 'fallback',
      fallback: 'all',
      sites: ['c', 'a', 'b'],
    });
    expect(decide(compileBalanced(cfg({ fallback: 'servfail' }), 'a', sites), up())).toEqual({
      kind: 'fallback',
      fallback: 'servfail',
      sites: [],
    });
    expect(decide(compileBalanced(cfg({ fallback: 'empty' }), 'a', sites), up())).toEqual({
      kind: 'fallback',
      fallback: 'empty',
      sites: [],
    });
  });

  it('follows a fixed order under the failover policy, wherever it runs', () => {
    const b = compileBalanced(cfg({ policy: 'failover', order: ['c', 'a', 'b'] }), 'a', sites);
    expect(decide(b, up('a', 'b', 'c')).sites).toEqual(['c', 'a', 'b']);
    expect(decide(b, up('a', 'b')).sites).toEqual(['a', 'b']);
  });

  it('skips sites without addresses for the name', () => {
    const b = compileBalanced(cfg({ addresses: { b: ['198.51.100.1'] } }), 'a', sites);
    expect(decide(b, up('a', 'b', 'c')).sites).toEqual(['b']);
  });

  it('splits addresses by family, keeping site order', () => {
    const b = compileBalanced(cfg(), 'c', sites);
    expect(addressesFor(b, ['c', 'a'])).toEqual({
      a: ['203.0.113.1', '203.0.113.2', '192.0.2.1'],
      aaaa: ['2001:db8::1'],
    });
  });
});
