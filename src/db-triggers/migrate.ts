import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { CAPTURE_MODES } from '../config/index.js';
import { qualifiedName, quoteIdent, quoteLiteral, type Db, type Queryable } from '../db/index.js';

/** The sql/ folder of the package (works from src/ under tsx and from dist/). */
export function sqlDir(): string {
  return fileURLToPath(new URL('../../sql/', import.meta.url));
}

export class MigrationError extends Error {
  override name = 'MigrationError';
}

/**
 * The capture trigger: `native` is native/multisite_capture.c (installed into the server's
 * library directory by `make -C native install`; needs a superuser to create), `plpgsql` the
 * generated PL/pgSQL functions, `auto` native when the server has it, else plpgsql.
 */
export type CaptureMode = (typeof CAPTURE_MODES)[number];

export interface MigrateOptions {
  site: string;
  /** Tables to replicate ("schema.table" or "table" in public). Replaces the previous list. */
  tables: string[];
  /** Default `auto`. */
  capture?: CaptureMode;
  /** Where the server finds the native library (default `$libdir/multisite_capture`). */
  nativeLibrary?: string;
}

export interface MigrateResult {
  tables: { tbl: string; pk: string[] }[];
  removed: string[];
  /** The capture the triggers now use. */
  capture: 'native' | 'plpgsql';
  /** Why `auto` chose plpgsql (the server's error creating the native function). */
  fallback?: string;
}

/** Version 1's row-level capture and per-statement NOTIFY triggers (dropped on upgrade). */
const OLD_TRIGGERS = ['multisite_capture', 'multisite_notify'];
/** One statement-level trigger per operation: a trigger with transition tables takes one event. */
export const TRIGGERS = {
  INSERT: 'multisite_capture_i',
  UPDATE: 'multisite_capture_u',
  DELETE: 'multisite_capture_d',
} as const;

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
      const f = await tx.query<{ tbl: string }>(`SELECT format('%I.%I', $1::text, $2::text) AS tbl`, [
        q.schema,
        q.table,
      ]);
      wanted.push({ tbl: f.rows[0]!.tbl, schema: q.schema, table: q.table, pk });
    }
    const known = await tx.query<{ tbl: string }>(`SELECT tbl FROM multisite.replicated_table`);
    const removed = known.rows.map((r) => r.tbl).filter((t) => !wanted.some((w) => w.tbl === t));
    for (const tbl of removed) {
      await dropTriggers(tx, tbl);
      await tx.query(`DELETE FROM multisite.replicated_table WHERE tbl = $1`, [tbl]);
    }
    const chosen = await installCapture(tx, opts.capture ?? 'auto', opts.nativeLibrary ?? '$libdir/multisite_capture');
    for (const w of wanted) {
      await dropTriggers(tx, w.tbl);
      let call: string;
      if (chosen.capture === 'native') {
        call = `${NATIVE_FUNCTION}(${[w.tbl, ...w.pk].map(quoteLiteral).join(', ')})`;
      } else {
        const fn = captureFunction(w.tbl);
        const cols = await comparableColumns(tx, w.tbl);
        await tx.query(captureFunctionSql(fn, w.tbl, w.pk, cols, await lastAttnum(tx, w.tbl)));
        call = `${fn}()`;
      }
      await tx.query(
        `CREATE TRIGGER ${TRIGGERS.INSERT} AFTER INSERT ON ${w.tbl} REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ${call}`,
      );
      await tx.query(
        `CREATE TRIGGER ${TRIGGERS.UPDATE} AFTER UPDATE ON ${w.tbl} REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ${call}`,
      );
      await tx.query(
        `CREATE TRIGGER ${TRIGGERS.DELETE} AFTER DELETE ON ${w.tbl} REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION ${call}`,
      );
      await tx.query(
        `INSERT INTO multisite.replicated_table (tbl, pk_columns) VALUES ($1, $2) ON CONFLICT (tbl) DO UPDATE SET pk_columns = excluded.pk_columns`,
        [w.tbl, w.pk],
      );
    }
    for (const st of DROP_V1_CAPTURE) await tx.query(st);
    return { tables: wanted.map((w) => ({ tbl: w.tbl, pk: w.pk })), removed, ...chosen };
  });
}

/** The C capture function (native/multisite_capture.c); its arguments: the table, its key columns. */
export const NATIVE_FUNCTION = 'multisite.capture_native';

