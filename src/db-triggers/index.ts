export { ReplicaLagReporter } from './lag-reporter.js';
export { ReplicationMetrics } from './metrics.js';
export { MigrationError, migrate, uninstall, type CaptureMode } from './migrate.js';
export {
  ownerWinsPolicy,
  installOwnerWins,
  uninstallOwnerWins,
  writeOwnership,
  compareVersions,
  parseEpochStamp,
  type Ownership,
} from './owner-wins.js';
export { Replicator } from './replicator.js';
export { openSiteDb, policyOf, replicationOf } from './site-config.js';
export { type ReplicationStatus, formatReplicationStatus, lagMsOf, replicaLagMs, replicationStatus } from './status.js';
