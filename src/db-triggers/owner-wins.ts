import type { PartitionsConfig } from '../config/index.js';
import { qualifiedName, quoteIdent, quoteLiteral, type Db, type Queryable } from '../db/index.js';
import type { Policy } from './types.js';

/** A partition's ownership as replication stores it (src/partitions/ownership.ts's Ownership fits). */
export interface Ownership {
  partition: string;
  active: string;
  epoch: number;
  since: number;
  /** Carried by partitions' records; not stored here. */
  home?: string;
  reason?: string;
}

/**
 * The `owner-wins` replication policy for partitioned rows.
 *
 * Capture: a BEFORE INSERT OR UPDATE trigger on each partitioned table writes "EPOCH:ACTIVE" — the
 * row's partition's ownership as this site knows it at that moment — into the epoch column
 * (default `owner_epoch`). The column is part of the row, so the replication capture trigger (which
 * runs AFTER) ships it with the change: the epoch is captured at write time, in the same
 * transaction. Changes applied by the replicator (`multisite.applying = on`) keep the value they
 * carry.
 *
 * Resolve: two concurrent versions of a partitioned row compare by (epoch, written by the site
 * active in that epoch): the higher epoch wins; in one epoch the active site's write wins; equal
 * keys fall back to the latest clock. So a stale owner's writes after a failover lose, and go to
 * the conflict log. Rows outside any partition (or tables not in partitions.tables) use the
 * replication section's policy.
 */

export const PARTITION_SCHEMA = 'multisite_partitions';
export const EPOCH_TRIGGER = 'multisite_partition_epoch';

export interface EpochStamp {
  epoch: number;
  active: string;
}

export function parseEpochStamp(v: unknown): EpochStamp | undefined {
  if (typeof v !== 'string') return undefined;
  const m = /^(\d{1,15}):([a-z0-9][a-z0-9-]{0,62})$/.exec(v);
  return m ? { epoch: Number(m[1]), active: m[2]! } : undefined;
}

function fullName(table: string): string {
  const q = qualifiedName(table);
  return `${q.schema}.${q.table}`;
}

export interface OwnerWinsOptions {
  partitions: PartitionsConfig;
  /** The fallback for rows outside partitions (`latest` unless replication.policy says otherwise). */
  fallback: Policy;
}

/**
 * The key a version is ranked by: [epoch, 1 if its writer was the site active in that epoch].
 * A version without a readable stamp ranks lowest ([0, 0]).
 */
export function versionKey(writer: string, stamp: EpochStamp | undefined): [number, number] {
  if (!stamp) return [0, 0];
  return [stamp.epoch, stamp.active === writer ? 1 : 0];
}

/** The comparison on its own (pure): true incoming wins, false local wins, undefined tie. */
export function compareVersions(
  incoming: { site: string; stamp: EpochStamp | undefined },
  local: { site: string; stamp: EpochStamp | undefined },
): boolean | undefined {
  const a = versionKey(incoming.site, incoming.stamp);
  const b = versionKey(local.site, local.stamp);
  if (a[0] !== b[0]) return a[0] > b[0];
  if (a[1] !== b[1]) return a[1] > b[1];
  return undefined;
}

export function ownerWinsPolicy(o: OwnerWinsOptions): Policy {
  const p = o.partitions;
  const column = p['epoch-column'];
  const tenantColumn = new Map(Object.entries(p.tables).map(([t, c]) => [fullName(t), c]));
  const partitionOfTenant = new Map(p.list.flatMap((part) => part.tenants.map((t) => [t, part.name] as const)));
  const parse = (row: string | null): Record<string, unknown> | undefined => {
    if (row === null) return undefined;
    try {
      const v: unknown = JSON.parse(row);
      return v && typeof v === 'object' ? (v as Record<string, unknown>) : undefined;
    } catch {
      return undefined;
    }
  };
  const fallback = o.fallback;
  const fallbackDecision = (inc: string, loc: string): boolean | undefined => {
    if (fallback.kind !== 'site-priority') return undefined;
    const rank = (s: string) => {
      const i = fallback.order.indexOf(s);
      return i < 0 ? fallback.order.length : i;
    };
    return rank(inc) !== rank(loc) ? rank(inc) < rank(loc) : undefined;
  };
  return {
    kind: 'owner-wins',
    ownerOf: () => undefined,
    compare(tbl, incoming, local) {
      const tcol = tenantColumn.get(tbl);
      if (tcol === undefined) return fallbackDecision(incoming.site, local.site);
      const ir = parse(incoming.row);
      const lr = parse(local.row);
      const tenant = ir?.[tcol] ?? lr?.[tcol];
      if (tenant === undefined || tenant === null || !partitionOfTenant.has(String(tenant)))
        return fallbackDecision(incoming.site, local.site);
      return compareVersions(
        { site: incoming.site, stamp: parseEpochStamp(ir?.[column]) },
        { site: local.site, stamp: parseEpochStamp(lr?.[column]) },
      );
    },
  };
}

