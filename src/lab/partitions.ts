import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { loadConfig, type LoadedConfig } from '../config/index.js';
import { generateHaproxyConfig } from '../haproxy-config/index.js';
import { startAgent, type RunningAgent } from '../haproxy-agent/index.js';
import { startPdns, type Pdns } from './pdns.js';
import { freePort, waitFor } from './ports.js';
import { startProcess, type Started } from './processes.js';
import { startTcpDelay } from './tcp-delay.js';
import { startSite as startBackend, type RunningSite as RunningBackend } from '../site/index.js';

/**
 * Two sites with partitions on loopback, every part real: per site two web servers answering
 * "SITE/SERVER", the agent, HAProxy with the generated configuration, the backend (peer heartbeats,
 * pool health, partition manager) and pdns_server. Used by the integration test, the benchmark
 * and `make demo`. p1 is active at a, p2 at b (mirror image).
 */

export interface LabWeb {
  name: string;
  host: string;
  port: number;
  kill(): Promise<void>;
  revive(): Promise<void>;
}

export interface LabSite {
  name: string;
  host: string;
  /** The load balancer's frontend. */
  lb: { host: string; port: number };
  dns: { host: string; port: number };
  metrics: { host: string; port: number };
  socket: string;
  configFile: string;
  loaded: LoadedConfig;
  haproxyConfig: string;
  web: LabWeb[];
  agent: RunningAgent;
  haproxy: Started;
  backend: RunningBackend;
  pdns: Pdns;
}

export interface PartitionLab {
  dir: string;
  sites: LabSite[];
  site(name: string): LabSite;
  stop(): Promise<void>;
}

export interface LabOptions {
  /** Loopback addresses of the two sites (default 127.0.0.2 and 127.0.0.3). */
  hosts?: [string, string];
  /** failback of p1 (p2 is `auto`); default manual. */
  failback?: 'manual' | 'auto';
  holdDownMs?: number;
  /**
   * One-way delay (ms) on the inter-site link: each site's `inter-site` address is a relay
   * adding it (src/lab/tcp-delay.ts). Only forwarded requests and remote checks cross it.
   */
  wanDelayMs?: number;
  /** Heartbeat period (ms). */
  periodMs?: number;
  /**
   * Web-server check and peer-probe timeout (ms). The default (300 ms checks, 200 ms probes)
   * suits benchmarks on an idle machine; tests on a loaded one pass more, so that a slow answer
   * is not taken for a dead server (a killed one is refused at once either way).
   */
  timeoutMs?: number;
  logLevel?: string;
  /** Extra YAML under `partitions:` (e.g. tables). */
  replication?: string;
}

const SITES = ['a', 'b'] as const;

interface SitePorts {
  lb: number;
  agent: number;
  dns: number;
  api: number;
  metrics: number;
  heartbeat: number;
  web: number[];
  wan: number;
}

/** What every step of the lab reads: where it lives, its addresses and ports, the options. */
interface LabContext {
  dir: string;
  hosts: [string, string];
  ports: SitePorts[];
  opts: LabOptions;
  /** Run in reverse order by stop(). */
  stops: (() => Promise<unknown>)[];
}

