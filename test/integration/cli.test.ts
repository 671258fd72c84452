import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from './support/ports.js';
import { startProcess, type Started } from './support/processes.js';

const exec = promisify(execFile);
const cli = resolve(__dirname, '../../dist/cli/main.js');
let dir: string;
let config: string;

const multisite = (...args: string[]) =>
  exec(process.execPath, [cli, ...args]).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );

const connectable = (path: string) =>
  new Promise<boolean>((r) => {
    const c = createConnection(path);
    c.once('connect', () => (c.destroy(), r(true)));
    c.once('error', () => r(false));
  });

async function startBackend(): Promise<Started> {
  const p = startProcess(process.execPath, [cli, 'backend', '--config', config]);
  await waitFor('backend socket', () => {
    if (p.child.exitCode !== null) throw new Error(p.output());
    return connectable(join(dir, 'backend.sock'));
  });
  return p;
}

beforeAll(() => {
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run \`make build\` (make test does) first`);
  dir = mkdtempSync(join(tmpdir(), 'ms-cli-'));
  config = join(dir, 'multisite.yaml');
  writeFileSync(
    config,
    `site: a\nsites: [{ name: a }, { name: b }]\nbackend:\n  socket: ${dir}/backend.sock\n  control: ${dir}/control.sock\n  state-file: ${dir}/state.json\n`,
  );
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('multisite CLI', () => {
  it('check-config names the file, line, column and key of each problem and exits 1', async () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(
      bad,
      `site: a\nsites: [{ name: a }]\nzones:\n  - name: example.com\n    file: missing.zone\n    color: red\n`,
    );
    const res = await multisite('check-config', bad);
    expect(res.code).toBe(1);
    expect(res.stderr).toContain(`${bad}:6:5: zones[0].color: unknown key 'color'`);
    const ok = await multisite('check-config', config);
    expect(ok).toMatchObject({ code: 0, stdout: `${config}: ok (site a, 0 zones, 0 records, 0 balanced names)\n` });
  });

  it('prints usage for unknown commands and missing options (exit 2)', async () => {
    expect((await multisite('frobnicate')).code).toBe(2);
    const res = await multisite('backend');
    expect(res).toMatchObject({ code: 2 });
    expect(res.stderr).toContain('--config is required');
  });

  it('drains through the control socket, keeps the drain across a restart, and stops cleanly on SIGTERM', async () => {
    let backend = await startBackend();
    expect((await multisite('site', 'drain', 'b', '--config', config)).stdout).toBe('site b drained\n');
    expect((await multisite('site', 'drain', 'b', '--config', config)).stdout).toBe(
      'site b drained (it already was)\n',
    );
    const unknown = await multisite('site', 'drain', 'zz', '--config', config);
    expect(unknown).toMatchObject({ code: 1 });
    expect(unknown.stderr).toContain("unknown site 'zz' (known: a, b)");
    expect(JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')).drained).toEqual(['b']);

    expect(await backend.stop()).toBe(0);
    expect(existsSync(join(dir, 'backend.sock'))).toBe(false);
    expect(existsSync(join(dir, 'control.sock'))).toBe(false);
    expect(backend.output()).toContain('backend stopped');

    backend = await startBackend();
    const status = await multisite('site', 'status', '--config', config, '--json');
    const sites = JSON.parse(status.stdout) as { site: string; usable: boolean; drained: boolean }[];
    expect(sites.map((s) => [s.site, s.usable, s.drained])).toEqual([
      ['a', true, false],
      ['b', false, true],
    ]);
    expect((await multisite('site', 'status', '--config', config)).stdout).toMatch(
      /^b\s+down\s+(\d{4}-\d\d-\d\d )?\d\d:\d\d:\d\d \([^)]* ago\)\s+drained by an operator$/m,
    );
    expect(await backend.stop()).toBe(0);
  });

  it('--version, and --help on every sub-command (usage, summary, an example; nothing opened or started)', async () => {
    const { version } = JSON.parse(readFileSync(resolve(__dirname, '../../package.json'), 'utf8')) as {
      version: string;
    };
    expect(await multisite('--version')).toMatchObject({ code: 0, stdout: `multisite ${version}\n` });
    const { commands } = await import('../../src/cli/commands/index.js');
    for (const name of Object.keys(commands)) {
      const res = await multisite(name, '--help');
      expect(res, name).toMatchObject({ code: 0, stderr: '' });
      expect(res.stdout, name).toMatch(
        new RegExp(`^usage: multisite ${name} .*\n\n.+\n\nexample:\n  multisite ${name}( |\n)`),
      );
    }
    // A file named like the flag is not opened: check-config --help is help.
    expect((await multisite('check-config', '-h')).stdout).toMatch(/^usage: multisite check-config FILE/);
  });

  it('serves Prometheus metrics and /healthz when backend.metrics is set', async () => {
    const { freePort } = await import('./support/ports.js');
    const port = await freePort('127.0.0.1');
    const withMetrics = join(dir, 'metrics.yaml');
    writeFileSync(withMetrics, `${readFileSync(config, 'utf8')}  metrics: 127.0.0.1:${port}\n`);
    const p = startProcess(process.execPath, [cli, 'backend', '--config', withMetrics]);
    try {
      await waitFor(
        'metrics',
        async () => (await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined))?.ok === true,
      );
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      expect(text).toContain('# TYPE multisite_backend_call_seconds histogram');
      expect(text).toContain('multisite_backend_errors_total');
      expect(text).toContain('multisite_backend_process_cpu_seconds_total');
      // status exit codes: 0 all well, 1 degraded (a drained site), 2 cannot tell (backend gone).
      await multisite('site', 'undrain', 'b', '--config', withMetrics); // the test above left b drained
      expect(await multisite('status', '--config', withMetrics)).toMatchObject({ code: 0 });
      await multisite('site', 'drain', 'b', '--config', withMetrics);
      const degraded = await multisite('status', '--config', withMetrics);
      expect(degraded).toMatchObject({ code: 1 });
      expect(degraded.stdout).toMatch(
        /^b +drained +- +answers drained (\d{4}-\d\d-\d\d )?\d\d:\d\d:\d\d \(.* ago\) .*drained by an operator$/m,
      );
      // The drain is a failover of b: recorded from the state change on (no balanced name here: no answer changed).
      expect(degraded.stdout).toMatch(/^ {2}site b failover .*\(.* ago\): state 0 ms; drained by an operator$/m);
      const json = JSON.parse((await multisite('status', '--config', withMetrics, '--json')).stdout) as {
        failovers: { site: string; kind: string; stages: { stage: string }[] }[];
      };
      expect(json.failovers[0]).toMatchObject({ site: 'b', kind: 'failover' });
      expect(json.failovers[0]!.stages.map((x) => x.stage)).toEqual(['state']);
      await multisite('site', 'undrain', 'b', '--config', withMetrics);
    } finally {
      expect(await p.stop()).toBe(0);
    }
    const gone = await multisite('status', '--config', withMetrics, '--json');
    expect(gone).toMatchObject({ code: 2 });
    expect(JSON.parse(gone.stdout)).toMatchObject({
      health: 'unknown',
      sites: { error: expect.stringContaining('not reachable') },
    });
  });

  it('refuses to start a second backend on a live socket, and replaces a stale one', async () => {
    const first = await startBackend();
    const second = await multisite('backend', '--config', config);
    expect(second.code).toBe(1);
    expect(second.stderr).toContain(`another process is already listening on ${dir}/backend.sock`);
    first.child.kill('SIGKILL');
    await first.exited;
    const again = await startBackend(); // the dead process's socket file is still there
    expect(await again.stop()).toBe(0);
  });
});
