import { localTime } from '../../shared/local-time.js';
import { loadConfig, type LoadedConfig } from '../../config/index.js';
import { openSiteDb } from '../../db-triggers/index.js';
import {
  installOwnerWins,
  post,
  sharedKey,
  uninstallOwnerWins,
  type Ownership,
  initialOwnership,
  rulesOf,
} from '../../partitions/index.js';
import { parse, required, UsageError } from '../args.js';

/**
 * multisite partition failback P --config FILE   return P to its configured active site (asks this site's backend)
 * multisite partition status --config FILE [--json]
 * multisite partition migrate --config FILE [--uninstall]   epoch column + trigger for owner-wins
 */
export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parse(
    args,
    {
      config: { type: 'string' },
      json: { type: 'boolean', default: false },
      uninstall: { type: 'boolean', default: false },
    },
    true,
  );
  const [sub, name] = positionals;
  const loaded = loadConfig(required(values.config, '--config'));
  if (!loaded.config.partitions) throw new UsageError('the config has no partitions: section');
  if (sub === 'failback') {
    if (!name) throw new UsageError('give the partition: multisite partition failback P --config FILE');
    const r = await post(
      `${backendUrl(loaded)}/partitions/failback`,
      JSON.stringify({ partition: name, time: Date.now() }),
      key(loaded),
      5000,
    );
    const body = JSON.parse(r.body) as { ok?: boolean; error?: string; record?: Ownership; changed?: boolean };
    if (r.status !== 200 || !body.ok) {
      process.stderr.write(`failback refused: ${body.error ?? r.body}\n`);
      return 1;
    }
    const o = body.record!;
    process.stdout.write(
      body.changed
        ? `${name} is active at ${o.active} again (epoch ${o.epoch})\n`
        : `${name} is already active at ${o.active} (epoch ${o.epoch})\n`,
    );
    return 0;
  }
  if (sub === 'status') {
    const records = await partitionRecords(loaded);
    process.stdout.write(values.json ? `${JSON.stringify(records, null, 2)}\n` : formatPartitions(records));
    return 0;
  }
  if (sub === 'migrate') {
    const db = await openSiteDb(loaded, loaded.config.site, { applicationName: 'multisite-partition-migrate', max: 1 });
    try {
      const p = loaded.config.partitions;
      if (values.uninstall) await uninstallOwnerWins(db, p);
      else
        await installOwnerWins(
          db,
          p,
          initialOwnership(
            rulesOf(
              p,
              loaded.config.sites.map((s) => s.name),
            ),
            Date.now(),
          ).values(),
        );
      process.stdout.write(
        values.uninstall
          ? 'owner-wins removed\n'
          : `owner-wins installed: ${Object.keys(p.tables).join(', ') || '(no tables)'}; epoch column ${p['epoch-column']}\n`,
      );
    } finally {
      await db.close();
    }
    return 0;
  }
  throw new UsageError('expected failback P, status or migrate');
}

function backendUrl(loaded: LoadedConfig): string {
  const m = loaded.config.backend.metrics;
  if (!m) throw new UsageError('backend.metrics is not configured: the backend serves /partitions there');
  return `http://${m.host.includes(':') ? `[${m.host}]` : m.host}:${m.port}`;
}

function key(loaded: LoadedConfig): Buffer | undefined {
  return sharedKey(loaded);
}

/** The backend's records, or the configured ownership when no backend answers. */
export async function partitionRecords(loaded: LoadedConfig): Promise<{ source: string; partitions: Ownership[] }> {
  try {
    const r = await fetch(`${backendUrl(loaded)}/partitions`, { signal: AbortSignal.timeout(2000) });
    const v = (await r.json()) as { partitions: Ownership[] };
    return { source: 'backend', partitions: v.partitions };
  } catch {
    const p = loaded.config.partitions!;
    return {
      source: 'config (no backend answered)',
      partitions: [
        ...initialOwnership(
          rulesOf(
            p,
            loaded.config.sites.map((s) => s.name),
          ),
          Date.now(),
        ).values(),
      ],
    };
  }
}

export function formatPartitions(s: { source: string; partitions: Ownership[] }): string {
  const rows = s.partitions.map(
    (o) =>
      `  ${o.partition.padEnd(12)} ${o.active.padEnd(10)} ${String(o.epoch).padStart(5)}  ${localTime(o.since)}  ${o.active === o.home ? '' : `(home ${o.home}) `}${o.reason}`,
  );
  return `partitions (from ${s.source})\n  ${'partition'.padEnd(12)} ${'active'.padEnd(10)} epoch  since                     why\n${rows.join('\n')}\n`;
}
