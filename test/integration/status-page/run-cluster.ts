import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startHaproxy, type Haproxy } from '../../../src/lab/haproxy.js';
import { startPdns, type Pdns } from '../../../src/lab/pdns.js';
import { freePort, waitFor } from '../../../src/lab/ports.js';
import { startProcess, type Started } from '../../../src/lab/processes.js';
import { replicatedPair } from '../run/support.js';
import { EXAMPLE_ZONE_YAML } from '../support/example-zone.js';
import { addresses, query } from '../support/dns.js';

/**
 * Two sites, each one `multisite run` process (node dist/cli/main.js run) and a real pdns_server
 * on its own loopback address, heartbeating each other. Site a is a whole site: two web servers
 * (each a python3 http.server process, so a test can SIGKILL one), a real haproxy whose server
 * lines agent-check a's agent (the `agent:` part of the same run process), `health:` reading that
 * haproxy, and a replicator into a's PostgreSQL database from b's. Site b is a backend only (it
 * does not replicate, so a write at a stays unseen by b: the same row written at b is a conflict
 * found at a, every time). Both serve the status page with STATUS_PAGE_KEY.
 */

export const STATUS_PAGE_KEY = 'status-page-test-key-0123456789';
export const NAME = 'www.example.com.';
const PEERS_KEY = 'integration-test-peers-key-0123456789';
const ROOT = join(import.meta.dirname, '../../..');

export interface RunSite {
  name: 'a' | 'b';
  host: string;
  /** The address site's answers give for it. */
  address: string;
  metricsUrl: string;
  run: Started;
  pdns: Pdns;
  /** The balanced name's addresses in this site's PowerDNS answer, in order. */
  answer(): Promise<string[]>;
}

export interface WebProcess {
  name: string;
  port: number;
  proc: Started;
}

export interface RunCluster {
  a: RunSite;
  b: RunSite;
  haproxy: Haproxy;
  /** a's web servers, web/w1 and web/w2 (HAProxy's w1 and w2 in backend web). */
  web: WebProcess[];
  /** The sites' databases (PostgreSQL at 127.0.0.1:5432), with the replicated table `items`. */
  db: Record<'a' | 'b', string>;
  stop(): Promise<void>;
}

interface Plan {
  name: 'a' | 'b';
  host: string;
  address: string;
  hb: number;
  metrics: number;
  dns: number;
  api: number;
}

/** A web server of its own (a process to kill): python3's http.server with a /health file. */
async function startWeb(name: string, dir: string): Promise<WebProcess> {
  const docs = join(dir, name);
  mkdirSync(docs, { recursive: true });
  writeFileSync(join(docs, 'health'), 'ok\n');
  const port = await freePort('127.0.0.1');
  const proc = startProcess('python3', ['-m', 'http.server', String(port), '--bind', '127.0.0.1', '--directory', docs]);
  await waitFor(`web server ${name}`, async () => {
    if (proc.child.exitCode !== null) throw new Error(`${name} exited:\n${proc.output()}`);
    return (await fetch(`http://127.0.0.1:${port}/health`).catch(() => undefined))?.ok === true;
  });
  return { name, port, proc };
}

function haproxyBody(web: WebProcess[], agentPort: number, frontPort: number): string {
  const servers = web.map(
    (w) =>
      `    server ${w.name} 127.0.0.1:${w.port} check inter 2s agent-check agent-addr 127.0.0.1 ` +
      `agent-port ${agentPort} agent-send "web/${w.name}\\n" agent-inter 500ms`,
  );
  return `frontend www\n    bind 127.0.0.1:${frontPort}\n    default_backend web\n\nbackend web\n${servers.join('\n')}\n`;
}

function siteConfig(me: Plan, plan: Plan[], dir: string, parts: string): string {
  const sites = plan.map(
    (s) =>
      `  - { name: ${s.name}, heartbeat: ["${s.host}:${s.hb}"], status-url: ["http://${s.host}:${s.metrics}/status"] }`,
  );
  return `site: ${me.name}
sites:
${sites.join('\n')}
backend:
  socket: ${dir}/backend.sock
  control: ${dir}/control.sock
  state-file: ${dir}/state.json
  metrics: ${me.host}:${me.metrics}
  log-level: ${process.env.TEST_LOG ?? 'warn'}
pdns:
  url: http://${me.host}:${me.api}
  api-key-file: api-key
peers:
  listen: ${me.host}:${me.hb}
  key-file: ../peers.key
  period-ms: 500
${EXAMPLE_ZONE_YAML}
balanced:
  - name: www.example.com
    ttl: 300
    addresses: { ${plan.map((s) => `${s.name}: [${s.address}]`).join(', ')} }
status-page:
  api-key-file: status-page.key
${parts}`;
}

