import {
  ConfigError,
  ConfigErrors,
  keyPath,
  resolvePath,
  type LoadedConfig,
  type ReplicationConfig,
  type ReplicationSiteDb,
} from '../config/index.js';
import { openDb, type Db, type OpenOptions } from '../db/index.js';
import { readSecret } from '../shared/secrets.js';
import { ownerWinsPolicy } from './owner-wins.js';
import type { Policy } from './types.js';

/** The replication section of a loaded config, checked against `sites` (errors name file:line:col). */
export function replicationOf(loaded: LoadedConfig): ReplicationConfig {
  const { config } = loaded;
  const r = config.replication;
  const err = (path: (string | number)[], msg: string) => {
    const { line, column } = loaded.locate(path);
    return new ConfigError(loaded.file, line, column, keyPath(path), msg);
  };
  if (!r) throw new ConfigErrors([err(['replication'], 'no replication section in the config')]);
  const names = config.sites.map((s) => s.name);
  const errors: ConfigError[] = [];
  for (const n of names) if (!r.sites[n]) errors.push(err(['replication', 'sites'], `no database for site '${n}'`));
  for (const n of Object.keys(r.sites))
    if (!names.includes(n)) errors.push(err(['replication', 'sites', n], `unknown site '${n}'`));
  (r.priority ?? []).forEach((n, i) => {
    if (!names.includes(n)) errors.push(err(['replication', 'priority', i], `unknown site '${n}'`));
  });
  if (errors.length) throw new ConfigErrors(errors);
  return r;
}

export function policyOf(loaded: LoadedConfig, r: ReplicationConfig): Policy {
  const base: Policy =
    r.policy === 'site-priority'
      ? { kind: 'site-priority', order: r.priority ?? loaded.config.sites.map((s) => s.name) }
      : { kind: 'latest' };
  // Partitioned tables (partitions.tables): owner-wins by ownership epoch; other rows keep `base`.
  const partitions = loaded.config.partitions;
  if (partitions && Object.keys(partitions.tables).length > 0) return ownerWinsPolicy({ partitions, fallback: base });
  return base;
}

/** The password of a site's database, from its file or environment variable (src/shared/secrets.ts; never logged). */
export function passwordOf(loaded: Pick<LoadedConfig, 'dir'>, s: ReplicationSiteDb): string | undefined {
  if (!s['password-file'] && !s['password-env']) return undefined;
  const src = s['password-file'] ? { file: resolvePath(loaded, s['password-file']) } : { env: s['password-env'] };
  return readSecret(src, { text: true }).toString('utf8');
}

export async function openSiteDb(loaded: LoadedConfig, site: string, opts: OpenOptions = {}): Promise<Db> {
  const r = replicationOf(loaded);
  const s = r.sites[site]!;
  const password = passwordOf(loaded, s);
  const url =
    s.db.startsWith('pglite:') && !s.db.startsWith('pglite:memory') && !s.db.startsWith('pglite:///')
      ? `pglite:${resolvePath(loaded, s.db.slice('pglite:'.length))}`
      : s.db;
  return openDb(url, { ...opts, ...(password !== undefined ? { password } : {}) });
}
