import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { loadConfig } from '../../../src/config/index.js';
import { startSite as startSiteDaemon, type RunningSite } from '../../../src/site/index.js';
import { freePort } from './ports.js';
import { startPdns, type Pdns } from './pdns.js';

export interface SiteUnderTest {
  dir: string;
  configFile: string;
  socket: string;
  control: string;
  backend: RunningSite;
  pdns: Pdns;
  /** The backend's metrics registry: a test waits on a counter instead of sleeping. */
  registry: Registry;
  /** One sample of a metric (0 when absent), labels matched exactly. */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  stop(): Promise<void>;
}

export interface SiteOptions {
  host: string;
  /** The YAML config, with {{DIR}}, {{API_URL}} placeholders filled in. */
  config: string;
  connector?: 'unix' | 'http';
  pdnsSettings?: Record<string, string | number>;
}

/**
 * One site's DNS: our backend (in this process) and a real pdns_server using it. Everything is
 * in a temporary directory removed on stop.
 */
export async function startSite(opts: SiteOptions): Promise<SiteUnderTest> {
  const dir = mkdtempSync(join(tmpdir(), 'ms-site-'));
  const apiPort = await freePort(opts.host);
  const apiKey = `key-${apiPort}`;
  writeFileSync(join(dir, 'api-key'), `${apiKey}\n`);
  const httpPort = await freePort(opts.host);
  const configText = opts.config
    .replaceAll('{{DIR}}', dir)
    .replaceAll('{{API_URL}}', `http://${opts.host}:${apiPort}`)
    .replaceAll('{{HTTP}}', `${opts.host}:${httpPort}`);
  const configFile = join(dir, 'multisite.yaml');
  writeFileSync(configFile, configText);
  const loaded = loadConfig(configFile);
  const registry = new Registry();
  const backend = await startSiteDaemon(loaded, {
    logger: pino({ level: process.env.TEST_LOG ?? 'silent' }),
    registry,
  });
  const socket = backend.connectors[0]!.address;
  const connection =
    opts.connector === 'http'
      ? `http:url=http://${opts.host}:${httpPort}/dns,post=1,post_json=1`
      : `unix:path=${socket}`;
  let pdns: Pdns;
  try {
    pdns = await startPdns({
      host: opts.host,
      backend: { kind: 'remote', connection },
      apiPort,
      apiKey,
      settings: opts.pdnsSettings,
      probeName: loaded.config.zones[0]?.name,
    });
  } catch (err) {
    await backend.stop();
    throw err;
  }
  return {
    dir,
    configFile,
    socket,
    control: loaded.config.backend.control.startsWith('/')
      ? loaded.config.backend.control
      : join(dir, loaded.config.backend.control),
    backend,
    pdns,
    registry,
    async metric(name, labels = {}) {
      const values = (await registry.getSingleMetric(name)?.get())?.values ?? [];
      const hit = values.find((v) => Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want));
      return hit?.value ?? 0;
    },
    async stop() {
      await Promise.allSettled([pdns.stop(), backend.stop()]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
