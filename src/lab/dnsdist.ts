import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dnsdistConf } from '../pdns-backend/index.js';
import { hashApiKey } from '../site/index.js';
import { query } from './dns-probe.js';
import { freePort, waitFor } from './ports.js';
import { startProcess, type Started } from './processes.js';

export interface DnsdistOptions {
  /** 127.0.0.x to listen on (DNS and web server). */
  host: string;
  /** PowerDNS's DNS address behind it. */
  pdns: { host: string; port: number };
  /** Names never cached (per-query policies). */
  uncachedNames?: string[];
  /** UDP listener threads. */
  listeners?: number;
  /** Name to query for readiness (any answer counts). */
  probeName?: string;
  /** Pre-chosen web server port and key (when a backend config must name them first). */
  webPort?: number;
  apiKey?: string;
}

export interface Dnsdist {
  host: string;
  port: number;
  /** Its web server, where multisite's flush endpoint is. */
  url: string;
  apiKey: string;
  proc: Started;
  stop(): Promise<void>;
}

/** Starts a real dnsdist on loopback with the config multisite generates, and waits until it answers DNS and HTTP. */
export async function startDnsdist(opts: DnsdistOptions): Promise<Dnsdist> {
  const dir = mkdtempSync(join(tmpdir(), 'ms-dnsdist-'));
  const port = await freePort(opts.host);
  const webPort = opts.webPort ?? (await freePort(opts.host));
  const apiKey = opts.apiKey ?? `dnsdist-key-${port}`;
  const conf = join(dir, 'dnsdist.conf');
  writeFileSync(
    conf,
    dnsdistConf({
      listen: `${opts.host}:${port}`,
      pdns: `${opts.pdns.host}:${opts.pdns.port}`,
      webserver: `${opts.host}:${webPort}`,
      apiKeyHash: hashApiKey(apiKey),
      uncachedNames: opts.uncachedNames ?? [],
      listeners: opts.listeners ?? 1,
    }),
  );
  const proc = startProcess('dnsdist', ['--supervised', '--disable-syslog', '-C', conf]);
  const url = `http://${opts.host}:${webPort}`;
  const stop = async () => {
    await proc.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor('dnsdist to answer DNS', async () => {
      if (proc.child.exitCode !== null) throw new Error(`dnsdist exited:\n${proc.output().slice(-3000)}`);
      await query(opts.host, port, opts.probeName ?? 'readiness.invalid.', 'SOA', { timeoutMs: 200 });
      return true;
    });
    await waitFor('the dnsdist web server', async () => (await fetch(`${url}/`)).status > 0);
  } catch (err) {
    await stop();
    throw err;
  }
  return { host: opts.host, port, url, apiKey, proc, stop };
}
