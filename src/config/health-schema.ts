import { z } from 'zod';

/**
 * `health:` — how the backend learns its own site's health: it reads each load balancer of the
 * site through the HAProxy Runtime API. The site is up while at least `min-servers` servers of
 * `backend` are usable (UP, not drained or in maintenance, weight > 0) on at least one of them.
 */
export const healthSchema = z.strictObject({
  /** Runtime API unix sockets (`stats socket PATH level admin`) of this site's HAProxies. */
  'load-balancers': z.array(z.string().min(1)).min(1),
  /** The HAProxy backend (pool) of the web servers. */
  backend: z.string().regex(/^[A-Za-z0-9_.:-]+$/, 'an HAProxy backend name'),
  /** How often each load balancer is read while its state-change events cannot be followed. */
  'interval-ms': z.number().int().min(10).max(60_000).default(250),
  /**
   * The `ring` HAProxy logs server state changes to (docs/agent.md), followed with `show events
   * RING -w`: each change is read at once. `false`: poll only.
   */
  'event-ring': z
    .union([z.string().regex(/^[A-Za-z0-9_.-]+$/, 'an HAProxy ring name'), z.literal(false)])
    .default('multisite'),
  /** How often each load balancer is read while its events are followed (a safety net). */
  'safety-interval-ms': z.number().int().min(10).max(600_000).default(5000),
  /** Per-command timeout of the Runtime API. */
  'timeout-ms': z.number().int().min(10).max(60_000).default(1000),
  /** Usable servers needed (on one load balancer) for the site to be up. */
  'min-servers': z.number().int().min(1).max(10_000).default(1),
});
export type HealthConfig = z.infer<typeof healthSchema>;
