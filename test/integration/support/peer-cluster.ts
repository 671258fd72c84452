import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startPdns, type Pdns } from '../../../src/lab/pdns.js';
import { freePort, waitFor } from '../../../src/lab/ports.js';
import { startProcess, type Started } from '../../../src/lab/processes.js';
import { startUdpProxy, type UdpProxy } from '../../../src/lab/udp-proxy.js';
import { EXAMPLE_ZONE_YAML } from './example-zone.js';
import { addresses, query } from './dns.js';

/**
 * Sites on 127.0.0.2, .3, ... each with our backend as its own process (`node dist/cli/main.js
 * backend`, so it can be SIGKILLed or SIGSTOPped) and a real pdns_server using it. Every heartbeat
 * from X to Y goes through a UDP proxy the test controls (`proxy(X, Y).lossRate`).
 */

export const KEY = 'integration-test-peers-key-0123456789';
export const NAME = 'www.example.com.';

export interface ClusterSite {
  name: string;
  host: string;
  address: string;
  hbPort: number;
  metricsPort: number;
  dir: string;
  configFile: string;
  pdns: Pdns;
  backend: Started;
  /** (Re)starts the backend process and waits for its /healthz. */
  startBackend(): Promise<void>;
  /** Every address of the balanced name in this site's PowerDNS answer, in order. */
  answer(): Promise<string[]>;
  status(): Promise<StatusJson>;
  metric(name: string, labels?: Record<string, string>): Promise<number>;
}

export interface StatusJson {
  site: string;
  sites: {
    site: string;
    usable: boolean;
    reason: string;
    since: number;
    peer?: { state: string; reason: string; lastHeartbeat?: number; summary?: { replicationLagMs?: number } };
  }[];
}

export interface PeerCluster {
  sites: ClusterSite[];
  site(name: string): ClusterSite;
  proxy(from: string, to: string): UdpProxy;
  stop(): Promise<void>;
}

export interface ClusterOptions {
  names?: string[];
  periodMs?: number;
  logLevel?: string;
  /** Extra `peers:` lines. */
  peers?: Record<string, string | number>;
  /** Extra `balanced:` entries (YAML flow maps, one per line); ADDRESSES stands for every site's address. */
  balanced?: string[];
  /** Extra top-level YAML (e.g. a `probes:` section). */
  extra?: string;
}

const ROOT = join(import.meta.dirname, '../../..');

