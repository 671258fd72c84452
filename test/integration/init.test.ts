import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * `multisite init`: the starting config it writes passes check-config, its pdns.conf lines pass
 * pdns_server's own check, and its HAProxy lines pass `haproxy -c` (the real programs).
 */
const exec = promisify(execFile);
const cli = resolve(__dirname, '../../dist/cli/main.js');
const multisite = (...args: string[]) =>
  exec(process.execPath, [cli, ...args]).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );
let dir: string;

beforeAll(() => {
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run \`make build\` (make test does) first`);
  dir = mkdtempSync(join(tmpdir(), 'ms-init-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('multisite init', () => {
  it('writes, for each site, a config check-config accepts and pdns/HAProxy lines the real programs accept', async () => {
    for (const site of ['a', 'b']) {
      const r = await multisite('init', '--site', site, '--sites', 'a=127.0.0.2,b=127.0.0.3', '--out', dir);
      expect(r).toMatchObject({ code: 0 });
      const config = join(dir, `${site}.yaml`);
      expect(readFileSync(config, 'utf8').split('\n').length).toBeLessThanOrEqual(60); // one screen
      const checked = await multisite('check-config', config);
      expect(checked).toMatchObject({
        code: 0,
        stdout: `${config}: ok (site ${site}, 1 zones, 3 records, 1 balanced names)\n`,
      });
      expect(checked.stderr).toBe(''); // no warnings either (key files are mode 600)
      const pdnsDir = join(dir, `pdns-${site}`);
      mkdirSync(pdnsDir);
      copyFileSync(join(dir, `${site}.pdns.conf`), join(pdnsDir, 'pdns.conf'));
      // Exits non-zero on an unknown or malformed setting.
      await exec('pdns_server', [`--config-dir=${pdnsDir}`, '--config=check']);
      const haproxy = await exec('haproxy', ['-c', '-f', join(dir, `${site}.haproxy.cfg`)]);
      expect(haproxy.stdout).toContain('Configuration file is valid');
    }
    // The key both sites name is one file, written once; pdns.conf holds only its hash (a real
    // PowerDNS accepting the key against it: test/integration/quick-start.test.ts).
    const key = readFileSync(join(dir, 'pdns-api-key'), 'utf8').trim();
    const conf = readFileSync(join(dir, 'a.pdns.conf'), 'utf8');
    expect(conf).not.toContain(key);
    expect(conf).toMatch(/^api-key=\$scrypt\$ln=10,p=1,r=8\$[A-Za-z0-9+/=]{24}\$[A-Za-z0-9+/=]{44}$/m);
    expect(readFileSync(join(dir, 'a.yaml'), 'utf8')).toContain('key-file: peers.key');
    expect(readFileSync(join(dir, 'b.yaml'), 'utf8')).toContain('key-file: peers.key');
  }, 60_000);

  it('refuses a bad sites list and an existing config, saying what is wrong (exit 2)', async () => {
    const bad = await multisite('init', '--site', 'a', '--sites', 'a=1.2.3,b=127.0.0.3', '--out', dir);
    expect(bad).toMatchObject({ code: 2 });
    expect(bad.stderr).toContain("'1.2.3' (site a) is not an IPv4 or IPv6 address");
    const missing = await multisite('init', '--site', 'c', '--sites', 'a=127.0.0.2,b=127.0.0.3', '--out', dir);
    expect(missing).toMatchObject({ code: 2 });
    expect(missing.stderr).toContain('--site c is not in --sites (a, b)');
    const again = await multisite('init', '--site', 'a', '--sites', 'a=127.0.0.2,b=127.0.0.3', '--out', dir);
    expect(again).toMatchObject({ code: 2 });
    expect(again.stderr).toContain('exists (--force overwrites it)');
  });
});