/** Installs the ownership tables, the tenant map and the epoch trigger in one site's database. */
export async function installOwnerWins(db: Db, p: PartitionsConfig, ownership: Iterable<Ownership>): Promise<void> {
  const s = quoteIdent(PARTITION_SCHEMA);
  await db.transaction(async (tx) => {
    // Serialises concurrent installs (two sites' tests, two migrate runs).
    await tx.query(`SELECT pg_advisory_xact_lock(hashtext('multisite_partitions'))`);
    await tx.query(`CREATE SCHEMA IF NOT EXISTS ${s}`);
    await tx.query(
      `CREATE TABLE IF NOT EXISTS ${s}.ownership (partition text PRIMARY KEY, epoch bigint NOT NULL, active text NOT NULL, since timestamptz NOT NULL DEFAULT now())`,
    );
    await tx.query(`CREATE TABLE IF NOT EXISTS ${s}.tenant (tenant text PRIMARY KEY, partition text NOT NULL)`);
    await tx.query(`
      CREATE OR REPLACE FUNCTION ${s}.stamp() RETURNS trigger LANGUAGE plpgsql AS $fn$
      DECLARE o record;
      BEGIN
        IF current_setting('multisite.applying', true) = 'on' THEN RETURN NEW; END IF;
        SELECT w.epoch, w.active INTO o
          FROM ${s}.tenant t JOIN ${s}.ownership w USING (partition)
         WHERE t.tenant = to_jsonb(NEW) ->> TG_ARGV[0];
        IF FOUND THEN
          NEW := jsonb_populate_record(NEW, jsonb_build_object(TG_ARGV[1], o.epoch || ':' || o.active));
        END IF;
        RETURN NEW;
      END $fn$`);
    await tx.query(`DELETE FROM ${s}.tenant`);
    for (const part of p.list)
      for (const t of part.tenants) await tx.query(`INSERT INTO ${s}.tenant VALUES ($1, $2)`, [t, part.name]);
    for (const o of ownership) await writeOwnership(tx, o, true);
    for (const [table, tenantCol] of Object.entries(p.tables)) {
      const q = qualifiedName(table);
      await tx.query(`ALTER TABLE ${q.quoted} ADD COLUMN IF NOT EXISTS ${quoteIdent(p['epoch-column'])} text`);
      await tx.query(`DROP TRIGGER IF EXISTS ${EPOCH_TRIGGER} ON ${q.quoted}`);
      await tx.query(
        `CREATE TRIGGER ${EPOCH_TRIGGER} BEFORE INSERT OR UPDATE ON ${q.quoted} FOR EACH ROW EXECUTE FUNCTION ${s}.stamp(${quoteLiteral(tenantCol)}, ${quoteLiteral(p['epoch-column'])})`,
      );
    }
  });
}

/** Records a partition's ownership in the local database; an older epoch never replaces a newer one. */
export async function writeOwnership(q: Queryable, o: Ownership, onlyIfMissing = false): Promise<void> {
  const s = quoteIdent(PARTITION_SCHEMA);
  await q.query(
    `INSERT INTO ${s}.ownership (partition, epoch, active, since) VALUES ($1, $2, $3, to_timestamp($4::double precision / 1000))
     ON CONFLICT (partition) DO ${onlyIfMissing ? 'NOTHING' : `UPDATE SET epoch = EXCLUDED.epoch, active = EXCLUDED.active, since = EXCLUDED.since WHERE ${s}.ownership.epoch <= EXCLUDED.epoch`}`,
    [o.partition, o.epoch, o.active, o.since],
  );
}

export async function uninstallOwnerWins(db: Db, p: PartitionsConfig): Promise<void> {
  for (const table of Object.keys(p.tables))
    await db.exec(`DROP TRIGGER IF EXISTS ${EPOCH_TRIGGER} ON ${qualifiedName(table).quoted}`);
  await db.exec(`DROP SCHEMA IF EXISTS ${quoteIdent(PARTITION_SCHEMA)} CASCADE`);
}
