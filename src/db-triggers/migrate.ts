import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { qualifiedName, quoteIdent, type Db, type Queryable } from '../db/index.js';

/** The sql/ folder of the package (works from src/ under tsx and from dist/). */
export function sqlDir(): string {
  return fileURLToPath(new URL('../../sql/', import.meta.url));
}

export class MigrationError extends Error {
  override name = 'MigrationError';
}

export interface MigrateOptions {
  site: string;
  /** Tables to replicate ("schema.table" or "table" in public). Replaces the previous list. */
  tables: string[];
}

export interface MigrateResult {
  tables: { tbl: string; pk: string[] }[];
  removed: string[];
}

const TRIGGER = 'multisite_capture';
const NOTIFY_TRIGGER = 'multisite_notify';

/** Installs (idempotently) the schema, functions and one capture trigger per table. */
export async function migrate(db: Db, opts: MigrateOptions): Promise<MigrateResult> {
  if (!/^[a-z0-9][a-z0-9-]{0,62}$/.test(opts.site)) throw new MigrationError(`bad site name '${opts.site}'`);
  const files = readdirSync(sqlDir())
    .filter((f) => f.endsWith('.sql'))
    .sort();
  for (const f of files) await db.exec(readFileSync(`${sqlDir()}${f}`, 'utf8'));
  return db.transaction(async (tx) => {
    await tx.query(
      `INSERT INTO multisite.site (one, name) VALUES (true, $1) ON CONFLICT (one) DO UPDATE SET name = excluded.name`,
      [opts.site],
    );
    const wanted: { tbl: string; schema: string; table: string; pk: string[] }[] = [];
    for (const t of opts.tables) {
      const q = qualifiedName(t);
      const pk = await primaryKey(tx, q.schema, q.table);
      // the same spelling as the trigger's format('%I.%I', ...): quoted only where needed
      const f = await tx.query<{ tbl: string }>(`SELECT format('%I.%I', $1::text, $2::text) AS tbl`, [q.schema, q.table]);
      wanted.push({ tbl: f.rows[0]!.tbl, schema: q.schema, table: q.table, pk });
    }
    const known = await tx.query<{ tbl: string }>(`SELECT tbl FROM multisite.replicated_table`);
    const removed = known.rows.map((r) => r.tbl).filter((t) => !wanted.some((w) => w.tbl === t));
    for (const tbl of removed) {
      await dropTriggers(tx, tbl);
      await tx.query(`DELETE FROM multisite.replicated_table WHERE tbl = $1`, [tbl]);
    }
    for (const w of wanted) {
      await dropTriggers(tx, w.tbl);
      const args = w.pk.map((c) => `'${c.replace(/'/g, "''")}'`).join(', ');
      await tx.query(
        `CREATE TRIGGER ${TRIGGER} AFTER INSERT OR UPDATE OR DELETE ON ${w.tbl} FOR EACH ROW EXECUTE FUNCTION multisite.capture(${args})`,
      );
      await tx.query(
        `CREATE TRIGGER ${NOTIFY_TRIGGER} AFTER INSERT OR UPDATE OR DELETE ON ${w.tbl} FOR EACH STATEMENT EXECUTE FUNCTION multisite.notify()`,
      );
      await tx.query(
        `INSERT INTO multisite.replicated_table (tbl, pk_columns) VALUES ($1, $2) ON CONFLICT (tbl) DO UPDATE SET pk_columns = excluded.pk_columns`,
        [w.tbl, w.pk],
      );
    }
    return { tables: wanted.map((w) => ({ tbl: w.tbl, pk: w.pk })), removed };
  });
}

/** Removes the triggers and the whole multisite schema (change table, conflict log, watermarks). */
export async function uninstall(db: Db): Promise<string[]> {
  return db.transaction(async (tx) => {
    const exists = await tx.query(`SELECT 1 FROM pg_namespace WHERE nspname = 'multisite'`);
    if (exists.rowCount === 0) return [];
    const known = await tx.query<{ tbl: string }>(`SELECT tbl FROM multisite.replicated_table`);
    for (const { tbl } of known.rows) await dropTriggers(tx, tbl);
    await tx.query(`DROP SCHEMA multisite CASCADE`);
    return known.rows.map((r) => r.tbl);
  });
}

async function dropTriggers(tx: Queryable, tbl: string): Promise<void> {
  const exists = await tx.query(`SELECT to_regclass($1) AS r`, [tbl]);
  if ((exists.rows[0] as { r: unknown } | undefined)?.r == null) return;
  await tx.query(`DROP TRIGGER IF EXISTS ${TRIGGER} ON ${tbl}`);
  await tx.query(`DROP TRIGGER IF EXISTS ${NOTIFY_TRIGGER} ON ${tbl}`);
}

/** The primary-key columns of a table; refuses a missing table or one without a primary key. */
export async function primaryKey(q: Queryable, schema: string, table: string): Promise<string[]> {
  const name = `${quoteIdent(schema)}.${quoteIdent(table)}`;
  const t = await q.query<{ oid: number | null }>(`SELECT to_regclass($1)::oid AS oid`, [name]);
  const oid = t.rows[0]?.oid;
  if (oid == null) throw new MigrationError(`table ${schema}.${table} does not exist`);
  const r = await q.query<{ col: string }>(
    `SELECT a.attname AS col
       FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
      WHERE i.indrelid = $1 AND i.indisprimary
      ORDER BY array_position(i.indkey::int2[], a.attnum)`,
    [oid],
  );
  if (r.rows.length === 0) {
    throw new MigrationError(
      `table ${schema}.${table} has no primary key: replication identifies rows by their primary key; add one (ALTER TABLE ${name} ADD PRIMARY KEY (...)) and run migrate again`,
    );
  }
  return r.rows.map((x) => x.col);
}

/** Columns of a table, in order (generated columns excluded: they are computed on each site). */
export async function tableColumns(q: Queryable, tbl: string): Promise<string[]> {
  const r = await q.query<{ col: string }>(
    `SELECT attname AS col FROM pg_attribute
      WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped AND attgenerated = ''
      ORDER BY attnum`,
    [tbl],
  );
  return r.rows.map((x) => x.col);
}
