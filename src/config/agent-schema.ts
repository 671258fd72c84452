import { isIP } from 'node:net';
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

/**
 * An explicit address (no name lookups for what we listen on). The schema in schema.ts imports this file, so it is
 * not reused from there.
 */
const listenAddr = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[0-9.]+):\d{1,5}$/, 'expected ADDRESS:PORT, e.g. 127.0.0.1:5555')
  .transform((s) => {
    const i = s.lastIndexOf(':');
    return { host: s.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(s.slice(i + 1)) };
  });

/** An IPv4 or IPv6 address, no port. */
const ipAddress = z.string().refine((a) => isIP(a) !== 0, 'expected an IPv4 or IPv6 address, e.g. 127.0.0.1');

const path = z.string().regex(/^\/[\x21-\x7e]*$/, 'an absolute URL path, e.g. /health');
const ms = (def: number, min = 1) => z.number().int().min(min).max(3_600_000).default(def);

/** HAProxy proxy and server names as the Runtime API takes them (no spaces, no `;`). */
const haproxyServer = z
  .string()
  .regex(/^[A-Za-z0-9_.:-]+\/[A-Za-z0-9_.:-]+$/, 'expected BACKEND/SERVER as HAProxy names them, e.g. web/w1')
  .transform((s) => {
    const [backend, server] = s.split('/') as [string, string];
    return { backend, server };
  });

/**
 * Where and how the agent tells HAProxy of a verdict change at once (`set server B/S agent up|down`
 * on each Runtime API socket), instead of waiting for HAProxy's next agent-inter poll.
 */
export const agentHaproxySchema = z.strictObject({
  /**
   * `stats socket PATH level admin` of every HAProxy of the site; [] turns the push off. Debian's haproxy.cfg ships
   * the default.
   */
  'runtime-api': z.array(z.string().min(1)).default(['/run/haproxy/admin.sock']),
  /** Per command (connect and answer): a slow Runtime API never holds the agent up. */
  'timeout-ms': ms(500, 10),
  /** First retry after a failed push; doubles up to max-retry-ms while the socket stays unusable. */
  'retry-ms': ms(200, 10),
  'max-retry-ms': ms(5000, 10),
});

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
  ...timing(100, 500),
});

/** Does the server reach its database? GET a page that queries it; the body must contain `keyword`. */
export const keywordCheckSchema = z.strictObject({
  path: path.default('/dbcheck'),
  /** Expected in the body; default: agent.database-server (the database server's name). */
  keyword: z.string().min(1).max(1024).optional(),
  status: z.number().int().min(100).max(599).default(200),
  /** At most this many bytes of the body are read (the keyword must be within them). */
  'max-bytes': z
    .number()
    .int()
    .min(16)
    .max(16 * 1024 * 1024)
    .default(64 * 1024),
  ...timing(100, 1000),
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

export const agentServerSchema = z.strictObject({
  /** What HAProxy sends with agent-send, without the newline: "BACKEND/SERVER". */
  name: z.string().regex(/^[\x21-\x7e]{1,128}$/, 'printable ASCII without spaces, e.g. web/w1'),
  /**
   * The server in HAProxy that the agent tells of verdict changes through agent.haproxy's Runtime
   * API sockets (default: `name`, when it has the BACKEND/SERVER shape).
   */
  'haproxy-server': haproxyServer.optional(),
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
    /**
     * Concurrent connections beyond this are closed at once. `auto`: what the open-file limit
     * (RLIMIT_NOFILE) leaves after the descriptors the checks, the Runtime API pushes and the
     * process itself need; a number larger than that is lowered to it (with a warning).
     */
    'max-connections': z.union([z.literal('auto'), z.number().int().min(1).max(1_000_000)]).default('auto'),
    /** After `undrain`, the agent answers `ready` this long, so every HAProxy polling it sees it once. */
    'ready-window-ms': ms(30_000, 100),
    'log-level': z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info'),
    servers: z.array(agentServerSchema).min(1),
    /** Tell HAProxy of each verdict change at once through its Runtime API (docs/agent.md). */
    haproxy: agentHaproxySchema.prefault({}),
    /** Send the servers' load and check response times to the site's backends (docs/policies.md). */
    'load-report': loadReportSenderSchema
      .safeExtend({
        /**
         * The address the reports leave from. Default: the loopback address when every `to` is on
         * loopback, else agent.listen's address; never the wildcard unless given here.
         */
        source: ipAddress.optional(),
      })
      .optional(),
  })
  .superRefine((agent, ctx) => {
    const lr = agent['load-report'];
    if (lr) {
      const src = loadReportSource(lr.to, lr.source, agent.listen.host);
      if (typeof src !== 'string')
        ctx.addIssue({ code: 'custom', path: ['load-report', 'source'], message: src.error });
    }
    const seen = new Set<string>();
    agent.servers.forEach((s, i) => {
      if (seen.has(s.name))
        ctx.addIssue({ code: 'custom', path: ['servers', i, 'name'], message: `duplicate server name '${s.name}'` });
      seen.add(s.name);
      if (s.checks.keyword && s.checks.keyword.keyword === undefined && agent['database-server'] === undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['servers', i, 'checks', 'keyword'],
          message: 'give keyword, or agent.database-server (the default keyword)',
        });
      }
    });
  });

export type AgentConfig = z.infer<typeof agentSchema>;
export type AgentServerConfig = z.infer<typeof agentServerSchema>;
export type MessageCheckConfig = z.infer<typeof messageCheckSchema>;
export type KeywordCheckConfig = z.infer<typeof keywordCheckSchema>;
export type LoadCheckConfig = z.infer<typeof loadCheckSchema>;

const isLoopback = (a: string) => (isIP(a) === 4 ? a.startsWith('127.') : a === '::1');
const isWildcard = (a: string) => a === '0.0.0.0' || a === '::';

/**
 * The address load reports leave from: `source` when given; the loopback address when every
 * target is on loopback; else the agent's listen address. Never the wildcard unless configured
 * (listen only on what is configured, and send from it). An error says what to configure.
 */
export function loadReportSource(
  to: { host: string }[],
  source: string | undefined,
  listenHost: string,
): string | { error: string } {
  const families = new Set(to.map((t) => isIP(t.host)));
  if (families.size !== 1) return { error: 'load-report.to mixes IPv4 and IPv6 addresses: one family per agent' };
  const family = [...families][0]!;
  const pick =
    source ??
    (to.every((t) => isLoopback(t.host))
      ? family === 4
        ? '127.0.0.1'
        : '::1'
      : isWildcard(listenHost)
        ? undefined
        : listenHost);
  if (pick === undefined)
    return { error: `give the address reports leave from (agent.listen is the wildcard ${listenHost})` };
  if (isIP(pick) !== family)
    return { error: `source ${pick} is not of the family of load-report.to (IPv${family}): set load-report.source` };
  return pick;
}