/** a's other parts: the pool it reads, its agent, its replicator. */
function siteAParts(dir: string, haproxy: Haproxy, web: WebProcess[], agentPort: number, db: Record<string, string>) {
  const servers = web.map(
    (w) => `    - name: web/${w.name}
      address: 127.0.0.1:${w.port}
      checks:
        message: { path: /health, interval-ms: 100, timeout-ms: 500, rise: 2, fall: 1 }`,
  );
  return `health:
  load-balancers: [${haproxy.socket}]
  backend: web
agent:
  listen: 127.0.0.1:${agentPort}
  control: ${dir}/agent.sock
  state-file: ${dir}/agent-state.json
  haproxy: { runtime-api: [${haproxy.socket}] }
  servers:
${servers.join('\n')}
replication:
  tables: [items]
  poll-interval-ms: 100
  sites:
    a: { db: "${db.a}" }
    b: { db: "${db.b}" }
`;
}

async function startRunSite(me: Plan, dir: string, config: string): Promise<RunSite> {
  const file = join(dir, 'multisite.yaml');
  writeFileSync(file, config);
  const run = startProcess(process.execPath, [join(ROOT, 'dist/cli/main.js'), 'run', '--config', file]);
  const metricsUrl = `http://${me.host}:${me.metrics}`;
  await waitFor(`multisite run of ${me.name}`, async () => {
    if (run.child.exitCode !== null) throw new Error(`multisite run of ${me.name} exited:\n${run.output()}`);
    return (await fetch(`${metricsUrl}/healthz`).catch(() => undefined))?.ok === true;
  });
  const site: RunSite = {
    name: me.name,
    host: me.host,
    address: me.address,
    metricsUrl,
    run,
    pdns: undefined as unknown as Pdns,
    answer: async () => addresses(await query(me.host, site.pdns.port, NAME, 'A', { timeoutMs: 1000 })),
  };
  try {
    site.pdns = await startPdns({
      host: me.host,
      port: me.dns,
      apiPort: me.api,
      apiKey: `key-${me.api}`,
      backend: { kind: 'remote', connection: `unix:path=${dir}/backend.sock` },
      probeName: 'example.com.',
    });
  } catch (err) {
    await run.stop(1000);
    throw err;
  }
  return site;
}

export async function startRunCluster(): Promise<RunCluster> {
  const root = mkdtempSync(join(tmpdir(), 'ms-status-run-'));
  writeFileSync(join(root, 'peers.key'), `${PEERS_KEY}\n`, { mode: 0o600 });
  const stoppers: (() => Promise<unknown>)[] = [];
  const stop = async () => {
    for (const s of stoppers.reverse()) await s().catch(() => undefined);
    rmSync(root, { recursive: true, force: true });
  };
  try {
    const plan: Plan[] = [];
    for (const [i, name] of (['a', 'b'] as const).entries()) {
      const host = `127.0.0.${i + 2}`;
      const [hb, metrics, dns, api] = [
        await freePort(host),
        await freePort(host),
        await freePort(host),
        await freePort(host),
      ];
      plan.push({ name, host, address: `192.0.2.${i + 1}`, hb, metrics, dns, api });
    }
    const pair = await replicatedPair();
    stoppers.push(() => pair.drop());
    const web: WebProcess[] = [];
    for (const name of ['w1', 'w2']) {
      const w = await startWeb(name, root);
      web.push(w);
      stoppers.push(() => w.proc.stop(1000));
    }
    const agentPort = await freePort('127.0.0.1');
    const haproxy = await startHaproxy({ body: haproxyBody(web, agentPort, await freePort('127.0.0.1')) });
    stoppers.push(() => haproxy.stop());
    const sites: RunSite[] = [];
    for (const me of plan) {
      const dir = join(root, me.name);
      mkdirSync(dir);
      writeFileSync(join(dir, 'api-key'), `key-${me.api}\n`);
      writeFileSync(join(dir, 'status-page.key'), `${STATUS_PAGE_KEY}\n`, { mode: 0o600 });
      const parts = me.name === 'a' ? siteAParts(dir, haproxy, web, agentPort, pair.urls) : '';
      const site = await startRunSite(me, dir, siteConfig(me, plan, dir, parts));
      stoppers.push(
        () => site.run.stop(3000),
        () => site.pdns.stop(),
      );
      sites.push(site);
    }
    return { a: sites[0]!, b: sites[1]!, haproxy, web, db: pair.urls, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
