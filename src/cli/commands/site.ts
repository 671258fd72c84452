import { localTime } from '../../shared/local-time.js';
import { loadConfig, resolvePath } from '../../config/index.js';
import { controlRequest, type DrainResult } from '../../pdns-backend/index.js';
import type { SiteState } from '../../site-health/index.js';
import { parse, UsageError } from '../args.js';

/** `multisite site drain|undrain SITE` and `multisite site status`, through the control socket. */
export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parse(
    args,
    {
      config: { type: 'string', short: 'c' },
      control: { type: 'string' },
      json: { type: 'boolean' },
      everywhere: { type: 'boolean' },
    },
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
  if (values.everywhere) return everywhere(path, action, site);
  const res = await controlRequest(path, { cmd: action, site });
  if (!res.ok) throw new Error(res.error);
  process.stdout.write(`site ${site} ${action}ed${res.changed ? '' : ' (it already was)'}\n`);
  return 0;
}

/** Here, then at every peer over the signed peer channel; exit 1 unless every site took it. */
async function everywhere(path: string, action: 'drain' | 'undrain', site: string): Promise<number> {
  // Each peer gets up to 2 s per status-url; the local backend answers once every peer has.
  const res = await controlRequest(path, { cmd: action, site, everywhere: true }, 15_000);
  const results = res.results as DrainResult[] | undefined;
  if (!results) throw new Error(res.ok ? 'the backend did not list the sites it asked' : res.error);
  for (const r of results)
    process.stdout.write(
      r.ok
        ? `${r.site.padEnd(12)} ${action}ed ${site}${r.changed ? '' : ' (it already was)'}\n`
        : `${r.site.padEnd(12)} NOT ${action}ed: ${r.error}\n`,
    );
  if (res.ok) return 0;
  process.stderr.write(`multisite site: ${action} ${site} was not taken everywhere (${res.error}); run it again\n`);
  return 1;
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
