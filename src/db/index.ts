/**
 * One database interface over `pg` (PostgreSQL server) and PGlite (PostgreSQL in WebAssembly, the
 * embedded default). The replicator only uses this interface, so both run the same code.
 *
 * URLs: postgres://user@host:port/db (pg), pglite:memory (in-memory), pglite:///abs/dir or
 * pglite:relative/dir (a data directory; one process at a time).
 */
import pg from 'pg';

export interface QueryResult<R> {
  rows: R[];
  rowCount: number;
}

export interface Queryable {
  query<R = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<QueryResult<R>>;
}

export interface TxOptions {
  isolation?: 'read committed' | 'repeatable read' | 'serializable';
  readOnly?: boolean;
}

export interface Db extends Queryable {
  readonly kind: 'pg' | 'pglite';
  /** Runs several statements (migrations); no parameters. */
  exec(sql: string): Promise<void>;
  /** BEGIN … COMMIT around fn on one connection; ROLLBACK if fn throws. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>, opts?: TxOptions): Promise<T>;
  /** LISTEN on a channel; the returned function stops listening. */
  listen(channel: string, onNotify: (payload: string) => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

export interface OpenOptions {
  /** Password kept out of the URL (from a file or the environment). */
  password?: string;
  /** Shown in pg_stat_activity. */
  applicationName?: string;
  /** Pool size (pg only). */
  max?: number;
  /**
   * How long a query may wait for a pooled connection (pg only; default: forever). A daemon sets
   * it so that a starved or unreachable pool fails its work instead of hanging it.
   */
  connectTimeoutMs?: number;
  /** Called when an idle pooled connection or the LISTEN connection fails. */
  onError?: (err: Error) => void;
}

/** "schema"."table" style quoting of one identifier. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** A string as an SQL literal ('it''s'; standard_conforming_strings, PostgreSQL's default since 9.1). */
export function quoteLiteral(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

/** Splits "schema.table" or "table" (default schema public) and quotes both parts. */
export function qualifiedName(name: string): { schema: string; table: string; quoted: string } {
  const m = /^(?:("(?:[^"]|"")+"|[^."]+)\.)?("(?:[^"]|"")+"|[^."]+)$/.exec(name.trim());
  if (!m) throw new Error(`not a table name: ${name}`);
  const unq = (s: string) => (s.startsWith('"') ? s.slice(1, -1).replace(/""/g, '"') : s);
  const schema = m[1] ? unq(m[1]) : 'public';
  const table = unq(m[2]!);
  return { schema, table, quoted: `${quoteIdent(schema)}.${quoteIdent(table)}` };
}

/** Names of parameters whose values are secrets: *password* (sslpassword), *secret*, *key*, *token*. */
const SECRET_PARAM = /pass|secret|key|token|credential/i;
const HIDDEN = '***';

/**
 * A database URL or connection string with every secret hidden, for output and logs:
 * - URL userinfo: postgres://user:***@host/db (a password holding '@' or '/' included);
 * - URL query parameters named like a secret: ?password=***&sslpassword=***&sslkey=***;
 * - key=value conninfo ("host=h password=*** dbname=d", quoted values too), and
 *   PGPASSWORD=*** style environment assignments;
 * - the value of $PGPASSWORD wherever it appears (pg reads it; an operator may paste it anywhere).
 */
export function redactUrl(url: string, env: NodeJS.ProcessEnv = process.env): string {
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(url);
  let out = scheme ? redactUrlForm(url, scheme[0].length) : redactConninfo(url);
  const pgpassword = env.PGPASSWORD;
  if (pgpassword) out = out.split(pgpassword).join(HIDDEN);
  return out;
}

