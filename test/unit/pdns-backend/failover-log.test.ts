import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { compileBalanced } from '../../../src/pdns-backend/balanced.js';
import { FailoverLog, type FailoverRecord } from '../../../src/pdns-backend/failover-log.js';
import { Orderings } from '../../../src/pdns-backend/orderings.js';
import { SiteStateTable } from '../../../src/site-health/state-table.js';

/** What the failover log follows, wired as src/site and src/pdns-backend/serve.ts wire it, on a fake clock. */
function setup(opts: { size?: number; names?: number; flush?: 'pending' | 'none' } = {}) {
  const clock = { t: 10_000 };
  const registry = new Registry();
  const table = new SiteStateTable(['a', 'b']);
  const balanced = Array.from({ length: opts.names ?? 2 }, (_, i) =>
    compileBalanced(
      {
        name: `n${i}.example.com.`,
        ttl: 20,
        fallback: 'all',
        policy: 'local-first',
        addresses: { a: ['192.0.2.1'], b: ['192.0.2.2'] },
      },
      'a',
      ['a', 'b'],
    ),
  );
  const orderings = new Orderings(balanced, table);
  const log = new FailoverLog({ size: opts.size ?? 50, clock: () => clock.t, registry });
  log.attach(table);
  // The orderings' own listener recomputed before 'changed': each step of the clock marks a stage.
  const flushes: { names: readonly string[]; resolve: (ok: boolean) => void }[] = [];
  orderings.on('changed', (names) => {
    clock.t += 1;
    log.recomputed(
      names,
      opts.flush === 'none' ? undefined : () => new Promise<boolean>((resolve) => flushes.push({ names, resolve })),
    );
  });
  let changes = 0;
  log.on('change', () => changes++);
  const histogram = async () =>
    (await registry.getSingleMetric('multisite_backend_failover_stage_seconds')!.get()).values
      .filter((v) => (v as { metricName?: string }).metricName?.endsWith('_sum'))
      .map((v) => `${v.labels.kind} ${v.labels.from}→${v.labels.stage} ${+v.value.toFixed(6)}`)
      .sort();
  const counted = async () =>
    (await registry.getSingleMetric('multisite_backend_failovers_total')!.get()).values
      .map((v) => `${v.labels.kind} ${v.value}`)
      .sort();
  return { clock, table, orderings, log, flushes, changes: () => changes, histogram, counted };
}

const stagesOf = (r: FailoverRecord) => r.stages.map((s) => `${s.stage}@${s.at}/${s.clock}`);

