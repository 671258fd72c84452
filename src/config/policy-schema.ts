import { isIP } from 'node:net';
import { z } from 'zod';

/**
 * Balancing policies (docs/policies.md): the per-name policy parameters of `balanced[]`, and the
 * top-level `load-reports:` (agents' load reports to the backends) and `probes:` (measuring the
 * way to a client, for `closest`). New keys are optional; their documented defaults are applied
 * where they are used (src/pdns-backend/balanced.ts POLICY_DEFAULTS, and below), so configs and
 * code written before them keep their meaning. schema.ts imports this file.
 */

const siteName = z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'a site name is lower-case letters, digits and dashes');

export const policyNameSchema = z.enum([
  'local-first',
  'failover',
  'round-robin',
  'ratio',
  'least-load',
  'fastest',
  'topology',
  'closest',
]);

/** "192.0.2.0/24" or "2001:db8::/32" with no host bits set (192.0.2.1/24 is refused: it names no network). */
export const cidr = z.string().superRefine((s, ctx) => {
  const [addr, bits, more] = s.split('/');
  const fam = addr === undefined ? 0 : isIP(addr);
  if (
    more !== undefined ||
    bits === undefined ||
    !/^\d{1,3}$/.test(bits) ||
    fam === 0 ||
    Number(bits) > (fam === 4 ? 32 : 128)
  ) {
    ctx.addIssue({ code: 'custom', message: 'expected a network as ADDRESS/BITS, e.g. 192.0.2.0/24' });
    return;
  }
  const network = networkOf(addr!, Number(bits));
  if (network !== addr!.toLowerCase())
    ctx.addIssue({ code: 'custom', message: `${s} has host bits set: the network is ${network}/${bits}` });
});

/**
 * The address with every bit past `bits` cleared, written as isIP-valid text (IPv6 fully expanded unless unchanged).
 */
function networkOf(addr: string, bits: number): string {
  const bytes = addressBytes(addr);
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, bits - i * 8));
    bytes[i]! &= (0xff << (8 - keep)) & 0xff;
  }
  if (bytes.length === 4) return bytes.join('.');
  const same = addressBytes(addr).every((b, i) => b === bytes[i]);
  if (same) return addr.toLowerCase();
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return groups.join(':').replace(/(^|:)0(:0)+(:|$)/, '::');
}

