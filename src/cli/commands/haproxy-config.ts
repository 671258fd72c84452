import { writeFileSync } from 'node:fs';
import { loadConfig } from '../../config/index.js';
import { generateHaproxyConfig, HaproxyConfigError } from '../../haproxy-config/index.js';
import { parse, required } from '../args.js';

/**
 * multisite haproxy-config --config FILE [--site NAME] [--out FILE]
 * Prints the HAProxy configuration of a site's load balancer (default: the config's own site).
 */
export async function run(args: string[]): Promise<number> {
  const { values } = parse(args, { config: { type: 'string' }, site: { type: 'string' }, out: { type: 'string' } });
  try {
    const loaded = loadConfig(required(values.config, '--config'));
    const text = generateHaproxyConfig(loaded.config, { site: values.site });
    if (values.out) writeFileSync(values.out, text);
    else process.stdout.write(text);
    return 0;
  } catch (err) {
    if (err instanceof HaproxyConfigError || (err as Error).name === 'ConfigErrors') {
      process.stderr.write(`${(err as Error).message}\n`);
      return 1;
    }
    throw err;
  }
}
