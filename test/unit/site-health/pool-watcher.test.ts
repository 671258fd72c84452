import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { RuntimeUnavailableError, type StatRow } from '../../../src/haproxy/index.js';
import { PoolWatcher, poolVerdict } from '../../../src/site-health/haproxy-pool.js';
import { SiteStateTable } from '../../../src/site-health/state-table.js';
import { VirtualTimers } from '../haproxy-agent/virtual-timers.js';

type Srv = [name: string, status: string, weight: number, agent?: string];
const row = ([name, status, weight, agent]: Srv): StatRow => ({ proxy: 'web', name, type: 'server', status, weight, currentSessions: 0, lastAgent: agent ?? '', lastCheck: '', fields: {} });

/** A load balancer whose pool the test sets; `null` makes it unreachable. */
function lb(socket: string) {
  let servers: Srv[] | null = [];
  const reads: number[] = [];
  return {
    set: (s: Srv[] | null) => (servers = s),
    reads,
    client: (timers: VirtualTimers) => ({
      socket,
      showStat: async () => {
        reads.push(timers.now());
        if (servers === null) throw new RuntimeUnavailableError('show stat web 4 -1', socket, 'ECONNREFUSED');
        return servers.map(row);
      },
    }),
  };
}

describe('the local pool verdict', () => {
  it('is up while one load balancer has min-servers usable servers (UP, not drained or in maintenance, weight > 0)', () => {
    const view = (usable: number, total = 3) => ({ socket: 'lb', usable, total, unusable: [] });
    expect(poolVerdict('web', [view(0), view(1)], 1).up).toBe(true);
    expect(poolVerdict('web', [view(1), view(1)], 2).up).toBe(false);
    expect(poolVerdict('web', [{ socket: 'lb1', usable: 0, total: 0, error: 'cannot connect (ECONNREFUSED)', unusable: [] }], 1)).toEqual({
      up: false,
      reason: 'pool web: fewer than 1 usable servers on every load balancer: lb1: cannot connect (ECONNREFUSED)',
    });
  });
});

describe('PoolWatcher → site-state table', () => {
  it('reads every load balancer each interval and reports each change once, with HAProxy\'s reasons', async () => {
    const timers = new VirtualTimers();
    const table = new SiteStateTable(['a', 'b'], () => timers.now());
    const changes: string[] = [];
    table.on('change', () => changes.push(`${timers.now()}:${table.isUsable('a')}`));
    const lb1 = lb('/run/lb1.sock');
    const lb2 = lb('/run/lb2.sock');
    lb1.set([['w1', 'UP', 100], ['w2', 'DOWN', 100, 'via agent : down (connection refused)'], ['w3', 'DRAIN', 0]]);
    lb2.set(null);
    const watcher = new PoolWatcher({
      backend: 'web',
      clients: [lb1.client(timers), lb2.client(timers)],
      intervalMs: 250,
      minServers: 1,
      timers,
      logger: pino({ level: 'silent' }),
      onChange: (up, reason) => table.setHealth('a', 'pool', up, reason),
    });
    watcher.start();
    await timers.advance(0);
    expect(table.isUsable('a')).toBe(true);
    lb1.set([['w1', 'UP', 0], ['w2', 'DOWN', 100, "via agent : down (keyword 'db1' not found in /dbcheck)"], ['w3', 'MAINT', 100]]);
    await timers.advance(249);
    expect(table.isUsable('a')).toBe(true);
    await timers.advance(1);
    expect(table.isUsable('a')).toBe(false);
    expect(table.get('a')!.reason).toBe(
      "pool: pool web: fewer than 1 usable servers on every load balancer: /run/lb1.sock: 0 of 3 usable (w1 UP weight 0; w2 DOWN (via agent : down (keyword 'db1' not found in /dbcheck)); w3 MAINT) | /run/lb2.sock: haproxy /run/lb2.sock: 'show stat web 4 -1': cannot connect (ECONNREFUSED)",
    );
    lb2.set([['w1', 'UP 1/3', 100]]); // going down but still up: usable
    await timers.advance(250);
    expect(table.isUsable('a')).toBe(true);
    watcher.stop();
    await timers.advance(1000);
    expect(lb1.reads).toEqual([0, 250, 500]);
    expect(changes).toEqual(['250:false', '500:true']);
    expect(table.isUsable('b')).toBe(true);
  });
});