function addressBytes(addr: string): number[] {
  if (isIP(addr) === 4) return addr.split('.').map(Number);
  let text = addr.toLowerCase();
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const b = v4[1]!.split('.').map(Number);
    text = `${text.slice(0, v4.index)}${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return groups.flatMap((g) => [parseInt(g, 16) >> 8, parseInt(g, 16) & 0xff]);
}

const address = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[0-9.]+):\d{1,5}$/, 'expected ADDRESS:PORT, e.g. 127.0.0.1:7947')
  .transform((s) => {
    const i = s.lastIndexOf(':');
    return { host: s.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(s.slice(i + 1)) };
  })
  .refine((a) => isIP(a.host) !== 0 && a.port > 0 && a.port < 65536, 'bad address or port');

const secret = {
  /** A file holding the shared key (at least 16 bytes; surrounding whitespace ignored). */
  'key-file': z.string().optional(),
  /** An environment variable holding the shared key. */
  'key-env': z.string().optional(),
};
const oneSecret = (s: { 'key-file'?: string; 'key-env'?: string }) =>
  (s['key-file'] === undefined) !== (s['key-env'] === undefined);

/** The policy keys of one `balanced[]` entry (spread into balancedSchema). */
export const policyKeys = {
  /** How the usable sites are ordered. Default local-first. */
  policy: policyNameSchema.optional(),
  /** `ratio`: weight per site (default 1 each; 0 = never first, still a backup). */
  weights: z.record(siteName, z.number().int().min(0).max(1000)).optional(),
  /** `topology`: client network → preferred sites; the longest matching prefix wins. */
  topology: z.record(cidr, z.array(siteName).min(1)).optional(),
  /** `least-load`, `fastest`: how much better a site must be to pass another, and how long an order holds. */
  hysteresis: z
    .strictObject({
      /** Fraction of the figure of the site ahead (default 0.2). */
      ratio: z.number().min(0).max(10).optional(),
      /** Absolute margin: load units for least-load (default 0.1), ms for fastest (default 5). */
      min: z.number().min(0).optional(),
      /** After an order change, no figure changes it again for this long (default 10000). */
      'hold-ms': z.number().int().min(0).max(3_600_000).optional(),
    })
    .optional(),
  /** `closest`: score = rtt / completion + hops × hop-ms. */
  closest: z
    .strictObject({
      /** ms added per hop (default 1). */
      'hop-ms': z.number().min(0).max(1000).optional(),
      /** Probe results older than this are not used (default 300000). */
      'max-age-ms': z.number().int().min(1000).max(86_400_000).optional(),
    })
    .optional(),
  /** Ask this site's backend for the order (authenticated with the peers key), cached for the TTL. */
  'decided-by': siteName.optional(),
  /** How long a decision request to that site may take before our own decision stands (default 300). */
  'decided-by-timeout-ms': z.number().int().min(10).max(10_000).optional(),
};

const ms = (def: number, min: number, max = 3_600_000) => z.number().int().min(min).max(max).default(def);

/** `load-reports:` — where this backend receives its site's agents' load reports (UDP, HMAC). */
export const loadReportsSchema = z
  .strictObject({
    /** UDP address the agents send to (their agent.load-report.to). */
    listen: address,
    ...secret,
    /** A server's report older than this no longer counts in the site aggregate. */
    'stale-after-ms': ms(10_000, 100),
    /** Reports whose time differs from ours by more are refused. */
    'max-skew-ms': ms(5000, 100),
  })
  .refine(oneSecret, 'give exactly one of key-file or key-env');

/** `probes:` — measuring the way from this site to clients' networks (policy `closest`). */
export const probesSchema = z.strictObject({
  /** icmp: echo through libc (koffi), tcp: connect time, auto: icmp where permitted, else tcp. */
  method: z.enum(['auto', 'icmp', 'tcp']).default('auto'),
  /** Port of the TCP connect probe (a resolver answers on 53). */
  'tcp-port': z.number().int().min(1).max(65535).default(53),
  /** Echo requests (or connects) per probe. */
  count: z.number().int().min(1).max(20).default(3),
  /** One probe (all its requests) gives up after this long. */
  'timeout-ms': ms(1000, 10, 60_000),
  /** A result per /24 or /48 is kept this long, then probed again when asked for. */
  'expire-ms': ms(300_000, 1000, 86_400_000),
  /** At most this many probes start per second (the rest wait their turn or are dropped). */
  'max-per-second': z.number().int().min(1).max(10_000).default(20),
  /** Networks waiting to be probed beyond this are not queued (they are asked about again later). */
  'max-pending': z.number().int().min(1).max(1_000_000).default(1000),
  /** Only clients inside these networks are probed (default: any); others keep the default order. */
  networks: z.array(cidr).min(1).default(['0.0.0.0/0', '::/0']),
  /** Networks kept in the cache at most (oldest dropped first). */
  'max-entries': z.number().int().min(16).max(10_000_000).default(100_000),
});

/** `agent.load-report:` — the agent sends its servers' load to its site's backends. */
export const loadReportSenderSchema = z
  .strictObject({
    /** The site's backends' load-reports.listen addresses. */
    to: z.array(address).min(1),
    ...secret,
    /** A report per server goes out this often. */
    'period-ms': ms(2000, 50, 60_000),
    /**
     * The site load balancer's Runtime API socket: each server's active connections (`scur` of
     * BACKEND/SERVER in `show stat`) go in its reports. Without it, connections are unknown.
     */
    'stats-socket': z.string().min(1).optional(),
  })
  .refine(oneSecret, 'give exactly one of key-file or key-env');

export type LoadReportsConfig = z.infer<typeof loadReportsSchema>;
export type ProbesConfig = z.infer<typeof probesSchema>;
export type LoadReportSenderConfig = z.infer<typeof loadReportSenderSchema>;
