import { writeFileSync } from 'node:fs';
import { loadConfig, resolvePath, type LoadedConfig } from '../../config/index.js';
import { dnsdistConf, dependenceOf } from '../../pdns-backend/index.js';
import { readSecret } from '../../shared/secrets.js';
import { hashApiKey } from '../../site/index.js';
import { parse, required, UsageError } from '../args.js';

/**
 * multisite dnsdist-config --config FILE [--out FILE]
 * Prints the dnsdist.conf for the config's `dnsdist:` section: dnsdist in front of PowerDNS with a
 * packet cache keyed on the client subnet, per-query names left uncached, and the endpoint the
 * backend flushes. Regenerate it when balanced names or their policies change.
 */
export async function run(args: string[]): Promise<number> {
  const { values } = parse(args, { config: { type: 'string' }, out: { type: 'string' } });
  let loaded: LoadedConfig;
  try {
    loaded = loadConfig(required(values.config, '--config'));
  } catch (err) {
    if ((err as Error).name !== 'ConfigErrors') throw err;
    process.stderr.write(`${(err as Error).message}\n`);
    return 1;
  }
  const d = loaded.config.dnsdist;
  if (!d) throw new UsageError(`${values.config}: no dnsdist: section (README "dnsdist in front of PowerDNS")`);
  const file = d['api-key-file'];
  const key = readSecret(file ? { file: resolvePath(loaded, file) } : { env: d['api-key-env'] }, { text: true });
  const hp = (a: { host: string; port: number }) =>
    a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
  const text = dnsdistConf({
    listen: hp(d.listen),
    pdns: hp(d.pdns),
    webserver: new URL(d.url).host,
    apiKeyHash: hashApiKey(key.toString('utf8')),
    uncachedNames: loaded.config.balanced
      .filter((b) => dependenceOf(b.policy ?? 'local-first') === 'per-query')
      .map((b) => b.name),
    cacheEntries: d['cache-entries'],
    ecsV4: d['ecs-prefix-v4'],
    ecsV6: d['ecs-prefix-v6'],
  });
  if (values.out) writeFileSync(values.out, text, { mode: 0o640 });
  else process.stdout.write(text);
  return 0;
}
