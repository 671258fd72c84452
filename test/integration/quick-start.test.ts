import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { startPdns, type Pdns } from '../../src/lab/pdns.js';
import { startProcess, type Started } from '../../src/lab/processes.js';
import { addresses, query } from './support/dns.js';
import { waitFor } from './support/ports.js';

/**
 * The README's quick start, run as written (the way CoreDNS tests its plugin READMEs): its
 * `multisite init` and `check-config` lines, then what `systemctl enable --now multisite@SITE
 * pdns` starts (`multisite run`, then pdns_server with the generated pdns.conf lines), then the
 * `dig`. What a machine of its own would not need is changed, and only that: the two sites get
 * loopback addresses of their own, /etc/multisite is a temporary directory, and the paths and
 * the two loopback-only listeners (agent, PowerDNS API) that two sites on one machine would share
 * get the site's address or directory.
 */

const exec = promisify(execFile);
const ROOT = join(import.meta.dirname, '../..');
const CLI = join(ROOT, 'dist/cli/main.js');
const README_IPS = { a: '192.0.2.1', b: '198.51.100.1' } as const;
// 127.x.y.1 with x, y from the pid: two suites side by side use other addresses (fixed ports).
const net = `127.${(process.pid % 200) + 20}.${(process.pid >> 8) % 250}`;
const IPS = { a: `${net}.1`, b: `${net}.2` } as const;

/** The README's quick-start block: the shell lines after the `<!-- quick-start` marker. */
function quickStart(): string[] {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const at = readme.indexOf('<!-- quick-start');
  const block = /```sh\n([\s\S]*?)```/.exec(readme.slice(at))![1]!;
  return block.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#'));
}

const started: (Started | Pdns)[] = [];
let dir = '';
afterAll(async () => {
  for (const s of started.reverse()) await s.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("the README's quick start", () => {
  it('two sites from multisite init answer www.example.com, each itself first', async () => {
    dir = mkdtempSync(join(tmpdir(), 'ms-quick-'));
    const local = (line: string) =>
      line.replaceAll('/etc/multisite', dir).replaceAll(README_IPS.a, IPS.a).replaceAll(README_IPS.b, IPS.b);
    const lines = quickStart().map(local);
    const run = async (line: string) => {
      const args = line.split(/\s+/).slice(1);
      const r = await exec(process.execPath, [CLI, ...args]);
      return r.stdout;
    };
    for (const line of lines.filter((l) => l.startsWith('multisite init'))) await run(line);
    expect(await run(lines.find((l) => l.startsWith('multisite check-config'))!)).toMatch(/ok/i);
    for (const site of ['a', 'b'] as const) {
      const ip = IPS[site];
      const sdir = join(dir, site);
      // Two sites on one machine: each its own runtime paths and its own address for the agent and API.
      const yaml = readFileSync(join(dir, `${site}.yaml`), 'utf8')
        .replace(
          /^backend:.*$/m,
          (l) =>
            `${l}\n  socket: ${sdir}/backend.sock\n  control: ${sdir}/control.sock\n  state-file: ${sdir}/state.json`,
        )
        .replace('listen: 127.0.0.1:5555', `listen: ${ip}:5555`)
        .replace('url: http://127.0.0.1:8081', `url: http://${ip}:8081`);
      writeFileSync(join(dir, `${site}.yaml`), yaml);
      const proc = startProcess(process.execPath, [CLI, 'run', '--config', join(dir, `${site}.yaml`)]);
      started.push(proc);
      await waitFor(`multisite run of ${site}`, async () => {
        if (proc.child.exitCode !== null) throw new Error(`multisite run exited:\n${proc.output()}`);
        return (await fetch(`http://${ip}:9153/healthz`).catch(() => undefined))?.ok === true;
      });
      const conf = Object.fromEntries(
        readFileSync(join(dir, `${site}.pdns.conf`), 'utf8')
          .split('\n')
          .filter((l) => l && !l.startsWith('#'))
          .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
      );
      conf['remote-connection-string'] = `unix:path=${sdir}/backend.sock`;
      conf['webserver-address'] = ip;
      started.push(
        await startPdns({
          host: ip,
          port: 53,
          apiPort: 8081,
          // pdns.conf holds the key's hash; the API must take the key itself, from the file the backend reads.
          apiKey: readFileSync(join(dir, 'pdns-api-key'), 'utf8').trim(),
          backend: { kind: 'remote', connection: conf['remote-connection-string'] },
          settings: conf,
          probeName: 'example.com.',
        }),
      );
    }
    const dig = async (site: 'a' | 'b') => addresses(await query(IPS[site], 53, 'www.example.com.', 'A'));
    await waitFor(
      'both sites in both answers',
      async () => (await dig('a')).length === 2 && (await dig('b')).length === 2,
    );
    expect(await dig('a')).toEqual([IPS.a, IPS.b]);
    expect(await dig('b')).toEqual([IPS.b, IPS.a]);
  }, 180_000);
});
