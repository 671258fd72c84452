import { loadConfig } from '../../config/index.js';
import { describeZoneProblems, loadZones } from '../../pdns-backend/zones.js';
import { UsageError } from '../args.js';

/** Validates the file and everything it names (zone files, inline records), starting nothing. */
export async function run(args: string[]): Promise<number> {
  const file = args[0];
  if (!file || args.length > 1) throw new UsageError('give exactly one config file');
  try {
    const loaded = loadConfig(file);
    // The daemon's own zone loading: the same warnings (records skipped) and errors (zones refused).
    const result = loadZones(loaded);
    const { warnings, errors } = describeZoneProblems(result);
    for (const line of [...warnings, ...errors]) process.stderr.write(`${line}\n`);
    if (errors.length > 0) return 1;
    const zones = result.zones;
    const records = zones.reduce((n, z) => n + z.recordCount, 0);
    process.stdout.write(`${file}: ok (site ${loaded.config.site}, ${zones.length} zones, ${records} records, ${loaded.config.balanced.length} balanced names)\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    return 1;
  }
}
