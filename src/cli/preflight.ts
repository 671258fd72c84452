import { checkHost, ConfigErrors, loadConfig, partsOf, type LoadedConfig, type Part } from '../config/index.js';
import { replicationOf } from '../db-triggers/index.js';
import { createLogger, logLevel, type Logger } from '../shared/log.js';
import { describeZoneProblems, loadZones, type LoadedZone } from '../pdns-backend/index.js';

export interface Checked {
  loaded: LoadedConfig;
  /** Located warnings ("FILE:LINE:COL: key: warning: ..."), printed by check-config, logged by daemons. */
  warnings: string[];
  zones: LoadedZone[];
  /** The zone report (records skipped, zones refused), located; the backend logs its own at start. */
  zoneWarnings: string[];
  /** Zones refused (located): the daemon serves the others, check-config exits 1. */
  zoneErrors: string[];
}

/**
 * Every validation a daemon runs before it starts, in one function: `check-config` calls it for
 * every part the file configures, each daemon for its own part, so check-config reports first
 * (and located) whatever would stop a daemon. Throws ConfigErrors with every problem found.
 */
export function preflight(file: string, parts?: Part[]): Checked {
  const loaded = loadConfig(file);
  const want = parts ?? partsOf(loaded);
  const errors: ConfigErrors[] = [];
  const collect = <T>(fn: () => T): T | undefined => {
    try {
      return fn();
    } catch (err) {
      if (err instanceof ConfigErrors) errors.push(err);
      else throw err;
      return undefined;
    }
  };
  if (loaded.config.replication) collect(() => replicationOf(loaded));
  const warnings = collect(() => checkHost(loaded, want)) ?? [];
  // The daemon's own zone loading: the same warnings (records skipped) and errors (zones refused).
  const zoneResult = want.includes('backend') ? collect(() => loadZones(loaded)) : undefined;
  const zoneProblems = zoneResult ? describeZoneProblems(zoneResult) : { warnings: [], errors: [] };
  if (errors.length > 0) throw new ConfigErrors(errors.flatMap((e) => e.errors));
  return {
    loaded,
    warnings,
    zones: zoneResult?.zones ?? [],
    zoneWarnings: zoneProblems.warnings,
    zoneErrors: zoneProblems.errors,
  };
}

/**
 * A daemon's logger at the level the precedence gives (flag > MULTISITE_LOG_LEVEL > the file's
 * log-level > info; src/shared/log.ts), with the preflight warnings logged on it.
 */
export function daemonLogger(
  name: string,
  flag: string | undefined,
  checked: Checked,
  section: 'backend' | 'agent' | 'replication',
): Logger {
  const { loaded } = checked;
  // Only a level the file sets: the schema's default must not beat the environment.
  const configured = loaded.has([section, 'log-level']) ? loaded.config[section]?.['log-level'] : undefined;
  const logger = createLogger(name, logLevel(flag, configured));
  for (const w of checked.warnings) logger.warn(w);
  return logger;
}