describe('FailoverLog: each failover and recovery with its stage times', () => {
  it("takes HAProxy's event, the table change, the recompute and PowerDNS's acknowledgement, each at its exact time", async () => {
    const s = setup();
    const cause = {
      message: 'Server web/w1 is DOWN, reason: ...',
      loggedAt: 9_990.25,
      checkMs: 3,
      receivedAt: 9_995.5,
      events: 2,
    };
    s.log.withCause('a', cause, () => s.table.setHealth('a', 'pool', false, 'pool web: 0 of 2 usable'));
    expect(s.changes()).toBe(1);
    const [r] = s.log.list();
    expect(r).toMatchObject({
      id: 1,
      site: 'a',
      kind: 'failover',
      reason: 'pool: pool web: 0 of 2 usable',
      trigger: cause.message,
      events: 2,
      names: 2,
      flush: 'pending',
    });
    expect(stagesOf(r!)).toEqual([
      'check@9987.25/haproxy',
      'haproxy@9990.25/haproxy',
      'informed@9995.5/backend',
      'state@10000/backend',
      'orderings@10001/backend',
    ]);
    expect(await s.histogram()).toEqual([]); // observed once complete
    s.clock.t = 10_042;
    s.flushes[0]!.resolve(true);
    await Promise.resolve();
    await Promise.resolve();
    const [done] = s.log.list();
    expect(done!.flush).toBe('done');
    expect(stagesOf(done!).at(-1)).toBe('flushed@10042/backend');
    expect(s.changes()).toBe(2);
    expect(await s.histogram()).toEqual([
      'failover check→flushed 0.05475',
      'failover check→haproxy 0.003',
      'failover check→informed 0.00825',
      'failover check→orderings 0.01375',
      'failover check→state 0.01275',
    ]);
  });

  it("starts a peer's change or a drain at `state` (nothing earlier was observed), and keeps a cause to its own change", async () => {
    const s = setup({ flush: 'none' });
    s.log.withCause('a', { message: 'Server web/w1 is UP', receivedAt: 9_000, events: 1 }, () => {});
    s.table.setHealth('b', 'peer', false, 'no heartbeat, probe failed');
    s.clock.t = 10_500;
    s.table.setHealth('b', 'peer', true, 'heartbeats again');
    s.table.setDrained('a', true);
    const [drained, recovery, failover] = s.log.list();
    expect(failover).toMatchObject({ site: 'b', kind: 'failover', names: 2, flush: 'off' });
    expect(failover!.trigger).toBeUndefined();
    expect(stagesOf(failover!)).toEqual(['state@10000/backend', 'orderings@10001/backend']);
    expect(stagesOf(recovery!)).toEqual(['state@10500/backend', 'orderings@10501/backend']);
    expect(drained).toMatchObject({ site: 'a', kind: 'failover', reason: 'drained by an operator' });
    expect(stagesOf(drained!)).toEqual(['state@10501/backend', 'orderings@10502/backend']);
    expect(await s.histogram()).toEqual(['failover state→orderings 0.002', 'recovery state→orderings 0.001']);
  });

  it('a change of state that changes no answer has no recompute stage and nothing to flush', () => {
    const s = setup({ names: 0 });
    s.table.setHealth('b', 'peer', false, 'gone');
    const [r] = s.log.list();
    expect(r).toMatchObject({ site: 'b', names: 0, flush: 'none' });
    expect(stagesOf(r!)).toEqual(['state@10000/backend']);
    expect(s.flushes).toEqual([]);
    expect(s.changes()).toBe(1);
  });

  it('a failed flush leaves the stage out and says so; HAProxy clock ahead of ours counts as 0, not negative', async () => {
    const s = setup();
    const cause = { message: 'Server web/w1 is DOWN', loggedAt: 10_000.5, receivedAt: 9_999.5, events: 1 };
    s.log.withCause('a', cause, () => s.table.setHealth('a', 'pool', false, 'down'));
    s.flushes[0]!.resolve(false);
    await new Promise((r) => setImmediate(r));
    const [r] = s.log.list();
    expect(r!.flush).toBe('failed');
    expect(stagesOf(r!)).toEqual([
      'haproxy@10000.5/haproxy',
      'informed@9999.5/backend',
      'state@10000/backend',
      'orderings@10001/backend',
    ]);
    expect(await s.histogram()).toEqual([
      'failover haproxy→informed 0',
      'failover haproxy→orderings 0.0005',
      'failover haproxy→state 0',
    ]);
  });

  it('ignores answer changes no site state change made, keeps the newest `size`, and serves them as JSON', async () => {
    const s = setup({ size: 2 });
    s.log.recomputed(['n0.example.com.'], () => Promise.resolve(true));
    expect(s.log.list()).toEqual([]);
    for (const up of [false, true, false]) {
      s.clock.t += 100;
      s.table.setHealth('a', 'pool', up, up ? 'up' : 'down');
    }
    expect(s.log.list().map((r) => `${r.id} ${r.kind}`)).toEqual(['3 failover', '2 recovery']);
    expect(await s.counted()).toEqual(['failover 2', 'recovery 1']);
    const body: string[] = [];
    const handled = s.log.route()(
      { url: '/failovers', method: 'GET' } as never,
      { writeHead: () => {}, end: (b: string) => body.push(b) } as never,
    );
    expect(handled).toBe(true);
    expect((JSON.parse(body[0]!) as { failovers: FailoverRecord[] }).failovers.map((r) => r.id)).toEqual([3, 2]);
    expect(s.log.route()({ url: '/status', method: 'GET' } as never, {} as never)).toBe(false);
  });

  it("starts at the agent's verdict when the agent in this process made it before HAProxy's event, for that server and direction", () => {
    const s = setup({ flush: 'none' });
    const down = { message: 'Server web/w1 is DOWN, changed from CLI', server: 'web/w1', loggedAt: 9_990, events: 1 };
    s.clock.t = 9_980.5;
    s.log.agentVerdict('web/w2', false); // another server
    s.log.agentVerdict('web/w1', false);
    s.clock.t = 10_000;
    s.log.withCause('a', { ...down, receivedAt: 9_991 }, () => s.table.setHealth('a', 'pool', false, 'down'));
    expect(stagesOf(s.log.list()[0]!)).toEqual([
      'verdict@9980.5/backend',
      'haproxy@9990/haproxy',
      'informed@9991/backend',
      'state@10000/backend',
      'orderings@10001/backend',
    ]);
    // Recovery, but w1's last verdict is down: not this change's cause.
    const up = { message: 'Server web/w1 is UP', server: 'web/w1', events: 1, receivedAt: 10_100 };
    s.log.withCause('a', up, () => s.table.setHealth('a', 'pool', true, 'up'));
    expect(s.log.list()[0]!.stages[0]!.stage).toBe('informed');
    // A verdict after the event arrived (HAProxy's own check was first), or long before it: no stage.
    s.log.agentVerdict('web/w1', false);
    s.log.withCause('a', { ...down, receivedAt: s.clock.t - 1 }, () => s.table.setHealth('a', 'pool', false, 'x'));
    expect(s.log.list()[0]!.stages.map((x) => x.stage)).not.toContain('verdict');
    s.table.setHealth('a', 'pool', true, 'up');
    s.clock.t += 30_001;
    s.log.withCause('a', { ...down, receivedAt: s.clock.t }, () => s.table.setHealth('a', 'pool', false, 'y'));
    expect(s.log.list()[0]!.stages.map((x) => x.stage)).not.toContain('verdict');
  });

  it('a listener that throws leaves no record open: the next change does not lend it its recompute', () => {
    const s = setup({ flush: 'none' });
    let fail = true;
    s.orderings.on('changed', () => {
      if (fail) throw new Error('a listener failed'); // after the log's: inside the table change
    });
    expect(() => s.table.setHealth('b', 'peer', false, 'gone')).toThrow('a listener failed');
    fail = false;
    s.clock.t = 10_100;
    s.table.setHealth('b', 'peer', true, 'back');
    const [recovery, failover] = s.log.list();
    expect(stagesOf(failover!)).toEqual(['state@10000/backend', 'orderings@10001/backend']);
    expect(stagesOf(recovery!)).toEqual(['state@10100/backend', 'orderings@10101/backend']);
  });
});
