import { describe, expect, it } from 'vitest';
import { consolidate, mergeRow } from '../../../src/db-triggers/consolidate.js';
import { decide, incomingWins, type LocalRow } from '../../../src/db-triggers/resolve.js';
import {
  cmpStamp,
  hlcFromMs,
  type ClockState,
  type Consolidated,
  type RawChange,
} from '../../../src/db-triggers/types.js';
import { nextWatermark } from '../../../src/db-triggers/watermark.js';

/** An injected clock: every change gets the next stamp; tests never read the wall clock. */
function clock(startMs = 1_700_000_000_000) {
  let h = hlcFromMs(startMs);
  return { next: (step = 1) => (h += step), now: () => h };
}

let ids = 0;
function change(p: Partial<RawChange> & Pick<RawChange, 'op' | 'h'>): RawChange {
  ids++;
  return {
    id: String(ids),
    xid: String(100 + ids),
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

const columns = ['id', 'a', 'b'];
const latest = { kind: 'latest' } as const;

describe('consolidation', () => {
  const c = clock();
  it('insert + update = insert with the latest row; update columns keep their own stamps', () => {
    const h1 = c.next();
    const h2 = c.next();
    const m = mergeRow([
      change({ op: 'I', h: h1, ins: [h1, 'a'], row: '{"id":1,"a":"x","b":1}' }),
      change({ op: 'U', h: h2, ins: [h1, 'a'], cols: ['b'], base: { b: h1 }, row: '{"id":1,"a":"x","b":2}' }),
    ])!;
    expect(m.kind).toBe('I');
    expect(m.row).toBe('{"id":1,"a":"x","b":2}');
    if (m.kind !== 'I') throw new Error();
    expect(m.ins).toEqual([h1, 'a']);
    expect(m.cols).toEqual({ b: { h: h2, base: h1 } });
  });

  it('update + update: later values replace earlier ones, untouched columns combine, first base kept', () => {
    const [h1, h2, h3] = [c.next(), c.next(), c.next()];
    const m = mergeRow([
      change({ op: 'U', h: h1, cols: ['a'], base: { a: 5 } }),
      change({ op: 'U', h: h2, cols: ['b'], base: { b: 6 } }),
      change({ op: 'U', h: h3, cols: ['a'], base: { a: h1 }, row: '{"id":1,"a":"z","b":2}' }),
    ])!;
    expect(m.kind).toBe('U');
    if (m.kind !== 'U') throw new Error();
    expect(m.cols).toEqual({ a: { h: h3, base: 5 }, b: { h: h2, base: 6 } });
    expect(m.row).toBe('{"id":1,"a":"z","b":2}');
    expect(m.ids).toHaveLength(3);
  });

  it('a change read after its row was deleted (gone) ships nothing until its delete, then the delete', () => {
    const [h1, h2, h3] = [c.next(), c.next(), c.next()];
    const gone = { row: null, gone: true } as const;
    // the delete is in a later batch: nothing of this row now (the delete saw these changes)
    expect(
      consolidate([
        change({ op: 'I', h: h1, ins: [h1, 'a'], pk: '{"id": 7}', ...gone }),
        change({ op: 'U', h: h2, ins: [h1, 'a'], pk: '{"id": 7}', cols: ['a'], base: { a: h1 }, ...gone }),
      ]),
    ).toEqual([]);
    // the delete in the same batch: the delete, without row data
    const out = consolidate([
      change({ op: 'U', h: h1, pk: '{"id": 8}', cols: ['a'], base: { a: 0 }, ...gone }),
      change({ op: 'D', h: h3, pk: '{"id": 8}', row: null, base: { i: null, c: { a: [h1, 'a'] } } }),
    ]);
    expect(out.map((x) => [x.pk, x.kind, x.row])).toEqual([['{"id": 8}', 'D', null]]);
    // other rows of the batch are untouched
    expect(consolidate([change({ op: 'U', h: h2, pk: '{"id": 9}', cols: ['a'], base: { a: 0 } })])).toHaveLength(1);
  });

  it('anything + delete = delete; insert + delete = a bare tombstone (no row data); delete + insert + delete = delete', () => {
    const [h1, h2, h3] = [c.next(), c.next(), c.next()];
    expect(
      mergeRow([
        change({ op: 'U', h: h1, cols: ['a'] }),
        change({ op: 'D', h: h2, base: { i: null, c: { a: [h1, 'a'] } } }),
      ])!.kind,
    ).toBe('D');
    const id = mergeRow([change({ op: 'I', h: h1, ins: [h1, 'a'] }), change({ op: 'D', h: h2, ins: [h1, 'a'] })])!;
    expect(id).toMatchObject({ kind: 'D', row: null, ins: [h1, 'a'] });
    expect(
      mergeRow([
        change({ op: 'D', h: h1 }),
        change({ op: 'I', h: h2, ins: [h2, 'a'] }),
        change({ op: 'D', h: h3, ins: [h2, 'a'] }),
      ])!.kind,
    ).toBe('D');
    const di = mergeRow([change({ op: 'D', h: h1 }), change({ op: 'I', h: h2, ins: [h2, 'a'] })])!;
    expect(di.kind).toBe('I');
  });

  it('orders a row by its clock, not by change id, and keeps rows apart', () => {
    const [h1, h2] = [c.next(), c.next()];
    const later = change({ op: 'U', h: h2, cols: ['a'], row: '{"id":1,"a":"late","b":1}' });
    const earlier = change({ op: 'U', h: h1, cols: ['a'], row: '{"id":1,"a":"early","b":1}' });
    const other = change({ op: 'I', h: h1, pk: '{"id": 2}', ins: [h1, 'a'] });
    const out = consolidate([later, other, earlier]);
    expect(out).toHaveLength(2);
    expect(out.find((x) => x.pk === '{"id": 1}')!.row).toBe('{"id":1,"a":"late","b":1}');
  });

  it('a delete takes the position of its last change, an insert of its first (foreign keys)', () => {
    const [h1, h2, h3] = [c.next(), c.next(), c.next()];
    const parentU = change({ op: 'U', h: h1, pk: '{"id": 1}', cols: ['a'] });
    const childD = change({ op: 'D', h: h2, pk: '{"id": 9}', tbl: 'public.child' });
    const parentD = change({ op: 'D', h: h3, pk: '{"id": 1}' });
    const out = consolidate([parentU, childD, parentD]);
    expect(out.map((x) => `${x.tbl}${x.pk}`)).toEqual(['public.child{"id": 9}', 'public.t{"id": 1}']);
  });
});

function U(
  h: number,
  origin: string,
  cols: Record<string, number>,
  ins: [number, string] | null = [1, 'a'],
): Consolidated {
  return {
    kind: 'U',
    tbl: 'public.t',
    pk: '{"id": 1}',
    origin,
    ins,
    cols: Object.fromEntries(Object.entries(cols).map(([k, base]) => [k, { h, base }])),
    row: `{"from":"${origin}"}`,
    h,
    ids: ['1'],
    ts: 0,
    order: 0,
  };
}
function live(c: Partial<ClockState> = {}, top = 0): LocalRow {
  return { exists: true, row: '{"local":true}', clock: { i: [1, 'a'], c: {}, d: null, ...c }, top };
}

describe('conflict rules', () => {
  it("one site's own writes of a row never conflict, whatever order its batches bring them in", () => {
    // a wrote a at 10, then 15; 15's transaction had the lower id and came in the batch before
    const late = decide(U(10, 'a', { a: 5 }), live({ c: { a: [15, 'a'] } }), { columns, policy: latest });
    expect(late.action).toEqual({ kind: 'none' });
    expect(late.conflicts).toEqual([]);
    // a merged change of a's carries its first write's base (5), older than a's 15 applied here
    const merged = decide(U(20, 'a', { a: 5 }), live({ c: { a: [15, 'a'] } }), { columns, policy: latest });
    expect(merged.action).toEqual({ kind: 'update', cols: ['a'] });
    expect(merged.conflicts).toEqual([]);
    // the same base against another site's version is still a conflict
    const other = decide(U(20, 'a', { a: 5 }), live({ c: { a: [15, 'b'] } }), { columns, policy: latest });
    expect(other.conflicts).toHaveLength(1);
  });

  it('a later write that saw the current value applies cleanly', () => {
    const d = decide(U(20, 'b', { a: 10 }), live({ c: { a: [10, 'a'] } }), { columns, policy: latest });
    expect(d.action).toEqual({ kind: 'update', cols: ['a'] });
    expect(d.conflicts).toEqual([]);
  });

  it('changes to different columns of one row merge without conflict', () => {
    const d = decide(U(20, 'b', { b: 1 }), live({ c: { a: [15, 'a'] } }), { columns, policy: latest });
    expect(d.action).toEqual({ kind: 'update', cols: ['b'] });
    expect(d.conflicts).toEqual([]);
    expect(d.clock!.c).toEqual({ a: [15, 'a'], b: [20, 'b'] });
  });

  it('the same column at both sites: both sites pick the same winner, both log it', () => {
    // site a wrote a at 15, site b wrote a at 20, neither saw the other (base 1)
    const atA = decide(U(20, 'b', { a: 1 }), live({ c: { a: [15, 'a'] } }), { columns, policy: latest });
    const atB = decide(U(15, 'a', { a: 1 }), { ...live({ c: { a: [20, 'b'] } }) }, { columns, policy: latest });
    expect(atA.action).toEqual({ kind: 'update', cols: ['a'] }); // b's newer write applies at a
    expect(atB.action).toEqual({ kind: 'none' }); // a's older write is dropped at b
    expect(atA.conflicts[0]).toMatchObject({ kind: 'update-update', winnerSite: 'b', loserSite: 'a', columns: ['a'] });
    expect(atB.conflicts[0]).toMatchObject({ kind: 'update-update', winnerSite: 'b', loserSite: 'a', columns: ['a'] });
    expect(atA.strip).toEqual({ cols: { a: 20 } }); // a's losing change leaves a's queue
  });

  it('equal clocks: the site name breaks the tie, the same way at every site', () => {
    expect(incomingWins([7, 'b'], [7, 'a'], true, latest, 't', 'k')).toBe(true);
    expect(incomingWins([7, 'a'], [7, 'b'], true, latest, 't', 'k')).toBe(false);
    expect(cmpStamp([7, 'a'], [7, 'a'])).toBe(0);
  });

  it('clock skew: a write that saw a future-stamped value still wins (stamps only move forward)', () => {
    // site a's clock is 1 h ahead: its write carries 3_600_000 ms more. b then overwrites it; the
    // trigger stamps b's write above the row's highest stamp, so it is later, not older.
    const skewed = hlcFromMs(1_700_003_600_000);
    const bWrite = skewed + 1; // max(wall clock, row top + 1)
    const d = decide(U(bWrite, 'b', { a: skewed }), live({ c: { a: [skewed, 'a'] } }), { columns, policy: latest });
    expect(d.action).toEqual({ kind: 'update', cols: ['a'] });
    expect(d.conflicts).toEqual([]);
  });

  it('site-priority decides concurrent writes only; a later write of a weaker site still applies', () => {
    const pol = { kind: 'site-priority', order: ['a', 'b'] } as const;
    const concurrent = decide(U(20, 'b', { a: 1 }), live({ c: { a: [15, 'a'] } }), { columns, policy: pol });
    expect(concurrent.action.kind).toBe('none');
    expect(concurrent.conflicts[0]).toMatchObject({ winnerSite: 'a', loserSite: 'b' });
    const sequential = decide(U(20, 'b', { a: 15 }), live({ c: { a: [15, 'a'] } }), { columns, policy: pol });
    expect(sequential.action).toEqual({ kind: 'update', cols: ['a'] });
  });

  it('owner-wins hook: the owner of the row wins a concurrent write', () => {
    const pol = { kind: 'owner-wins', ownerOf: () => 'a' } as const;
    const d = decide(U(20, 'b', { a: 1 }), live({ c: { a: [15, 'a'] } }), { columns, policy: pol });
    expect(d.action.kind).toBe('none');
  });

  it('delete vs update: the delete wins, the unseen update is logged; the other way round too', () => {
    // b deleted having seen the row as inserted (incarnation [1, a]), not a's update at 15
    const del: Consolidated = {
      kind: 'D',
      tbl: 'public.t',
      pk: '{"id": 1}',
      origin: 'b',
      ins: [1, 'a'],
      seen: { i: [1, 'a'], c: {} },
      row: null,
      h: 20,
      ids: ['1'],
      ts: 0,
      order: 0,
    };
    const atA = decide(del, live({ c: { a: [15, 'a'] } }), { columns, policy: latest });
    expect(atA.action).toEqual({ kind: 'delete' });
    expect(atA.conflicts[0]).toMatchObject({ kind: 'update-delete', winnerSite: 'b', loserSite: 'a', columns: ['a'] });
    expect(atA.strip).toEqual({ all: 20 });
    const tomb: LocalRow = {
      exists: false,
      row: null,
      clock: { i: null, c: {}, d: { at: [20, 'b'], n: [1, 'a'], seen: { i: [1, 'a'], c: {} } } },
      top: 20,
    };
    const atB = decide(U(15, 'a', { a: 1 }), tomb, { columns, policy: latest });
    expect(atB.action).toEqual({ kind: 'none' });
    expect(atB.conflicts[0]).toMatchObject({ kind: 'delete-update', winnerSite: 'b', loserSite: 'a' });
  });

  it('delete vs delete: no conflict, the tombstone keeps the latest', () => {
    const del: Consolidated = {
      kind: 'D',
      tbl: 'public.t',
      pk: '{"id": 1}',
      origin: 'b',
      ins: [1, 'a'],
      seen: { i: [1, 'a'], c: {} },
      row: null,
      h: 20,
      ids: ['1'],
      ts: 0,
      order: 0,
    };
    const tomb: LocalRow = {
      exists: false,
      row: null,
      clock: { i: null, c: {}, d: { at: [18, 'a'], n: [1, 'a'], seen: { i: [1, 'a'], c: {} } } },
      top: 18,
    };
    const d = decide(del, tomb, { columns, policy: latest });
    expect(d.action.kind).toBe('none');
    expect(d.conflicts).toEqual([]);
    expect(d.clock!.d!.at).toEqual([20, 'b']);
  });

  it('insert at one site, insert+delete of the same key at another: the same end state either way', () => {
    // b inserted and deleted (a bare tombstone of incarnation [20, b]); a inserted concurrently at 15
    const tombAtB: LocalRow = {
      exists: false,
      row: null,
      clock: { i: null, c: {}, d: { at: [21, 'b'], n: [20, 'b'], seen: { i: [20, 'b'], c: {} } } },
      top: 21,
    };
    const insA: Consolidated = {
      kind: 'I',
      tbl: 'public.t',
      pk: '{"id": 1}',
      origin: 'a',
      ins: [15, 'a'],
      base: 0,
      cols: {},
      row: '{"from":"a"}',
      h: 15,
      ids: ['1'],
      ts: 0,
      order: 0,
    };
    const atB = decide(insA, tombAtB, { columns, policy: latest });
    expect(atB.action.kind).toBe('none');
    expect(atB.conflicts[0]).toMatchObject({ kind: 'insert-delete', loserSite: 'a' });
    const delB: Consolidated = {
      kind: 'D',
      tbl: 'public.t',
      pk: '{"id": 1}',
      origin: 'b',
      ins: [20, 'b'],
      seen: { i: [20, 'b'], c: {} },
      row: null,
      h: 21,
      ids: ['1'],
      ts: 0,
      order: 0,
    };
    const atA = decide(delB, live({ i: [15, 'a'] }), { columns, policy: latest });
    expect(atA.action.kind).toBe('delete');
    expect(atA.conflicts[0]).toMatchObject({ kind: 'insert-delete', loserSite: 'a' });
  });

  it('a re-insert (newer incarnation) survives an older delete; an older insert does not', () => {
    const ins = (h: number, origin: string): Consolidated => ({
      kind: 'I',
      tbl: 'public.t',
      pk: '{"id": 1}',
      origin,
      ins: [h, origin],
      base: 0,
      cols: {},
      row: '{}',
      h,
      ids: ['1'],
      ts: 0,
      order: 0,
    });
    const tomb: LocalRow = {
      exists: false,
      row: null,
      clock: { i: null, c: {}, d: { at: [20, 'b'], n: [10, 'a'], seen: { i: [10, 'a'], c: {} } } },
      top: 20,
    };
    expect(decide(ins(30, 'a'), tomb, { columns, policy: latest }).action.kind).toBe('insert');
    const old = decide(ins(10, 'a'), tomb, { columns, policy: latest });
    expect(old.action.kind).toBe('none');
    expect(old.conflicts).toEqual([]); // the delete saw that insert
    const del: Consolidated = {
      kind: 'D',
      tbl: 'public.t',
      pk: '{"id": 1}',
      origin: 'b',
      ins: [10, 'a'],
      seen: { i: [10, 'a'], c: {} },
      row: null,
      h: 20,
      ids: ['1'],
      ts: 0,
      order: 0,
    };
    expect(decide(del, live({ i: [30, 'a'] }), { columns, policy: latest }).action.kind).toBe('none');
  });

  it('insert vs insert with the same key: column by column, the later insert wins, logged', () => {
    const inc: Consolidated = {
      kind: 'I',
      tbl: 'public.t',
      pk: '{"id": 1}',
      origin: 'b',
      ins: [20, 'b'],
      base: 0,
      cols: {},
      row: '{"from":"b"}',
      h: 20,
      ids: ['1'],
      ts: 0,
      order: 0,
    };
    const atA = decide(inc, live({ i: [15, 'a'] }), { columns, policy: latest });
    expect(atA.action).toEqual({ kind: 'update', cols: ['a', 'b', 'id'] });
    expect(atA.conflicts[0]).toMatchObject({ kind: 'insert-insert', winnerSite: 'b', loserSite: 'a' });
    const incA: Consolidated = { ...inc, origin: 'a', ins: [15, 'a'], h: 15, row: '{"from":"a"}' };
    const atB = decide(incA, live({ i: [20, 'b'] }), { columns, policy: latest });
    expect(atB.action.kind).toBe('none');
    expect(atB.conflicts[0]).toMatchObject({ kind: 'insert-insert', winnerSite: 'b', loserSite: 'a' });
  });

  it('an update of a row never seen here creates it from the entire row', () => {
    const d = decide(
      U(20, 'b', { a: 1 }),
      { exists: false, row: null, clock: null, top: 0 },
      { columns, policy: latest },
    );
    expect(d.action.kind).toBe('insert');
  });
});

describe('gap-free watermark', () => {
  it('moves to the snapshot xmin and remembers transactions read at or above it', () => {
    const w = nextWatermark({ xmin: 100n, applied: [] }, 105n, [100n, 103n, 107n], false);
    expect(w).toEqual({ xmin: 105n, applied: [107n] });
  });
  it('a transaction still running at the snapshot (xid 104) stays readable', () => {
    // 103 and 105 committed and were read; 104 was in progress: snapshot xmin is 104
    const w = nextWatermark({ xmin: 100n, applied: [] }, 104n, [103n, 105n], false);
    expect(w.xmin).toBe(104n);
    expect(w.applied).toEqual([105n]);
    const readable = (x: bigint) => x >= w.xmin && !w.applied.includes(x);
    expect(readable(104n)).toBe(true);
    expect(readable(103n) || readable(105n)).toBe(false);
  });
  it('a full batch stops at the last transaction read', () => {
    const w = nextWatermark({ xmin: 100n, applied: [] }, 200n, [101n, 102n], true);
    expect(w).toEqual({ xmin: 102n, applied: [102n] });
  });
  it('never moves backwards', () => {
    const w = nextWatermark({ xmin: 150n, applied: [151n] }, 120n, [], false);
    expect(w).toEqual({ xmin: 150n, applied: [151n] });
  });
});
