import { UsageError } from '../args.js';
import { preflight } from '../preflight.js';

/**
 * Validates the file and everything it names (zone files, inline records, key files, socket and
 * state paths), starting nothing: the same checks every daemon runs before it starts.
 */
export async function run(args: string[]): Promise<number> {
  const file = args[0];
  if (!file || args.length > 1) throw new UsageError('give exactly one config file');
  try {
    const { loaded, zones, warnings, zoneWarnings, zoneErrors } = preflight(file);
    for (const line of [...warnings, ...zoneWarnings, ...zoneErrors]) process.stderr.write(`${line}\n`);
    if (zoneErrors.length > 0) return 1;
    const records = zones.reduce((n, z) => n + z.recordCount, 0);
    process.stdout.write(
      `${file}: ok (site ${loaded.config.site}, ${zones.length} zones, ${records} records, ${loaded.config.balanced.length} balanced names)\n`,
    );
    return 0;
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    return 1;
  }
}