function redactUrlForm(url: string, start: number): string {
  const q = url.search(/[?#]/);
  const end = q < 0 ? url.length : q;
  // The last '@' before the query ends the userinfo: a careless password may hold '@' or '/'.
  const at = url.lastIndexOf('@', end - 1);
  let head = url.slice(0, end);
  if (at >= start) {
    const userinfo = url.slice(start, at);
    const colon = userinfo.indexOf(':');
    if (colon >= 0) head = `${url.slice(0, start)}${userinfo.slice(0, colon)}:${HIDDEN}${url.slice(at, end)}`;
  }
  const rest = url
    .slice(end)
    .replace(/([?&#;])([^=&#;]*)=([^&#;]*)/g, (all, sep: string, name: string) =>
      SECRET_PARAM.test(safeDecode(name)) ? `${sep}${name}=${HIDDEN}` : all,
    );
  return head + rest;
}

/** key=value pairs (libpq conninfo, or NAME=value environment style); values may be quoted. */
function redactConninfo(text: string): string {
  return text.replace(
    /([A-Za-z_][\w.-]*)(\s*=\s*)('(?:[^'\\]|\\.)*'?|"(?:[^"\\]|\\.)*"?|[^\s'"]*)/g,
    (all, name: string, eq: string) => (SECRET_PARAM.test(name) ? `${name}${eq}${HIDDEN}` : all),
  );
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

export async function openDb(url: string, opts: OpenOptions = {}): Promise<Db> {
  if (url.startsWith('pglite:')) return openPglite(url);
  if (/^postgres(ql)?:\/\//.test(url)) return openPg(url, opts);
  throw new Error(`unsupported database URL ${redactUrl(url)} (postgres://… or pglite:…)`);
}

// ---- pg ----

function beginSql(opts?: TxOptions): string {
  let s = 'BEGIN';
  if (opts?.isolation) s += ` ISOLATION LEVEL ${opts.isolation.toUpperCase()}`;
  if (opts?.readOnly) s += ' READ ONLY';
  return s;
}

async function openPg(url: string, opts: OpenOptions): Promise<Db> {
  const base: pg.ClientConfig = {
    connectionString: url,
    application_name: opts.applicationName ?? 'multisite',
    ...(opts.password !== undefined ? { password: opts.password } : {}),
  };
  const pool = new pg.Pool({
    ...base,
    max: opts.max ?? 4,
    idleTimeoutMillis: 30_000,
    ...(opts.connectTimeoutMs !== undefined ? { connectionTimeoutMillis: opts.connectTimeoutMs } : {}),
  });
  pool.on('error', (err) => opts.onError?.(err));
  const listeners: pg.Client[] = [];
  let closing = false;
  const db: Db = {
    kind: 'pg',
    async query<R>(sql: string, params?: unknown[]) {
      const r = await pool.query(sql, params as unknown[]);
      return { rows: r.rows as R[], rowCount: r.rowCount ?? 0 };
    },
    async exec(sql: string) {
      await pool.query(sql);
    },
    async transaction<T>(fn: (tx: Queryable) => Promise<T>, txo?: TxOptions) {
      const client = await pool.connect();
      let broken = false;
      try {
        await client.query(beginSql(txo));
        const tx: Queryable = {
          async query<R>(sql: string, params?: unknown[]) {
            const r = await client.query(sql, params as unknown[]);
            return { rows: r.rows as R[], rowCount: r.rowCount ?? 0 };
          },
        };
        const result = await fn(tx);
        await client.query('COMMIT');
        return result;
      } catch (err) {
        try {
          await client.query('ROLLBACK');
        } catch {
          broken = true;
        }
        throw err;
      } finally {
        client.release(broken);
      }
    },
    async listen(channel, onNotify) {
      // A dedicated connection; when it drops it reconnects (every second) and wakes the caller once
      // so nothing notified in between is missed.
      let closed = false;
      let current: pg.Client | null = null;
      const connect = async (): Promise<void> => {
        const client = new pg.Client(base);
        client.on('error', (err) => opts.onError?.(err));
        client.on('notification', (n) => {
          if (n.channel === channel) onNotify(n.payload ?? '');
        });
        client.on('end', () => {
          const i = listeners.indexOf(client);
          if (i >= 0) listeners.splice(i, 1);
          if (!closed && !closing) retry();
        });
        await client.connect();
        await client.query(`LISTEN ${quoteIdent(channel)}`);
        if (closed || closing) {
          await client.end().catch(() => undefined);
          return;
        }
        current = client;
        listeners.push(client);
      };
      const retry = (): void => {
        setTimeout(() => {
          if (closed || closing) return;
          connect().then(
            () => onNotify(''),
            (err: Error) => {
              opts.onError?.(err);
              retry();
            },
          );
        }, 1000).unref();
      };
      await connect();
      return async () => {
        closed = true;
        await current?.end().catch(() => undefined);
      };
    },
    async close() {
      closing = true;
      await Promise.all(listeners.splice(0).map((c) => c.end().catch(() => undefined)));
      await pool.end();
    },
  };
  return db;
}

// ---- PGlite ----

async function openPglite(url: string): Promise<Db> {
  const { PGlite } = await import('@electric-sql/pglite');
  const rest = url.slice('pglite:'.length).replace(/^\/\//, '');
  const dataDir = rest === '' || rest === 'memory' ? undefined : rest;
  const lite = dataDir === undefined ? new PGlite() : new PGlite(dataDir);
  await lite.waitReady;
  return wrapPglite(lite);
}

type Lite = import('@electric-sql/pglite').PGlite;

/** Wraps an already open PGlite instance (in-process use: the demo, tests). */
export function wrapPglite(lite: Lite): Db {
  const run = async <R>(q: Queryable | Lite, sql: string, params?: unknown[]): Promise<QueryResult<R>> => {
    const r = await (q as Lite).query<R>(sql, params as unknown[]);
    return { rows: r.rows, rowCount: r.affectedRows ?? r.rows.length };
  };
  return {
    kind: 'pglite',
    query: (sql, params) => run(lite, sql, params),
    async exec(sql) {
      await lite.exec(sql);
    },
    async transaction(fn, txo) {
      // PGlite is one connection: its transaction() holds it exclusively for fn.
      return lite.transaction(async (t) => {
        if (txo?.isolation || txo?.readOnly) {
          const parts = [];
          if (txo.isolation) parts.push(`ISOLATION LEVEL ${txo.isolation.toUpperCase()}`);
          if (txo.readOnly) parts.push('READ ONLY');
          await t.query(`SET TRANSACTION ${parts.join(' ')}`);
        }
        return fn({
          async query<R>(sql: string, params?: unknown[]) {
            const r = await t.query<R>(sql, params as unknown[]);
            return { rows: r.rows, rowCount: r.affectedRows ?? r.rows.length };
          },
        });
      });
    },
    async listen(channel, onNotify) {
      const unlisten = await lite.listen(channel, onNotify);
      return async () => {
        await unlisten();
      };
    },
    async close() {
      await lite.close();
    },
  };
}
