import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { RuntimeUnavailableError, type RuntimeClient, type StatRow } from '../../../src/haproxy/index.js';
import {
  PoolWatcher,
  poolVerdict,
  type PoolCause,
  type PoolWatcherOptions,
  type StreamHandlers,
} from '../../../src/site-health/haproxy-pool.js';
import { SiteStateTable } from '../../../src/site-health/state-table.js';
import { VirtualTimers } from '../haproxy-agent/virtual-timers.js';

type Srv = [name: string, status: string, weight: number, agent?: string];
const row = ([name, status, weight, agent]: Srv): StatRow => ({
  proxy: 'web',
  name,
  type: 'server',
  status,
  weight,
  currentSessions: 0,
  lastAgent: agent ?? '',
  lastCheck: '',
  fields: {},
});

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

/** A stream the test opens, closes and feeds. */
function fakeStream() {
  let h: StreamHandlers | undefined;
  const s = {
    open: false,
    start: () => {},
    stop: () => {},
    handlers: () => h!,
    follow: (_socket: string, handlers: StreamHandlers) => ((h = handlers), s),
  };
  return s;
}

/** A load balancer whose reads wait until the test releases them (pending), each seeing `servers()` as asked. */
function heldLb(servers: () => Srv[]) {
  const pending: (() => void)[] = [];
  const client = {
    socket: 'lb',
    showStat: () => {
      const seen = servers();
      return new Promise<StatRow[]>((r) => pending.push(() => r(seen.map(row))));
    },
  };
  return { pending, client };
}

/** A watcher following `stream` of one load balancer, with a safety net too long to matter. */
function followingWatcher(
  client: Pick<RuntimeClient, 'socket' | 'showStat'>,
  stream: ReturnType<typeof fakeStream>,
  timers: VirtualTimers,
  extra: Pick<PoolWatcherOptions, 'onChange' | 'wallClock'>,
): PoolWatcher {
  return new PoolWatcher({
    backend: 'web',
    clients: [client],
    intervalMs: 250,
    safetyIntervalMs: 60_000,
    follow: stream.follow,
    minServers: 1,
    timers,
    logger: pino({ level: 'silent' }),
    ...extra,
  });
}

describe('the local pool verdict', () => {
  it('is up while one load balancer has min-servers usable servers (UP, not drained or in maintenance, weight > 0)', () => {
    const view = (usable: number, total = 3) => ({ socket: 'lb', usable, total, unusable: [] });
    expect(poolVerdict('web', [view(0), view(1)], 1).up).toBe(true);
    expect(poolVerdict('web', [view(1), view(1)], 2).up).toBe(false);
    expect(
      poolVerdict(
        'web',
        [{ socket: 'lb1', usable: 0, total: 0, error: 'cannot connect (ECONNREFUSED)', unusable: [] }],
        1,
      ),
    ).toEqual({
      up: false,
      reason: 'pool web: fewer than 1 usable servers on every load balancer: lb1: cannot connect (ECONNREFUSED)',
    });
  });
});

