import type { Server } from 'node:http';
import { Registry, type Counter } from 'prom-client';
import type { LoadedConfig } from '../config/index.js';
import { redactUrl, type Db } from '../db/index.js';
import { ReplicationMetrics, Replicator, openSiteDb, policyOf, replicationOf } from '../db-triggers/index.js';
import type { Logger } from '../shared/log.js';
import { createRegistry, serveMetrics } from '../shared/metrics.js';
import type { Timers } from '../shared/timers.js';
import { partFailures, Supervisor } from './supervise.js';

/** A pooled connection not had within this fails the sync (retried, a stall said) instead of hanging it. */
const CONNECT_TIMEOUT_MS = 30_000;

/**
 * This site's replicator, wired from `replication:` (what `multisite replicate` and `multisite run`
 * start): the local and peer databases, the metrics server of replication.metrics, the Replicator.
 * Opening a database does not connect (pg pools connect on use): a database that is down at start
 * is logged and retried by the replicator, never a failed start, so DNS keeps being served.
 */
export interface ReplicationOptions {
  logger: Logger;
  /** Where multisite_part_failures_total is counted (default: the replication metrics registry). */
  failures?: Counter<'part'>;
  timers?: Timers;
}

export interface RunningReplication {
  peers: string[];
  stop(): Promise<void>;
}

interface Opened {
  peers: string[];
  registry?: Registry;
  newReplicator(): Replicator;
  close(): Promise<void>;
}

async function openReplication(loaded: LoadedConfig, log: Logger): Promise<Opened> {
  const r = replicationOf(loaded);
  const me = loaded.config.site;
  const dbs: Db[] = [];
  let server: Server | undefined;
  const close = async () => {
    if (server) await new Promise((res) => server!.close(() => res(undefined)));
    await Promise.all(dbs.map((d) => d.close().catch(() => undefined)));
  };
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
    let registry: Registry | undefined;
    let metrics: ReplicationMetrics | undefined;
    if (r.metrics) {
      registry = createRegistry('multisite_replicate_');
      metrics = new ReplicationMetrics(registry);
      const i = r.metrics.lastIndexOf(':');
      const host = r.metrics.slice(0, i).replace(/^\[|\]$/g, '');
      server = await serveMetrics(registry, host, Number(r.metrics.slice(i + 1)));
    }
    const options = {
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
    };
    const info = { site: me, peers: peers.map((p) => p.name), db: redactUrl(r.sites[me]!.db), policy: r.policy };
    log.info({ ...info, metrics: r.metrics }, 'replicator starting');
    return {
      peers: info.peers,
      ...(registry ? { registry } : {}),
      newReplicator: () => new Replicator(options),
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

/** Starts the replicator under a supervisor: a loop that fails later is counted and restarted. */
export async function startReplication(loaded: LoadedConfig, opts: ReplicationOptions): Promise<RunningReplication> {
  const opened = await openReplication(loaded, opts.logger);
  const failures = opts.failures ?? partFailures(opened.registry ?? new Registry());
  const supervisor = new Supervisor({
    part: 'replication',
    logger: opts.logger,
    failures,
    ...(opts.timers ? { timers: opts.timers } : {}),
    start: async () => {
      const rep = opened.newReplicator();
      await rep.start();
      return rep;
    },
  });
  try {
    await supervisor.start();
  } catch (err) {
    await opened.close();
    throw err;
  }
  return {
    peers: opened.peers,
    async stop() {
      await supervisor.stop();
      await opened.close();
      opts.logger.info('replicator stopped');
    },
  };
}

/** `multisite replicate --once`: syncs until caught up, trims, and closes; returns the changes applied. */
export async function replicateOnce(loaded: LoadedConfig, logger: Logger): Promise<number> {
  const opened = await openReplication(loaded, logger);
  try {
    const rep = opened.newReplicator();
    const n = await rep.syncAll();
    await rep.trim();
    logger.info({ changes: n }, 'caught up');
    return n;
  } finally {
    await opened.close();
  }
}
