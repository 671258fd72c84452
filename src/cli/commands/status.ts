import { loadConfig, type LoadedConfig } from '../../config/index.js';
import type { Db } from '../../db/index.js';
import { formatReplicationStatus, openSiteDb, replicationOf, replicationStatus, type ReplicationStatus } from '../../db-triggers/index.js';
import { parse, required } from '../args.js';

/**
 * multisite status --config FILE [--json]
 * One section per part of the cluster: sites (state, since, why, last heartbeat, from the backend's
 * /status), replication (lag per peer, recent conflicts), partitions.
 */
export async function run(args: string[]): Promise<number> {
  const { values } = parse(args, { config: { type: 'string' }, json: { type: 'boolean', default: false } });
  const loaded = loadConfig(required(values.config, '--config'));
  const sections: { name: string; text: string; data: unknown }[] = [];
  if (loaded.config.backend.metrics) sections.push(await (await import('../../site-health/index.js')).sitesSection(loaded));
  if (loaded.config.replication) {
    const s = await replicationSection(loaded);
    sections.push({ name: 'replication', text: formatReplicationStatus(s), data: s });
  }
  if (loaded.config.partitions) {
    const { partitionRecords, formatPartitions } = await import('./partition.js');
    const s = await partitionRecords(loaded);
    sections.push({ name: 'partitions', text: formatPartitions(s), data: s });
  }
  if (values.json) {
    process.stdout.write(`${JSON.stringify(Object.fromEntries(sections.map((s) => [s.name, s.data])), null, 2)}\n`);
  } else {
    process.stdout.write(sections.length ? sections.map((s) => s.text).join('\n') : 'nothing configured to report\n');
  }
  return 0;
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