describe('PoolWatcher → site-state table', () => {
  it("reads every load balancer each interval and reports each change once, with HAProxy's reasons", async () => {
    const timers = new VirtualTimers();
    const table = new SiteStateTable(['a', 'b'], () => timers.now());
    const changes: string[] = [];
    table.on('change', () => changes.push(`${timers.now()}:${table.isUsable('a')}`));
    const lb1 = lb('/run/lb1.sock');
    const lb2 = lb('/run/lb2.sock');
    lb1.set([
      ['w1', 'UP', 100],
      ['w2', 'DOWN', 100, 'via agent : down (connection refused)'],
      ['w3', 'DRAIN', 0],
    ]);
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
    lb1.set([
      ['w1', 'UP', 0],
      ['w2', 'DOWN', 100, "via agent : down (keyword 'db1' not found in /dbcheck)"],
      ['w3', 'MAINT', 100],
    ]);
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

describe('PoolWatcher following HAProxy state-change events', () => {
  it('reads at once on an event of its backend, on every (re)open, and polls slowly only while the stream is open', async () => {
    const timers = new VirtualTimers();
    const lb1 = lb('/run/lb1.sock');
    lb1.set([['w1', 'UP', 100]]);
    const verdicts: boolean[] = [];
    const stream = fakeStream();
    const watcher = followingWatcher(lb1.client(timers), stream, timers, { onChange: (up) => verdicts.push(up) });
    watcher.start();
    await timers.advance(0);
    stream.open = true;
    stream.handlers().onOpen();
    await timers.advance(0);
    expect(lb1.reads).toEqual([0, 0]);
    lb1.set([['w1', 'DOWN', 100]]);
    await timers.advance(10_000); // no read: the safety net is 60 s
    expect(verdicts).toEqual([true]);
    stream.handlers().onEvent({ type: 'server', backend: 'other', server: 'x', kind: 'down', message: '' });
    stream.handlers().onEvent({ type: 'text', message: 'Proxy web started.' });
    await timers.advance(0);
    expect(lb1.reads).toHaveLength(2);
    stream
      .handlers()
      .onEvent({ type: 'server', backend: 'web', server: 'w1', kind: 'down', message: 'Server web/w1 is DOWN' });
    await timers.advance(0);
    expect(verdicts).toEqual([true, false]);
    expect(lb1.reads.at(-1)).toBe(10_000);
    // Cut: the short interval applies until it reopens; the reopen reads at once.
    stream.open = false;
    stream.handlers().onClose('cannot follow /run/lb1.sock: ECONNREFUSED');
    lb1.set([['w1', 'UP', 100]]);
    await timers.advance(250);
    expect(verdicts).toEqual([true, false, true]);
    lb1.set([['w1', 'MAINT', 100]]);
    stream.open = true;
    stream.handlers().onOpen();
    await timers.advance(0);
    expect(verdicts).toEqual([true, false, true, false]);
    const n = lb1.reads.length;
    await timers.advance(59_999);
    expect(lb1.reads).toHaveLength(n);
    await timers.advance(1);
    expect(lb1.reads).toHaveLength(n + 1);
    watcher.stop();
  });

  it('reads once more after a read in progress when events arrive during it (never loses the last change)', async () => {
    const timers = new VirtualTimers();
    const status = { now: 'UP' };
    const { pending, client } = heldLb(() => [['w1', status.now, 100]]);
    const verdicts: boolean[] = [];
    const stream = fakeStream();
    const watcher = followingWatcher(client, stream, timers, { onChange: (up) => verdicts.push(up) });
    watcher.start();
    expect(pending).toHaveLength(1);
    status.now = 'DOWN';
    for (let i = 0; i < 5; i++)
      stream.handlers().onEvent({ type: 'server', backend: 'web', server: 'w1', kind: 'down', message: '' });
    pending.shift()!();
    await timers.advance(0);
    expect(pending).toHaveLength(1); // one more read for five events
    pending.shift()!();
    await timers.advance(0);
    expect(verdicts).toEqual([true, false]);
    watcher.stop();
  });
});

describe('PoolWatcher: the HAProxy event behind a verdict change (failover stages)', () => {
  it('hands the earliest event the changing read followed, with both clocks; events of reads that changed nothing are dropped', async () => {
    const timers = new VirtualTimers();
    let wall = 1_000_000;
    const status = { now: ['UP', 'UP'] };
    const { pending, client } = heldLb(() => [
      ['w1', status.now[0]!, 100],
      ['w2', status.now[1]!, 100],
    ]);
    const changes: { up: boolean; cause?: PoolCause }[] = [];
    const stream = fakeStream();
    const watcher = followingWatcher(client, stream, timers, {
      wallClock: () => wall,
      onChange: (up, _reason, cause) => changes.push({ up, ...(cause ? { cause } : {}) }),
    });
    const ev = (server: string, loggedAt?: number, checkMs?: number) =>
      stream.handlers().onEvent({
        type: 'server',
        backend: 'web',
        server,
        kind: 'down',
        message: `Server web/${server} is DOWN`,
        ...(loggedAt !== undefined ? { loggedAt } : {}),
        ...(checkMs !== undefined ? { checkMs } : {}),
      });
    watcher.start();
    pending.shift()!();
    await timers.advance(0);
    expect(changes).toEqual([{ up: true }]); // the first read: no event behind it
    status.now = ['DOWN', 'UP'];
    wall = 1_000_010;
    ev('w1', 999_990.5, 3);
    pending.shift()!(); // w1 down, w2 up: the verdict stays up; w1's event is spent
    await timers.advance(0);
    status.now = ['DOWN', 'DOWN'];
    wall = 1_000_500;
    ev('w2', 1_000_499.25); // starts a read at once
    expect(pending).toHaveLength(1);
    wall = 1_000_501;
    ev('w1'); // these arrive while the read runs: the next read's, not this one's
    ev('w2');
    pending.shift()!();
    await timers.advance(0);
    expect(changes.slice(1)).toEqual([
      {
        up: false,
        cause: {
          message: 'Server web/w2 is DOWN',
          server: 'web/w2',
          loggedAt: 1_000_499.25,
          receivedAt: 1_000_500,
          events: 1,
        },
      },
    ]);
    pending.shift()!(); // the read for the two that came during the last one: nothing changes
    await timers.advance(0);
    expect(changes).toHaveLength(2);
    status.now = ['UP', 'DOWN'];
    wall = 1_001_000;
    ev('w1', 1_000_999, 1);
    ev('w2');
    pending.shift()!();
    await timers.advance(0);
    expect(changes[2]).toEqual({
      up: true,
      cause: {
        message: 'Server web/w1 is DOWN',
        server: 'web/w1',
        loggedAt: 1_000_999,
        checkMs: 1,
        receivedAt: 1_001_000,
        events: 1,
      },
    });
    watcher.stop();
  });
});

describe('PoolWatcher → status page', () => {
  it("tells of a server's row changing while the verdict stays up, once per change", async () => {
    const timers = new VirtualTimers();
    const lb1 = lb('/run/lb1.sock');
    lb1.set([
      ['w1', 'UP', 100, 'via agent : up'],
      ['w2', 'UP', 100, 'via agent : up'],
    ]);
    const verdicts: boolean[] = [];
    let rowChanges = 0;
    const watcher = new PoolWatcher({
      backend: 'web',
      clients: [lb1.client(timers)],
      intervalMs: 250,
      minServers: 1,
      timers,
      logger: pino({ level: 'silent' }),
      onChange: (up) => verdicts.push(up),
      onServersChange: () => rowChanges++,
    });
    watcher.start();
    await timers.advance(0);
    expect([verdicts, rowChanges]).toEqual([[true], 1]);
    await timers.advance(1000);
    expect(rowChanges).toBe(1);
    lb1.set([
      ['w1', 'DOWN', 100, 'via agent : down (connection refused)'],
      ['w2', 'UP', 100, 'via agent : up'],
    ]);
    await timers.advance(250);
    expect([verdicts, rowChanges]).toEqual([[true], 2]);
    watcher.stop();
  });
});
