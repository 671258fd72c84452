import { isIP } from 'node:net';
import { z } from 'zod';

/**
 * `partitions:` — active/standby ownership of slices of the service between sites (issue 9,
 * docs/partitions.md). Each partition is active at exactly one site and standby at the others; the
 * generated HAProxy configuration (`multisite haproxy-config`) sends a request for a partition to
 * its active site, the backend answers the partition's DNS name with the active site first, and
 * the `owner-wins` replication policy resolves conflicts on its rows in favour of its owner.
 * schema.ts imports this file, so its address types are not reused from there.
 */

const address = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[0-9.]+):\d{1,5}$/, 'expected ADDRESS:PORT, e.g. 127.0.0.2:8080')
  .transform((s) => {
    const i = s.lastIndexOf(':');
    return { host: s.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(s.slice(i + 1)) };
  })
  .refine((a) => isIP(a.host) !== 0 && a.port > 0 && a.port < 65536, 'bad address or port');

/** HAProxy identifiers (backend and server names) are built from these. */
const ident = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'lower-case letters, digits, - and _ (at most 63)');
const headerName = z.string().regex(/^[A-Za-z0-9-]{1,64}$/, 'an HTTP header name');
const host = z
  .string()
  .regex(
    /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/,
    'a host name, e.g. p1.example.com',
  )
  .transform((s) => s.replace(/\.$/, '').toLowerCase());
const pathPrefix = z.string().regex(/^\/[\x21-\x7e]*$/, 'an absolute URL path prefix, e.g. /p1/');
const tenant = z.string().regex(/^[\x21-\x7e]{1,128}$/, 'printable ASCII without spaces');
const sql = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$/, 'a SQL identifier (schema.table or table)');

export const failbackSchema = z.enum(['manual', 'auto']);

/** One web server of a site's pool, as HAProxy names it. */
export const partitionServerSchema = z.strictObject({
  name: ident,
  address,
  /** HAProxy server weight (the agent's `up N%` is a percentage of it). */
  weight: z.number().int().min(1).max(256).default(100),
});

/** A site's load balancer as the generated HAProxy configuration needs it. */
export const loadBalancerSchema = z.strictObject({
  /** Where the frontend listens (clients and DNS answers point here). */
  listen: address,
  /** Where other sites forward to over the inter-site network (default: listen). */
  'inter-site': address.optional(),
  /**
   * The address this load balancer connects to other sites from (HAProxy `source` on its remote
   * servers). Other sites honour the forwarded header only on requests from these addresses, so a
   * client cannot set it to dodge the routing. Default: the host of `inter-site`, else of `listen`.
   */
  'forward-source': z
    .string()
    .refine((s) => isIP(s) !== 0, 'an IPv4 or IPv6 address')
    .optional(),
  /** Runtime API socket (`stats socket PATH level admin`); failure transfer goes through it. */
  'stats-socket': z.string().min(1),
  /** The health agent's address (agent-addr/agent-port of every server line). */
  agent: address.optional(),
  /** How often HAProxy asks the agent. */
  'agent-inter-ms': z.number().int().min(10).max(60_000).default(500),
  /** The site's web servers (its local pool). */
  servers: z.array(partitionServerSchema).min(1),
});

export const partitionSchema = z.strictObject({
  name: ident,
  /** The site where the partition is active (exactly one). */
  active: z.string().min(1),
  /** Standby sites in takeover order (default: every other site, in the order of `sites`). */
  standby: z.array(z.string().min(1)).optional(),
  /** Requests whose Host is one of these (port ignored, case-insensitive). */
  hosts: z.array(host).default([]),
  /** Requests whose path starts with one of these. */
  'path-prefixes': z.array(pathPrefix).default([]),
  /** Requests whose tenant header has one of these values; rows whose tenant column has one. */
  tenants: z.array(tenant).default([]),
  /** A `balanced` name answered with the partition's active site first. */
  'dns-name': z.string().min(1).optional(),
  /** Return to the original active site by operator command (`manual`) or on its own (`auto`). */
  failback: failbackSchema.optional(),
});

