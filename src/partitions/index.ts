import { peerOrigins, resolvePath, sharedKey, type LoadedConfig } from '../config/index.js';
import type { Db } from '../db/index.js';
import { openSiteDb, replicaLagMs, writeOwnership } from '../db-triggers/index.js';
import { RuntimeClient } from '../haproxy/index.js';
import { partitionBackend, remoteServer } from '../haproxy-config/index.js';
import { realTimers, type Timers } from '../shared/timers.js';
import type { Logger } from '../shared/log.js';
import type { Route } from '../shared/metrics.js';
import type { SiteStateTable } from '../site-health/index.js';
import { MAC_HEADER, parseJsonObject, post, readBody, refuseMethod, reply, verify } from '../shared/peer-http.js';
import { PartitionManager, type ManagerEffects, type PeerRecords } from './manager.js';
import { rulesOf, type Ownership, type PartitionRule } from './ownership.js';

export {
  PartitionManager,
  type ManagerEffects,
  type ManagerOptions,
  type PeerRecords,
  type TransferEvent,
} from './manager.js';
export {
  evaluate,
  failback,
  newer,
  rulesOf,
  initialOwnership,
  epochStamp,
  type Ownership,
  type PartitionRule,
  type SiteView,
  type Change,
} from './ownership.js';
export {
  ownerWinsPolicy,
  installOwnerWins,
  uninstallOwnerWins,
  writeOwnership,
  compareVersions,
  parseEpochStamp,
} from '../db-triggers/index.js';

export { MAC_HEADER, post, sign, verify } from '../shared/peer-http.js';
export { sharedKey } from '../config/index.js';
export { replicaLagMs } from '../db-triggers/index.js';

/**
 * What partitions change in a balanced DNS name (the backend's BalancedName fits): the sites in
 * preference order, limited to those with addresses. Structural, so partitions need not import
 * the backend (the site wires them together).
 */
export interface PreferredName {
  readonly name: string;
  preference: string[];
  readonly a: ReadonlyMap<string, unknown>;
  readonly aaaa: ReadonlyMap<string, unknown>;
}

export interface RunningPartitions {
  manager?: PartitionManager;
  routes: Route[];
  stop(): Promise<void>;
}

export interface PartitionDeps {
  table: SiteStateTable;
  /** The backend's compiled balanced names (a partition's dns-name is one of them). */
  balanced: PreferredName[];
  /** Flushes names from PowerDNS's caches. */
  flush?(names: string[]): void;
  /**
   * Re-decides every balanced name now (the backend's Orderings.recompute): answers are cached
   * per orderings version, so a changed `preference` is served only after this.
   */
  reorder(): void;
  logger: Logger;
  timers?: Timers;
}

/** Starts the partition manager in the backend when `partitions:` is configured. */
export async function startPartitions(loaded: LoadedConfig, deps: PartitionDeps): Promise<RunningPartitions> {
  const { config } = loaded;
  const p = config.partitions;
  if (!p) return { routes: [], stop: async () => {} };
  const me = config.site;
  const siteOrder = config.sites.map((s) => s.name);
  const rules = rulesOf(p, siteOrder);
  const key = sharedKey(loaded);
  const lb = p['load-balancers'][me]!;
  const haproxy = new RuntimeClient(resolvePath(loaded, lb['stats-socket']), { timeoutMs: 1000 });
  const remotes = siteOrder.filter((s) => s !== me && p['load-balancers'][s]);
  const peerBases = [...peerOrigins(config)].filter(([site]) => site !== me).map(([site, urls]) => ({ site, urls }));
  const dbs = new Map<string, Promise<Db>>();
  const db = (site: string) => {
    let d = dbs.get(site);
    if (!d) {
      d = openSiteDb(loaded, site, { applicationName: 'multisite-partitions', max: 1 });
      d.catch(() => dbs.delete(site));
      dbs.set(site, d);
    }
    return d;
  };
  const withDb = config.replication?.sites[me] !== undefined && Object.keys(p.tables).length > 0;

  const effects: ManagerEffects = {
    async haproxy(o, serveHere) {
      const backend = partitionBackend(o.partition);
      for (const r of remotes)
        await haproxy.setServerState(backend, remoteServer(r), r === o.active && o.active !== me ? 'ready' : 'maint');
      // The local pool (backups: it serves while no remote is in service) only once synced.
      for (const s of lb.servers) await haproxy.setServerState(backend, s.name, serveHere ? 'ready' : 'maint');
    },
    dns(o) {
      const rule = rules.find((r) => r.partition === o.partition)!;
      const part = p.list.find((x) => x.name === o.partition)!;
      const dnsName = part['dns-name']?.toLowerCase().replace(/\.?$/, '.');
      const b = deps.balanced.find((x) => x.name === dnsName);
      if (!b) return;
      b.preference = preferenceFor(o.active, rule, siteOrder).filter((s) => b.a.has(s) || b.aaaa.has(s));
      deps.reorder();
      // reorder flushes the names whose shared answer changed; a client-dependent name's answers are per client.
      deps.flush?.([b.name]);
    },
    db: withDb ? async (o) => writeOwnership(await db(me), o) : undefined,
    async announce(records) {
      if (!key) return;
      const body = JSON.stringify({ site: me, partitions: records });
      await Promise.allSettled(peerBases.flatMap((peer) => peer.urls.map((u) => post(`${u}/partitions`, body, key))));
    },
    async pull() {
      if (!key) return [];
      const out: PeerRecords[] = [];
      for (const peer of peerBases) {
        for (const u of peer.urls) {
          const records = await fetchSigned(`${u}/partitions`, key).catch(() => undefined);
          if (records) out.push({ site: peer.site, records });
          if (records) break;
        }
      }
      return out;
    },
    async lagMs(site) {
      if (!config.replication) return 0;
      const peers = await Promise.all(
        siteOrder.filter((s) => s !== site).map(async (s) => ({ name: s, db: await db(s).catch(() => null) })),
      );
      return replicaLagMs(await db(site), peers);
    },
  };
  const manager = new PartitionManager({
    site: me,
    // Without a peers key nothing can be read from them: there is nothing to wait for.
    peers: key ? peerBases.map((b) => b.site) : [],
    rules,
    auto: { holdDownMs: p['hold-down-ms'], maxLagMs: p['max-lag-ms'] },
    table: deps.table,
    effects,
    timers: deps.timers ?? realTimers,
    wallNow: Date.now,
    logger: deps.logger,
    reconcileMs: 1000,
    startGraceMs: p['start-grace-ms'],
    stateFile: resolvePath(loaded, p['state-file']),
  });
  // The DNS order follows the recorded ownership from the start (it may differ from the config after a restart).
  for (const o of manager.records()) effects.dns(o);
  await manager.start();
  deps.logger.info(
    { site: me, partitions: manager.records().map((o) => `${o.partition}@${o.active}#${o.epoch}`) },
    'partitions started',
  );
  return {
    manager,
    routes: [partitionsRoute(manager, me, key)],
    async stop() {
      await manager.stop();
      await Promise.allSettled([...dbs.values()].map(async (d) => (await d).close()));
    },
  };
}

