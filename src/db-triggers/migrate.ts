import { createHash } from 'node:crypto';
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

/** Version 1's row-level capture and per-statement NOTIFY triggers (dropped on upgrade). */
const OLD_TRIGGERS = ['multisite_capture', 'multisite_notify'];
/** One statement-level trigger per operation: a trigger with transition tables takes one event. */
const TRIGGERS = {
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
    for (const w of wanted) {
      await dropTriggers(tx, w.tbl);
      const fn = captureFunction(w.tbl);
      await tx.query(captureFunctionSql(fn, w.tbl, w.pk, await comparableColumns(tx, w.tbl)));
      await tx.query(
        `CREATE TRIGGER ${TRIGGERS.INSERT} AFTER INSERT ON ${w.tbl} REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ${fn}()`,
      );
      await tx.query(
        `CREATE TRIGGER ${TRIGGERS.UPDATE} AFTER UPDATE ON ${w.tbl} REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ${fn}()`,
      );
      await tx.query(
        `CREATE TRIGGER ${TRIGGERS.DELETE} AFTER DELETE ON ${w.tbl} REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION ${fn}()`,
      );
      await tx.query(
        `INSERT INTO multisite.replicated_table (tbl, pk_columns) VALUES ($1, $2) ON CONFLICT (tbl) DO UPDATE SET pk_columns = excluded.pk_columns`,
        [w.tbl, w.pk],
      );
    }
    for (const st of DROP_V1_CAPTURE) await tx.query(st);
    return { tables: wanted.map((w) => ({ tbl: w.tbl, pk: w.pk })), removed };
  });
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
  `UPDATE multisite.site SET schema_version = 3 WHERE schema_version < 3`,
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

/**
 * Stamps each change, in SQL (a function call per row costs more than the rest): the hybrid
 * logical clock (above the wall clock, anything received and this row's history), the incarnation
 * it applies to, what the writer had seen (base) and the row's clock after it (s). A row never
 * stamped (older than the trigger, or written while capture was off) has an unknown incarnation.
 */
const STAMP = `CROSS JOIN LATERAL (SELECT greatest(v_ms * 1024, st.hlc_floor + 1, coalesce(p.top, 0) + 1) AS h) hh
        CROSS JOIN LATERAL (
          SELECT CASE WHEN p.s IS NULL OR (x.op <> 'I' AND jsonb_typeof(p.s -> 'd') = 'object')
                      THEN '{"i": null, "c": {}, "d": null}'::jsonb ELSE p.s END AS ps,
                 jsonb_build_array(hh.h, st.name) AS stamp) q
        CROSS JOIN LATERAL (
          SELECT hh.h AS h,
                 CASE x.op WHEN 'I' THEN q.stamp ELSE q.ps -> 'i' END AS ins,
                 CASE x.op WHEN 'I' THEN to_jsonb(coalesce(p.top, 0))
                           WHEN 'U' THEN (SELECT jsonb_object_agg(c, coalesce(q.ps -> 'c' -> c -> 0, q.ps -> 'i' -> 0, '0'::jsonb)) FROM unnest(x.cols) c)
                           ELSE jsonb_build_object('i', q.ps -> 'i', 'c', coalesce(q.ps -> 'c', '{}'::jsonb)) END AS base,
                 CASE x.op WHEN 'I' THEN jsonb_build_object('i', q.stamp, 'c', '{}'::jsonb, 'd', null)
                           WHEN 'U' THEN jsonb_set(q.ps, '{c}', coalesce(q.ps -> 'c', '{}'::jsonb) || (SELECT jsonb_object_agg(c, q.stamp) FROM unnest(x.cols) c))
                           ELSE jsonb_build_object('i', null, 'c', '{}'::jsonb, 'd', jsonb_build_object('at', q.stamp, 'n', q.ps -> 'i',
                                  'seen', jsonb_build_object('i', q.ps -> 'i', 'c', coalesce(q.ps -> 'c', '{}'::jsonb)))) END AS s) z`;

/** The generated capture function of a table: one per table, named by a hash of its name. */
export function captureFunction(tbl: string): string {
  return `multisite.capture_${createHash('sha256').update(tbl).digest('hex').slice(0, 16)}`;
}

/** A column and how two of its values are compared: natively, or as text (types without `=`). */
export interface ComparableColumn {
  col: string;
  native: boolean;
}

