import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/index.js';
import { PartitionManager, type ManagerEffects, type PeerRecords } from '../../../src/partitions/manager.js';
import { rulesOf, type Ownership } from '../../../src/partitions/ownership.js';
import { StateFileError } from '../../../src/shared/state-file.js';
import { SiteStateTable } from '../../../src/site-health/state-table.js';
import { VirtualTimers } from '../haproxy-agent/virtual-timers.js';
import { TWO_SITES } from './fixtures.js';

const config = parseConfig(TWO_SITES, 'site.yaml').config;
const rules = rulesOf(config.partitions!, ['a', 'b']);

/** Site a's manager in virtual time, with effects that only record what they were asked. */
function siteA(startGraceMs = 0, lag: { ms: number | undefined } = { ms: 0 }, stateFile?: string) {
  const timers = new VirtualTimers();
  const table = new SiteStateTable(['a', 'b'], () => timers.now());
  const announced: Ownership[][] = [];
  const effects: ManagerEffects = {
    haproxy: async () => {},
    dns: () => {},
    announce: async (r) => void announced.push(r),
    lagMs: async () => lag.ms,
  };
  const manager = new PartitionManager({
    site: 'a',
    rules,
    auto: { holdDownMs: 2000, maxLagMs: 1000 },
    table,
    effects,
    timers,
    wallNow: () => timers.now(),
    logger: pino({ level: 'silent' }),
    reconcileMs: 1000,
    startGraceMs,
    ...(stateFile ? { stateFile } : {}),
  });
  return { timers, table, manager, announced };
}

