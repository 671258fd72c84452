import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/index.js';
import { describeZoneProblems, loadZones } from '../../../src/pdns-backend/zones.js';

const fixtures = resolve(__dirname, '../../fixtures/zones');
const dir = mkdtempSync(join(tmpdir(), 'ms-zones-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A config with nztest.com (records outside it) between two good zones. */
function config(onError?: string): string {
  const file = join(dir, `multisite-${onError ?? 'default'}.yaml`);
  writeFileSync(
    file,
    [
      'site: a',
      'sites: [{ name: a }]',
      'zones:',
      `  - name: example.com`,
      `    file: ${fixtures}/example.com.zone`,
      '  - name: nztest.com',
      `    file: ${fixtures}/nztest.com.zone`,
      ...(onError ? [`    on-error: ${onError}`] : []),
      '  - name: example.org',
      '    records:',
      '      - "@ SOA ns1 hostmaster 1 3600 600 86400 60"',
      '      - "@ NS ns1"',
      '      - "ns1 A 192.0.2.53"',
      '      - "stray.example.net. A 192.0.2.9"',
      '',
    ].join('\n'),
  );
  return file;
}

describe('zones with records outside them (issue 15, item 3)', () => {
  it('skips those records by default, with a warning naming FILE:LINE, and loads every zone', () => {
    // Regression: loadZones threw for the whole config, so the daemon served no zone at all.
    const file = config();
    const result = loadZones(loadConfig(file));
    expect(result.zones.map((z) => z.name)).toEqual(['example.com.', 'nztest.com.', 'example.org.']);
    expect(result.refused).toEqual([]);
    const nz = result.zones[1]!;
    expect(nz.records.map((r) => r.name)).not.toContain('testnonzone.com.');
    expect(nz.records.some((r) => r.name === 'ns1.nztest.com.')).toBe(true);
    expect(describeZoneProblems(result).warnings).toEqual([
      `${fixtures}/nztest.com.zone:12:1: warning: testnonzone.com. A is outside zone nztest.com.; record skipped (zone nztest.com. is served without it)`,
      `${fixtures}/nztest.com.zone:13:1: warning: NZTEST.COM.NET. A is outside zone nztest.com.; record skipped (zone nztest.com. is served without it)`,
      `${file}:13:9: warning: zones[2].records[3]: stray.example.net. A is outside zone example.org.; record skipped (zone example.org. is served without it)`,
    ]);
  });

  it('refuses only that zone with a located error when the operator asks (on-error: refuse-zone)', () => {
    const result = loadZones(loadConfig(config('refuse-zone')));
    expect(result.zones.map((z) => z.name)).toEqual(['example.com.', 'example.org.']);
    expect(describeZoneProblems(result).errors).toEqual([
      `${fixtures}/nztest.com.zone:12:1: testnonzone.com. A is outside zone nztest.com. (zone nztest.com. refused; the other zones are served)`,
    ]);
  });

  it('refuses a zone with a syntax error or no SOA alone, too', () => {
    const broken = join(dir, 'broken.zone');
    writeFileSync(broken, '$ORIGIN broken.test.\n@ SOA ns1 hostmaster 1 3600 600 86400 60\nwww A 999.1.1.1\n');
    const file = join(dir, 'broken.yaml');
    writeFileSync(
      file,
      `site: a\nsites: [{ name: a }]\nzones:\n  - name: broken.test\n    file: ${broken}\n  - name: nosoa.test\n    records: ["@ NS ns1"]\n  - name: example.com\n    file: ${fixtures}/example.com.zone\n`,
    );
    const result = loadZones(loadConfig(file));
    expect(result.zones.map((z) => z.name)).toEqual(['example.com.']);
    expect(result.refused.map((r) => r.zone)).toEqual(['broken.test.', 'nosoa.test.']);
    expect(describeZoneProblems(result).errors[0]).toMatch(new RegExp(`^${broken}:3:\\d+: `));
  });
});
