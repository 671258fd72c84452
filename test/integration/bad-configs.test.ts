import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * Issue 15 item 7: a corpus of broken configs. For each, `multisite check-config` (the real CLI)
 * names FILE:LINE:COL, the key and the problem, and the daemon refuses to start with the very same
 * line (one validation, src/cli/preflight.ts), before it creates or replaces anything.
 * `D` in a config stands for the test's directory.
 */

const exec = promisify(execFile);
const cli = resolve(__dirname, '../../dist/cli/main.js');

interface Case {
  name: string;
  /** Lines after the base config (which is lines 1-7). */
  yaml: string;
  /** "LINE:COL: key: problem", after the file name. */
  expect: string;
  /** The daemon that must refuse it (default backend). */
  daemon?: 'backend' | 'agent' | 'replicate';
  setup?(dir: string): void;
}

const base = `site: a
sites: [{ name: a }]
backend:
  socket: D/b.sock
  control: D/c.sock
  state-file: D/state.json
  metrics: 127.0.0.1:9464
`;

const peers = (keyLine: string) => `peers:\n  listen: 127.0.0.1:7946\n  ${keyLine}\n`;
const agent = (extra = '', listen = '127.0.0.1:5555') =>
  `agent:\n  listen: ${listen}\n  control: D/agent.sock\n  state-file: D/agent-state.json\n  servers: [{ name: web/w1, address: "127.0.0.1:8080", checks: { message: {} } }]\n${extra}`;

/** The base config with one of its lines replaced (1-based). */
const replaceLine = (n: number, line: string) => ({
  base: base
    .split('\n')
    .map((l, i) => (i === n - 1 ? line : l))
    .join('\n'),
});

const cases: (Case & { base?: string })[] = [
  {
    name: 'peers.key-file missing',
    yaml: peers('key-file: D/missing.key'),
    expect: '10:3: peers.key-file: D/missing.key: no such file',
  },
  {
    name: 'peers.key-file empty',
    yaml: peers('key-file: D/empty.key'),
    expect: '10:3: peers.key-file: D/empty.key: is empty',
    setup: (d) => writeFileSync(join(d, 'empty.key'), '\n', { mode: 0o600 }),
  },
  {
    name: 'peers.key-file too short',
    yaml: peers('key-file: D/short.key'),
    expect:
      '10:3: peers.key-file: D/short.key: is 5 bytes; a key must be at least 16 (e.g. openssl rand -hex 32 > FILE)',
    setup: (d) => writeFileSync(join(d, 'short.key'), 'short\n', { mode: 0o600 }),
  },
  {
    name: 'peers.key-file is a directory',
    yaml: peers('key-file: D/keydir'),
    expect: '10:3: peers.key-file: D/keydir: is not a regular file',
    setup: (d) => mkdirSync(join(d, 'keydir')),
  },
  {
    name: 'peers.key-env not set',
    yaml: peers('key-env: MS_TEST_UNSET_KEY'),
    expect: '10:3: peers.key-env: environment variable MS_TEST_UNSET_KEY: is not set',
  },
  {
    name: 'coordinator.key-file missing',
    yaml: 'coordinator:\n  key-file: D/missing-coord.key\n  load-balancers: [D/haproxy.sock]\n  servers: [{ name: web/w1, address: "127.0.0.1:8080" }]\n',
    expect: '9:3: coordinator.key-file: D/missing-coord.key: no such file',
  },
  {
    name: 'load-reports.key-file missing',
    yaml: 'load-reports:\n  listen: 127.0.0.1:7947\n  key-file: D/missing-lr.key\n',
    expect: '10:3: load-reports.key-file: D/missing-lr.key: no such file',
  },
  {
    name: 'pdns.api-key-file missing',
    yaml: 'pdns:\n  api-key-file: D/missing-api.key\n',
    expect: '9:3: pdns.api-key-file: D/missing-api.key: no such file',
  },
  {
    name: 'pdns.api-key-file holds binary',
    yaml: 'pdns:\n  api-key-file: D/binary-api.key\n',
    expect:
      '9:3: pdns.api-key-file: D/binary-api.key: is not text (a password or API key must be UTF-8 text on one line)',
    setup: (d) => writeFileSync(join(d, 'binary-api.key'), Buffer.from([0xff, 0x00, 0x81, 0x0a]), { mode: 0o600 }),
  },
  {
    name: 'pdns without an api key',
    yaml: 'pdns:\n  url: http://127.0.0.1:8081\n',
    expect: '8:1: pdns: give api-key-file or api-key-env (the PowerDNS api-key) so the backend can flush caches',
  },
  {
    name: 'replication password-file missing',
    yaml: 'replication:\n  sites:\n    a:\n      db: postgres://u@127.0.0.1/x\n      password-file: D/missing.pw\n',
    expect: '12:7: replication.sites.a.password-file: D/missing.pw: no such file',
    daemon: 'replicate',
  },
  {
    name: 'replication metrics address',
    yaml: 'replication:\n  metrics: 999.999.1.1:99999\n  sites:\n    a: { db: "pglite:memory" }\n',
    expect: "9:3: replication.metrics: '999.999.1.1' is not an IPv4 or IPv6 address",
    daemon: 'replicate',
  },
  {
    name: 'agent.listen 999.999.1.1:99999',
    yaml: agent('', '999.999.1.1:99999'),
    expect: "9:3: agent.listen: '999.999.1.1' is not an IPv4 or IPv6 address",
    daemon: 'agent',
  },
  {
    name: 'agent.listen port 99999',
    yaml: agent('', '127.0.0.1:99999'),
    expect: '9:3: agent.listen: port 99999 is not in 1..65535',
    daemon: 'agent',
  },
  {
    name: 'agent.load-report.key-file missing',
    yaml: agent('  load-report:\n    to: [127.0.0.1:7947]\n    key-file: D/missing-agent.key\n'),
    expect: '15:5: agent.load-report.key-file: D/missing-agent.key: no such file',
    daemon: 'agent',
  },
  {
    name: 'agent.control is a directory',
    yaml: agent().replace('D/agent.sock', 'D/agentdir'),
    expect: "10:3: agent.control: D/agentdir is a directory; give the socket's own path, e.g. D/agentdir/control.sock",
    daemon: 'agent',
    setup: (d) => mkdirSync(join(d, 'agentdir')),
  },
  {
    name: 'probes.networks CIDR with host bits',
    yaml: 'probes:\n  networks: [10.1.0.0/8]\n',
    expect: '9:14: probes.networks[0]: 10.1.0.0/8 has host bits set: the network is 10.0.0.0/8',
  },
  {
    name: 'backend.state-file is a directory',
    ...replaceLine(6, '  state-file: D/statedir'),
    yaml: '',
    expect: "6:3: backend.state-file: D/statedir is a directory; give the file's own path, e.g. D/statedir/state.json",
    setup: (d) => mkdirSync(join(d, 'statedir')),
  },
  {
    name: 'backend.control is a directory',
    ...replaceLine(5, '  control: D/ctldir'),
    yaml: '',
    expect: "5:3: backend.control: D/ctldir is a directory; give the socket's own path, e.g. D/ctldir/control.sock",
    setup: (d) => mkdirSync(join(d, 'ctldir')),
  },
  {
    name: 'backend.control is an existing regular file',
    ...replaceLine(5, '  control: D/precious.txt'),
    yaml: '',
    expect: '5:3: backend.control: D/precious.txt exists and is not a socket (a regular file): refusing to replace it',
    setup: (d) => writeFileSync(join(d, 'precious.txt'), 'keep me\n'),
  },
  {
    name: 'backend.control under /proc',
    ...replaceLine(5, '  control: /proc/ms-test/control.sock'),
    yaml: '',
    expect:
      '5:3: backend.control: /proc/ms-test/control.sock is under /proc, a kernel pseudo-filesystem: no socket can live there',
  },
  {
    name: 'backend.socket under /sys',
    ...replaceLine(4, '  socket: /sys/ms-test.sock'),
    yaml: '',
    expect:
      '4:3: backend.socket: /sys/ms-test.sock is under /sys, a kernel pseudo-filesystem: no socket can live there',
  },
  {
    name: 'backend.socket longer than the unix limit',
    ...replaceLine(4, `  socket: D/${'s'.repeat(110)}.sock`),
    yaml: '',
    expect: `4:3: backend.socket: D/${'s'.repeat(110)}.sock is LEN bytes; a unix socket path can have at most 107 (the kernel's sun_path): choose a shorter path`,
  },
  {
    name: 'backend.socket parent is a file',
    ...replaceLine(4, '  socket: D/afile/b.sock'),
    yaml: '',
    expect: '4:3: backend.socket: D/afile/b.sock cannot be created: D/afile is not a directory',
    setup: (d) => writeFileSync(join(d, 'afile'), ''),
  },
  {
    name: 'duplicate key',
    yaml: 'site: b\n',
    expect: '8:1: site: duplicate key (each key may appear once in a mapping)',
  },
  {
    name: 'YAML alias bomb',
    yaml: 'x0: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\nx1: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nx2: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nx3: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n',
    expect:
      '9:9: x1[0]: Excessive alias count indicates a resource exhaustion attack (more than 100 alias expansions): refused',
  },
  {
    name: 'zone file missing',
    yaml: 'zones:\n  - name: example.com\n    file: D/missing.zone\n',
    expect: '10:5: zones[0].file: no such file: D/missing.zone',
  },
];

