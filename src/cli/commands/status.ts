import { loadConfig, type LoadedConfig } from '../../config/index.js';
import type { Db } from '../../db/index.js';
import {
  formatReplicationStatus,
  openSiteDb,
  replicationOf,
  replicationStatus,
  type ReplicationStatus,
} from '../../db-triggers/index.js';
import type { StatusBody } from '../../site-health/index.js';
import { parse, required } from '../args.js';

/**
 * How a section judges the cluster, and the exit code `multisite status` gives for it: 0 all well,
 * 1 degraded (something known to be wrong: a site down, drained or suspect, a replica stale or a
 * peer database unreachable, a partition away from its home site), 2 cannot tell (this site's
 * backend or database did not answer). A known problem outranks an unknown: 1 beats 2.
 */
export type Health = 'ok' | 'degraded' | 'unknown';
export const EXIT: Record<Health, number> = { ok: 0, degraded: 1, unknown: 2 };
interface Section {
  name: string;
  text: string;
  data: unknown;
  health: Health;
}

/**
 * multisite status --config FILE [--json]
 * One section per part of the cluster: sites (state, last change, why, last heartbeat, from the
 * backend's /status), the last failovers with their stage times (its /failovers), replication (lag
 * per peer, recent conflicts), partitions. Exit code: EXIT.
 */
export async function run(args: string[]): Promise<number> {
  const { values } = parse(args, { config: { type: 'string' }, json: { type: 'boolean', default: false } });
  const loaded = loadConfig(required(values.config, '--config'));
  const sections: Section[] = [];
  if (loaded.config.backend.metrics) sections.push(await sites(loaded), await failovers(loaded));
  if (loaded.config.replication) sections.push(await replication(loaded));
  if (loaded.config.partitions) sections.push(await partitions(loaded));
  const health = overall(sections.map((s) => s.health));
  if (values.json) {
    const body = { health, ...Object.fromEntries(sections.map((s) => [s.name, s.data])) };
    process.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
  } else if (!sections.length) {
    process.stdout.write('nothing configured to report\n');
  } else {
    process.stdout.write(`${sections.map((s) => s.text).join('\n')}\nhealth: ${health}\n`);
  }
  return EXIT[health];
}

export function overall(parts: Health[]): Health {
  if (parts.includes('degraded')) return 'degraded';
  return parts.includes('unknown') ? 'unknown' : 'ok';
}

async function sites(loaded: LoadedConfig): Promise<Section> {
  const s = await (await import('../../site-health/index.js')).sitesSection(loaded);
  const body = s.data as Partial<StatusBody>;
  if (!body.sites) return { ...s, health: 'unknown' };
  const bad = body.sites.some((x) => !x.usable || x.drained || (x.peer !== undefined && x.peer.state !== 'up'));
  return { ...s, health: bad ? 'degraded' : 'ok' };
}

async function failovers(loaded: LoadedConfig): Promise<Section> {
  const { reachable, ...s } = await (await import('./failovers-status.js')).failoversSection(loaded);
  return { ...s, health: reachable ? 'ok' : 'unknown' };
}

async function replication(loaded: LoadedConfig): Promise<Section> {
  try {
    const s = await replicationSection(loaded);
    const bad = s.peers.some((p) => p.error !== undefined || p.stale);
    return { name: 'replication', text: formatReplicationStatus(s), data: s, health: bad ? 'degraded' : 'ok' };
  } catch (err) {
    const error = `this site's database could not be read: ${(err as Error).message}`;
    return { name: 'replication', text: `replication: ${error}\n`, data: { error }, health: 'unknown' };
  }
}

async function partitions(loaded: LoadedConfig): Promise<Section> {
  const { partitionRecords, formatPartitions } = await import('./partition.js');
  const s = await partitionRecords(loaded);
  const away = s.partitions.some((p) => p.active !== p.home);
  const health: Health = s.source !== 'backend' ? 'unknown' : away ? 'degraded' : 'ok';
  return { name: 'partitions', text: formatPartitions(s), data: s, health };
}

/** Opens this site's and the peers' databases, reads the state, closes them. */
export async function replicationSection(loaded: LoadedConfig): Promise<ReplicationStatus> {
  const r = replicationOf(loaded);
  const me = loaded.config.site;
  const opened: Db[] = [];
  try {
    const local = await openSiteDb(loaded, me, { applicationName: 'multisite-status', max: 1 });
    opened.push(local);
    const peers: { name: string; db: Db | null; error?: string }[] = [];
    for (const s of loaded.config.sites) {
      if (s.name === me) continue;
      try {
        const db = await openSiteDb(loaded, s.name, { applicationName: 'multisite-status', max: 1 });
        opened.push(db);
        peers.push({ name: s.name, db });
      } catch (err) {
        peers.push({ name: s.name, db: null, error: (err as Error).message });
      }
    }
    return await replicationStatus(local, peers, { maxLagSeconds: r['max-lag-seconds'] });
  } finally {
    await Promise.all(opened.map((d) => d.close().catch(() => undefined)));
  }
}
