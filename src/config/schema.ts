import { isIP } from 'node:net';
import { z } from 'zod';
import { statusPageSchema } from './status-page-schema.js';
import { agentSchema } from './agent-schema.js';
import { healthSchema } from './health-schema.js';
import { coordinatorSchema, peersSchema } from './peers-schema.js';
import { loadReportsSchema, policyKeys, probesSchema } from './policy-schema.js';
import { partitionsSchema } from './partitions-schema.js';
import { replicationSchema } from './replication-schema.js';

/** One schema types the code and validates the file. Keys are kebab-case in YAML and in code. */

export const siteName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'a site name is lower-case letters, digits and dashes');

/** A DNS name, written with or without the final dot; normalised to lower case with the dot. */
export const dnsName = z
  .string()
  .min(1)
  .max(254)
  .regex(
    /^(\*\.)?([a-zA-Z0-9_]([a-zA-Z0-9_-]{0,61}[a-zA-Z0-9_])?\.)*[a-zA-Z0-9_]([a-zA-Z0-9_-]{0,61}[a-zA-Z0-9_])?\.?$/,
    'not a valid DNS name',
  )
  .transform((s) => (s.endsWith('.') ? s : `${s}.`).toLowerCase());

export const ipAddress = z.string().refine((s) => isIP(s) !== 0, 'not an IPv4 or IPv6 address');

/** host:port or [v6]:port; only explicit addresses, so nothing listens beyond what is configured. */
export const listenAddress = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[0-9.]+):\d{1,5}$/, 'expected ADDRESS:PORT, e.g. 127.0.0.1:8053')
  .transform((s) => {
    const i = s.lastIndexOf(':');
    return { host: s.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(s.slice(i + 1)) };
  })
  .refine((a) => isIP(a.host) !== 0 && a.port > 0 && a.port < 65536, 'bad address or port');

const secretSource = {
  'api-key-file': z.string().optional(),
  'api-key-env': z.string().optional(),
};

