import { quoteIdent } from '../db/index.js';
import { decide, type Decision, type LocalRow } from './resolve.js';
import type { ConflictRecord, Consolidated, Policy, RawChange } from './types.js';

/**
 * The planner (pure): a peer's changes and this site's state of the rows they touch in;
 * statements and conflict-log rows out. No I/O, no clock: the same input always gives the same
 * plan, which is what lets every site pick the same winners.
 *
 *   read (reader.ts) → consolidate → the sink loads the local rows → plan → the sink runs the
 *   statements, then bookkeeping (clocks, losers, conflict log)
 */

/** A replicated table as the planner needs it. */
export interface TableMeta {
  pk: string[];
  /** Columns, generated ones excluded. */
  columns: string[];
  /** The table references or is referenced by a foreign key (its rows' apply order can matter). */
  fk?: boolean;
}

export interface Statement {
  sql: string;
  params: unknown[];
  /** Rows the statement must touch (an update of a missing row is an error). */
  expect?: number;
}

/** One consolidated incoming row change and what to do with it. */
export interface Planned {
  inc: Consolidated;
  decision: Decision;
  pk: string[];
}

export interface Plan {
  /** Every consolidated change of a replicated table, decided, in apply order. */
  planned: Planned[];
  /** Changes of tables this site does not replicate (they become apply-error records). */
  unknown: Consolidated[];
  /** The fast path: one set-based statement per run of one table, operation and column set. */
  statements: Statement[];
  /** The decisions that change a row (the safe path runs them one by one). */
  actions: Planned[];
}

/** A table whose rows a batch changed at least this many times each, on average, is hot. */
export const HOT_CHANGES_PER_ROW = 2;

/**
 * The batch's rows in the order of their apply phases. An apply holds every row it changes locked
 * until it commits, and a row rewritten over and over at the origin (a counter, pgbench's branch)
 * is most likely written just as often here, where each local writer of it then waits for the
 * whole apply. So the tables of such rows go in a last phase of their own, locked after everything
 * else is applied: those writers wait for that phase only. One phase when no table is hot, all
 * are, or any takes part in foreign keys (parents must stay before children across tables).
 * A table's rows stay together, so the order within a table (a delete, then an insert reusing its
 * unique value) is kept.
 */
export function applyPhases(
  changes: readonly RawChange[],
  merged: readonly Consolidated[],
  tables: ReadonlyMap<string, TableMeta | undefined>,
): Consolidated[][] {
  if (merged.length === 0) return [];
  if ([...tables.values()].some((t) => t?.fk === true)) return [[...merged]];
  const raw = new Map<string, number>();
  for (const c of changes) raw.set(c.tbl, (raw.get(c.tbl) ?? 0) + 1);
  const rows = new Map<string, number>();
  for (const m of merged) rows.set(m.tbl, (rows.get(m.tbl) ?? 0) + 1);
  const hot = (m: Consolidated) =>
    tables.get(m.tbl) !== undefined && (raw.get(m.tbl) ?? 0) >= HOT_CHANGES_PER_ROW * rows.get(m.tbl)!;
  const cold = merged.filter((m) => !hot(m));
  const last = merged.filter(hot);
  return cold.length === 0 || last.length === 0 ? [[...merged]] : [cold, last];
}

/** The map key of a row. */
export function rowKey(tbl: string, pk: string): string {
  return `${tbl}\u0000${pk}`;
}

export function plan(
  merged: readonly Consolidated[],
  tables: ReadonlyMap<string, TableMeta | undefined>,
  local: ReadonlyMap<string, LocalRow>,
  policy: Policy,
): Plan {
  const planned: Planned[] = [];
  const unknown: Consolidated[] = [];
  for (const inc of merged) {
    const meta = tables.get(inc.tbl);
    if (!meta) {
      unknown.push(inc);
      continue;
    }
    const state = local.get(rowKey(inc.tbl, inc.pk)) ?? { exists: false, row: null, clock: null, top: 0 };
    planned.push({ inc, decision: decide(inc, state, { columns: meta.columns, policy }), pk: meta.pk });
  }
  const actions = planned.filter((p) => p.decision.action.kind !== 'none');
  return { planned, unknown, statements: setStatements(actions, tables), actions };
}

/**
 * Same-shaped actions (table, operation, column set) share one statement over
 * jsonb_populate_recordset. An action joins the open statement of its shape unless an action in
 * between must stay before it: one on the same table (a delete then an insert of the same unique
 * value), or both tables take part in foreign keys (parents before children). So a batch of
 * interleaved transactions over unrelated tables (pgbench: accounts, tellers, branches, history)
 * is a handful of statements, not one per row: the apply transaction, which holds the rows'
 * locks, ends sooner.
 */
