import { describe, expect, it } from 'vitest';
import { consolidate } from '../../../src/db-triggers/consolidate.js';
import { applyPhases, bookkeeping, plan, rowKey, type TableMeta } from '../../../src/db-triggers/plan.js';
import type { LocalRow } from '../../../src/db-triggers/resolve.js';
import { hlcFromMs, type RawChange } from '../../../src/db-triggers/types.js';

/** The planner is pure: changes and local state in, statements and conflict-log rows out. */
const H = hlcFromMs(1_700_000_000_000);
let ids = 0;
function change(p: Partial<RawChange> & Pick<RawChange, 'op' | 'h'>): RawChange {
  ids++;
  return {
    id: String(ids),
    xid: '100',
    tbl: 'public.t',
    pk: '{"id": 1}',
    row: '{"id": 1, "a": "x", "b": 1}',
    cols: null,
    origin: 'a',
    ins: null,
    base: 0,
    ts: 0,
    ...p,
  };
}
const tables = new Map<string, TableMeta | undefined>([['public.t', { pk: ['id'], columns: ['id', 'a', 'b'] }]]);
const latest = { kind: 'latest' } as const;

describe('planner', () => {
  it('a hot row: 5,000 updates of one row plan as one update statement carrying the last row', () => {
    const list: RawChange[] = [change({ op: 'I', h: H, ins: [H, 'a'] })];
    for (let i = 1; i <= 5000; i++)
      list.push(
        change({
          op: 'U',
          h: H + i,
          ins: [H, 'a'],
          cols: ['b'],
          base: { b: H + i - 1 },
          row: `{"id": 1, "a": "x", "b": ${i}}`,
        }),
      );
    const p = plan(consolidate(list), tables, new Map(), latest);
    expect(p.statements).toHaveLength(1);
    expect(p.statements[0]!.sql).toMatch(/^INSERT INTO public\.t/);
    expect(p.statements[0]!.params[0]).toBe('[{"id": 1, "a": "x", "b": 5000}]');
  });

  it('same-shaped rows share one statement, order kept (parents before children)', () => {
    const merged = consolidate([
      change({ op: 'I', h: H + 1, ins: [H + 1, 'a'], pk: '{"id": 1}' }),
      change({ op: 'I', h: H + 2, ins: [H + 2, 'a'], pk: '{"id": 2}', row: '{"id": 2, "a": "y", "b": 2}' }),
      change({ op: 'D', h: H + 3, ins: [H, 'a'], pk: '{"id": 3}', base: { i: [H, 'a'], c: {} } }),
    ]);
    const local = new Map<string, LocalRow>([
      [
        rowKey('public.t', '{"id": 3}'),
        { exists: true, row: '{"id": 3}', clock: { i: [H, 'a'], c: {}, d: null }, top: H },
      ],
    ]);
    const p = plan(merged, tables, local, latest);
    expect(p.statements.map((s) => s.sql.split(' ')[0])).toEqual(['INSERT', 'DELETE']);
    expect(p.statements[0]!.params[0]).toBe('[{"id": 1, "a": "x", "b": 1},{"id": 2, "a": "y", "b": 2}]');
  });

  it('a concurrent write that loses here: no statement, its loser row goes to the conflict log', () => {
    const merged = consolidate([
      change({
        op: 'U',
        h: H + 5,
        ins: [H, 'a'],
        cols: ['a'],
        base: { a: H },
        row: '{"id": 1, "a": "from a", "b": 1}',
      }),
    ]);
    const local = new Map<string, LocalRow>([
      [
        rowKey('public.t', '{"id": 1}'),
        {
          exists: true,
          row: '{"id": 1, "a": "from b", "b": 1}',
          clock: { i: [H, 'a'], c: { a: [H + 9, 'b'] }, d: null },
          top: H + 9,
        },
      ],
    ]);
    const p = plan(merged, tables, local, latest);
    expect(p.statements).toEqual([]);
    const book = bookkeeping(p, new Map(), 'a', 'b');
    expect(book.conflicts).toMatchObject([
      { kind: 'update-update', winnerSite: 'b', loserSite: 'a', loser: '{"id": 1, "a": "from a", "b": 1}' },
    ]);
    expect(book.statements.map((s) => s.sql.trim().split(/\s+/).slice(0, 3).join(' '))).toEqual([
      'INSERT INTO multisite.row_clock',
      'INSERT INTO multisite.conflict',
    ]);
  });

  it("a winner over this site's unsent change strips the loser from the local queue by index (LATERAL per key)", () => {
    const merged = consolidate([
      change({
        op: 'U',
        h: H + 9,
        ins: [H, 'a'],
        cols: ['a'],
        base: { a: H },
        row: '{"id": 1, "a": "from a", "b": 1}',
      }),
    ]);
    const local = new Map<string, LocalRow>([
      [
        rowKey('public.t', '{"id": 1}'),
        {
          exists: true,
          row: '{"id": 1, "a": "from b", "b": 1}',
          clock: { i: [H, 'a'], c: { a: [H + 5, 'b'] }, d: null },
          top: H + 5,
        },
      ],
    ]);
    const p = plan(merged, tables, local, latest);
    const book = bookkeeping(p, new Map(), 'a', 'b');
    expect(book.rows).toBe(1);
    expect(book.conflicts).toMatchObject([{ kind: 'update-update', winnerSite: 'a', loserSite: 'b' }]);
    const strip = book.statements.find((s) => /UPDATE multisite\.change/.test(s.sql))!;
    expect(strip.sql).toMatch(/CROSS JOIN LATERAL/);
    expect(strip.params).toEqual(['[{"t":"public.t","k":{"id": 1},"w":{"a":' + String(H + 9) + '}}]', 'b']);
  });

  it('a table this site does not replicate: an apply-error record, nothing else', () => {
    const p = plan(consolidate([change({ op: 'I', h: H, tbl: 'public.other' })]), tables, new Map(), latest);
    expect(p.planned).toEqual([]);
    expect(bookkeeping(p, new Map(), 'a', 'b').conflicts).toMatchObject([{ kind: 'apply-error', tbl: 'public.other' }]);
  });

  it('a failed statement becomes apply-error instead of its decision', () => {
    const p = plan(consolidate([change({ op: 'I', h: H, ins: [H, 'a'] })]), tables, new Map(), latest);
    const book = bookkeeping(p, new Map([[p.actions[0]!, '23503: missing parent']]), 'a', 'b');
    expect(book.rows).toBe(0);
    expect(book.conflicts).toMatchObject([
      { kind: 'apply-error', reason: 'could not apply insert: 23503: missing parent' },
    ]);
  });

  describe('statements over interleaved transactions', () => {
    // one batch of pgbench-like transactions: each updates a row of x and inserts into y
    const txs = (n: number) =>
      consolidate(
        Array.from({ length: n }, (_, i) => [
          change({
            op: 'U',
            h: H + 10 + 2 * i,
            tbl: 'public.x',
            pk: `{"id": ${i}}`,
            ins: [H, 'a'],
            cols: ['v'],
            base: { v: H },
            row: `{"id": ${i}, "v": ${i}}`,
          }),
          change({
            op: 'I',
            h: H + 11 + 2 * i,
            tbl: 'public.y',
            pk: `{"id": ${i}}`,
            ins: [H + 11 + 2 * i, 'a'],
            row: `{"id": ${i}}`,
          }),
        ]).flat(),
      );
    const local = (n: number) =>
      new Map<string, LocalRow>(
        Array.from({ length: n }, (_, i) => [
          rowKey('public.x', `{"id": ${i}}`),
          { exists: true, row: `{"id": ${i}, "v": 0}`, clock: { i: [H, 'a'], c: {}, d: null }, top: H },
        ]),
      );
    const meta = (fk: boolean) =>
      new Map<string, TableMeta | undefined>([
        ['public.x', { pk: ['id'], columns: ['id', 'v'], fk }],
        ['public.y', { pk: ['id'], columns: ['id'], fk }],
      ]);

    it('tables without foreign keys: one statement per table and shape, whatever the interleaving', () => {
      const p = plan(txs(50), meta(false), local(50), latest);
      expect(p.statements.map((s) => s.sql.split(' ').slice(0, 3).join(' '))).toEqual([
        'UPDATE public.x t',
        'INSERT INTO public.y',
      ]);
      expect(p.statements[0]!.expect).toBe(50);
      expect(JSON.parse(p.statements[1]!.params[0] as string)).toHaveLength(50);
    });

    it('tables in foreign keys keep the change order (a parent before its child)', () => {
      const p = plan(txs(3), meta(true), local(3), latest);
      expect(p.statements.map((s) => s.sql.split(' ')[0])).toEqual([
        'UPDATE',
        'INSERT',
        'UPDATE',
        'INSERT',
        'UPDATE',
        'INSERT',
      ]);
    });

    it('a statement never moves before another one of its own table (delete, then an insert reusing a unique value)', () => {
      const merged = consolidate([
        change({ op: 'I', h: H + 1, ins: [H + 1, 'a'], pk: '{"id": 1}' }),
        change({ op: 'D', h: H + 2, ins: [H, 'a'], pk: '{"id": 3}', base: { i: [H, 'a'], c: {} } }),
        change({ op: 'I', h: H + 3, ins: [H + 3, 'a'], pk: '{"id": 2}', row: '{"id": 2, "a": "y", "b": 2}' }),
      ]);
      const l = new Map<string, LocalRow>([
        [
          rowKey('public.t', '{"id": 3}'),
          { exists: true, row: '{"id": 3}', clock: { i: [H, 'a'], c: {}, d: null }, top: H },
        ],
      ]);
      expect(plan(merged, tables, l, latest).statements.map((s) => s.sql.split(' ')[0])).toEqual([
        'INSERT',
        'DELETE',
        'INSERT',
      ]);
    });
  });
});