/**
 * Creates the native capture function when asked (or, for `auto`, when the server can load it),
 * in a savepoint: a server without the library, or a role that may not create C functions,
 * leaves the transaction usable. `native` without it fails the migrate with what to do.
 */
async function installCapture(
  tx: Queryable,
  mode: CaptureMode,
  library: string,
): Promise<Pick<MigrateResult, 'capture' | 'fallback'>> {
  if (mode === 'plpgsql') return { capture: 'plpgsql' };
  await tx.query('SAVEPOINT native_capture');
  try {
    await tx.query(
      `CREATE OR REPLACE FUNCTION ${NATIVE_FUNCTION}() RETURNS trigger LANGUAGE c AS ${quoteLiteral(library)}, 'multisite_capture'`,
    );
    await tx.query('RELEASE SAVEPOINT native_capture');
    return { capture: 'native' };
  } catch (err) {
    await tx.query('ROLLBACK TO SAVEPOINT native_capture');
    const why = (err as Error).message;
    if (mode === 'native') {
      throw new MigrationError(
        `capture: native, but the server cannot create ${NATIVE_FUNCTION} (${why}): install the library on the database server (make -C native install, as root) and migrate as a superuser, or set capture: plpgsql`,
      );
    }
    return { capture: 'plpgsql', fallback: why };
  }
}

/**
 * Schema version 3: version 1's row-level capture functions are gone from sql/001. They are
 * dropped here, in the transaction that replaced every table's triggers, not in a sql/ file run
 * before it: dropping them there (CASCADE) would leave a version-1 table uncaptured until its new
 * triggers exist. Without CASCADE: a trigger still using them would fail the migrate, not vanish.
 */
const DROP_V1_CAPTURE = [
  `DROP FUNCTION IF EXISTS multisite.capture()`,
  `DROP FUNCTION IF EXISTS multisite.capture_row(text, jsonb, "char", jsonb, text[])`,
  `DROP FUNCTION IF EXISTS multisite.pk_of(jsonb, text[])`,
  // version 4 (sql/003): key-only capture triggers, stamped later by multisite.stamp; version 5
  // (sql/004): set-based stamping that keeps row_clock current, capture without a catalog query
  `UPDATE multisite.site SET schema_version = 5 WHERE schema_version < 5`,
];

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
  for (const t of [...OLD_TRIGGERS, ...Object.values(TRIGGERS)])
    await tx.query(`DROP TRIGGER IF EXISTS ${t} ON ${tbl}`);
  await tx.query(`DROP FUNCTION IF EXISTS ${captureFunction(tbl)}()`);
}

/** The generated capture function of a table: one per table, named by a hash of its name. */
export function captureFunction(tbl: string): string {
  return `multisite.capture_${createHash('sha256').update(tbl).digest('hex').slice(0, 16)}`;
}

/** A column and how two of its values are compared: natively, or as text (types without `=`). */
export interface ComparableColumn {
  col: string;
  native: boolean;
  /** Its attribute number (the capture function checks the table still has it). */
  attnum: number;
}

/** The non-generated columns of a table, and whether their type (or element type) has `=`. */
export async function comparableColumns(q: Queryable, tbl: string): Promise<ComparableColumn[]> {
  const r = await q.query<{ col: string; native: boolean; attnum: number }>(
    `SELECT a.attname AS col, a.attnum::int AS attnum,
            EXISTS (SELECT 1 FROM pg_operator o WHERE o.oprname = '=' AND o.oprleft = b.t AND o.oprright = b.t) AS native
       FROM pg_attribute a JOIN pg_type ty ON ty.oid = a.atttypid
      CROSS JOIN LATERAL (SELECT CASE WHEN ty.typcategory = 'A' THEN ty.typelem
                                      WHEN ty.typtype = 'd' THEN ty.typbasetype ELSE ty.oid END AS t) b
      WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
      ORDER BY a.attname`,
    [tbl],
  );
  return r.rows;
}

/** The highest attribute number a table has used (dropped columns included): the next added column's is above. */
export async function lastAttnum(q: Queryable, tbl: string): Promise<number> {
  const r = await q.query<{ n: number }>(
    `SELECT coalesce(max(attnum), 0)::int AS n FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0`,
    [tbl],
  );
  return r.rows[0]!.n;
}

