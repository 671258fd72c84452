/** The one composition root (README.md here): a site's backend, and `multisite run`'s every part. */
export { startSite, type RunningSite, type SiteOptions } from './site.js';
export { startRun, PartStartError, type RunningRun, type RunOptions, type RunPart } from './run.js';
export { replicateOnce, startReplication, type RunningReplication } from './replication.js';
export { partFailures, Supervisor, type Loop } from './supervise.js';
export {
  InitError,
  initConfig,
  initHaproxy,
  initPdnsConf,
  hashApiKey,
  parseSites,
  INIT_PORTS,
  type InitOptions,
  type InitSite,
} from './init.js';
