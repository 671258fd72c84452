import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startPdns, type Pdns } from './pdns.js';
import { freePort, waitFor } from './ports.js';
import { startProcess, type Started } from './processes.js';

const exec = promisify(execFile);
const root = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');
const cli = join(root, 'dist/cli/main.js');

interface DemoSite {
  name: string;
  host: string;
  dir: string;
  config: string;
  backend: Started;
  pdns: Pdns;
}

/** Two sites on loopback, each a real pdns_server with our backend; shows order, drain, undrain. */
export async function runDemo(opts: { keep: boolean }): Promise<number> {
  const sites: DemoSite[] = [];
  const say = (s: string) => process.stdout.write(`${s}\n`);
  try {
    for (const [name, host] of [
      ['a', '127.0.0.2'],
      ['b', '127.0.0.3'],
    ] as const)
      sites.push(await startSite(name, host));
    say('\nmultisite demo: two sites, each PowerDNS + multisite backend, www.example.com balanced.\n');
    await show(sites, 'both sites up: each site answers itself first, the other second');
    for (const s of sites) await ctl(s, ['drain', 'a']);
    await show(sites, 'operator drains site a (multisite site drain a): a leaves every answer at once');
    for (const s of sites) await ctl(s, ['undrain', 'a']);
    await show(sites, 'operator undrains site a: back in its place');
    say(
      `site status at a:\n${(await exec(process.execPath, [cli, 'site', 'status', '--config', sites[0]!.config])).stdout}`,
    );
    await (await import('./partitions-demo.js')).runPartitionsDemo(say);
    if (opts.keep) {
      say(`running; try: dig @127.0.0.2 -p ${sites[0]!.pdns.port} www.example.com A   (Ctrl-C stops)`);
      await new Promise<void>((r) => process.once('SIGINT', () => r()));
    }
    return 0;
  } finally {
    for (const s of sites) {
      await s.pdns.stop();
      const code = await s.backend.stop();
      say(`site ${s.name}: PowerDNS stopped, backend stopped on SIGTERM (exit ${code})`);
      rmSync(s.dir, { recursive: true, force: true });
    }
  }
}

async function startSite(name: string, host: string): Promise<DemoSite> {
  const dir = mkdtempSync(join(tmpdir(), `multisite-demo-${name}-`));
  const [port, apiPort, metricsPort] = [await freePort(host), await freePort(host), await freePort(host)];
  const apiKey = `demo-${Math.random().toString(36).slice(2)}`;
  writeFileSync(join(dir, 'api-key'), `${apiKey}\n`, { mode: 0o600 });
  const config = join(dir, 'multisite.yaml');
  const fill: Record<string, string> = {
    SITE: name,
    DIR: dir,
    HOST: host,
    API_PORT: String(apiPort),
    METRICS_PORT: String(metricsPort),
    ZONES: join(root, 'examples/demo'),
  };
  const text = readFileSync(join(root, 'examples/demo/multisite.yaml.tmpl'), 'utf8').replace(
    /\{\{(\w+)\}\}/g,
    (_, k: string) => fill[k] ?? '',
  );
  writeFileSync(config, text);
  const backend = startProcess(process.execPath, [cli, 'backend', '--config', config], {
    env: { ...process.env, MULTISITE_LOG_LEVEL: 'warn' },
  });
  await waitFor(`the backend of site ${name}`, () => {
    if (backend.child.exitCode !== null) throw new Error(`backend exited:\n${backend.output()}`);
    return canConnect(join(dir, 'backend.sock'));
  });
  const pdns = await startPdns({
    host,
    port,
    apiPort,
    apiKey,
    backend: { kind: 'remote', connection: `unix:path=${join(dir, 'backend.sock')}` },
    probeName: 'example.com.',
  });
  process.stdout.write(
    `site ${name}: PowerDNS on ${host}:${port}, backend on ${dir}/backend.sock, metrics on http://${host}:${metricsPort}/metrics\n`,
  );
  return { name, host, dir, config, backend, pdns };
}

async function show(sites: DemoSite[], title: string): Promise<void> {
  process.stdout.write(`== ${title}\n`);
  for (const s of sites) {
    const { stdout } = await exec('dig', [
      '+short',
      '+norec',
      `@${s.host}`,
      '-p',
      String(s.pdns.port),
      'www.example.com',
      'A',
    ]);
    process.stdout.write(
      `   dig @${s.host} -p ${s.pdns.port} www.example.com A   (site ${s.name})  →  ${stdout.trim().split('\n').join(', ')}\n`,
    );
  }
}

async function ctl(site: DemoSite, args: string[]): Promise<void> {
  await exec(process.execPath, [cli, 'site', ...args, '--config', site.config]);
}

function canConnect(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = createConnection(path);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}
