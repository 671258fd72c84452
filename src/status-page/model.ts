import {
  currentAnswers,
  explain,
  type BalancedName,
  type Explanation,
  type FailoverLog,
  type FailoverRecord,
  type Orderings,
} from '../pdns-backend/index.js';
import type { LoadBalancerView, MetricsTable, SiteStateTable } from '../site-health/index.js';
import type { TimelineEntry } from './timeline.js';

/**
 * What the page shows, read from the backend's live parts at render time. The sources are
 * structural (only what is read), so unit tests pass fakes and the site passes its real parts.
 */

/** A peer as the heartbeat service sees it (site-health's PeerStatus, the fields read here). */
export interface PeerView {
  site: string;
  state: string;
  reason: string;
  since: number;
  lastHeartbeat?: number;
  summary?: { pool?: string; usable?: number; servers?: number; replicationLagMs?: number };
}

/** A partition's ownership (partitions' Ownership, the fields read here). */
export interface PartitionView {
  partition: string;
  home: string;
  active: string;
  epoch: number;
  since: number;
  reason: string;
}

/** What the replicator recorded, as the backend's lag reporter last read it (db-triggers' ReplicationStatus). */
export interface ReplicationFigures {
  /** Per peer: its changes not yet applied here, the oldest one's age, conflicts logged so far. */
  peers: {
    peer: string;
    pending: number | null;
    lagSeconds: number | null;
    conflicts: number;
    updatedAt: string | null;
    error?: string;
  }[];
  /** Newest first, as many as the reporter reads (a bounded query). */
  recentConflicts: ConflictView[];
}

export interface ConflictView {
  at: string;
  peer: string;
  tbl: string;
  pk: string;
  kind: string;
  columns: string[] | null;
  winnerSite: string | null;
  loserSite: string | null;
  /** The winning and losing versions of the row (JSON, shortened). */
  winner?: string | null;
  loser?: string | null;
  reason: string;
}

export interface PageSources {
  site: string;
  table: SiteStateTable;
  orderings: Orderings;
  balanced: readonly BalancedName[];
  metricsTable?: Pick<MetricsTable, 'isStale'>;
  /** Peer states (heartbeats), when `peers:` is configured. */
  peers?(): PeerView[];
  /** The local pool per load balancer, when `health:` is configured. */
  pool?(): LoadBalancerView[];
  /** This site's replica lag (ms), when replication is configured and its lag is known. */
  ownLagMs?(): number | undefined;
  /** Partition ownership, when `partitions:` is configured. */
  partitions?(): PartitionView[];
  /** Pending changes and recent conflicts, when the backend reads replication (undefined until read). */
  replicationFigures?(): ReplicationFigures | undefined;
  /** The backend's record of failovers and recoveries with their stage times. */
  failovers?: Pick<FailoverLog, 'list' | 'on' | 'off'>;
}

/** Failovers the page lists (the newest); GET /failovers has every one the backend keeps. */
export const FAILOVERS_SHOWN = 20;

export type SiteLabel = 'up' | 'suspect' | 'down' | 'draining' | 'lagging';

export interface SiteRow {
  site: string;
  state: SiteLabel;
  since: number;
  why: string;
  local: boolean;
  lastHeartbeat?: number;
}

export interface ReplicationRow {
  site: string;
  lagMs?: number;
  stale: boolean;
}

export interface Model {
  site: string;
  now: number;
  sites: SiteRow[];
  pool?: LoadBalancerView[];
  peers: PeerView[];
  answers: { name: string; sites: string[] }[];
  moreNames: number;
  replication: ReplicationRow[];
  /** Into this site's database: pending per peer and the recent conflicts; absent when not read. */
  inbound?: ReplicationFigures;
  partitions?: PartitionView[];
  timeline: TimelineEntry[];
  /** Newest first; absent when the backend records none (a fake in tests). */
  failovers?: FailoverRecord[];
}

/** One site's label: draining beats down beats suspect beats lagging. */
export function siteLabel(usable: boolean, drained: boolean, peerState?: string, stale = false): SiteLabel {
  if (drained) return 'draining';
  if (!usable) return 'down';
  if (peerState === 'suspect') return 'suspect';
  return stale ? 'lagging' : 'up';
}

export function buildModel(src: PageSources, timeline: TimelineEntry[], maxNames: number, now = Date.now()): Model {
  const peers = src.peers?.() ?? [];
  const bySite = new Map(peers.map((p) => [p.site, p]));
  const sites = src.table.snapshot().map((s): SiteRow => {
    const peer = bySite.get(s.site);
    const stale = src.metricsTable?.isStale(s.site) ?? false;
    const state = siteLabel(s.usable, s.drained, peer?.state, stale);
    const row: SiteRow = { site: s.site, state, since: s.since, why: s.reason, local: s.site === src.site };
    if (state === 'suspect' && peer) Object.assign(row, { since: peer.since, why: `peer: ${peer.reason}` });
    if (state === 'lagging') row.why = 'replica lags beyond replication.max-lag-seconds';
    if (peer?.lastHeartbeat !== undefined) row.lastHeartbeat = peer.lastHeartbeat;
    return row;
  });
  const answers = [...currentAnswers(src.orderings)].map(([name, order]) => ({ name, sites: order }));
  const ownLag = src.ownLagMs?.();
  const replication = src.table.sites.map((site): ReplicationRow => {
    const lagMs = site === src.site ? ownLag : bySite.get(site)?.summary?.replicationLagMs;
    return { site, stale: src.metricsTable?.isStale(site) ?? false, ...(lagMs !== undefined ? { lagMs } : {}) };
  });
  const model: Model = {
    site: src.site,
    now,
    sites,
    peers,
    answers: answers.slice(0, maxNames),
    moreNames: Math.max(0, answers.length - maxNames),
    replication,
    timeline,
  };
  const pool = src.pool?.();
  if (pool) model.pool = pool;
  const partitions = src.partitions?.();
  if (partitions) model.partitions = partitions;
  const inbound = src.replicationFigures?.();
  if (inbound) model.inbound = inbound;
  if (src.failovers) model.failovers = src.failovers.list().slice(0, FAILOVERS_SHOWN);
  return model;
}

/** Thrown for a client the explain form cannot use; its message is shown on the page. */
export class ExplainInputError extends Error {
  override name = 'ExplainInputError';
}

/** `multisite explain NAME --client ADDR` for the form; undefined when no client was typed. */
export function explainFor(src: PageSources, name: string, client: string): Explanation[] {
  const c = client.trim();
  if (!/^[0-9a-fA-F:.]+(\/\d{1,3})?$/.test(c))
    throw new ExplainInputError(`'${c}' is not an IP address or subnet (e.g. 198.51.100.7 or 198.51.100.0/24)`);
  const wanted = name === '' ? src.balanced : src.balanced.filter((b) => b.name === name || b.name === `${name}.`);
  if (wanted.length === 0) throw new ExplainInputError(`'${name}' is not a balanced name`);
  try {
    return wanted.slice(0, 50).map((b) => explain(b, src.orderings, src.table, c));
  } catch (err) {
    throw new ExplainInputError(`cannot explain for '${c}': ${(err as Error).message}`);
  }
}
