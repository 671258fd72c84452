import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigErrors, loadConfig, parseConfig } from '../../../src/config/index.js';

function errorsOf(text: string, file = 'config.yaml'): string[] {
  try {
    parseConfig(text, file);
  } catch (e) {
    if (e instanceof ConfigErrors) return e.errors.map((x) => x.message);
    throw e;
  }
  return [];
}

const minimal = `site: a
sites:
  - name: a
  - name: b
zones:
  - name: example.com
    records:
      - "@ SOA ns1 hostmaster 1 3600 600 86400 60"
`;

describe('config loading', () => {
  it('accepts a minimal file and fills the documented defaults', () => {
    const { config } = parseConfig(minimal, 'c.yaml');
    expect(config.site).toBe('a');
    expect(config.zones[0]!.name).toBe('example.com.');
    expect(config.backend.socket).toBe('/run/multisite/backend.sock');
    expect(config.backend.control).toBe('/run/multisite/control.sock');
    expect(config.balanced).toEqual([]);
  });

  it('names the file, line, column and key of a missing zone file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ms-cfg-'));
    const file = join(dir, 'config.yaml');
    writeFileSync(file, `${minimal}  - name: example.net\n    file: zones/example.net.zone\n`);
    expect(() => loadConfig(file)).toThrow(
      /config\.yaml:10:5: zones\[1\]\.file: no such file: .*zones\/example\.net\.zone/,
    );
  });

  it('rejects unknown keys at the key itself', () => {
    const errs = errorsOf(`${minimal}colour: red\n`);
    expect(errs).toEqual(["config.yaml:9:1: colour: unknown key 'colour'"]);
  });

  it('reports every problem at once, each with its place', () => {
    const errs = errorsOf(`site: c
sites:
  - name: a
zones:
  - name: example.com
    records: []
balanced:
  - name: www.example.org
    ttl: -1
    addresses:
      a: [192.0.2.300]
      z: [192.0.2.1]
`);
    expect(errs).toContainEqual(expect.stringMatching(/^config\.yaml:9:5: balanced\[0\]\.ttl: /));
    expect(errs).toContainEqual(
      expect.stringMatching(/^config\.yaml:11:11: balanced\[0\]\.addresses\.a\[0\]: not an IPv4 or IPv6 address/),
    );
    expect(errs).toContainEqual("config.yaml:1:1: site: 'c' is not one of sites: a");
    expect(errs).toContainEqual("config.yaml:8:5: balanced[0].name: 'www.example.org.' is in none of the zones");
    expect(errs).toContainEqual("config.yaml:12:7: balanced[0].addresses.z: unknown site 'z'");
  });

  it('reports YAML syntax errors with their position', () => {
    const errs = errorsOf('site: a\nsites: [\n');
    expect(errs[0]).toMatch(/^config\.yaml:\d+:\d+: /);
  });

  it('rejects duplicate keys', () => {
    expect(errorsOf(`${minimal}site: b\n`)[0]).toMatch(/^config\.yaml:9:1: .*[Uu]nique|duplicate/);
  });

  it('says when the file cannot be read', () => {
    expect(() => loadConfig('/nonexistent/c.yaml')).toThrow(/^\/nonexistent\/c\.yaml:1:1: cannot read/);
  });
});
