import type { Server } from 'node:http';
import { redactUrl, type Db } from '../../db/index.js';
import { createRegistry, serveMetrics } from '../../shared/metrics.js';
import { ReplicationMetrics, Replicator, openSiteDb, policyOf, replicationOf } from '../../db-triggers/index.js';
import { parse, required } from '../args.js';
import { daemonLogger, preflight } from '../preflight.js';

/** A pooled connection not had within this fails the sync (retried, a stall said) instead of hanging it. */
const CONNECT_TIMEOUT_MS = 30_000;

/**
 * multisite replicate --config FILE [--once]
 * Runs this site's replicator until SIGTERM/SIGINT; --once syncs until caught up and exits.
 */
export async function run(args: string[]): Promise<number> {
  const { values } = parse(args, {
    config: { type: 'string' },
    once: { type: 'boolean', default: false },
    'log-level': { type: 'string' },
  });
  // The same checks as check-config, before any database is opened.
  const checked = preflight(required(values.config, '--config'), ['replicate']);
  const { loaded } = checked;
  const r = replicationOf(loaded);
  const me = loaded.config.site;
  const log = daemonLogger('replicate', values['log-level'], checked, 'replication');
  const dbs: Db[] = [];
  let server: Server | undefined;
  const onError = (err: Error) => log.warn({ err: err.message }, 'database connection error');
  try {
    const local = await openSiteDb(loaded, me, {
      applicationName: 'multisite-replicate',
      max: 3,
      onError,
      connectTimeoutMs: CONNECT_TIMEOUT_MS,
    });
    dbs.push(local);
    const peers = [];
    for (const s of loaded.config.sites) {
      if (s.name === me) continue;
      const db = await openSiteDb(loaded, s.name, {
        applicationName: `multisite-replicate-${me}`,
        max: 2,
        onError,
        connectTimeoutMs: CONNECT_TIMEOUT_MS,
      });
      dbs.push(db);
      peers.push({ name: s.name, db });
    }
    let metrics: ReplicationMetrics | undefined;
    if (r.metrics) {
      const registry = createRegistry('multisite_replicate_');
      metrics = new ReplicationMetrics(registry);
      const i = r.metrics.lastIndexOf(':');
      server = await serveMetrics(
        registry,
        r.metrics.slice(0, i).replace(/^\[|\]$/g, ''),
        Number(r.metrics.slice(i + 1)),
      );
    }
    const rep = new Replicator({
      site: me,
      local,
      peers,
      policy: policyOf(loaded, r),
      batchSize: r['batch-size'],
      pollIntervalMs: r['poll-interval-ms'],
      trimIntervalMs: r['trim-interval-ms'],
      conflictRetentionDays: r['conflict-retention-days'],
      tombstoneRetentionDays: r['tombstone-retention-days'],
      logger: log,
      ...(metrics ? { metrics } : {}),
    });
    log.info(
      {
        site: me,
        peers: peers.map((p) => p.name),
        db: redactUrl(r.sites[me]!.db),
        policy: r.policy,
        metrics: r.metrics,
      },
      'replicator starting',
    );
    if (values.once) {
      const n = await rep.syncAll();
      await rep.trim();
      log.info({ changes: n }, 'caught up');
      return 0;
    }
    await rep.start();
    await new Promise<void>((resolve) => {
      const stop = (sig: string) => {
        log.info({ signal: sig }, 'stopping: finishing the current batch');
        process.off('SIGTERM', onTerm);
        process.off('SIGINT', onInt);
        resolve();
      };
      const onTerm = () => stop('SIGTERM');
      const onInt = () => stop('SIGINT');
      process.on('SIGTERM', onTerm);
      process.on('SIGINT', onInt);
    });
    await rep.stop();
    log.info('replicator stopped');
    return 0;
  } finally {
    if (server) await new Promise((res) => server!.close(() => res(undefined)));
    await Promise.all(dbs.map((d) => d.close().catch(() => undefined)));
    log.flush();
  }
}
