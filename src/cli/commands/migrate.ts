import { CAPTURE_MODES, loadConfig } from '../../config/index.js';
import { openDb, redactUrl, type Db } from '../../db/index.js';
import {
  migrate,
  MigrationError,
  uninstall,
  openSiteDb,
  replicationOf,
  type CaptureMode,
} from '../../db-triggers/index.js';
import { readSecretFile } from '../../shared/secrets.js';
import { parse, UsageError } from '../args.js';

/**
 * multisite migrate --db URL --site NAME --tables t1,t2 [--uninstall] [--password-file F] [--capture MODE]
 * multisite migrate --config FILE [--uninstall] [--capture MODE]   (this site's database, replication.tables
 *   and replication.capture; MODE: auto | native | plpgsql)
 */
export async function run(args: string[]): Promise<number> {
  const { values } = parse(args, {
    config: { type: 'string' },
    db: { type: 'string' },
    site: { type: 'string' },
    tables: { type: 'string' },
    'password-file': { type: 'string' },
    uninstall: { type: 'boolean', default: false },
    capture: { type: 'string' },
  });
  let db: Db;
  let site: string;
  let tables: string[];
  let where: string;
  let capture: CaptureMode = captureMode(values.capture);
  if (values.config !== undefined) {
    if (values.db !== undefined || values.site !== undefined)
      throw new UsageError('give --config, or --db and --site, not both');
    const loaded = loadConfig(values.config);
    const r = replicationOf(loaded);
    site = loaded.config.site;
    tables = values.tables !== undefined ? splitList(values.tables) : r.tables;
    if (values.capture === undefined) capture = r.capture;
    db = await openSiteDb(loaded, site, { applicationName: 'multisite-migrate' });
    where = `site ${site} (${redactUrl(r.sites[site]!.db)})`;
  } else {
    if (values.db === undefined) throw new UsageError('--db URL (or --config FILE) is required');
    if (!values.uninstall && values.site === undefined) throw new UsageError('--site NAME is required');
    site = values.site ?? '';
    tables = splitList(values.tables ?? '');
    const password =
      values['password-file'] !== undefined
        ? readSecretFile(values['password-file'], { text: true }).toString('utf8')
        : undefined;
    db = await openDb(values.db, {
      applicationName: 'multisite-migrate',
      ...(password !== undefined ? { password } : {}),
    });
    where = redactUrl(values.db);
  }
  try {
    if (values.uninstall) {
      const removed = await uninstall(db);
      process.stdout.write(
        `${where}: replication removed (schema multisite dropped; triggers removed from ${removed.length} tables)\n`,
      );
      return 0;
    }
    if (tables.length === 0) throw new UsageError('--tables t1,t2 is required (or replication.tables in the config)');
    const r = await migrate(db, { site, tables, capture });
    process.stdout.write(
      `${where}: replication installed for site ${site}: ${r.tables.map((t) => `${t.tbl} (${t.pk.join(', ')})`).join(', ')}` +
        `${r.removed.length ? `; triggers removed from ${r.removed.join(', ')}` : ''}\n` +
        `capture: ${r.capture}${r.fallback !== undefined ? ` (the native library is not usable here: ${r.fallback})` : ''}\n`,
    );
    return 0;
  } catch (err) {
    if (err instanceof MigrationError) {
      process.stderr.write(`multisite migrate: ${err.message}\n`);
      return 1;
    }
    throw err;
  } finally {
    await db.close();
  }
}

function captureMode(v: string | undefined): CaptureMode {
  if (v === undefined) return 'auto';
  if (!(CAPTURE_MODES as readonly string[]).includes(v))
    throw new UsageError(`--capture must be one of ${CAPTURE_MODES.join(', ')}, not '${v}'`);
  return v as CaptureMode;
}

function splitList(s: string): string[] {
  return s
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x !== '');
}
