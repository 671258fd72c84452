import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/index.js';
import { generateHaproxyConfig } from '../../../src/haproxy-config/generate.js';
import { TWO_SITES } from './fixtures.js';

const golden = (site: string) => join(import.meta.dirname, 'golden', `${site}.cfg`);
const config = parseConfig(TWO_SITES, 'site.yaml').config;

function haproxyCheck(text: string): { ok: boolean; output: string } {
  const dir = mkdtempSync(join(tmpdir(), 'ms-hacfg-'));
  try {
    // The stats socket's directory must exist for `-c` only when binding; -c does not bind.
    const file = join(dir, 'haproxy.cfg');
    writeFileSync(file, text);
    try {
      const out = execFileSync('haproxy', ['-c', '-f', file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      return { ok: true, output: out };
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string };
      return { ok: false, output: `${e.stdout ?? ''}${e.stderr ?? ''}` };
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('haproxy-config generator', () => {
  for (const site of ['a', 'b']) {
    it(`site ${site}: matches the golden file (UPDATE_GOLDEN=1 rewrites it)`, () => {
      const text = generateHaproxyConfig(config, { site });
      if (process.env.UPDATE_GOLDEN) writeFileSync(golden(site), text);
      expect(text).toBe(readFileSync(golden(site), 'utf8'));
    });

    it(`site ${site}: haproxy -c accepts it`, () => {
      const r = haproxyCheck(generateHaproxyConfig(config, { site }));
      expect(r.output).toMatch(/Configuration file is valid/);
      expect(r.ok).toBe(true);
    });
  }

  it('docs/partitions.md shows the generated configuration as it is', () => {
    const doc = readFileSync(join(import.meta.dirname, '../../../docs/partitions.md'), 'utf8');
    expect(doc).toContain(generateHaproxyConfig(config, { site: 'b' }));
  });

  it('is deterministic: the same config gives the same text; --site defaults to config.site', () => {
    const again = parseConfig(TWO_SITES, 'other.yaml').config;
    expect(generateHaproxyConfig(again)).toBe(generateHaproxyConfig(config, { site: 'a' }));
  });

  it('mirror image: p1 is served locally at a and forwarded at b, p2 the reverse', () => {
    const a = generateHaproxyConfig(config, { site: 'a' });
    const b = generateHaproxyConfig(config, { site: 'b' });
    expect(a).toMatch(/backend part-p1[\s\S]*server remote\.b 127\.0\.0\.3:8080 [^\n]* disabled\n/);
    expect(a).toMatch(/backend part-p2[\s\S]*server remote\.b 127\.0\.0\.3:8080 [^\n]*rise 2\n/);
    expect(b).toMatch(/backend part-p1[\s\S]*server remote\.a 127\.0\.0\.2:8080 [^\n]*rise 2\n/);
    expect(b).toMatch(/backend part-p2[\s\S]*server remote\.a 127\.0\.0\.2:8080 [^\n]* disabled\n/);
    // local servers are backups of every partition backend, checked once (track)
    expect(b).toContain('server w1 127.0.0.31:8080 weight 100 backup track web/w1');
    // agent-check on every pool server line, as docs/agent.md gives it
    expect(b).toContain(
      'server w1 127.0.0.31:8080 weight 100 check inter 1s fastinter 100ms downinter 100ms agent-check agent-addr 127.0.0.3 agent-port 5555 agent-send "web/w1\\n" agent-inter 500ms',
    );
    expect(b).toContain('stats socket /run/multisite/haproxy-b.sock mode 600 level admin');
    expect(b).toContain('use_backend web if forwarded');
    expect(b).toContain('http-request set-header X-Multisite-Forwarded b');
  });

  it("without an agent address the servers keep HAProxy's own check only", () => {
    const text = TWO_SITES.replace('      agent: 127.0.0.3:5555\n', '');
    const out = generateHaproxyConfig(parseConfig(text, 'x.yaml').config, { site: 'b' });
    expect(out).toContain(
      'server w1 127.0.0.31:8080 weight 100 check inter 1s fastinter 100ms downinter 100ms observe layer4 error-limit 1 on-error mark-down\n',
    );
    expect(haproxyCheck(out).ok).toBe(true);
  });

  it('three sites: a remote server per other site, only the active one in service', () => {
    const three = TWO_SITES.replace('  - { name: b }\n', '  - { name: b }\n  - { name: c }\n').replace(
      '  list:\n',
      '    c:\n      listen: 127.0.0.4:8080\n      inter-site: 127.0.0.4:8081\n      stats-socket: /run/c.sock\n      servers: [{ name: w1, address: 127.0.0.41:8080 }]\n  list:\n',
    );
    const out = generateHaproxyConfig(parseConfig(three, 'x.yaml').config, { site: 'c' });
    expect(out).toMatch(
      /backend part-p1\n[\s\S]*?server remote\.a 127\.0\.0\.2:8080 [^\n]*rise 2\n {4}server remote\.b 127\.0\.0\.3:8080 [^\n]*disabled\n/,
    );
    expect(out).toContain('bind 127.0.0.4:8080');
    expect(haproxyCheck(out).ok).toBe(true);
  });

  it('refuses a site without a load balancer, or a config with neither partitions nor an agent', () => {
    expect(() => generateHaproxyConfig(config, { site: 'z' })).toThrow(/unknown site 'z'/);
    const none = parseConfig('site: a\nsites: [{ name: a }]\n', 'x.yaml').config;
    expect(() => generateHaproxyConfig(none)).toThrow(/neither a partitions: section .* nor an agent: section/);
  });

  it("the plain case (no partitions): the agent's servers as backends wired to the agent, valid for haproxy -c", () => {
    const plain = parseConfig(
      `site: a
sites: [{ name: a }]
agent:
  listen: 0.0.0.0:5555
  servers:
    - { name: web/w1, address: 127.0.0.11:8080, checks: { message: { type: tcp } } }
    - { name: web/w2, address: "[::1]:8080", checks: { message: { type: tcp } } }
    - { name: shop, haproxy-server: api/a1, address: 127.0.0.13:9000, checks: { message: { type: tcp } } }
`,
      'plain.yaml',
    ).config;
    const out = generateHaproxyConfig(plain);
    expect(out).toContain('# agent.listen is the wildcard 0.0.0.0: agent-addr 127.0.0.1 assumed');
    expect(out).toContain(
      '\nbackend web\n' +
        '    server w1 127.0.0.11:8080 weight 100 check inter 2s fastinter 100ms downinter 100ms agent-check agent-addr 127.0.0.1 agent-port 5555 agent-send "web/w1\\n" agent-inter 500ms\n' +
        '    server w2 [::1]:8080 weight 100 check inter 2s fastinter 100ms downinter 100ms agent-check agent-addr 127.0.0.1 agent-port 5555 agent-send "web/w2\\n" agent-inter 500ms\n',
    );
    expect(out).toContain(
      '\nbackend api\n    server a1 127.0.0.13:9000 weight 100 check inter 2s fastinter 100ms downinter 100ms agent-check',
    );
    expect(out).toContain('agent-send "shop\\n"');
    // A fragment: valid once inside the operator's own config (defaults, a frontend).
    const operators = `defaults\n    mode http\n    timeout connect 1s\n    timeout client 30s\n    timeout server 30s\n\nfrontend www\n    bind 127.0.0.1:8080\n    default_backend web\n\n`;
    const check = haproxyCheck(operators + out);
    expect(check.ok, check.output).toBe(true);
  });
});
