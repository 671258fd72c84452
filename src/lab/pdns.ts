import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { query } from './dns-probe.js';
import { freePort, waitFor } from './ports.js';
import { startProcess, type Started } from './processes.js';

export interface PdnsOptions {
  /** 127.0.0.x to listen on. */
  host: string;
  /** `remote` with a connection string, or `bind` with named.conf zones. */
  backend: { kind: 'remote'; connection: string } | { kind: 'bind'; zones: { name: string; file: string }[] };
  /** Extra pdns.conf lines, e.g. "cache-ttl=0". */
  settings?: Record<string, string | number>;
  /** Name to query for readiness (any answer counts). */
  probeName?: string;
  /** Pre-chosen DNS and API ports and key (when a backend config must name them first). */
  port?: number;
  apiPort?: number;
  apiKey?: string;
}

export interface Pdns {
  host: string;
  port: number;
  apiUrl: string;
  apiKey: string;
  dir: string;
  proc: Started;
  stop(): Promise<void>;
}

/**
 * Starts a real pdns_server on loopback (no daemon, no guardian, no-shuffle, packet cache on,
 * API on) and waits until it answers DNS and its API. Its directory is removed on stop.
 */
export async function startPdns(opts: PdnsOptions): Promise<Pdns> {
  // Ports we picked can be taken by another process between the pick and pdns_server's bind
  // (two test suites side by side): then pick again. Ports the caller chose are tried once.
  const attempts = opts.port === undefined && opts.apiPort === undefined ? 3 : 1;
  for (let attempt = 1; ; attempt++) {
    try {
      return await startPdnsOnce(opts);
    } catch (err) {
      if (attempt >= attempts || !/Address already in use/.test((err as Error).message)) throw err;
    }
  }
}

async function startPdnsOnce(opts: PdnsOptions): Promise<Pdns> {
  const dir = mkdtempSync(join(tmpdir(), 'ms-pdns-'));
  const port = opts.port ?? (await freePort(opts.host));
  const apiPort = opts.apiPort ?? (await freePort(opts.host));
  const apiKey = opts.apiKey ?? `test-key-${port}`;
  const lines: Record<string, string | number> = {
    'local-address': opts.host,
    'local-port': port,
    'socket-dir': dir,
    'no-shuffle': 'yes',
    api: 'yes',
    'api-key': apiKey,
    webserver: 'yes',
    'webserver-address': opts.host,
    'webserver-port': apiPort,
    'webserver-allow-from': '127.0.0.0/8',
    'disable-syslog': 'yes',
    loglevel: 4,
    'distributor-threads': 3,
    'zone-cache-refresh-interval': 0,
    // No network here: never look up the security status over DNS.
    'security-poll-suffix': '',
  };
  if (opts.backend.kind === 'remote') {
    lines.launch = 'remote';
    lines['remote-connection-string'] = opts.backend.connection;
  } else {
    // $INCLUDE paths are relative to `directory`: the zone file's own, as operators expect.
    const directory = dirname(opts.backend.zones[0]?.file ?? dir);
    const named = [
      `options { directory "${directory}"; };`,
      ...opts.backend.zones.map((z) => `zone "${z.name}" { type master; file "${z.file}"; };`),
    ].join('\n');
    writeFileSync(join(dir, 'named.conf'), `${named}\n`);
    lines.launch = 'bind';
    lines['bind-config'] = join(dir, 'named.conf');
  }
  Object.assign(lines, opts.settings ?? {});
  writeFileSync(
    join(dir, 'pdns.conf'),
    Object.entries(lines)
      .map(([k, v]) => `${k}=${v}`)
      .join('\n') + '\n',
  );
  const proc = startProcess('pdns_server', [`--config-dir=${dir}`, '--daemon=no', '--guardian=no']);
  const apiUrl = `http://${opts.host}:${apiPort}`;
  const stop = async () => {
    await proc.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  // An exit ends the wait at once (a taken port is fatal to pdns_server) instead of at its deadline.
  const exited = proc.exited.then((code) => {
    throw new Error(`pdns_server exited (${code}):\n${proc.output().slice(-3000)}`);
  });
  exited.catch(() => {});
  try {
    await Promise.race([exited, waitUntilServing(opts, port, apiUrl, apiKey, proc)]);
  } catch (err) {
    await stop();
    throw err;
  }
  return { host: opts.host, port, apiUrl, apiKey, dir, proc, stop };
}

async function waitUntilServing(opts: PdnsOptions, port: number, apiUrl: string, apiKey: string, proc: Started) {
  await waitFor('pdns_server to answer DNS', async () => {
    if (proc.child.exitCode !== null) return true; // the race is already lost to `exited`
    await query(opts.host, port, opts.probeName ?? 'readiness.invalid.', 'SOA', { timeoutMs: 200 });
    return true;
  });
  await waitFor('the PowerDNS API', async () => {
    if (proc.child.exitCode !== null) return true;
    const res = await fetch(`${apiUrl}/api/v1/servers/localhost`, { headers: { 'X-API-Key': apiKey } });
    return res.ok;
  });
}
