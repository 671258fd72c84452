export { loadConfig, parseConfig, resolvePath, keyPath, type LoadedConfig } from './load.js';
export { ConfigError, ConfigErrors } from './errors.js';
export { configSchema, type Config, type BalancedConfig, type ZoneConfig, type Fallback } from './schema.js';
export { zoneOf } from './cross-checks.js';
export { checkHost, partsOf, placeProblem, MAX_SOCKET_PATH_BYTES, type Part } from './host-checks.js';
export { readKey, sharedKey, peerOrigins, statusPageKey, STATUS_PAGE_KEY_OPTIONS, type KeySource } from './keys.js';
export {
  type AgentConfig,
  type AgentServerConfig,
  type KeywordCheckConfig,
  type LoadCheckConfig,
  type MessageCheckConfig,
  loadReportSource,
} from './agent-schema.js';
export {
  type LoadBalancerConfig,
  type PartitionConfig,
  type PartitionsConfig,
  forwardSource,
  standbyOf,
} from './partitions-schema.js';
export { type ProbesConfig, probesSchema } from './policy-schema.js';
export {
  CAPTURE_MODES,
  REPLICATION_DEFAULTS,
  type ReplicationConfig,
  type ReplicationSiteDb,
} from './replication-schema.js';
export { type StatusPageConfig } from './status-page-schema.js';
