import { z } from 'zod';
import { loadReportSenderSchema } from './policy-schema.js';

/**
 * `agent:` — the HAProxy agent-check service (`multisite agent`). One process serves every web
 * server of a site; HAProxy names the server with `agent-send "BACKEND/SERVER\n"`. Every key has a
 * default except `listen` and `servers`. See docs/agent.md.
 */

const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'expected HOST:PORT, e.g. 127.0.0.11:8080')
  .transform((s) => {
    const i = s.lastIndexOf(':');
    return { host: s.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(s.slice(i + 1)) };
  })
  .refine((a) => a.port > 0 && a.port < 65536, 'port must be 1..65535');

/** An explicit address (no name lookups for what we listen on). The schema in schema.ts imports this file, so it is not reused from there. */
const listenAddr = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[0-9.]+):\d{1,5}$/, 'expected ADDRESS:PORT, e.g. 127.0.0.1:5555')
  .transform((s) => {
    const i = s.lastIndexOf(':');
    return { host: s.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(s.slice(i + 1)) };
  });

const path = z.string().regex(/^\/[\x21-\x7e]*$/, 'an absolute URL path, e.g. /health');
const ms = (def: number, min = 1) => z.number().int().min(min).max(3_600_000).default(def);

/** When and how often a check runs, and how many results in a row change its state. */
const timing = (interval: number, timeout: number) => ({
  /** Time between the starts of two runs (a run still going delays the next). */
  'interval-ms': ms(interval, 10),
  /** A run taking longer fails with "timeout after N ms". */
  'timeout-ms': ms(timeout, 10),
  /** Successes in a row that bring a failed check back up. */
  rise: z.number().int().min(1).max(100).default(2),
  /** Failures in a row that take a passing check down. */
  fall: z.number().int().min(1).max(100).default(2),
});

/** Does the server answer? A TCP connect, or an HTTP GET of a health path expecting a status. */
export const messageCheckSchema = z.strictObject({
  type: z.enum(['http', 'tcp']).default('http'),
  path: path.default('/health'),
  /** Expected HTTP status. */
  status: z.number().int().min(100).max(599).default(200),
  ...timing(250, 1000),
});

/** Does the server reach its database? GET a page that queries it; the body must contain `keyword`. */
export const keywordCheckSchema = z.strictObject({
  path: path.default('/dbcheck'),
  /** Expected in the body; default: agent.database-server (the database server's name). */
  keyword: z.string().min(1).max(1024).optional(),
  status: z.number().int().min(100).max(599).default(200),
  /** At most this many bytes of the body are read (the keyword must be within them). */
  'max-bytes': z.number().int().min(16).max(16 * 1024 * 1024).default(64 * 1024),
  ...timing(250, 1000),
});

/** The server's load (an HTTP endpoint answering a number) turned into an agent weight. */
export const loadCheckSchema = z.strictObject({
  path: path.default('/load'),
  /** The load at which the weight reaches `floor-percent` (e.g. CPU count, or 100 for a percentage). */
  capacity: z.number().positive().default(100),
  /** Weight at and beyond capacity, in percent of the server's configured weight. */
  'floor-percent': z.number().int().min(1).max(100).default(10),
  'interval-ms': ms(1000, 10),
  'timeout-ms': ms(1000, 10),
});

export const agentServerSchema = z
  .strictObject({
    /** What HAProxy sends with agent-send, without the newline: "BACKEND/SERVER". */
    name: z.string().regex(/^[\x21-\x7e]{1,128}$/, 'printable ASCII without spaces, e.g. web/w1'),
    /** Where the checks go. */
    address: hostPort,
    /** Host header of HTTP checks (default: the address). */
    'host-header': z.string().optional(),
    checks: z
      .strictObject({
        message: messageCheckSchema.optional(),
        keyword: keywordCheckSchema.optional(),
        load: loadCheckSchema.optional(),
      })
      .refine((c) => c.message !== undefined || c.keyword !== undefined, 'give at least a message or a keyword check'),
  });

export const agentSchema = z
  .strictObject({
    /** TCP address HAProxy's agent-check connects to (agent-addr/agent-port). */
    listen: listenAddr,
    /** Unix socket for `multisite agent drain|undrain|status`. */
    control: z.string().default('/run/multisite/agent.sock'),
    /** Where operator drains are kept across restarts. */
    'state-file': z.string().default('/var/lib/multisite/agent-state.json'),
    /** Prometheus metrics and /healthz, e.g. 127.0.0.1:9102. */
    metrics: listenAddr.optional(),
    /** The database server's name: the default keyword of keyword checks. */
    'database-server': z.string().min(1).optional(),
    /** A connection that has not sent a complete line by then is closed, unanswered. */
    'client-timeout-ms': ms(2000, 10),
    /** A request line longer than this is refused and the connection closed. */
    'max-line-bytes': z.number().int().min(16).max(4096).default(256),
    /** Concurrent connections beyond this are refused by the kernel backlog / closed at once. */
    'max-connections': z.number().int().min(1).max(1_000_000).default(20_000),
    /** After `undrain`, the agent answers `ready` this long, so every HAProxy polling it sees it once. */
    'ready-window-ms': ms(30_000, 100),
    'log-level': z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info'),
    servers: z.array(agentServerSchema).min(1),
    /** Send the servers' load and check response times to the site's backends (docs/policies.md). */
    'load-report': loadReportSenderSchema.optional(),
  })
  .superRefine((agent, ctx) => {
    const seen = new Set<string>();
    agent.servers.forEach((s, i) => {
      if (seen.has(s.name)) ctx.addIssue({ code: 'custom', path: ['servers', i, 'name'], message: `duplicate server name '${s.name}'` });
      seen.add(s.name);
      if (s.checks.keyword && s.checks.keyword.keyword === undefined && agent['database-server'] === undefined) {
        ctx.addIssue({ code: 'custom', path: ['servers', i, 'checks', 'keyword'], message: 'give keyword, or agent.database-server (the default keyword)' });
      }
    });
  });

export type AgentConfig = z.infer<typeof agentSchema>;
export type AgentServerConfig = z.infer<typeof agentServerSchema>;
export type MessageCheckConfig = z.infer<typeof messageCheckSchema>;
export type KeywordCheckConfig = z.infer<typeof keywordCheckSchema>;
export type LoadCheckConfig = z.infer<typeof loadCheckSchema>;
