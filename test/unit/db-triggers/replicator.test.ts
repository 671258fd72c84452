import { describe, expect, it } from 'vitest';
import type { ReadBatch, Source } from '../../../src/db-triggers/reader.js';
import { isHot, nextDelay, Replicator } from '../../../src/db-triggers/replicator.js';
import type { BatchOutcome, Sink } from '../../../src/db-triggers/sink.js';
import type { RawChange } from '../../../src/db-triggers/types.js';
import type { Watermark } from '../../../src/db-triggers/watermark.js';
import { VirtualTimers } from '../haproxy-agent/virtual-timers.js';

/**
 * The replicator loop with a fake peer and a fake sink in virtual time: it is woken by nothing but
 * its own poll (no NOTIFY), so these tests fail if the poll stops, stalls silently, or skips.
 */
function fakePeer() {
  const queue: RawChange[] = [];
  let xid = 0n;
  const reads: { at: number; limit: number; from: bigint }[] = [];
  const acks: bigint[] = [];
  let failAcks = 0;
  const source = (timers: VirtualTimers): Source => ({
    name: 'a',
    async read(wm: Watermark, limit: number): Promise<ReadBatch> {
      reads.push({ at: timers.now(), limit, from: wm.xmin });
      const fresh = queue.filter((c) => BigInt(c.xid) >= wm.xmin);
      const take = fresh.slice(0, limit);
      const last = take.length ? BigInt(take[take.length - 1]!.xid) + 1n : wm.xmin;
      return {
        changes: take,
        next: { xmin: last, applied: [] },
        limited: fresh.length > limit,
        remaining: Math.max(0, fresh.length - limit),
      };
    },
    async ack(_site: string, xmin: bigint) {
      if (failAcks > 0) {
        failAcks--;
        throw new Error('connection reset');
      }
      acks.push(xmin);
    },
  });
  const write = (count = 1) => {
    for (let i = 0; i < count; i++) {
      xid++;
      queue.push({
        id: String(xid),
        xid: String(xid),
        tbl: 't',
        pk: `{"id": ${xid}}`,
        op: 'I',
        row: '{}',
        cols: null,
        origin: 'a',
        h: Number(xid),
        ins: null,
        base: 0,
        ts: 0,
      });
    }
  };
  return { source, write, reads, acks, failNextAcks: (n: number) => (failAcks = n) };
}

function fakeSink(opts: { failApply?: () => string | false; start?: Watermark } = {}) {
  let wm: Watermark = opts.start ?? { xmin: 0n, applied: [] };
  const applied: number[] = [];
  /** Change ids in the order they were applied. */
  const ids: string[] = [];
  /** Per apply: the watermark it started from, and whether it had finished. */
  const applies: { from: bigint; done: boolean }[] = [];
  /** Batches applied when each stampOwn call came. */
  const stamps: number[] = [];
  /** The `safe` flag of every apply call. */
  const safe: boolean[] = [];
  const sink: Sink = {
    readWatermark: async () => wm,
    async apply(_peer, from, batch, isSafe): Promise<BatchOutcome> {
      safe.push(isSafe);
      const code = opts.failApply?.();
      if (code) throw Object.assign(new Error(`apply failed (${code})`), { code: code === 'none' ? undefined : code });
      if (from !== wm) throw Object.assign(new Error('watermark moved'), { code: 'RETRY' });
      const entry = { from: from.xmin, done: false };
      applies.push(entry);
      await Promise.resolve();
      wm = batch.next;
      applied.push(batch.changes.length);
      ids.push(...batch.changes.map((c) => c.id));
      entry.done = true;
      return { rows: batch.changes.length, conflicts: 0, errors: 0, lagMs: 0, newest: 0 };
    },
    trim: async () => 0,
    trimTombstones: async () => 0,
    stampOwn: async () => {
      stamps.push(applied.length);
      return 0;
    },
  };
  return { sink, applied, ids, applies, stamps, safe, consumed: () => applied.reduce((a, b) => a + b, 0) };
}

