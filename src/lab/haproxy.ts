import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from './ports.js';
import { startProcess, type Started } from './processes.js';

export interface HaproxyOptions {
  /** Everything after `global`/`defaults`: frontends, backends, listens. */
  body: string;
  /** Extra `global` lines. */
  global?: string[];
  /** Extra `defaults` lines (mode http and short timeouts are set). */
  defaults?: string[];
  /**
   * The `ring` server state changes are logged to (docs/agent.md), followed by site health with
   * `show events RING -w`; default 'multisite'. false: no ring (site health then polls only).
   */
  ring?: string | false;
}

export interface Haproxy {
  dir: string;
  /** The admin Runtime API socket (`stats socket ... level admin`). */
  socket: string;
  configFile: string;
  proc: Started;
  stop(): Promise<void>;
}

/**
 * Starts a real haproxy (foreground, `-db`) with a generated config and an admin stats socket in a
 * temporary directory; resolves when the socket answers `show info`. Stopped and removed on stop,
 * and on any failure to start.
 */
export async function startHaproxy(opts: HaproxyOptions): Promise<Haproxy> {
  const dir = mkdtempSync(join(tmpdir(), 'ms-haproxy-'));
  const socket = join(dir, 'haproxy.sock');
  const configFile = join(dir, 'haproxy.cfg');
  const ring = opts.ring ?? 'multisite';
  const text = [
    'global',
    `    stats socket ${socket} level admin`,
    '    stats timeout 10s',
    ...(ring ? [`    log ring@${ring} local0 notice`] : []),
    ...(opts.global ?? []).map((l) => `    ${l}`),
    '',
    ...(ring ? [`ring ${ring}`, '    format rfc5424', '    maxlen 1200', '    size 65536', ''] : []),
    'defaults',
    '    mode http',
    ...(ring ? ['    log global'] : []),
    '    timeout connect 1s',
    '    timeout client 5s',
    '    timeout server 5s',
    '    timeout check 1s',
    ...(opts.defaults ?? []).map((l) => `    ${l}`),
    '',
    opts.body,
    '',
  ].join('\n');
  writeFileSync(configFile, text);
  const proc = startProcess('haproxy', ['-db', '-f', configFile]);
  const stop = async () => {
    await proc.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor('haproxy to answer on its stats socket', async () => {
      if (proc.child.exitCode !== null) throw new Error(`haproxy exited:\n${proc.output().slice(-3000)}`);
      return (await ask(socket, 'show info')).includes('Name: HAProxy');
    });
  } catch (err) {
    await stop();
    throw err;
  }
  return { dir, socket, configFile, proc, stop };
}

/** A stats socket command for readiness (the typed client is src/haproxy; this stays dependency-free). */
function ask(socket: string, command: string): Promise<string> {
  return new Promise((resolve) => {
    let out = '';
    const c = createConnection(socket);
    c.setTimeout(500, () => c.destroy());
    c.on('connect', () => c.write(`${command}\n`));
    c.on('data', (d) => (out += d.toString()));
    c.on('close', () => resolve(out));
    c.on('error', () => resolve(''));
  });
}

/** A database of its own on the real PostgreSQL at 127.0.0.1:5432; its `server_info` names the db server. */
export async function createKeywordDatabase(
  name: string,
  serverName: string,
): Promise<{ rename(to: string): Promise<void>; drop(): Promise<void> }> {
  const { default: pg } = await import('pg');
  const pgClient = pg.Client;
  const admin = () => new pgClient({ host: '127.0.0.1', user: 'postgres', database: 'postgres' });
  const run = async (sql: string, database = 'postgres') => {
    const c = database === 'postgres' ? admin() : new pgClient({ host: '127.0.0.1', user: 'postgres', database });
    await c.connect();
    try {
      await c.query(sql);
    } finally {
      await c.end();
    }
  };
  await run(`DROP DATABASE IF EXISTS ${name}`);
  await run(`DROP DATABASE IF EXISTS ${name}_broken`);
  await run(`CREATE DATABASE ${name}`);
  await run(`CREATE TABLE server_info (name text NOT NULL); INSERT INTO server_info VALUES ('${serverName}')`, name);
  let current = name;
  /** Renames the database (web servers' /dbcheck then fails): other sessions are terminated first. */
  const rename = async (to: string) => {
    for (let attempt = 0; ; attempt++) {
      try {
        await run(
          `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${current}' AND pid <> pg_backend_pid()`,
        );
        await run(`ALTER DATABASE ${current} RENAME TO ${to}`);
        current = to;
        return;
      } catch (err) {
        if (attempt > 50 || !/being accessed by other users/.test((err as Error).message)) throw err;
      }
    }
  };
  return {
    rename,
    drop: async () => {
      await run(`DROP DATABASE IF EXISTS ${current} WITH (FORCE)`);
    },
  };
}