function setStatements(actions: readonly Planned[], tables: ReadonlyMap<string, TableMeta | undefined>): Statement[] {
  const groups: { key: string; tbl: string; items: Planned[] }[] = [];
  const fk = (tbl: string) => tables.get(tbl)?.fk === true;
  for (const a of actions) {
    const key = groupKey(a);
    let open: (typeof groups)[number] | undefined;
    for (let i = groups.length - 1; i >= 0; i--) {
      const g = groups[i]!;
      if (g.key === key) {
        open = g;
        break;
      }
      if (g.tbl === a.inc.tbl || (fk(g.tbl) && fk(a.inc.tbl))) break;
    }
    if (open) open.items.push(a);
    else groups.push({ key, tbl: a.inc.tbl, items: [a] });
  }
  return groups.map((g) => groupStatement(g.items));
}

function groupKey(p: Planned): string {
  const a = p.decision.action;
  return `${p.inc.tbl}\u0000${a.kind}\u0000${a.kind === 'update' ? a.cols.join(',') : ''}`;
}

function groupStatement(group: readonly Planned[]): Statement {
  const first = group[0]!;
  const tbl = first.inc.tbl;
  const a = first.decision.action;
  const match = first.pk.map((c) => `t.${quoteIdent(c)} = r.${quoteIdent(c)}`).join(' AND ');
  const src = `jsonb_populate_recordset(NULL::${tbl}, $1::jsonb) r`;
  const rows = `[${group.map((g) => g.inc.row).join(',')}]`;
  if (a.kind === 'insert') return { sql: `INSERT INTO ${tbl} SELECT r.* FROM ${src}`, params: [rows] };
  if (a.kind === 'update') {
    const sets = a.cols.map((c) => `${quoteIdent(c)} = r.${quoteIdent(c)}`).join(', ');
    return { sql: `UPDATE ${tbl} t SET ${sets} FROM ${src} WHERE ${match}`, params: [rows], expect: group.length };
  }
  return {
    sql: `DELETE FROM ${tbl} t USING ${src} WHERE ${match}`,
    params: [`[${group.map((g) => g.inc.pk).join(',')}]`],
  };
}

/** The statement of one decision, as JSON for multisite.apply_actions (row text embedded raw). */
export function actionJson(p: Planned): string | null {
  const { inc, decision, pk } = p;
  const tbl = inc.tbl;
  const where = `(${pk.map((c) => quoteIdent(c)).join(', ')}) = (SELECT ${pk.map((c) => `k.${quoteIdent(c)}`).join(', ')} FROM jsonb_populate_record(NULL::${tbl}, $2) k)`;
  let sql: string;
  let must = false;
  switch (decision.action.kind) {
    case 'none':
      return null;
    case 'insert':
      sql = `INSERT INTO ${tbl} SELECT * FROM jsonb_populate_record(NULL::${tbl}, $1)`;
      break;
    case 'update': {
      const cols = decision.action.cols.map(quoteIdent);
      sql = `UPDATE ${tbl} SET (${cols.join(', ')}) = (SELECT ${cols.map((c) => `r.${c}`).join(', ')} FROM jsonb_populate_record(NULL::${tbl}, $1) r) WHERE ${where}`;
      must = true;
      break;
    }
    case 'delete':
      sql = `DELETE FROM ${tbl} WHERE ${where}`;
      break;
  }
  return `{"sql":${JSON.stringify(sql)},"row":${inc.row ?? 'null'},"pk":${inc.pk},"must":${must}}`;
}

/** The safe path: every action in its own subtransaction, failures reported (one round trip). */
export function safeStatement(actions: readonly Planned[]): Statement {
  return {
    sql: `SELECT multisite.apply_actions($1::jsonb, true)::text AS f`,
    params: [`[${actions.map(actionJson).join(',')}]`],
  };
}

export interface Bookkeeping {
  /** Row clocks, losing local changes removed from the queue, conflict-log rows: in this order. */
  statements: Statement[];
  conflicts: ConflictRecord[];
  /** Row changes applied. */
  rows: number;
}

/**
 * What follows the row statements: the new row clocks, the local changes that lost (they are in
 * the conflict log, they must not travel on), and the conflict log itself. `failed`: decisions
 * whose statement failed (logged as apply-error instead).
 */
