export { loadConfig, parseConfig, resolvePath, keyPath, type LoadedConfig } from './load.js';
export { ConfigError, ConfigErrors } from './errors.js';
export { configSchema, type Config, type BalancedConfig, type ZoneConfig, type Fallback } from './schema.js';
export { zoneOf } from './cross-checks.js';