export async function startPeerCluster(opts: ClusterOptions = {}): Promise<PeerCluster> {
  const names = opts.names ?? ['a', 'b', 'c'];
  const root = mkdtempSync(join(tmpdir(), 'ms-peers-'));
  writeFileSync(join(root, 'peers.key'), `${KEY}\n`, { mode: 0o600 });
  const plan = await Promise.all(
    names.map(async (name, i) => {
      const host = `127.0.0.${i + 2}`;
      return {
        name,
        host,
        address: `192.0.2.${i + 1}`,
        hbPort: await freePort(host),
        metricsPort: await freePort(host),
        dnsPort: await freePort(host),
        apiPort: await freePort(host),
      };
    }),
  );
  const proxies = new Map<string, UdpProxy>();
  const sites: ClusterSite[] = [];
  const stopAll = async () => {
    await Promise.allSettled(sites.flatMap((s) => [s.backend?.stop(1000), s.pdns?.stop()]));
    await Promise.allSettled([...proxies.values()].map((p) => p.stop()));
    rmSync(root, { recursive: true, force: true });
  };
  try {
    for (const from of plan) {
      for (const to of plan) {
        if (from !== to)
          proxies.set(`${from.name}>${to.name}`, await startUdpProxy(from.host, { host: to.host, port: to.hbPort }));
      }
    }
    for (const me of plan) {
      const dir = join(root, me.name);
      mkdirSync(dir);
      writeFileSync(join(dir, 'api-key'), `key-${me.apiPort}\n`);
      const siteLines = plan.map((s) => {
        const relay = proxies.get(`${me.name}>${s.name}`);
        const hb = relay ? `${relay.host}:${relay.port}` : `${s.host}:${s.hbPort}`;
        return `  - { name: ${s.name}, heartbeat: ["${hb}"], status-url: ["http://${s.host}:${s.metricsPort}/status"] }`;
      });
      const extra = Object.entries(opts.peers ?? {}).map(([k, v]) => `  ${k}: ${v}`);
      const everyAddress = `{ ${plan.map((s) => `${s.name}: [${s.address}]`).join(', ')} }`;
      const extraBalanced = (opts.balanced ?? []).map((b) => `  - ${b.replace('ADDRESSES', everyAddress)}`).join('\n');
      const config = `site: ${me.name}
sites:
${siteLines.join('\n')}
backend:
  socket: ${dir}/backend.sock
  control: ${dir}/control.sock
  state-file: ${dir}/state.json
  metrics: ${me.host}:${me.metricsPort}
  log-level: ${opts.logLevel ?? 'info'}
pdns:
  url: http://${me.host}:${me.apiPort}
  api-key-file: api-key
peers:
  listen: ${me.host}:${me.hbPort}
  key-file: ../peers.key
  period-ms: ${opts.periodMs ?? 1000}
${extra.join('\n')}
${EXAMPLE_ZONE_YAML}
balanced:
  - name: www.example.com
    ttl: 300
    addresses: { ${plan.map((s) => `${s.name}: [${s.address}]`).join(', ')} }
${extraBalanced}
${opts.extra ?? ''}
`;
      const configFile = join(dir, 'multisite.yaml');
      writeFileSync(configFile, config);
      const metricsUrl = `http://${me.host}:${me.metricsPort}`;
      const site: ClusterSite = {
        ...me,
        dir,
        configFile,
        pdns: undefined as unknown as Pdns,
        backend: undefined as unknown as Started,
        async startBackend() {
          site.backend = startProcess(process.execPath, [
            join(ROOT, 'dist/cli/main.js'),
            'backend',
            '--config',
            configFile,
          ]);
          const proc = site.backend;
          let exited = false;
          void proc.exited.then(() => (exited = true));
          await waitFor(
            `backend ${me.name} /healthz`,
            async () => exited || ((await fetch(`${metricsUrl}/healthz`)).ok && existsSync(join(dir, 'backend.sock'))),
          );
          if (exited) throw new Error(`backend ${me.name} exited:\n${proc.output().slice(-3000)}`);
        },
        async answer() {
          return addresses(await query(me.host, site.pdns.port, NAME, 'A', { timeoutMs: 1000 }));
        },
        async status() {
          return (await (await fetch(`${metricsUrl}/status`)).json()) as StatusJson;
        },
        async metric(name, labels = {}) {
          const text = await (await fetch(`${metricsUrl}/metrics`)).text();
          let sum = 0;
          for (const line of text.split('\n')) {
            const m = /^([a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$/.exec(line);
            if (!m || m[1] !== name) continue;
            if (Object.entries(labels).every(([k, v]) => (m[2] ?? '').includes(`${k}="${v}"`))) sum += Number(m[3]);
          }
          return sum;
        },
      };
      sites.push(site);
      await site.startBackend();
      site.pdns = await startPdns({
        host: me.host,
        port: me.dnsPort,
        apiPort: me.apiPort,
        apiKey: `key-${me.apiPort}`,
        backend: { kind: 'remote', connection: `unix:path=${dir}/backend.sock` },
        probeName: 'example.com.',
      });
    }
  } catch (err) {
    await stopAll();
    throw err;
  }
  return {
    sites,
    site: (name) => sites.find((s) => s.name === name)!,
    proxy: (from, to) => proxies.get(`${from}>${to}`)!,
    stop: stopAll,
  };
}