export interface WebServerOptions {
  host: string;
  port: number;
  /** PostgreSQL database the /dbcheck page queries (`SELECT name FROM server_info`). */
  database: string;
  pgHost?: string;
  pgUser?: string;
}

export interface WebServer {
  host: string;
  port: number;
  /** The number /load answers. */
  load: number;
  /** Requests served, by "PATH UA" (the agent's checks say `multisite-agent`, HAProxy's none). */
  hits: Map<string, number>;
  /** Stops listening and drops every connection (the process "dies"). */
  kill(): Promise<void>;
  /** Listens again on the same address. */
  revive(): Promise<void>;
}

/**
 * A small web server of a pool: `/health` answers 200; `/dbcheck` is the keyword page: it connects
 * to PostgreSQL (a new connection per request, so the database can be renamed under it), queries
 * the database server's name and prints it; `/load` answers a number.
 */
export async function startWebServer(opts: WebServerOptions): Promise<WebServer> {
  const { default: pg } = await import('pg');
  const { createServer } = await import('node:http');
  const sockets = new Set<import('node:net').Socket>();
  const state = { load: 0 };
  const hits = new Map<string, number>();
  const server = createServer((req, res) => {
    const key = `${req.url} ${req.headers['user-agent'] ?? '-'}`;
    hits.set(key, (hits.get(key) ?? 0) + 1);
    if (req.url === '/health') return res.end('ok\n');
    if (req.url === '/load') return res.end(`${state.load}\n`);
    if (req.url === '/dbcheck') {
      const client = new pg.Client({
        host: opts.pgHost ?? '127.0.0.1',
        user: opts.pgUser ?? 'postgres',
        database: opts.database,
        connectionTimeoutMillis: 2000,
      });
      client.on('error', () => {});
      client
        .connect()
        .then(() => client.query<{ name: string }>('SELECT name FROM server_info'))
        .then(
          (r) => {
            res.end(`<html><body>database server: ${r.rows[0]?.name ?? '(none)'}</body></html>\n`);
          },
          (err: Error) => {
            res.writeHead(500);
            res.end(`database error: ${err.message}\n`);
          },
        )
        .finally(() => void client.end().catch(() => {}));
      return;
    }
    res.writeHead(404);
    res.end();
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port, opts.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  await listen();
  return {
    host: opts.host,
    port: opts.port,
    get load() {
      return state.load;
    },
    set load(v: number) {
      state.load = v;
    },
    hits,
    async kill() {
      const closed = new Promise((r) => server.close(r));
      for (const s of sockets) s.destroy();
      await closed;
    },
    revive: listen,
  };
}

/**
 * The agent config of a lab pool: web servers named web/w1.., a message and a keyword check each
 * (keyword: the database server's name "db1"), checks every `intervalMs` with `fall`, rise 2.
 */
export function agentConfigYaml(opts: {
  port: number;
  dir: string;
  web: { port: number }[];
  intervalMs: number;
  fall: number;
}): string {
  const servers = opts.web.map(
    (w, i) => `    - name: web/w${i + 1}
      address: 127.0.0.1:${w.port}
      checks:
        message: { path: /health, interval-ms: ${opts.intervalMs}, timeout-ms: 500, rise: 2, fall: ${opts.fall} }
        keyword: { path: /dbcheck, interval-ms: ${opts.intervalMs}, timeout-ms: 800, rise: 2, fall: ${opts.fall} }`,
  );
  return `site: a
sites: [{ name: a }, { name: b }]
agent:
  listen: 127.0.0.1:${opts.port}
  control: ${opts.dir}/agent.sock
  state-file: ${opts.dir}/agent-state.json
  database-server: db1
  servers:
${servers.join('\n')}
`;
}
