import { localTime } from '../../shared/local-time.js';
import { loadConfig, resolvePath } from '../../config/index.js';
import { controlRequest } from '../../pdns-backend/index.js';
import type { SiteState } from '../../site-health/index.js';
import { parse, UsageError } from '../args.js';

/** `multisite site drain|undrain SITE` and `multisite site status`, through the control socket. */
export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parse(
    args,
    { config: { type: 'string', short: 'c' }, control: { type: 'string' }, json: { type: 'boolean' } },
    true,
  );
  const [action, site] = positionals;
  const path = controlPath(values.config, values.control);
  if (action === 'status') {
    const res = await controlRequest(path, { cmd: 'status' });
    if (!res.ok) throw new Error(res.error);
    const sites = res.sites as SiteState[];
    process.stdout.write(values.json ? `${JSON.stringify(sites)}\n` : formatStatus(sites));
    return 0;
  }
  if (action !== 'drain' && action !== 'undrain') throw new UsageError('expected drain, undrain or status');
  if (!site) throw new UsageError(`${action} needs a SITE`);
  const res = await controlRequest(path, { cmd: action, site });
  if (!res.ok) throw new Error(res.error);
  process.stdout.write(`site ${site} ${action}ed${res.changed ? '' : ' (it already was)'}\n`);
  return 0;
}

function controlPath(config?: string, control?: string): string {
  if (control) return control;
  if (!config) throw new UsageError('give --config FILE (to find backend.control) or --control PATH');
  const loaded = loadConfig(config);
  return resolvePath(loaded, loaded.config.backend.control);
}

export function formatStatus(sites: SiteState[]): string {
  const rows = sites.map(
    (s) => `${s.site.padEnd(12)} ${(s.usable ? 'up' : 'down').padEnd(6)} ${localTime(s.since)}  ${s.reason}`,
  );
  return `${'SITE'.padEnd(12)} ${'STATE'.padEnd(6)} ${'SINCE'.padEnd(24)}  WHY\n${rows.join('\n')}\n`;
}