describe('replicator loop (virtual time, fake peer and sink)', () => {
  it('picks up a change written while it idles, within the idle ceiling, with no wake-up signal', async () => {
    const timers = new VirtualTimers();
    const peer = fakePeer();
    const sink = fakeSink();
    const rep = new Replicator({
      site: 'b',
      sink: sink.sink,
      sources: [peer.source(timers)],
      timers,
      pollIntervalMs: 1000,
      busyPollMs: 200,
    });
    await rep.start();
    await timers.advance(60_000); // long idle: the poll has backed off to its ceiling
    peer.write();
    await timers.advance(1000);
    expect(sink.consumed()).toBe(1);
    await rep.stop();
  });

  it("stamps this site's own changes every round, before reading the peers", async () => {
    const timers = new VirtualTimers();
    const peer = fakePeer();
    const sink = fakeSink();
    peer.write(3);
    const rep = new Replicator({ site: 'b', sink: sink.sink, sources: [peer.source(timers)], timers, busyPollMs: 200 });
    await rep.start();
    await timers.advance(1000);
    await rep.stop();
    // the first stamping came before the first batch, and one came with every round after it
    expect(sink.stamps[0]).toBe(0);
    expect(sink.stamps.length).toBeGreaterThanOrEqual(peer.reads.length);
  });

  it('backs off when idle (doubling to the ceiling), polls again at once while a backlog remains', async () => {
    const timers = new VirtualTimers();
    const peer = fakePeer();
    const sink = fakeSink();
    peer.write(50);
    const rep = new Replicator({
      site: 'b',
      sink: sink.sink,
      sources: [peer.source(timers)],
      timers,
      pollIntervalMs: 800,
      busyPollMs: 200,
      batchSize: 10,
    });
    await rep.start();
    await timers.advance(5000);
    // the backlog went in growing batches (10, 20, then the rest), all at t=0
    expect(sink.applied).toEqual([10, 20, 20]);
    const gaps = peer.reads.slice(1).map((r, i) => r.at - peer.reads[i]!.at);
    // then: the busy delay after work, doubling while idle, never above the ceiling
    expect(gaps.slice(0, 6)).toEqual([0, 0, 200, 400, 800, 800]);
    expect(Math.max(...gaps)).toBe(800);
    await rep.stop();
  });

  it('with a backlog, reads the next batch while this one applies; each change applied once, in order', async () => {
    const timers = new VirtualTimers();
    const peer = fakePeer();
    const sink = fakeSink();
    peer.write(70);
    const source = peer.source(timers);
    /** Per read: how many applies had finished when it started. */
    const finished: number[] = [];
    const read: Source['read'] = (wm, limit) => {
      finished.push(sink.applies.filter((a) => a.done).length);
      return source.read(wm, limit);
    };
    const rep = new Replicator({ site: 'b', sink: sink.sink, sources: [{ ...source, read }], timers, batchSize: 10 });
    await rep.start();
    await timers.advance(1000);
    await rep.stop();
    expect(sink.applied).toEqual([10, 20, 40]);
    // the read of 20 from xid 11 started before the apply of the first 10 had finished, and so on
    expect(peer.reads[1]).toMatchObject({ from: 11n, limit: 20 });
    expect(finished.slice(0, 3)).toEqual([0, 0, 1]);
    expect(peer.reads.slice(0, 3).map((r) => r.from)).toEqual([0n, 11n, 31n]);
    expect(sink.ids).toEqual(Array.from({ length: 70 }, (_, i) => String(i + 1)));
  });

  it('a batch read ahead is dropped when the apply before it failed (the watermark did not move)', async () => {
    const timers = new VirtualTimers();
    const peer = fakePeer();
    let calls = 0;
    // the second apply fails once: the batch read ahead of it starts from a watermark never reached
    const sink = fakeSink({ failApply: () => (++calls === 2 ? 'XX000' : false) });
    peer.write(70);
    const rep = new Replicator({ site: 'b', sink: sink.sink, sources: [peer.source(timers)], timers, batchSize: 10 });
    await rep.start();
    await timers.advance(20_000);
    await rep.stop();
    expect(sink.ids).toEqual(Array.from({ length: 70 }, (_, i) => String(i + 1)));
    // every apply started from the watermark the previous one left
    const froms = sink.applies.map((a) => a.from);
    expect(froms).toEqual([0n, 11n, ...froms.slice(2)]);
    expect(new Set(froms).size).toBe(froms.length);
  });

  it('acknowledges what was applied before a restart, and retries a failed ack, with nothing new to read', async () => {
    const timers = new VirtualTimers();
    const peer = fakePeer();
    // killed after the apply of everything up to xid 50 committed, before its ack was sent
    peer.write(50);
    const sink = fakeSink({ start: { xmin: 51n, applied: [] } });
    peer.failNextAcks(1);
    const rep = new Replicator({ site: 'b', sink: sink.sink, sources: [peer.source(timers)], timers });
    await rep.start();
    await timers.advance(5000);
    await rep.stop();
    // the first ack failed, the next idle sync sent it again, and once told the peer is not told again
    expect(sink.applied).toEqual([]);
    expect(peer.acks).toEqual([51n]);
  });

  it('a batch that keeps failing is a stall: logged, counted, then retried in smaller batches until it moves', async () => {
    const timers = new VirtualTimers();
    const peer = fakePeer();
    let poisoned = true;
    const sink = fakeSink({ failApply: () => (poisoned ? 'XX000' : false) });
    const logs: string[] = [];
    const logger = {
      error: (_o: unknown, m: string) => logs.push(m),
      warn: (_o: unknown, m: string) => logs.push(m),
      info: () => {},
      debug: () => {},
    };
    const stalled: boolean[] = [];
    const metrics = {
      setStalled: (_p: string, s: boolean) => stalled.push(s),
      setUp: () => {},
      observeIdle: () => {},
      observeBatch: () => {},
      observeTrim: () => {},
      observeTombstones: () => {},
    };
    peer.write(40);
    const rep = new Replicator({
      site: 'b',
      sink: sink.sink,
      sources: [peer.source(timers)],
      timers,
      batchSize: 40,
      stallMs: 30_000,
      logger: logger as never,
      metrics: metrics as never,
    });
    await rep.start();
    await timers.advance(29_000);
    expect(logs.filter((l) => l.startsWith('replication stalled'))).toEqual([]);
    await timers.advance(10_000);
    expect(logs.filter((l) => l.startsWith('replication stalled'))).toHaveLength(1);
    expect(stalled).toContain(true);
    expect(peer.reads.at(-1)!.limit).toBe(10); // smaller batches
    poisoned = false;
    await timers.advance(10_000);
    expect(sink.consumed()).toBe(40);
    expect(logs).toContain('replication progressing again');
    expect(stalled.at(-1)).toBe(false);
    await rep.stop();
  });

  it('a sync that hangs is a stall while it lasts; when it fails (a statement timeout) the loop goes on', async () => {
    const timers = new VirtualTimers();
    const peer = fakePeer();
    const sink = fakeSink();
    const logs: string[] = [];
    const logger = {
      error: (_o: unknown, m: string) => logs.push(m),
      warn: (_o: unknown, m: string) => logs.push(m),
      info: () => {},
      debug: () => {},
    };
    const stalled: boolean[] = [];
    const metrics = {
      setStalled: (_p: string, s: boolean) => stalled.push(s),
      setUp: () => {},
      observeIdle: () => {},
      observeBatch: () => {},
      observeTrim: () => {},
      observeTombstones: () => {},
    };
    const inner = peer.source(timers);
    let hangs = 1;
    const source: Source = {
      ...inner,
      read: (wm, limit) =>
        hangs-- > 0
          ? new Promise((_res, rej) =>
              timers.setTimeout(() => rej(Object.assign(new Error('statement timeout'), { code: '57014' })), 120_000),
            )
          : inner.read(wm, limit),
    };
    peer.write(5);
    const rep = new Replicator({
      site: 'b',
      sink: sink.sink,
      sources: [source],
      timers,
      stallMs: 30_000,
      logger: logger as never,
      metrics: metrics as never,
    });
    await rep.start();
    await timers.advance(31_000);
    expect(logs.filter((l) => l.includes('no progress while changes are pending'))).toHaveLength(1);
    expect(stalled.at(-1)).toBe(true);
    expect(sink.consumed()).toBe(0);
    await timers.advance(120_000);
    expect(sink.consumed()).toBe(5);
    expect(stalled.at(-1)).toBe(false);
    expect(logs).toContain('replication progressing again');
    await rep.stop();
  });

  it('retries a transient failure as it was (not row by row), an unknown one row by row', async () => {
    for (const [code, second] of [
      ['40001', false], // a serialization failure
      ['40P01', false], // a deadlock
      ['RETRY', false], // the watermark moved
      ['none', true], // an error without a code: what it was is not known
    ] as const) {
      const timers = new VirtualTimers();
      const peer = fakePeer();
      let fails = 1;
      const sink = fakeSink({ failApply: () => (fails-- > 0 ? code : false) });
      peer.write(3);
      const rep = new Replicator({ site: 'b', sink: sink.sink, sources: [peer.source(timers)], timers });
      await rep.start();
      await timers.advance(100);
      await rep.stop();
      expect([code, sink.safe.slice(0, 2)]).toEqual([code, [false, second]]);
      expect(sink.consumed()).toBe(3);
    }
  });

  it('nextDelay: full batch → 0 is handled by the loop; work → busy; idle → doubling to the ceiling; failure → backoff', () => {
    const o = { busyPollMs: 200, pollIntervalMs: 1000 };
    expect(nextDelay({ found: true, more: false, failed: false }, 0, o)).toBe(200);
    expect(nextDelay({ found: false, more: false, failed: false }, 0, o)).toBe(25);
    expect(nextDelay({ found: false, more: false, failed: false }, 600, o)).toBe(1000);
    expect(nextDelay({ found: false, more: false, failed: true }, 0, o)).toBe(5000);
    // a hot round (a few rows rewritten many times) waits longer: fewer versions of them shipped
    expect(nextDelay({ found: true, more: false, failed: false, hot: true }, 0, o)).toBe(800);
    expect(nextDelay({ found: true, more: false, failed: false, hot: true }, 0, { ...o, pollIntervalMs: 500 })).toBe(
      500,
    );
  });

  it('isHot: many changes consolidated into few rows, not a small or spread batch', () => {
    expect(isHot({ changes: 250, rows: 1 })).toBe(true);
    expect(isHot({ changes: 400, rows: 50 })).toBe(true);
    expect(isHot({ changes: 400, rows: 211 })).toBe(false); // pgbench tpcb-like: ~2 changes per row
    expect(isHot({ changes: 20, rows: 1 })).toBe(false); // too few to matter
    expect(isHot({ changes: 0, rows: 0 })).toBe(false);
  });
});
