export { HaproxyConfigError, generateHaproxyConfig, partitionBackend, remoteServer } from './generate.js';