export const siteSchema = z.strictObject({
  name: siteName,
  description: z.string().optional(),
  /** UDP addresses of the site's backends' heartbeat listeners (their `peers.listen`). */
  heartbeat: z.array(listenAddress).default([]),
  /** Status endpoints of the site's backends (http://METRICS-ADDRESS/status), probed to verify it. */
  'status-url': z
    .array(
      z
        .string()
        .url()
        .regex(/^http:\/\//, 'an http:// URL'),
    )
    .default([]),
  /** The site's load balancer addresses; a TCP connect to one is part of the verification. */
  'lb-address': z.array(listenAddress).default([]),
});

export const backendSchema = z.strictObject({
  /** Unix socket PowerDNS connects to (remote-connection-string=unix:path=...). */
  socket: z.string().default('/run/multisite/backend.sock'),
  /** Optional HTTP connector (remote-connection-string=http:url=http://ADDR/dns,post=1,post_json=1). */
  http: listenAddress.optional(),
  /** Local control socket for `multisite site drain|undrain|status`. */
  control: z.string().default('/run/multisite/control.sock'),
  /** Where drains are kept across restarts. */
  'state-file': z.string().default('/var/lib/multisite/state.json'),
  /** Prometheus metrics and /healthz. */
  metrics: listenAddress.optional(),
  /** A request line (or HTTP body) longer than this is answered with an error, once, and dropped. */
  'max-request-bytes': z
    .number()
    .int()
    .min(1024)
    .max(16 * 1024 * 1024)
    .default(1024 * 1024),
  'log-level': z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info'),
});

export const pdnsApiSchema = z
  .strictObject({
    /** PowerDNS's built-in web server (api=yes, webserver-address, webserver-port). */
    url: z.string().url().default('http://127.0.0.1:8081'),
    'server-id': z.string().default('localhost'),
    ...secretSource,
    /** How long one flush request may take before it is retried. */
    'timeout-ms': z.number().int().min(10).max(60_000).default(1000),
    /** Retries after the first attempt, with exponential backoff from 50 ms. */
    retries: z.number().int().min(0).max(20).default(5),
  })
  .refine((p) => !(p['api-key-file'] && p['api-key-env']), 'give api-key-file or api-key-env, not both');

/**
 * dnsdist in front of PowerDNS (docs/performance.md "Client-dependent names"): where it listens and
 * what it forwards to (used by `multisite dnsdist-config`), and its web server, through which the
 * backend flushes its cache after PowerDNS's.
 */
export const dnsdistSchema = z
  .strictObject({
    /** Its web server (the flush endpoint of the generated config). */
    url: z.string().url().default('http://127.0.0.1:8083'),
    ...secretSource,
    /** Where it answers DNS. */
    listen: listenAddress.default(() => ({ host: '127.0.0.1', port: 53 })),
    /** PowerDNS's DNS address behind it (pdns.conf local-address, local-port). */
    pdns: listenAddress.default(() => ({ host: '127.0.0.1', port: 5300 })),
    /** Client networks it caches per, for a query without ECS: IPv4 and IPv6 prefix lengths. */
    'ecs-prefix-v4': z.number().int().min(8).max(32).default(24),
    'ecs-prefix-v6': z.number().int().min(16).max(128).default(56),
    'cache-entries': z.number().int().min(1000).default(200_000),
    'timeout-ms': z.number().int().min(10).max(60_000).default(1000),
    retries: z.number().int().min(0).max(20).default(5),
  })
  .refine((p) => !(p['api-key-file'] && p['api-key-env']), 'give api-key-file or api-key-env, not both');

export const zoneSchema = z
  .strictObject({
    name: dnsName,
    /** RFC 1035 master file; relative paths are relative to the config file. */
    file: z.string().optional(),
    /** Inline records, one master-file line each, relative to the zone: "www 300 IN A 192.0.2.1". */
    records: z.array(z.string()).optional(),
    /** TTL for records without one (and no $TTL). */
    ttl: z.number().int().min(0).max(2147483647).default(3600),
    /**
     * Records outside the zone: skipped with a warning naming FILE:LINE (as BIND's named does), or
     * the whole zone refused with that error. Either way the other zones are served.
     */
    'on-error': z.enum(['skip-records', 'refuse-zone']).default('skip-records'),
  })
  .refine((zn) => zn.file !== undefined || zn.records !== undefined, 'a zone needs file or records');

export const fallbackSchema = z.enum(['all', 'servfail', 'empty']);

export const balancedSchema = z.strictObject({
  name: dnsName,
  /** Short: a resolver should come back soon after an order change (PowerDNS's cache is flushed). */
  ttl: z.number().int().min(0).max(86400).default(20),
  /** Answer when no site is up: every address, SERVFAIL, or an empty NOERROR answer. */
  fallback: fallbackSchema.default('all'),
  /** Addresses per site (A and/or AAAA). */
  addresses: z.record(siteName, z.array(ipAddress).min(1)),
  /**
   * For `failover`: the fixed order of sites (default: the order of `sites`); for the other policies but local-first,
   * the preference order ties fall back to.
   */
  order: z.array(siteName).optional(),
  /** policy, weights, topology, hysteresis, closest, decided-by: see policy-schema.ts and docs/policies.md. */
  ...policyKeys,
});

export const configSchema = z.strictObject({
  /** The site this process stands in. */
  site: siteName,
  /** Every site of the cluster, in the default preference order. */
  sites: z.array(siteSchema).min(1),
  backend: backendSchema.default(backendSchema.parse({})),
  pdns: pdnsApiSchema.optional(),
  dnsdist: dnsdistSchema.optional(),
  zones: z.array(zoneSchema).default([]),
  balanced: z.array(balancedSchema).default([]),
  health: healthSchema.optional(),
  agent: agentSchema.optional(),
  replication: replicationSchema.optional(),
  peers: peersSchema.optional(),
  coordinator: coordinatorSchema.optional(),
  partitions: partitionsSchema.optional(),
  'load-reports': loadReportsSchema.optional(),
  probes: probesSchema.optional(),
  'status-page': statusPageSchema.optional(),
});

export type Config = z.infer<typeof configSchema>;
export type BalancedConfig = z.infer<typeof balancedSchema>;
export type ZoneConfig = z.infer<typeof zoneSchema>;
export type Fallback = z.infer<typeof fallbackSchema>;
