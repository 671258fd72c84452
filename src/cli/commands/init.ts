import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadConfig } from '../../config/index.js';
import { generateHaproxyConfig } from '../../haproxy-config/index.js';
import { InitError, initConfig, initHaproxy, initPdnsConf, parseSites, type InitSite } from '../../site/index.js';
import { parse, required, UsageError } from '../args.js';

/**
 * multisite init --site NAME --sites a=IP,b=IP [--zone Z] [--out DIR] [--force]
 * Writes NAME.yaml (a commented starting config), its key files, and the pdns.conf and HAProxy
 * lines it needs (src/site/init.ts); the HAProxy backends come from the written config, as
 * `multisite haproxy-config` makes them.
 */
export async function run(args: string[]): Promise<number> {
  const { values } = parse(args, {
    site: { type: 'string' },
    sites: { type: 'string' },
    zone: { type: 'string' },
    out: { type: 'string', default: '.' },
    force: { type: 'boolean', default: false },
  });
  const opts = { site: required(values.site, '--site'), sites: [] as InitSite[], zone: values.zone };
  let config: string;
  try {
    opts.sites = parseSites(required(values.sites, '--sites'));
    config = initConfig(opts);
  } catch (err) {
    if (err instanceof InitError) throw new UsageError(err.message);
    throw err;
  }
  const dir = resolve(values.out);
  const file = join(dir, `${opts.site}.yaml`);
  if (existsSync(file) && !values.force) throw new UsageError(`${file} exists (--force overwrites it)`);
  mkdirSync(dir, { recursive: true });
  // The peers key is shared by every site: kept when there (init each site into one directory).
  const peersKey = join(dir, 'peers.key');
  if (!existsSync(peersKey)) writeFileSync(peersKey, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
  const apiKeyFile = join(dir, 'pdns-api-key');
  if (!existsSync(apiKeyFile)) writeFileSync(apiKeyFile, `${randomBytes(24).toString('hex')}\n`, { mode: 0o600 });
  const apiKey = readFileSync(apiKeyFile, 'utf8').trim();
  writeFileSync(file, config);
  const pdns = join(dir, `${opts.site}.pdns.conf`);
  writeFileSync(pdns, initPdnsConf(opts, apiKey), { mode: 0o640 });
  const haproxy = join(dir, `${opts.site}.haproxy.cfg`);
  writeFileSync(haproxy, initHaproxy(opts, generateHaproxyConfig(loadConfig(file).config, {})));
  process.stdout.write(
    `wrote ${file}, ${pdns}, ${haproxy}, ${peersKey} (copy it to every site), ${apiKeyFile}\n` +
      `next: edit agent.servers (your web servers), then multisite check-config ${file}\n`,
  );
  return 0;
}
