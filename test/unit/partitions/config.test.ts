import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/index.js';
import { TWO_SITES } from './fixtures.js';

function errorsOf(text: string): string[] {
  try {
    parseConfig(text, 'site.yaml');
  } catch (err) {
    return (err as Error).message.split('\n');
  }
  return [];
}

describe('partitions: config', () => {
  it('the two-site example is valid, with documented defaults', () => {
    const { config } = parseConfig(TWO_SITES, 'site.yaml');
    const p = config.partitions!;
    expect(p.list.map((x) => [x.name, x.active])).toEqual([
      ['p1', 'a'],
      ['p2', 'b'],
    ]);
    expect(p.failback).toBe('manual');
    expect(p['forwarded-header']).toBe('X-Multisite-Forwarded');
    expect(p['served-by-header']).toBe('X-Served-By');
    expect(p['tenant-header']).toBe('X-Tenant');
    expect(p['hold-down-ms']).toBe(60_000);
    expect(p['start-grace-ms']).toBe(5_000);
    expect(p['connect-timeout-ms']).toBe(500);
    expect(p['epoch-column']).toBe('owner_epoch');
    expect(p.list[1]!.failback).toBe('auto');
    expect(p['load-balancers'].a!.servers[0]).toEqual({
      name: 'w1',
      address: { host: '127.0.0.21', port: 8080 },
      weight: 100,
    });
  });

  it('an unknown active site is named with its line', () => {
    const errs = errorsOf(TWO_SITES.replace('active: b', 'active: c'));
    expect(errs).toEqual([
      expect.stringMatching(/^site\.yaml:\d+:\d+: partitions\.list\[1\]\.active: unknown site 'c' \(sites: a, b\)$/),
    ]);
  });

  it('exactly one active site: a list of sites is refused', () => {
    const errs = errorsOf(TWO_SITES.replace('active: b', 'active: [a, b]'));
    expect(errs.join('\n')).toMatch(/partitions\.list\[1\]\.active/);
  });

  it('the active site cannot also be a standby; standby sites must exist', () => {
    expect(
      errorsOf(TWO_SITES.replace('      active: a\n', '      active: a\n      standby: [a]\n')).join('\n'),
    ).toMatch(/list\[0\]\.standby: 'a' is the active site/);
    expect(
      errorsOf(TWO_SITES.replace('      active: a\n', '      active: a\n      standby: [z]\n')).join('\n'),
    ).toMatch(/list\[0\]\.standby\[0\]: unknown site 'z'/);
  });

  it('overlapping matches are refused: hosts, tenants, path prefixes', () => {
    expect(errorsOf(TWO_SITES.replace('hosts: [p2.example.com]', 'hosts: [P1.example.com.]')).join('\n')).toMatch(
      /partitions\.list\[1\]\.hosts\[0\]: host 'p1\.example\.com' is matched by partitions 'p1' and 'p2'/,
    );
    expect(errorsOf(TWO_SITES.replace('tenants: [t2]', 'tenants: [t1]')).join('\n')).toMatch(
      /tenants\[0\]: tenant 't1' is matched by partitions 'p1' and 'p2'/,
    );
    expect(errorsOf(TWO_SITES.replace('path-prefixes: [/p2/]', 'path-prefixes: [/p1/x]')).join('\n')).toMatch(
      /path-prefixes\[0\]: path prefix '\/p1\/x' overlaps '\/p1\/' of partition 'p1'/,
    );
  });

  it('a partition must match something; names are unique', () => {
    const noMatch = TWO_SITES.replace(
      '      hosts: [p2.example.com]\n      path-prefixes: [/p2/]\n      tenants: [t2]\n',
      '',
    );
    expect(errorsOf(noMatch).join('\n')).toMatch(/list\[1\]: partition 'p2' matches nothing/);
    expect(errorsOf(TWO_SITES.replace('- name: p2\n', '- name: p1\n')).join('\n')).toMatch(
      /list\[1\]\.name: partition 'p1' is listed twice/,
    );
  });

  it('the sites of load balancers exist, this site has one, an active site needs one', () => {
    expect(errorsOf(TWO_SITES.replace('    b:\n      listen', '    c:\n      listen')).join('\n')).toMatch(
      /load-balancers\.c: unknown site 'c'[\s\S]*list\[1\]\.active: site 'b' has no entry/,
    );
  });

  it('dns-name must be a balanced name; tables must be replicated', () => {
    expect(errorsOf(TWO_SITES.replace('dns-name: p2.example.com', 'dns-name: p9.example.com')).join('\n')).toMatch(
      /list\[1\]\.dns-name: 'p9\.example\.com' is not one of the balanced names/,
    );
    expect(errorsOf(`${TWO_SITES}  tables: { orders: tenant_id }\n`).join('\n')).toMatch(
      /partitions\.tables\.orders: table 'orders' is not in replication\.tables/,
    );
  });

  it('a wildcard listen address needs forward-source (where other sites see forwarded requests come from)', () => {
    const wild = TWO_SITES.replace('listen: 127.0.0.3:8080', 'listen: 0.0.0.0:8080');
    expect(errorsOf(wild).join('\n')).toMatch(
      /partitions\.load-balancers\.b: listen is a wildcard address; give forward-source/,
    );
    expect(
      errorsOf(wild.replace('listen: 0.0.0.0:8080', 'listen: 0.0.0.0:8080\n      forward-source: 10.0.0.3')),
    ).toEqual([]);
    expect(
      errorsOf(
        TWO_SITES.replace('listen: 127.0.0.3:8080', 'listen: 127.0.0.3:8080\n      forward-source: nowhere'),
      ).join('\n'),
    ).toMatch(/forward-source: an IPv4 or IPv6 address/);
  });

  it('unknown keys are named', () => {
    expect(errorsOf(TWO_SITES.replace('      failback: auto', '      fail-back: auto')).join('\n')).toMatch(
      /partitions\.list\[1\]\.fail-back: unknown key 'fail-back'/,
    );
  });
});