/** The partition's DNS order: its active site, then the rest of its takeover order, then other sites. */
export function preferenceFor(active: string, rule: PartitionRule, siteOrder: readonly string[]): string[] {
  const order = [active, ...rule.order.filter((s) => s !== active)];
  return [...order, ...siteOrder.filter((s) => !order.includes(s))];
}

/**
 * GET /partitions: this site's records (signed). POST /partitions: a peer's announcement.
 * POST /partitions/failback: `multisite partition failback P` (signed with the peers key; without
 * one, accepted from loopback only).
 */
export function partitionsRoute(manager: PartitionManager, site: string, key: Buffer | undefined): Route {
  return (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname !== '/partitions' && url.pathname !== '/partitions/failback') return false;
    if (req.method === 'GET' && url.pathname === '/partitions') {
      reply(
        res,
        200,
        {
          site,
          synced: manager.synced,
          partitions: manager.records(),
          history: manager.history.slice(-20).map((e) => e.change.after),
        },
        key,
      );
      return true;
    }
    if (req.method !== 'POST') {
      refuseMethod(req, res, 'GET, POST');
      return true;
    }
    void readBody(req, 64 * 1024)
      .then(
        async (body) => {
          const mac = req.headers[MAC_HEADER];
          const trusted = key
            ? verify(key, body, typeof mac === 'string' ? mac : undefined)
            : url.pathname === '/partitions/failback' && isLoopback(req.socket.remoteAddress);
          if (!trusted) return reply(res, 403, { error: 'not signed with the shared key' });
          const parsed = parseJsonObject(
            body,
            url.pathname === '/partitions' ? '{"site", "partitions": [...]}' : '{"partition", "time"}',
          );
          if (!parsed.ok) return reply(res, 400, { error: parsed.error });
          const msg = parsed.value as { site?: unknown; partitions?: unknown; partition?: unknown; time?: unknown };
          if (url.pathname === '/partitions') {
            if (!Array.isArray(msg.partitions)) return reply(res, 400, { error: 'partitions: expected a list' });
            if (!msg.partitions.every((p) => typeof p === 'object' && p !== null && !Array.isArray(p)))
              return reply(res, 400, { error: 'partitions: every entry must be an object' });
            const adopted = await manager.merge(
              msg.partitions as Ownership[],
              typeof msg.site === 'string' ? msg.site : '?',
            );
            return reply(res, 200, { adopted });
          }
          if (typeof msg.time !== 'number' || Math.abs(Date.now() - msg.time) > 60_000)
            return reply(res, 400, { error: 'time: missing or more than 60 s off' });
          const r = await manager.failback(String(msg.partition));
          return reply(res, r.ok ? 200 : 409, r);
        },
        (err: Error) => reply(res, 400, { error: err.message }),
      )
      .catch((err: Error) => reply(res, 500, { error: err.message }));
    return true;
  };
}

function isLoopback(a: string | undefined): boolean {
  return !!a && (a.startsWith('127.') || a === '::1' || a.startsWith('::ffff:127.'));
}

async function fetchSigned(url: string, key: Buffer): Promise<Ownership[] | undefined> {
  const r = await fetch(url, { signal: AbortSignal.timeout(1000) });
  const body = await r.text();
  if (r.status !== 200 || !verify(key, body, r.headers.get(MAC_HEADER) ?? undefined)) return undefined;
  const v = JSON.parse(body) as { partitions?: Ownership[] };
  return Array.isArray(v.partitions) ? v.partitions : undefined;
}
