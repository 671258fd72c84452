import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDnsdist, type Dnsdist } from '../../src/lab/dnsdist.js';
import { startSite, type SiteUnderTest } from './support/cluster.js';
import { addresses, query } from './support/dns.js';
import { freePort, waitFor } from './support/ports.js';
import { EXAMPLE_ZONE_YAML } from './support/example-zone.js';

const HOST = '127.0.0.47';

const config = (webPort: number, keyFile: string) => `site: a
sites: [{ name: a }, { name: b }]
backend:
  socket: {{DIR}}/backend.sock
  control: {{DIR}}/control.sock
  state-file: {{DIR}}/state.json
pdns:
  url: {{API_URL}}
  api-key-file: api-key
dnsdist:
  url: http://${HOST}:${webPort}
  api-key-file: ${keyFile}
${EXAMPLE_ZONE_YAML}
balanced:
  - name: geo.example.com
    ttl: 300
    policy: topology
    topology: { 10.0.0.0/8: [b] }
    addresses: { a: [192.0.2.1], b: [198.51.100.1] }
  - name: lf.example.com
    ttl: 300
    addresses: { a: [192.0.2.2], b: [198.51.100.2] }
  - name: rr.example.com
    ttl: 300
    policy: round-robin
    addresses: { a: [192.0.2.3], b: [198.51.100.3] }
`;

describe('dnsdist in front of PowerDNS: client-dependent answers cached per client subnet, flushed on change', () => {
  let site: SiteUnderTest;
  let dd: Dnsdist;
  const keyFile = join('/tmp', `ms-dnsdist-${process.pid}.key`);
  const ask = (name: string, subnet?: string) => query(dd.host, dd.port, name, 'A', subnet ? { subnet } : {});
  /** dnsdist's own counters (its statistics API). */
  const stat = async (name: string) => {
    const res = await fetch(`${dd.url}/api/v1/servers/localhost/statistics`, { headers: { 'X-API-Key': dd.apiKey } });
    const all = (await res.json()) as { name: string; value: number }[];
    return all.find((s) => s.name === name)?.value ?? NaN;
  };

  beforeAll(async () => {
    const webPort = await freePort(HOST);
    const apiKey = `dnsdist-test-key-${webPort}`;
    writeFileSync(keyFile, `${apiKey}\n`);
    site = await startSite({
      host: HOST,
      config: config(webPort, keyFile),
      pdnsSettings: { 'edns-subnet-processing': 'yes', 'consistent-backends': 'no' },
    });
    dd = await startDnsdist({
      host: HOST,
      pdns: site.pdns,
      webPort,
      apiKey,
      uncachedNames: ['rr.example.com.'],
      probeName: 'example.com.',
    });
  }, 60_000);
  afterAll(async () => {
    await dd?.stop();
    await site?.stop();
  });

  it('near and far clients get their own order, from the cache the second time', async () => {
    const far = '10.2.3.0/24';
    const near = '192.0.2.0/24';
    for (let round = 0; round < 2; round++) {
      expect(addresses(await ask('geo.example.com.', far)), `far, round ${round}`).toEqual([
        '198.51.100.1',
        '192.0.2.1',
      ]);
      expect(addresses(await ask('geo.example.com.', near)), `near, round ${round}`).toEqual([
        '192.0.2.1',
        '198.51.100.1',
      ]);
    }
    // A client without ECS: dnsdist adds its /24 (127.0.0.0/24, outside the map: a first).
    expect(addresses(await ask('geo.example.com.'))).toEqual(['192.0.2.1', '198.51.100.1']);
    const hits = await stat('cache-hits');
    expect(addresses(await ask('geo.example.com.', far))).toEqual(['198.51.100.1', '192.0.2.1']);
    expect(addresses(await ask('geo.example.com.', near))).toEqual(['192.0.2.1', '198.51.100.1']);
    expect(await stat('cache-hits')).toBe(hits + 2);
  });

  it('a round-robin name is never cached: one client sees the rotation', async () => {
    const firsts = new Set<string>();
    for (let i = 0; i < 4; i++) firsts.add(addresses(await ask('rr.example.com.', '10.9.9.0/24'))[0]!);
    expect([...firsts].sort()).toEqual(['192.0.2.3', '198.51.100.3']);
  });

  it('after a failover the cached answers change, for client-dependent and shared names alike', async () => {
    const far = '10.2.3.0/24';
    // Both in dnsdist's cache (TTL 300): only a flush can change them before then.
    expect(addresses(await ask('geo.example.com.', far))).toEqual(['198.51.100.1', '192.0.2.1']);
    expect(addresses(await ask('lf.example.com.', far))).toEqual(['192.0.2.2', '198.51.100.2']);
    const hits = await stat('cache-hits');
    expect(addresses(await ask('lf.example.com.', far))).toEqual(['192.0.2.2', '198.51.100.2']);
    expect(await stat('cache-hits')).toBe(hits + 1);
    site.backend.table.setHealth('b', 'test', false, 'killed by the test');
    await waitFor(
      'geo answered without b',
      async () => addresses(await ask('geo.example.com.', far)).join() === '192.0.2.1',
    );
    await waitFor(
      'lf answered without b',
      async () => addresses(await ask('lf.example.com.', far)).join() === '192.0.2.2',
    );
    expect(await site.metric('multisite_backend_dnsdist_cache_flushes_total', { result: 'ok' })).toBeGreaterThan(0);
    site.backend.table.setHealth('b', 'test', true, 'ok');
    await waitFor(
      'geo answered with b first again',
      async () => addresses(await ask('geo.example.com.', far)).join() === '198.51.100.1,192.0.2.1',
    );
  });

  it('multisite dnsdist-config writes a config dnsdist accepts, with the round-robin name uncached', async () => {
    const exec = promisify(execFile);
    const out = join(site.dir, 'dnsdist.conf');
    const cli = resolve(__dirname, '../../dist/cli/main.js');
    await exec(process.execPath, [cli, 'dnsdist-config', '--config', site.configFile, '--out', out]);
    const text = readFileSync(out, 'utf8');
    expect(text).toContain("uncached:add(newDNSName('rr.example.com.'))");
    expect(text).not.toContain(dd.apiKey);
    const check = await exec('dnsdist', ['--check-config', '-C', out]);
    expect(check.stdout).toContain('OK');
  });
});