describe('PartitionManager (virtual time)', () => {
  it("adopting a peer's transfer before learning home is down does not bounce it straight back", async () => {
    const { timers, table, manager } = siteA();
    await timers.advance(60_000); // b has been usable for a minute as far as a knows
    await manager.start();
    // b's own announcement (b's pool died) arrives before a's heartbeats say b is down
    await manager.merge(
      [
        {
          partition: 'p2',
          home: 'b',
          active: 'a',
          epoch: 2,
          since: timers.now(),
          reason: 'failure transfer: b is down',
        },
      ],
      'b',
    );
    await timers.advance(1500);
    expect(manager.get('p2')).toMatchObject({ active: 'a', epoch: 2 });
    table.setHealth('b', 'peers', false, 'verified down');
    await timers.advance(5000);
    expect(manager.get('p2')).toMatchObject({ active: 'a', epoch: 2 });
    // b returns: failback after the hold-down, counted from b's return
    table.setHealth('b', 'peers', true, 'back');
    const back = timers.now();
    await timers.advance(1999);
    expect(manager.get('p2')).toMatchObject({ active: 'a', epoch: 2 });
    await timers.advance(1001);
    expect(manager.get('p2')).toMatchObject({ active: 'b', epoch: 3 });
    expect(manager.history.at(-1)!.at - back).toBeGreaterThanOrEqual(2000);
    await manager.stop();
  });

  it('a record adopted while home stays up fails back one hold-down after it was taken up', async () => {
    const { timers, manager, announced } = siteA();
    await timers.advance(60_000);
    await manager.start();
    await manager.merge(
      [{ partition: 'p2', home: 'b', active: 'a', epoch: 2, since: 0, reason: 'failure transfer: b is down' }],
      'b',
    );
    const adopted = timers.now();
    await timers.advance(1999);
    expect(manager.get('p2')!.active).toBe('a');
    await timers.advance(1001);
    expect(manager.get('p2')).toMatchObject({ active: 'b', epoch: 3 });
    expect(manager.history.at(-1)!.at - adopted).toBeGreaterThanOrEqual(2000);
    expect(announced.at(-1)!.find((o) => o.partition === 'p2')).toMatchObject({ active: 'b', epoch: 3 });
    await manager.stop();
  });

  it('start grace: no failure transfer in the first start-grace-ms, then the first reconcile transfers', async () => {
    const { timers, table, manager } = siteA(5000);
    await manager.start();
    table.setHealth('b', 'peers', false, 'verified down'); // b not started yet
    await timers.advance(4999);
    expect(manager.get('p2')).toMatchObject({ active: 'b', epoch: 1 });
    await timers.advance(1);
    expect(manager.get('p2')).toMatchObject({ active: 'a', epoch: 2 });
    expect(manager.history.map((e) => e.at)).toEqual([5000]);
    await manager.stop();
  });

  it("start grace: a peer's newer record is adopted at once", async () => {
    const { timers, manager } = siteA(5000);
    await manager.start();
    await manager.merge(
      [{ partition: 'p1', home: 'a', active: 'b', epoch: 4, since: 0, reason: 'failure transfer: a is down' }],
      'b',
    );
    expect(manager.get('p1')).toMatchObject({ active: 'b', epoch: 4 });
    await timers.advance(10_000);
    expect(manager.get('p1')).toMatchObject({ active: 'b', epoch: 4 }); // p1 is manual failback
    await manager.stop();
  });

  it("auto failback waits for the home site's replica: lagging or unknown, it stays; caught up, it goes back", async () => {
    const lag: { ms: number | undefined } = { ms: 5000 };
    const { timers, manager } = siteA(0, lag);
    await timers.advance(60_000);
    await manager.start();
    await manager.merge(
      [{ partition: 'p2', home: 'b', active: 'a', epoch: 2, since: 0, reason: 'failure transfer: b is down' }],
      'b',
    );
    await timers.advance(10_000); // hold-down (2 s) long over, lag 5000 > max 1000
    expect(manager.get('p2')).toMatchObject({ active: 'a', epoch: 2 });
    lag.ms = undefined; // the replica cannot be read
    await timers.advance(5000);
    expect(manager.get('p2')).toMatchObject({ active: 'a', epoch: 2 });
    lag.ms = 200;
    const caughtUp = timers.now();
    await timers.advance(1000); // the next reconcile reads the lag, then evaluates
    expect(manager.get('p2')).toMatchObject({ active: 'b', epoch: 3 });
    expect(manager.get('p2')!.reason).toMatch(/replica lag 200 ms/);
    expect(manager.history.at(-1)!.at - caughtUp).toBeLessThanOrEqual(1000);
    await manager.stop();
  });

  it('refuses a damaged ownership file instead of starting from the configured owners', () => {
    const dir = mkdtempSync(join(tmpdir(), 'multisite-partitions-'));
    try {
      const file = join(dir, 'partitions.json');
      writeFileSync(file, '{"site": "a", "partitions": [{"partition": "p1"');
      expect(() => siteA(0, { ms: 0 }, file)).toThrow(StateFileError);
      writeFileSync(file, '{"site": "a", "partitions": [{"partition": "p1", "active": 3}]}');
      expect(() => siteA(0, { ms: 0 }, file)).toThrow(/partitions\[0\]/);
      writeFileSync(
        file,
        JSON.stringify({
          site: 'a',
          partitions: [{ partition: 'p1', home: 'a', active: 'b', epoch: 4, since: 1, reason: 'failure transfer' }],
        }),
      );
      expect(siteA(0, { ms: 0 }, file).manager.get('p1')).toMatchObject({ active: 'b', epoch: 4 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  describe('start fail-safe: the local pool serves nothing before the peers were read', () => {
    /** Site a restarted with a stale state file (p1 at a, epoch 1) while b may have taken p1 over. */
    function restartedA(pull: () => Promise<PeerRecords[]>) {
      const timers = new VirtualTimers();
      const table = new SiteStateTable(['a', 'b'], () => timers.now());
      const applied: { partition: string; active: string; serveHere: boolean }[] = [];
      const effects: ManagerEffects = {
        haproxy: async (o, serveHere) => void applied.push({ partition: o.partition, active: o.active, serveHere }),
        dns: () => {},
        announce: async () => {},
        pull,
        lagMs: async () => 0,
      };
      const manager = new PartitionManager({
        site: 'a',
        peers: ['b'],
        rules,
        auto: { holdDownMs: 2000, maxLagMs: 1000 },
        table,
        effects,
        timers,
        wallNow: () => timers.now(),
        logger: pino({ level: 'silent' }),
        reconcileMs: 1000,
      });
      return { timers, table, manager, applied };
    }
    const takenByB: Ownership = {
      partition: 'p1',
      home: 'a',
      active: 'b',
      epoch: 2,
      since: 1,
      reason: 'failure transfer: a is down',
    };

    it("adopts b's newer record before anything is applied: p1 is never served here", async () => {
      const { manager, applied } = restartedA(async () => [{ site: 'b', records: [takenByB] }]);
      await manager.start();
      expect(manager.synced).toBe(true);
      expect(applied.filter((x) => x.partition === 'p1').every((x) => x.active === 'b')).toBe(true);
      expect(manager.get('p1')).toMatchObject({ active: 'b', epoch: 2 });
      await manager.stop();
    });

    it('b unreachable but not verified down: forward or refuse, no transfer; b verified down: serve', async () => {
      let bAnswers = false;
      const { timers, table, manager, applied } = restartedA(async () =>
        bAnswers ? [{ site: 'b', records: [takenByB] }] : [],
      );
      await manager.start();
      await timers.advance(10_000);
      expect(manager.synced).toBe(false);
      expect(applied.length).toBeGreaterThan(0);
      expect(applied.every((x) => !x.serveHere)).toBe(true);
      expect(manager.history).toEqual([]);
      table.setHealth('b', 'peers', false, 'verified down');
      await timers.advance(0);
      expect(manager.synced).toBe(true);
      expect(applied.at(-1)!.serveHere).toBe(true);
      // p2 (home b) moves here now that the records could be trusted and b is down
      await timers.advance(1000);
      expect(manager.get('p2')).toMatchObject({ active: 'a' });
      bAnswers = true;
      await manager.stop();
    });

    it('b answers later: its records are adopted, then the local pool serves', async () => {
      let bAnswers = false;
      const { timers, manager, applied } = restartedA(async () =>
        bAnswers ? [{ site: 'b', records: [takenByB] }] : [],
      );
      await manager.start();
      await timers.advance(3000);
      expect(manager.synced).toBe(false);
      bAnswers = true;
      await timers.advance(1000);
      expect(manager.synced).toBe(true);
      expect(manager.get('p1')).toMatchObject({ active: 'b', epoch: 2 });
      const served = applied.filter((x) => x.serveHere);
      expect(served.length).toBeGreaterThan(0);
      expect(served.filter((x) => x.partition === 'p1').every((x) => x.active === 'b')).toBe(true);
      await manager.stop();
    });
  });
});