export async function startPartitionLab(opts: LabOptions = {}): Promise<PartitionLab> {
  const hosts = opts.hosts ?? ['127.0.0.2', '127.0.0.3'];
  const dir = mkdtempSync(join(tmpdir(), 'ms-partitions-'));
  const stops: (() => Promise<unknown>)[] = [];
  const stopAll = async () => {
    for (const s of stops.reverse()) await s().catch(() => undefined);
    stops.length = 0;
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    writeFileSync(join(dir, 'peers.key'), 'lab-shared-key-0123456789abcdef\n');
    const ports: SitePorts[] = [];
    for (const host of hosts) ports.push(await sitePorts(host));
    SITES.forEach((_, i) => mkdirSync(siteDir(dir, i), { recursive: true }));
    const ctx: LabContext = { dir, hosts, ports, opts, stops };
    if (opts.wanDelayMs) {
      for (const [i, h] of hosts.entries()) {
        const wan = await startTcpDelay(
          { host: h, port: ports[i]!.wan },
          { host: h, port: ports[i]!.lb },
          opts.wanDelayMs,
        );
        stops.push(() => wan.stop());
      }
    }
    const sites: LabSite[] = [];
    for (const i of SITES.keys()) sites.push(await startLoadBalancing(ctx, i));
    // Backends after both load balancers exist (the manager sets their servers at start), one right
    // after the other: a backend alone would verify its silent peer down and take its partitions.
    for (const s of sites) {
      const logger = pino({ level: opts.logLevel ?? process.env.TEST_LOG ?? 'silent' });
      s.backend = await startBackend(s.loaded, { logger, registry: new Registry() });
      stops.push(() => s.backend.stop());
    }
    for (const [i, s] of sites.entries()) {
      s.pdns = await startPdns({
        host: s.host,
        port: ports[i]!.dns,
        apiPort: ports[i]!.api,
        apiKey: apiKeyOf(ports[i]!),
        backend: { kind: 'remote', connection: `unix:path=${s.backend.connectors[0]!.address}` },
        probeName: 'example.com',
      });
      stops.push(() => s.pdns.stop());
    }
    await partitionsServed(sites);
    return { dir, sites, site: (n) => sites.find((s) => s.name === n)!, stop: stopAll };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

async function sitePorts(host: string): Promise<SitePorts> {
  return {
    lb: await freePort(host),
    agent: await freePort(host),
    dns: await freePort(host),
    api: await freePort(host),
    metrics: await freePort(host),
    heartbeat: await freePort(host),
    web: [await freePort(host), await freePort(host)],
    wan: await freePort(host),
  };
}

const siteDir = (dir: string, i: number) => join(dir, SITES[i]!);
const haproxySocket = (dir: string, i: number) => join(siteDir(dir, i), 'haproxy.sock');
const apiKeyOf = (p: SitePorts) => `lab-api-${p.api}`;

/** Site i's web servers, agent and HAProxy, started; its backend and PowerDNS come later. */
async function startLoadBalancing(ctx: LabContext, i: number): Promise<LabSite> {
  const { dir, hosts, ports, opts, stops } = ctx;
  const site = SITES[i]!;
  const h = hosts[i]!;
  const p = ports[i]!;
  const configFile = join(siteDir(dir, i), 'multisite.yaml');
  writeFileSync(join(siteDir(dir, i), 'api.key'), `${apiKeyOf(p)}\n`);
  writeFileSync(configFile, labConfig(ctx, i));
  const loaded = loadConfig(configFile);
  const logger = pino({ level: opts.logLevel ?? process.env.TEST_LOG ?? 'silent' });
  const web: LabWeb[] = [];
  for (const [k, port] of p.web.entries()) {
    const w = await startNamedWeb(site, `w${k + 1}`, h, port);
    stops.push(() => w.kill());
    web.push(w);
  }
  const agent = await startAgent(loaded, { logger, registry: new Registry() });
  stops.push(() => agent.stop());
  const haproxyConfig = generateHaproxyConfig(loaded.config);
  const cfgPath = join(siteDir(dir, i), 'haproxy.cfg');
  writeFileSync(cfgPath, haproxyConfig);
  const haproxy = startProcess('haproxy', ['-db', '-f', cfgPath]);
  stops.push(() => haproxy.stop());
  await waitFor(`haproxy of site ${site}`, async () => {
    if (haproxy.child.exitCode !== null) throw new Error(`haproxy exited:\n${haproxy.output().slice(-2000)}`);
    return (await httpGet(h, p.lb, '/multisite/lb-health')).status > 0;
  });
  return {
    name: site,
    host: h,
    lb: { host: h, port: p.lb },
    dns: { host: h, port: p.dns },
    metrics: { host: h, port: p.metrics },
    socket: haproxySocket(dir, i),
    configFile,
    loaded,
    haproxyConfig,
    web,
    agent,
    haproxy,
    backend: undefined as unknown as RunningBackend,
    pdns: undefined as unknown as Pdns,
  };
}

/** Ready: every site serves both partitions through its load balancer. */
async function partitionsServed(sites: LabSite[]): Promise<void> {
  for (const s of sites) {
    for (const part of ['p1', 'p2']) {
      await waitFor(
        `${part} through ${s.name}'s load balancer`,
        async () => (await httpGet(s.host, s.lb.port, '/', `${part}.example.com`)).status === 200,
      );
    }
  }
}

/** Site i's multisite.yaml. */
function labConfig(ctx: LabContext, i: number): string {
  const { dir, hosts, ports, opts } = ctx;
  const h = hosts[i]!;
  const p = ports[i]!;
  const d = siteDir(dir, i);
  return `site: ${SITES[i]}
sites:
${SITES.map(
  (s, j) => `  - name: ${s}
    heartbeat: ["${hosts[j]}:${ports[j]!.heartbeat}"]
    status-url: ["http://${hosts[j]}:${ports[j]!.metrics}/status"]
    lb-address: ["${hosts[j]}:${ports[j]!.lb}"]`,
).join('\n')}
backend:
  socket: ${join(d, 'backend.sock')}
  control: ${join(d, 'control.sock')}
  state-file: ${join(d, 'state.json')}
  metrics: ${h}:${p.metrics}
  log-level: ${opts.logLevel ?? 'warn'}
pdns:
  url: http://${h}:${p.api}
  api-key-file: ${join(d, 'api.key')}
  retries: 1
zones:
  - name: example.com
    records: ["@ 3600 IN SOA ns1 hostmaster 1 3600 600 86400 60", "@ 3600 IN NS ns1", "ns1 IN A ${hosts[0]}"]
balanced:
  - { name: p1.example.com, policy: failover, ttl: 5, addresses: { a: [${hosts[0]}], b: [${hosts[1]}] } }
  - { name: p2.example.com, policy: failover, ttl: 5, addresses: { a: [${hosts[0]}], b: [${hosts[1]}] } }
health:
  load-balancers: [${haproxySocket(dir, i)}]
  backend: web
  interval-ms: 100
peers:
  listen: ${h}:${p.heartbeat}
  key-file: ${join(dir, 'peers.key')}
  period-ms: ${opts.periodMs ?? 100}
  probe-timeout-ms: ${opts.timeoutMs ?? 200}
  probe-attempts: 1
  recover-periods: 3
agent:
  listen: ${h}:${p.agent}
  control: ${join(d, 'agent.sock')}
  state-file: ${join(d, 'agent-state.json')}
  log-level: ${opts.logLevel ?? 'warn'}
  servers:
${p.web
  .map(
    (port, k) => `    - name: web/w${k + 1}
      address: ${h}:${port}
      checks: { message: { type: http, path: /health, interval-ms: 100, timeout-ms: ${opts.timeoutMs ?? 1000}, rise: 1, fall: 2 } }`,
  )
  .join('\n')}
${partitionsConfig(ctx, i)}`;
}

/** The `partitions:` section (the same at both sites but for the state file). */
function partitionsConfig(ctx: LabContext, i: number): string {
  const { dir, hosts, ports, opts } = ctx;
  return `partitions:
  state-file: ${join(siteDir(dir, i), 'partitions.json')}
  remote-check-ms: 200
  hold-down-ms: ${opts.holdDownMs ?? 2000}
  start-grace-ms: 1000
  load-balancers:
${SITES.map(
  (s, j) => `    ${s}:
      listen: ${hosts[j]}:${ports[j]!.lb}${
        opts.wanDelayMs
          ? `
      inter-site: ${hosts[j]}:${ports[j]!.wan}
      forward-source: ${hosts[j]}`
          : ''
      }
      stats-socket: ${haproxySocket(dir, j)}
      agent: ${hosts[j]}:${ports[j]!.agent}
      agent-inter-ms: 200
      servers:
${ports[j]!.web.map((port, k) => `        - { name: w${k + 1}, address: "${hosts[j]}:${port}" }`).join('\n')}`,
).join('\n')}
  list:
    - { name: p1, active: a, hosts: [p1.example.com], path-prefixes: [/p1/], tenants: [t1], dns-name: p1.example.com, failback: ${opts.failback ?? 'manual'} }
    - { name: p2, active: b, hosts: [p2.example.com], path-prefixes: [/p2/], tenants: [t2], dns-name: p2.example.com, failback: auto }
${opts.replication ?? ''}`;
}

/** A web server answering every request with "SITE/SERVER" (and /health 200). */
export async function startNamedWeb(site: string, name: string, host: string, port: number): Promise<LabWeb> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    res.setHeader('x-origin', `${site}/${name}`);
    res.end(req.url === '/health' ? 'ok\n' : `${site}/${name}\n`);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  await listen();
  let up = true;
  return {
    name,
    host,
    port,
    async kill() {
      if (!up) return;
      up = false;
      const closed = new Promise((r) => server.close(r));
      for (const s of sockets) s.destroy();
      await closed;
    },
    async revive() {
      if (up) return;
      await listen();
      up = true;
    },
  };
}

export interface HttpResult {
  status: number;
  body: string;
  servedBy?: string;
  ms: number;
}

/** One GET with a Host header (status 0 when it fails); a new connection each time, from `localAddress` if given. */
export function httpGet(
  host: string,
  port: number,
  path: string,
  hostHeader = 'lab',
  headers: Record<string, string> = {},
  timeoutMs = 2000,
  localAddress?: string,
): Promise<HttpResult> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const req = request(
      {
        host,
        port,
        path,
        headers: { host: hostHeader, ...headers },
        agent: false,
        timeout: timeoutMs,
        ...(localAddress ? { localAddress } : {}),
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => {
          const sb = res.headers['x-served-by'];
          resolve({
            status: res.statusCode ?? 0,
            body,
            ms: performance.now() - t0,
            ...(typeof sb === 'string' ? { servedBy: sb } : {}),
          });
        });
        res.on('error', () => resolve({ status: 0, body, ms: performance.now() - t0 }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve({ status: 0, body: '', ms: performance.now() - t0 }));
    req.end();
  });
}