export const partitionsSchema = z
  .strictObject({
    /** The partitions; each a slice of the service one site owns. */
    list: z.array(partitionSchema).min(1),
    /** Every site's load balancer, by site name (needed for every site a partition names). */
    'load-balancers': z.record(z.string(), loadBalancerSchema),
    /** The request header carrying the tenant (matched against partitions' tenants). */
    'tenant-header': headerName.default('X-Tenant'),
    /** Set on a forwarded request; a request carrying it is always served locally (never forwarded twice). */
    'forwarded-header': headerName.default('X-Multisite-Forwarded'),
    /** Added to every response: "SITE/SERVER" that served it. */
    'served-by-header': headerName.default('X-Served-By'),
    /** Default failback of every partition. */
    failback: failbackSchema.default('manual'),
    /** `auto` failback waits until the original site has been usable this long... */
    'hold-down-ms': z.number().int().min(0).max(86_400_000).default(60_000),
    /** ...and its replica lags less than this (read from the sites' databases, as `multisite status` reads it). */
    'max-lag-ms': z.number().int().min(0).max(86_400_000).default(5_000),
    /**
     * HAProxy's `timeout connect`. It also bounds the pause before each connection retry
     * (HAProxy waits min(timeout connect, 1 s)): with 2 s, a request caught by a dying pool
     * waited 2 s (2 retries × 1 s) before being served elsewhere.
     */
    'connect-timeout-ms': z.number().int().min(10).max(60_000).default(500),
    /**
     * After the backend starts, no failure transfer for this long: a site started before its
     * peer must not take the peer's partitions just because it has not heard from it yet.
     */
    'start-grace-ms': z.number().int().min(0).max(600_000).default(5_000),
    /** How often a remote site's load balancer is health-checked by HAProxy. */
    'remote-check-ms': z.number().int().min(10).max(60_000).default(500),
    /** Replicated tables whose rows belong to partitions: table → tenant column. */
    tables: z.record(sql, z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/, 'a column name')).default({}),
    /** Column holding "EPOCH:ACTIVE-SITE" at write time (added to each partitioned table by migrate). */
    'epoch-column': z
      .string()
      .regex(/^[a-z_][a-z0-9_]{0,62}$/, 'a lower-case column name')
      .default('owner_epoch'),
    /** Where this site keeps the partitions' ownership (epochs) across restarts. */
    'state-file': z.string().default('/var/lib/multisite/partitions.json'),
  })
  .superRefine((p, ctx) => {
    const at = (path: (string | number)[], message: string) => ctx.addIssue({ code: 'custom', path, message });
    const names = new Map<string, number>();
    const hosts = new Map<string, string>();
    const tenants = new Map<string, string>();
    const prefixes: { prefix: string; partition: string }[] = [];
    p.list.forEach((part, i) => {
      if (names.has(part.name)) at(['list', i, 'name'], `partition '${part.name}' is listed twice`);
      names.set(part.name, i);
      if (part.hosts.length + part['path-prefixes'].length + part.tenants.length === 0) {
        at(['list', i], `partition '${part.name}' matches nothing: give hosts, path-prefixes or tenants`);
      }
      part.hosts.forEach((h, j) => {
        const other = hosts.get(h);
        if (other !== undefined)
          at(['list', i, 'hosts', j], `host '${h}' is matched by partitions '${other}' and '${part.name}'`);
        else hosts.set(h, part.name);
      });
      part.tenants.forEach((t, j) => {
        const other = tenants.get(t);
        if (other !== undefined)
          at(['list', i, 'tenants', j], `tenant '${t}' is matched by partitions '${other}' and '${part.name}'`);
        else tenants.set(t, part.name);
      });
      part['path-prefixes'].forEach((pre, j) => {
        const clash = prefixes.find((x) => x.prefix.startsWith(pre) || pre.startsWith(x.prefix));
        if (clash)
          at(
            ['list', i, 'path-prefixes', j],
            `path prefix '${pre}' overlaps '${clash.prefix}' of partition '${clash.partition}'`,
          );
        else prefixes.push({ prefix: pre, partition: part.name });
      });
      if (part.standby?.includes(part.active))
        at(['list', i, 'standby'], `'${part.active}' is the active site; it cannot also be standby`);
      if (part.standby && new Set(part.standby).size !== part.standby.length)
        at(['list', i, 'standby'], 'a standby site is listed twice');
    });
  });

