import { z } from 'zod';

/** Replication settings (issue 7: multi-master replication). Documented in docs/replication.md. */

const siteDbSchema = z
  .strictObject({
    /** postgres://user@host:port/db, or pglite:DIR / pglite:memory (embedded, in-process only). */
    db: z.string().regex(/^(postgres(ql)?:\/\/|pglite:)/, 'expected a postgres://… or pglite:… URL'),
    /** A file holding the password (trailing newline ignored); relative to the config file. */
    'password-file': z.string().optional(),
    /** An environment variable holding the password. */
    'password-env': z.string().optional(),
  })
  .refine((s) => !(s['password-file'] && s['password-env']), 'give password-file or password-env, not both');

const listen = z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[0-9.]+):\d{1,5}$/, 'expected ADDRESS:PORT, e.g. 127.0.0.1:9464');

/**
 * Replication's defaults, written once: the schema fills them in, and a Replicator built without
 * a config (tests, benchmarks, the library) falls back to the same values.
 */
export const REPLICATION_DEFAULTS = {
  'batch-size': 5000,
  'poll-interval-ms': 1000,
  'trim-interval-ms': 5000,
  'conflict-retention-days': 30,
  'tombstone-retention-days': 7,
  'max-lag-seconds': 30,
} as const;

/** The capture triggers `multisite migrate` can install (replication.capture, migrate --capture). */
export const CAPTURE_MODES = ['auto', 'native', 'plpgsql'] as const;

export const replicationSchema = z
  .strictObject({
    /** Tables replicated at every site ("schema.table" or "table" in public). */
    tables: z.array(z.string().min(1)).default([]),
    /** The database of every site, this one included, by site name. */
    sites: z.record(z.string(), siteDbSchema).default({}),
    /**
     * The capture trigger `multisite migrate` installs: `native` (native/multisite_capture.c, in
     * the server's library directory; a superuser migrates), `plpgsql`, or `auto`: native when the
     * server can load it, else plpgsql (migrate says which, and why).
     */
    capture: z.enum(CAPTURE_MODES).default('auto'),
    /** Who wins when the same column is changed at two sites concurrently. */
    policy: z.enum(['latest', 'site-priority']).default('latest'),
    /** For site-priority: the sites, strongest first (default: the order of `sites:`). */
    priority: z.array(z.string()).optional(),
    /** Peer changes read and applied per transaction (a larger transaction is applied whole). */
    'batch-size': z.number().int().min(1).max(100_000).default(REPLICATION_DEFAULTS['batch-size']),
    /** Ceiling of the idle poll: the replicator polls (no NOTIFY), backing off from 25 ms to this while idle. */
    'poll-interval-ms': z.number().int().min(10).max(600_000).default(REPLICATION_DEFAULTS['poll-interval-ms']),
    /** How often acknowledged changes are trimmed from the change table. */
    'trim-interval-ms': z.number().int().min(100).max(3_600_000).default(REPLICATION_DEFAULTS['trim-interval-ms']),
    /** Conflict-log rows older than this are deleted; 0 keeps them. */
    'conflict-retention-days': z
      .number()
      .int()
      .min(0)
      .max(36500)
      .default(REPLICATION_DEFAULTS['conflict-retention-days']),
    /**
     * Tombstones (row clocks of deleted rows) older than this are deleted; 0 keeps them. A change
     * made at a site before it saw a delete, arriving later than this after the delete, is then
     * no longer recognised as concurrent with it (a site cut off that long must be re-seeded).
     */
    'tombstone-retention-days': z
      .number()
      .int()
      .min(0)
      .max(36500)
      .default(REPLICATION_DEFAULTS['tombstone-retention-days']),
    /** A peer lagging more than this is reported as stale (`multisite status`, DNS demotion). */
    'max-lag-seconds': z.number().min(0).default(REPLICATION_DEFAULTS['max-lag-seconds']),
    /** Prometheus metrics and /healthz of `multisite replicate`. */
    metrics: listen.optional(),
    'log-level': z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info'),
  })
  .refine((r) => r.policy !== 'site-priority' || r.priority === undefined || r.priority.length > 0, {
    message: 'priority needs at least one site',
    path: ['priority'],
  });

export type ReplicationConfig = z.infer<typeof replicationSchema>;
export type ReplicationSiteDb = z.infer<typeof siteDbSchema>;
