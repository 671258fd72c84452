import { loadConfig } from '../../config/index.js';
import { loadZones } from '../../pdns-backend/zones.js';
import { UsageError } from '../args.js';

/** Validates the file and everything it names (zone files, inline records), starting nothing. */
export async function run(args: string[]): Promise<number> {
  const file = args[0];
  if (!file || args.length > 1) throw new UsageError('give exactly one config file');
  try {
    const loaded = loadConfig(file);
    const zones = loadZones(loaded);
    const records = zones.reduce((n, z) => n + z.recordCount, 0);
    process.stdout.write(`${file}: ok (site ${loaded.config.site}, ${zones.length} zones, ${records} records, ${loaded.config.balanced.length} balanced names)\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    return 1;
  }
}
