import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * `make install PREFIX=<empty dir>`: the packed package installed there runs as `multisite` from
 * PATH (outside the repository, with its own dependencies), and the systemd unit it installs
 * points at it and passes `systemd-analyze verify` where that tool exists.
 */
const exec = promisify(execFile);
const root = resolve(__dirname, '../..');
const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
let prefix: string;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  prefix = mkdtempSync(join(tmpdir(), 'ms-prefix-'));
  await exec('make', ['--no-print-directory', 'install', `PREFIX=${prefix}`], { cwd: root, timeout: 600_000 });
  // Only the prefix's bin and node's own directory on PATH: nothing from the repository.
  env = { PATH: `${prefix}/bin:${dirname(process.execPath)}`, HOME: prefix };
}, 600_000);
afterAll(() => rmSync(prefix, { recursive: true, force: true }));

describe('make install', () => {
  it('puts a working multisite on PATH', async () => {
    const v = await exec('multisite', ['--version'], { cwd: prefix, env });
    expect(v.stdout).toBe(`multisite ${version}\n`);
    // A command that loads the installed dependencies (yaml, zod) and the config code.
    const config = join(prefix, 'site-a.yaml');
    writeFileSync(
      config,
      `site: a\nsites: [{ name: a }, { name: b }]\nbackend:\n  socket: ${prefix}/b.sock\n  control: ${prefix}/c.sock\n  state-file: ${prefix}/s.json\n`,
    );
    const checked = await exec('multisite', ['check-config', config], { cwd: prefix, env });
    expect(checked.stdout).toBe(`${config}: ok (site a, 0 zones, 0 records, 0 balanced names)\n`);
  });

  it('installs multisite@.service running the installed multisite, accepted by systemd-analyze verify', async (ctx) => {
    const unit = join(prefix, 'lib/systemd/system/multisite@.service');
    const text = readFileSync(unit, 'utf8');
    expect(text).toContain(`ExecStart=${prefix}/bin/multisite run --config /etc/multisite/%i.yaml`);
    expect(text).toMatch(/^Type=notify$/m);
    expect(text).toMatch(/^Before=pdns\.service haproxy\.service$/m);
    const which = await exec('sh', ['-c', 'command -v systemd-analyze'], { env: process.env }).catch(() => undefined);
    if (!which) return ctx.skip('systemd-analyze is not installed here (package systemd); the unit was not verified');
    // An instance, so that %i resolves as systemd would for multisite@site-a.
    const dir = mkdtempSync(join(tmpdir(), 'ms-unit-'));
    try {
      copyFileSync(unit, join(dir, 'multisite@site-a.service'));
      for (const file of [unit, join(dir, 'multisite@site-a.service')]) {
        const r = await exec('systemd-analyze', ['verify', '--man=no', file]).catch((e: { stderr: string }) => e);
        // verify exits 0 on settings it ignores: every line it says about our unit is a failure.
        const said = r.stderr.split('\n').filter((l) => l.includes('multisite@'));
        expect(said).toEqual([]);
        expect('code' in r ? r.code : 0).toBe(0);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