describe('apply phases', () => {
  // pgbench's shape: every transaction changes one account, one of 10 tellers and the one branch
  const meta = (fk = false): TableMeta => ({ pk: ['id'], columns: ['id', 'v'], fk });
  const pgbench = (fk = false) =>
    new Map<string, TableMeta | undefined>([
      ['accounts', meta(fk)],
      ['tellers', meta()],
      ['branches', meta()],
    ]);
  const batch = (): RawChange[] => {
    const list: RawChange[] = [];
    for (let i = 0; i < 40; i++) {
      for (const [tbl, id] of [
        ['accounts', 1000 + i],
        ['tellers', i % 10],
        ['branches', 1],
      ] as const)
        list.push(
          change({
            tbl,
            op: 'U',
            h: H + list.length,
            cols: ['v'],
            pk: `{"id": ${id}}`,
            row: `{"id": ${id}, "v": ${i}}`,
          }),
        );
    }
    return list;
  };
  const tablesOf = (part: { tbl: string }[]) => [...new Set(part.map((m) => m.tbl))];

  it('rows changed over and over (at least 2 changes a row) are applied last, in a phase of their own', () => {
    const list = batch();
    const phases = applyPhases(list, consolidate(list), pgbench());
    expect(phases.map(tablesOf)).toEqual([['accounts'], ['tellers', 'branches']]);
    expect(phases[0]).toHaveLength(40);
    expect(phases[1]).toHaveLength(11);
  });

  it('one phase when a table takes part in foreign keys, when none is hot, or when all are', () => {
    const list = batch();
    expect(applyPhases(list, consolidate(list), pgbench(true))).toHaveLength(1);
    const cold = list.filter((c) => c.tbl === 'accounts');
    expect(applyPhases(cold, consolidate(cold), pgbench())).toHaveLength(1);
    const hot = list.filter((c) => c.tbl !== 'accounts');
    expect(applyPhases(hot, consolidate(hot), pgbench())).toHaveLength(1);
    expect(applyPhases([], [], pgbench())).toEqual([]);
  });

  it('a table this site does not replicate stays in the first phase (its changes become apply errors there)', () => {
    const list = [
      ...batch(),
      change({ tbl: 'gone', op: 'U', h: H, cols: ['v'] }),
      change({ tbl: 'gone', op: 'U', h: H + 1, cols: ['v'] }),
    ];
    const phases = applyPhases(list, consolidate(list), pgbench());
    expect(phases.map(tablesOf)).toEqual([
      ['accounts', 'gone'],
      ['tellers', 'branches'],
    ]);
  });
});
