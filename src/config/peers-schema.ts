import { isIP } from 'node:net';
import { z } from 'zod';

/**
 * `peers:` — heartbeats between the sites' backends (docs/peers.md), and `coordinator:` — the
 * in-site endpoint taking "may be offline" reports. Where each peer site's backends listen, answer
 * their status and where its load balancer is, is per site in `sites[]` (`heartbeat`, `status-url`,
 * `lb-address`). schema.ts imports this file, so its address type is not reused from there.
 */

const address = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[0-9.]+):\d{1,5}$/, 'expected ADDRESS:PORT, e.g. 127.0.0.1:7946')
  .transform((s) => {
    const i = s.lastIndexOf(':');
    return { host: s.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(s.slice(i + 1)) };
  })
  .refine((a) => isIP(a.host) !== 0 && a.port > 0 && a.port < 65536, 'bad address or port');

const ms = (def: number, min: number, max = 3_600_000) => z.number().int().min(min).max(max).default(def);

const secret = {
  /** A file holding the shared key (at least 16 bytes; surrounding whitespace ignored). */
  'key-file': z.string().optional(),
  /** An environment variable holding the shared key. */
  'key-env': z.string().optional(),
};
const oneSecret = (s: { 'key-file'?: string; 'key-env'?: string }) =>
  (s['key-file'] === undefined) !== (s['key-env'] === undefined);
const oneSecretMessage = 'give exactly one of key-file or key-env';

export const peersSchema = z
  .strictObject({
    /** UDP address this backend receives heartbeats on (one of its site's `heartbeat` addresses). */
    listen: address,
    ...secret,
    /** This backend's name in its heartbeats (default: its listen address). */
    node: z
      .string()
      .regex(/^[\x21-\x7e]{1,63}$/, 'printable ASCII without spaces, at most 63')
      .optional(),
    /** A heartbeat goes to every backend of every peer site this often. */
    'period-ms': ms(1000, 50, 60_000),
    /** Silence after which an up peer becomes suspect and is probed (default: 1.5 × period-ms). */
    'suspect-after-ms': z.number().int().min(10).max(3_600_000).optional(),
    /** A down peer is up again after heartbeats in each of this many periods in a row. */
    'recover-periods': z.number().int().min(1).max(1000).default(3),
    /** Heartbeats whose time differs from ours by more are refused. */
    'max-skew-ms': ms(5000, 100),
    /** One verification attempt (status endpoint and load balancer connect) may take this long. */
    'probe-timeout-ms': ms(400, 10, 60_000),
    /** Attempts before a suspect peer is declared down. */
    'probe-attempts': z.number().int().min(1).max(10).default(2),
  })
  .refine(oneSecret, oneSecretMessage);

export const coordinatorServerSchema = z.strictObject({
  /** "BACKEND/SERVER" as in HAProxy (and in agent.servers). */
  name: z.string().regex(/^[A-Za-z0-9_.:-]+\/[A-Za-z0-9_.:-]+$/, 'expected BACKEND/SERVER'),
  /** Where the coordinator verifies it (never an address from a report). */
  address: address,
  check: z.enum(['http', 'tcp']).default('http'),
  path: z
    .string()
    .regex(/^\/[\x21-\x7e]*$/, 'an absolute URL path')
    .default('/health'),
  status: z.number().int().min(100).max(599).default(200),
});

export const coordinatorSchema = z
  .strictObject({
    ...secret,
    /** Runtime API sockets of every HAProxy of the site (default: health.load-balancers). */
    'load-balancers': z.array(z.string().min(1)).min(1).optional(),
    /** The servers that may be reported (default: agent.servers, with their message check). */
    servers: z.array(coordinatorServerSchema).min(1).optional(),
    /** One verification attempt may take this long. */
    'verify-timeout-ms': ms(1000, 10, 60_000),
    /** Attempts before a reported server is confirmed offline. */
    'verify-attempts': z.number().int().min(1).max(10).default(2),
    /** Marked servers are checked again this often, and marked ready when they answer. */
    'recheck-ms': ms(2000, 50),
    /** Signed requests older or newer than this are refused. */
    'max-skew-ms': ms(30_000, 100),
  })
  .refine(oneSecret, oneSecretMessage);

export type PeersConfig = z.infer<typeof peersSchema>;
export type CoordinatorConfig = z.infer<typeof coordinatorSchema>;
export type CoordinatorServerConfig = z.infer<typeof coordinatorServerSchema>;
