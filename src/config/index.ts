export { loadConfig, parseConfig, resolvePath, keyPath, type LoadedConfig } from './load.js';
export { ConfigError, ConfigErrors } from './errors.js';
export { configSchema, type Config, type BalancedConfig, type ZoneConfig, type Fallback } from './schema.js';
export { zoneOf } from './cross-checks.js';
export { checkHost, partsOf, placeProblem, MAX_SOCKET_PATH_BYTES, type Part } from './host-checks.js';