/** The non-generated columns of a table, and whether their type (or element type) has `=`. */
export async function comparableColumns(q: Queryable, tbl: string): Promise<ComparableColumn[]> {
  const r = await q.query<{ col: string; native: boolean }>(
    `SELECT a.attname AS col,
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

/**
 * The statement-level capture function of one table (see sql/002). Per statement: one read of
 * multisite.site and one set-based INSERT into multisite.change. An UPDATE's old and new rows are
 * paired by primary key (a key that changed is a delete of the old key and an insert of the new
 * one); its changed columns come from typed comparisons, never from comparing JSON.
 */
export function captureFunctionSql(fn: string, tbl: string, pk: string[], columns: ComparableColumn[]): string {
  const lit = (s: string) => `'${s.replace(/'/g, "''")}'`;
  const pkOf = (alias: string) =>
    `jsonb_build_object(${pk.map((c) => `${lit(c)}, ${alias}.${quoteIdent(c)}`).join(', ')})`;
  const on = pk.map((c) => `n.${quoteIdent(c)} = o.${quoteIdent(c)}`).join(' AND ');
  const first = quoteIdent(pk[0]!);
  const differs = (c: ComparableColumn) =>
    c.native
      ? `n.${quoteIdent(c.col)} IS DISTINCT FROM o.${quoteIdent(c.col)}`
      : `n.${quoteIdent(c.col)}::text IS DISTINCT FROM o.${quoteIdent(c.col)}::text`;
  const changed = `array_remove(ARRAY[${columns.map((c) => `CASE WHEN ${differs(c)} THEN ${lit(c.col)} END`).join(', ')}]::text[], NULL)`;
  const changedJson = `coalesce((SELECT array_agg(e.key ORDER BY e.key) FROM jsonb_each(to_jsonb(n.*)) e WHERE e.value IS DISTINCT FROM to_jsonb(o.*) -> e.key), '{}')`;
  const record = (source: string) => `
      INSERT INTO multisite.change (tbl, pk, op, "row", cols, origin, h, ins, base, s)
      SELECT ${lit(tbl)}, x.pk, x.op, x.r, x.cols, st.name, z.h, z.ins, z.base, z.s
        FROM (${source}) x
        LEFT JOIN LATERAL (
          -- multisite.clock_of inlined: a SQL function called here would be planned anew per statement
          SELECT z.s, z.top FROM (
            (SELECT c.s, c.h AS top, 0 AS pri FROM multisite.change c
              WHERE c.tbl = ${lit(tbl)} AND c.pk = x.pk AND c.s IS NOT NULL ORDER BY c.id DESC LIMIT 1)
            UNION ALL
            (SELECT r.s, r.top, 1 AS pri FROM multisite.row_clock r WHERE r.tbl = ${lit(tbl)} AND r.pk = x.pk)
          ) z ORDER BY z.top DESC, z.pri DESC LIMIT 1) p ON true
        ${STAMP}
       ORDER BY x.ord;`;
  // An update's old and new rows paired by key; a changed key is a delete plus an insert. `cols`
  // is the expression for the changed columns (typed, or as JSON when the table changed).
  const pairedRows = (cols: string) => `SELECT y.* FROM (
          SELECT CASE WHEN o.${first} IS NULL THEN 'I' WHEN n.${first} IS NULL THEN 'D' ELSE 'U' END::"char" AS op,
                 CASE WHEN n.${first} IS NULL THEN ${pkOf('o')} ELSE ${pkOf('n')} END AS pk,
                 CASE WHEN n.${first} IS NULL THEN to_jsonb(o.*) ELSE to_jsonb(n.*) END AS r,
                 CASE WHEN n.${first} IS NOT NULL AND o.${first} IS NOT NULL THEN ${cols} END AS cols,
                 CASE WHEN n.${first} IS NULL THEN 0 ELSE 1 END AS ord
            FROM new_rows n FULL JOIN old_rows o ON ${on}) y
         WHERE y.op <> 'U' OR cardinality(y.cols) > 0`;
  // WHY the SET clauses: PL/pgSQL keeps each query's plan for the life of the connection, and
  // the plan is made from the change table's statistics at that moment. Planned while the table
  // was empty (a fresh install, or just after a trim or autovacuum), the clock lookup became a
  // sequential scan of the whole change table per row, kept while the table grew: 819 updates/s
  // instead of 7,000 in a one-connection loop. With seq scans off the lookup always probes the
  // (tbl, pk, id) index; JIT off because the disabled-seq-scan penalty inflates costs past
  // jit_above_cost (JIT-compiling every statement: 160/s). Neither SET is measurable per call.
  return `CREATE OR REPLACE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql SET enable_seqscan = off SET jit = off AS $fn$
DECLARE
  st record; v_ms bigint;
BEGIN
  -- apply sessions (SET LOCAL multisite.applying = 'on') are not captured: no echo
  IF current_setting('multisite.applying', true) = 'on' THEN RETURN NULL; END IF;
  SELECT name, hlc_floor, clock_offset_ms INTO st FROM multisite.site;
  IF st.name IS NULL THEN RAISE EXCEPTION 'multisite: site name not set (run multisite migrate)'; END IF;
  v_ms := (extract(epoch FROM clock_timestamp()) * 1000)::bigint + st.clock_offset_ms;
  IF TG_OP = 'INSERT' THEN${record(`SELECT 'I'::"char" AS op, ${pkOf('n')} AS pk, to_jsonb(n.*) AS r, NULL::text[] AS cols, 1 AS ord FROM new_rows n`)}
  ELSIF TG_OP = 'DELETE' THEN${record(`SELECT 'D'::"char" AS op, ${pkOf('o')} AS pk, to_jsonb(o.*) AS r, NULL::text[] AS cols, 0 AS ord FROM old_rows o`)}
  ELSIF (SELECT count(*) FROM pg_attribute WHERE attrelid = TG_RELID AND attnum > 0 AND NOT attisdropped AND attgenerated = '') = ${columns.length} THEN${record(pairedRows(changed))}
  ELSE
    -- the table's columns changed since migrate generated this function (run migrate again):
    -- compare the rows as JSON, slower but complete${record(pairedRows(changedJson))}
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
