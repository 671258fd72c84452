import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redactUrl } from '../../src/db/index.js';
import { waitFor } from './support/ports.js';
import { startProcess } from './support/processes.js';

/** Issue 15 items 8 and 9: no password form reaches the CLI's output; the log level precedence holds. */

const exec = promisify(execFile);
const cli = resolve(__dirname, '../../dist/cli/main.js');
let dir: string;

const multisite = (args: string[], env: Record<string, string> = {}) =>
  exec(process.execPath, [cli, ...args], { timeout: 30_000, env: { ...process.env, ...env } }).then(
    (r) => ({ code: 0, out: r.stdout + r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: e.stdout + e.stderr }),
  );

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ms-redact-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const secrets = ['qsecret1', 'sslsecret2', 'usersecret3', 'connsecret4', 'envsecret5'];
const noSecret = (out: string) => secrets.forEach((s) => expect(out).not.toContain(s));

describe('database passwords never reach the output', () => {
  it('redactUrl hides userinfo, secret query parameters, conninfo values and $PGPASSWORD', () => {
    const env = { PGPASSWORD: 'envsecret5' };
    expect(
      redactUrl('postgres://u:usersecret3@h:5432/db?password=qsecret1&sslpassword=sslsecret2&application_name=x', env),
    ).toBe('postgres://u:***@h:5432/db?password=***&sslpassword=***&application_name=x');
    expect(redactUrl('postgres://u:pa@ss/w@h/db', env)).toBe('postgres://u:***@h/db');
    expect(redactUrl("host=h password='conn secret4' dbname=d", env)).toBe('host=h password=*** dbname=d');
    expect(redactUrl('PGPASSWORD=envsecret5 host=h', env)).toBe('PGPASSWORD=*** host=h');
    expect(redactUrl('postgres://h/envsecret5', env)).toBe('postgres://h/***');
    expect(redactUrl('pglite:memory', env)).toBe('pglite:memory');
  });

  it('replicate, status and migrate print no password given in the URL, the query, conninfo or PGPASSWORD', async () => {
    const config = join(dir, 'r.yaml');
    writeFileSync(
      config,
      `site: a\nsites: [{ name: a }, { name: b }]\nreplication:\n  tables: [t]\n  sites:\n` +
        `    a: { db: "postgres://postgres@127.0.0.1:5432/ms_redact_missing_a?password=qsecret1&sslpassword=sslsecret2" }\n` +
        `    b: { db: "postgres://postgres:usersecret3@127.0.0.1:5432/ms_redact_missing_b" }\n`,
    );
    const env = { PGPASSWORD: 'envsecret5', MULTISITE_LOG_LEVEL: 'info' };
    const runs = [
      await multisite(['replicate', '--config', config, '--once'], env),
      await multisite(['status', '--config', config], env),
      await multisite(['migrate', '--config', config], env),
      await multisite(
        ['migrate', '--db', 'host=127.0.0.1 password=connsecret4 dbname=x', '--site', 'a', '--tables', 't'],
        env,
      ),
      await multisite(
        [
          'migrate',
          '--db',
          'postgres://postgres:envsecret5@127.0.0.1:5432/ms_redact_missing_c',
          '--site',
          'a',
          '--tables',
          't',
        ],
        env,
      ),
    ];
    // The replicator's start line names the database, redacted.
    expect(runs[0]!.out).toContain(
      'postgres://postgres@127.0.0.1:5432/ms_redact_missing_a?password=***&sslpassword=***',
    );
    expect(runs[3]!.out).toContain('unsupported database URL host=127.0.0.1 password=*** dbname=x');
    for (const r of runs) noSecret(r.out);
  });
});

const connectable = (path: string) =>
  new Promise<boolean>((r) => {
    const c = createConnection(path);
    c.once('connect', () => (c.destroy(), r(true)));
    c.once('error', () => r(false));
  });

/** Starts the backend, waits for its socket, stops it; returns what it logged. */
async function backendLog(
  configLevel: string | undefined,
  env: string | undefined,
  flag: string | undefined,
): Promise<string> {
  const d = mkdtempSync(join(dir, 'lvl-'));
  const config = join(d, 'c.yaml');
  writeFileSync(
    config,
    `site: a\nsites: [{ name: a }]\nbackend:\n  socket: ${d}/b.sock\n  control: ${d}/c.sock\n  state-file: ${d}/s.json\n${configLevel ? `  log-level: ${configLevel}\n` : ''}`,
  );
  const childEnv = { ...process.env };
  delete childEnv.MULTISITE_LOG_LEVEL;
  if (env) childEnv.MULTISITE_LOG_LEVEL = env;
  const p = startProcess(
    process.execPath,
    [cli, 'backend', '--config', config, ...(flag ? ['--log-level', flag] : [])],
    { env: childEnv },
  );
  await waitFor('backend socket', () => {
    if (p.child.exitCode !== null) throw new Error(p.output());
    return connectable(join(d, 'b.sock'));
  });
  expect(await p.stop()).toBe(0);
  return p.output();
}

describe('log level: --log-level > MULTISITE_LOG_LEVEL > the config file > info', () => {
  // 'backend stopped' is an info line; the missing pdns: section is a warn line.
  it.each([
    ['nothing set: info', undefined, undefined, undefined, true],
    ['config error', 'error', undefined, undefined, false],
    ['env info beats config error', 'error', 'info', undefined, true],
    ['env error beats the default', undefined, 'error', undefined, false],
    ['flag error beats env info', 'info', 'info', 'error', false],
    ['flag info beats env error and config error', 'error', 'error', 'info', true],
  ])('%s', async (_name, configLevel, env, flag, infoShown) => {
    const out = await backendLog(configLevel, env, flag);
    expect(out.includes('backend stopped')).toBe(infoShown);
  });
});
