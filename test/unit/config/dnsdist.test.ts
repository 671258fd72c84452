import { describe, expect, it } from 'vitest';
import { ConfigErrors, parseConfig } from '../../../src/config/index.js';

const base = (dnsdist: string, topology: string) => `site: a
sites: [{ name: a }, { name: b }]
${dnsdist}
zones:
  - name: example.com
    records: ["@ SOA ns1 hostmaster 1 3600 600 86400 60"]
balanced:
  - name: geo.example.com
    policy: topology
    topology: ${topology}
    addresses: { a: [192.0.2.1], b: [198.51.100.1] }
`;

function errorsOf(text: string): string[] {
  try {
    parseConfig(text, 'c.yaml');
  } catch (e) {
    if (e instanceof ConfigErrors) return e.errors.map((x) => x.message);
    throw e;
  }
  return [];
}

describe('the dnsdist: section', () => {
  it('fills its defaults and needs a key', () => {
    const { config } = parseConfig(base('dnsdist: { api-key-env: K }', '{ 10.0.0.0/8: [b] }'), 'c.yaml');
    expect(config.dnsdist).toMatchObject({
      url: 'http://127.0.0.1:8083',
      listen: { host: '127.0.0.1', port: 53 },
      pdns: { host: '127.0.0.1', port: 5300 },
      'ecs-prefix-v4': 24,
      'ecs-prefix-v6': 56,
    });
    expect(errorsOf(base('dnsdist: {}', '{ 10.0.0.0/8: [b] }'))).toEqual([
      'c.yaml:3:1: dnsdist: give api-key-file or api-key-env (the dnsdist web server key) so the backend can flush its cache',
    ]);
  });

  it('refuses a topology entry longer than the prefix dnsdist caches per, and says what to raise', () => {
    const errs = errorsOf(base('dnsdist: { api-key-env: K }', '{ 10.1.2.0/28: [b], "2001:db8::/48": [b] }'));
    expect(errs).toHaveLength(1);
    expect(errs[0]).toContain('10.1.2.0/28 is longer than dnsdist.ecs-prefix-v4 (24)');
    expect(errs[0]).toContain('raise it to 28');
    expect(errorsOf(base('dnsdist: { api-key-env: K, ecs-prefix-v4: 28 }', '{ 10.1.2.0/28: [b] }'))).toEqual([]);
  });
});