export function bookkeeping(p: Plan, failed: ReadonlyMap<Planned, string>, peer: string, me: string): Bookkeeping {
  const conflicts: ConflictRecord[] = p.unknown.map((inc) =>
    errorRecord(inc, `table ${inc.tbl} is not replicated at this site (run multisite migrate with it)`),
  );
  const clockRows: string[] = [];
  const stripAll: string[] = [];
  const stripCols: string[] = [];
  for (const x of p.planned) {
    const why = failed.get(x);
    if (why !== undefined) {
      conflicts.push(errorRecord(x.inc, why));
      continue;
    }
    conflicts.push(...x.decision.conflicts);
    const k = `{"t":${JSON.stringify(x.inc.tbl)},"k":${x.inc.pk}`;
    if (x.decision.clock) clockRows.push(`${k},"s":${JSON.stringify(x.decision.clock)},"top":${x.decision.top}}`);
    if (x.decision.strip?.all !== undefined) stripAll.push(`${k},"h":${x.decision.strip.all}}`);
    if (x.decision.strip?.cols) stripCols.push(`${k},"w":${JSON.stringify(x.decision.strip.cols)}}`);
  }
  const statements: Statement[] = [];
  if (clockRows.length) {
    statements.push({
      sql: `INSERT INTO multisite.row_clock AS rc (tbl, pk, s, top)
            SELECT x.t, x.k, x.s, x.top FROM jsonb_to_recordset($1::jsonb) AS x(t text, k jsonb, s jsonb, top bigint)
            ON CONFLICT (tbl, pk) DO UPDATE SET s = excluded.s, top = greatest(rc.top, excluded.top)`,
      params: [`[${clockRows.join(',')}]`],
    });
  }
  // LATERAL per key: an index scan on (tbl, pk, id) each, never a scan of the whole queue
  if (stripAll.length) {
    statements.push({
      sql: `DELETE FROM multisite.change d WHERE d.id IN (
              SELECT c.id FROM jsonb_to_recordset($1::jsonb) AS x(t text, k jsonb, h bigint)
               CROSS JOIN LATERAL (SELECT c.id FROM multisite.change c WHERE c.tbl = x.t AND c.pk = x.k AND c.origin = $2 AND c.h < x.h) c)`,
      params: [`[${stripAll.join(',')}]`, me],
    });
  }
  if (stripCols.length) {
    statements.push({
      sql: `WITH x AS (
              SELECT c.id, x.w FROM jsonb_to_recordset($1::jsonb) AS x(t text, k jsonb, w jsonb)
               CROSS JOIN LATERAL (SELECT c.id FROM multisite.change c WHERE c.tbl = x.t AND c.pk = x.k AND c.origin = $2 AND c.op = 'U') c),
            u AS (
              UPDATE multisite.change c
                 SET cols = ARRAY(SELECT col FROM unnest(c.cols) col WHERE NOT (x.w ? col AND (x.w ->> col)::bigint > c.h))
                FROM x WHERE c.id = x.id
               RETURNING c.id, c.cols)
            DELETE FROM multisite.change d USING u WHERE d.id = u.id AND cardinality(u.cols) = 0`,
      params: [`[${stripCols.join(',')}]`, me],
    });
  }
  if (conflicts.length) statements.push(conflictInsert(peer, conflicts));
  const rows = p.actions.filter((x) => !failed.has(x)).length;
  return { statements, conflicts, rows };
}

export function errorRecord(inc: Consolidated, reason: string): ConflictRecord {
  return {
    tbl: inc.tbl,
    pk: inc.pk,
    kind: 'apply-error',
    columns: inc.kind === 'U' ? Object.keys(inc.cols).sort() : null,
    winnerSite: null,
    winnerH: null,
    winner: null,
    loserSite: inc.origin,
    loserH: inc.h,
    loser: inc.row,
    reason: `could not apply ${inc.kind === 'I' ? 'insert' : inc.kind === 'U' ? 'update' : 'delete'}: ${reason}`,
  };
}

/** One INSERT of conflict-log rows (row versions embedded as JSON text, never parsed). */
export function conflictInsert(peer: string, list: readonly ConflictRecord[]): Statement {
  const rows = list.map(
    (c) =>
      `{"tbl":${JSON.stringify(c.tbl)},"pk":${c.pk},"kind":${JSON.stringify(c.kind)},"columns":${JSON.stringify(c.columns)},` +
      `"winner_site":${JSON.stringify(c.winnerSite)},"winner_h":${c.winnerH ?? 'null'},"winner":${c.winner ?? 'null'},` +
      `"loser_site":${JSON.stringify(c.loserSite)},"loser_h":${c.loserH ?? 'null'},"loser":${c.loser ?? 'null'},"reason":${JSON.stringify(c.reason)}}`,
  );
  return {
    sql: `INSERT INTO multisite.conflict (peer, tbl, pk, kind, columns, winner_site, winner_h, winner, loser_site, loser_h, loser, reason)
          SELECT $2, x.tbl, x.pk, x.kind, x.columns, x.winner_site, x.winner_h, x.winner, x.loser_site, x.loser_h, x.loser, x.reason
            FROM jsonb_to_recordset($1::jsonb) AS x(tbl text, pk jsonb, kind text, columns text[], winner_site text, winner_h bigint,
                 winner jsonb, loser_site text, loser_h bigint, loser jsonb, reason text)`,
    params: [`[${rows.join(',')}]`, peer],
  };
}