/**
 * Whether the table still has exactly the columns the capture function was generated for, as a
 * PL/pgSQL simple expression (no query: version 4 counted pg_attribute rows per UPDATE statement,
 * ~30 µs, a tenth of pgbench's per-statement cost). has_column_privilege reads the attribute
 * cache and is NULL for a column that does not exist or was dropped: every captured column
 * must exist, and none above the last attribute number may (ADD COLUMN takes the next number).
 */
export function sameColumnsCheck(columns: readonly ComparableColumn[], last: number): string {
  const has = (n: number) => `has_column_privilege(TG_RELID, ${n}::int2, 'SELECT')`;
  return [`${has(last + 1)} IS NULL`, ...columns.map((c) => `${has(c.attnum)} IS NOT NULL`)].join(' AND ');
}

/**
 * The statement-level capture function of one table (sql/003: key-only capture). Per statement:
 * one set-based INSERT into multisite.change of each touched row's table, key, operation and
 * changed columns; no lookups, no row data, no stamps (multisite.stamp adds those later). An
 * UPDATE's old and new rows are paired by primary key (a key that changed is a delete of the old
 * key and an insert of the new one); its changed columns come from typed comparisons.
 */
export function captureFunctionSql(
  fn: string,
  tbl: string,
  pk: string[],
  columns: ComparableColumn[],
  last: number,
): string {
  const pkOf = (alias: string) =>
    `jsonb_build_object(${pk.map((c) => `${quoteLiteral(c)}, ${alias}.${quoteIdent(c)}`).join(', ')})`;
  const on = pk.map((c) => `n.${quoteIdent(c)} = o.${quoteIdent(c)}`).join(' AND ');
  const first = quoteIdent(pk[0]!);
  const differs = (c: ComparableColumn) =>
    c.native
      ? `n.${quoteIdent(c.col)} IS DISTINCT FROM o.${quoteIdent(c.col)}`
      : `n.${quoteIdent(c.col)}::text IS DISTINCT FROM o.${quoteIdent(c.col)}::text`;
  const changed = `array_remove(ARRAY[${columns.map((c) => `CASE WHEN ${differs(c)} THEN ${quoteLiteral(c.col)} END`).join(', ')}]::text[], NULL)`;
  const changedJson = `coalesce((SELECT array_agg(e.key ORDER BY e.key) FROM jsonb_each(to_jsonb(n.*)) e WHERE e.value IS DISTINCT FROM to_jsonb(o.*) -> e.key), '{}')`;
  const insert = `INSERT INTO multisite.change (tbl, pk, op, cols)`;
  // An update's old and new rows paired by key; a changed key is a delete plus an insert (the
  // delete first: ids order a row's history). `cols`: the changed columns (typed, or as JSON
  // when the table's columns changed since this function was generated).
  const paired = (cols: string) => `
    ${insert}
    SELECT ${quoteLiteral(tbl)}, y.pk, y.op, y.cols FROM (
      SELECT CASE WHEN o.${first} IS NULL THEN 'I' WHEN n.${first} IS NULL THEN 'D' ELSE 'U' END::"char" AS op,
             CASE WHEN n.${first} IS NULL THEN ${pkOf('o')} ELSE ${pkOf('n')} END AS pk,
             CASE WHEN n.${first} IS NOT NULL AND o.${first} IS NOT NULL THEN ${cols} END AS cols,
             CASE WHEN n.${first} IS NULL THEN 0 ELSE 1 END AS ord
        FROM new_rows n FULL JOIN old_rows o ON ${on}) y
     WHERE y.op <> 'U' OR cardinality(y.cols) > 0
     ORDER BY y.ord;`;
  return `CREATE OR REPLACE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  -- apply sessions (SET LOCAL multisite.applying = 'on') are not captured: no echo
  IF current_setting('multisite.applying', true) = 'on' THEN RETURN NULL; END IF;
  IF TG_OP = 'INSERT' THEN
    ${insert} SELECT ${quoteLiteral(tbl)}, ${pkOf('n')}, 'I', NULL FROM new_rows n;
  ELSIF TG_OP = 'DELETE' THEN
    ${insert} SELECT ${quoteLiteral(tbl)}, ${pkOf('o')}, 'D', NULL FROM old_rows o;
  ELSIF ${sameColumnsCheck(columns, last)} THEN${paired(changed)}
  ELSE
    -- the table's columns changed since migrate generated this function (run migrate again):
    -- compare the rows as JSON, slower but complete${paired(changedJson)}
  END IF;
  RETURN NULL;
END $fn$`;
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