let dir: string;
const expected = (c: Case, file: string) =>
  `${file}:${c.expect.replaceAll('D/', `${dir}/`).replace('LEN', String(Buffer.byteLength(`${dir}/${'s'.repeat(110)}.sock`)))}`;

beforeAll(() => {
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run \`make build\` first`);
  dir = mkdtempSync(join(tmpdir(), 'ms-bad-'));
  cases.forEach((c, i) => {
    c.setup?.(dir);
    writeFileSync(join(dir, `bad-${i}.yaml`), `${(c.base ?? base) + c.yaml}`.replaceAll('D/', `${dir}/`));
  });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs the real CLI; a daemon that wrongly starts is stopped by SIGTERM after 20 s (and then exits 0). */
async function multisite(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env, MULTISITE_LOG_LEVEL: 'warn' };
  delete env.MS_TEST_UNSET_KEY;
  return exec(process.execPath, [cli, ...args], { timeout: 20_000, env }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );
}

describe('a corpus of broken configs', () => {
  it('has at least 24 cases', () => expect(cases.length).toBeGreaterThanOrEqual(24));

  cases.forEach((c, i) => {
    it(`${c.name}: check-config names file:line:col and key, and the ${c.daemon ?? 'backend'} refuses it with the same line`, async () => {
      const file = join(dir, `bad-${i}.yaml`);
      const want = expected(c, file);
      const checked = await multisite('check-config', file);
      expect(checked.code).toBe(1);
      expect(checked.stderr.split('\n')).toContain(want);
      const daemon = await multisite(c.daemon ?? 'backend', '--config', file);
      expect(daemon.code).toBe(1);
      expect(daemon.stderr.split('\n').map((l) => l.replace(/^multisite \S+: /, ''))).toContain(want);
      // Refused before anything was created or replaced.
      expect(existsSync(join(dir, 'b.sock'))).toBe(false);
      if (c.name.includes('regular file')) expect(readFileSync(join(dir, 'precious.txt'), 'utf8')).toBe('keep me\n');
    });
  });
});