export type PartitionsConfig = z.infer<typeof partitionsSchema>;
export type PartitionConfig = z.infer<typeof partitionSchema>;
export type LoadBalancerConfig = z.infer<typeof loadBalancerSchema>;
export type PartitionServer = z.infer<typeof partitionServerSchema>;

type Ctx = z.RefinementCtx;
interface CrossInput {
  site: string;
  sites: { name: string }[];
  balanced: { name: string }[];
  partitions?: PartitionsConfig | undefined;
  replication?: { tables: string[] } | undefined;
}

/**
 * Checks against the rest of the config (called from cross-checks.ts): the sites a partition names
 * exist and have a load balancer, its dns-name is a balanced name, its tables are replicated.
 */
export function checkPartitions(cfg: CrossInput, ctx: Ctx): void {
  const p = cfg.partitions;
  if (!p) return;
  const at = (path: (string | number)[], message: string) =>
    ctx.addIssue({ code: 'custom', path: ['partitions', ...path], message });
  const sites = new Set(cfg.sites.map((s) => s.name));
  const known = [...sites].join(', ');
  for (const site of Object.keys(p['load-balancers']))
    if (!sites.has(site)) at(['load-balancers', site], `unknown site '${site}' (sites: ${known})`);
  const lb = (site: string) => site in p['load-balancers'];
  if (!lb(cfg.site)) at(['load-balancers'], `give this site's load balancer: load-balancers.${cfg.site}`);
  for (const [site, l] of Object.entries(p['load-balancers'])) {
    if (!l['forward-source'] && isWildcard(forwardSource(l))) {
      at(
        ['load-balancers', site],
        `${l['inter-site'] ? 'inter-site' : 'listen'} is a wildcard address; give forward-source: the address ${site}'s load balancer connects to other sites from`,
      );
    }
  }
  const balanced = new Set(cfg.balanced.map((b) => b.name));
  p.list.forEach((part, i) => {
    if (!sites.has(part.active)) at(['list', i, 'active'], `unknown site '${part.active}' (sites: ${known})`);
    else if (!lb(part.active))
      at(['list', i, 'active'], `site '${part.active}' has no entry in partitions.load-balancers`);
    part.standby?.forEach((s, j) => {
      if (!sites.has(s)) at(['list', i, 'standby', j], `unknown site '${s}' (sites: ${known})`);
    });
    if (part['dns-name'] !== undefined) {
      const n = part['dns-name'].toLowerCase().replace(/\.?$/, '.');
      if (!balanced.has(n)) at(['list', i, 'dns-name'], `'${part['dns-name']}' is not one of the balanced names`);
    }
  });
  const replicated = new Set((cfg.replication?.tables ?? []).map((t) => (t.includes('.') ? t : `public.${t}`)));
  for (const table of Object.keys(p.tables)) {
    const full = table.includes('.') ? table : `public.${table}`;
    if (!replicated.has(full)) at(['tables', table], `table '${table}' is not in replication.tables`);
  }
}

/** The address a site's load balancer forwards from (see `forward-source`). */
export function forwardSource(l: LoadBalancerConfig): string {
  return l['forward-source'] ?? (l['inter-site'] ?? l.listen).host;
}

const isWildcard = (host: string) => host === '0.0.0.0' || host === '::';

/** The standby sites of a partition in takeover order. */
export function standbyOf(part: PartitionConfig, siteOrder: readonly string[]): string[] {
  return part.standby ?? siteOrder.filter((s) => s !== part.active);
}
