import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { NoSuchServerError, RuntimeUnavailableError, type StatRow } from '../../../src/haproxy/index.js';
import { HaproxyPusher, type PushResult, type PushTarget } from '../../../src/haproxy-agent/push.js';
import { VirtualTimers } from './virtual-timers.js';

/** A fake Runtime API: records commands; `mode` decides how it answers. */
class FakeHaproxy implements PushTarget {
  commands: string[] = [];
  mode: 'ok' | 'down' | 'hang' | 'no-such-server' = 'ok';
  /** HAProxy's own check of each server: health and rise ('' = no check). */
  ownCheck = new Map<string, { health: string; rise: string }>();
  hung: (() => void)[] = [];

  constructor(readonly socket: string) {}

  private answer(cmd: string): Promise<void> {
    this.commands.push(cmd);
    if (this.mode === 'down') return Promise.reject(new RuntimeUnavailableError(cmd, this.socket, 'ECONNREFUSED'));
    if (this.mode === 'no-such-server')
      return Promise.reject(new NoSuchServerError(cmd, this.socket, 'No such server.'));
    if (this.mode === 'hang') return new Promise((resolve) => this.hung.push(resolve));
    return Promise.resolve();
  }

  setServerAgent(backend: string, server: string, health: 'up' | 'down'): Promise<void> {
    return this.answer(`set server ${backend}/${server} agent ${health}`);
  }

  async showStat(): Promise<StatRow[]> {
    await this.answer('show stat');
    return [...this.ownCheck].map(([name, c]) => ({
      proxy: 'web',
      name,
      type: 'server',
      status: 'UP',
      weight: 1,
      currentSessions: 0,
      lastAgent: '',
      lastCheck: '',
      fields: { check_health: c.health, check_rise: c.rise },
    }));
  }
}

function logCapture() {
  const lines: { level: number; msg: string }[] = [];
  const logger = pino(
    { level: 'info' },
    { write: (l: string) => void lines.push(JSON.parse(l) as { level: number; msg: string }) },
  );
  return { logger, lines };
}

function setup(sockets = ['/a.sock']) {
  const timers = new VirtualTimers();
  const fakes = sockets.map((s) => new FakeHaproxy(s));
  const { logger, lines } = logCapture();
  const results: { socket: string; result: PushResult }[] = [];
  const pusher = new HaproxyPusher(fakes, {
    timers,
    logger,
    retryMs: 100,
    maxRetryMs: 400,
    onPush: (socket, _s, result) => results.push({ socket, result }),
  });
  return { timers, fakes, pusher, lines, results };
}

const w1 = { backend: 'web', server: 'w1' };

describe('HaproxyPusher', () => {
  it('sends a down verdict at once to every HAProxy of the site', async () => {
    const { timers, fakes, pusher, results } = setup(['/a.sock', '/b.sock']);
    pusher.verdict('web/w1', w1, false);
    await timers.settle();
    expect(fakes.map((f) => f.commands)).toEqual([['set server web/w1 agent down'], ['set server web/w1 agent down']]);
    expect(results.map((r) => r.result)).toEqual(['ok', 'ok']);
    expect(pusher.pending).toBe(0);
  });

  it("sends up only when HAProxy's own check agrees; otherwise leaves it to HAProxy", async () => {
    const { timers, fakes, pusher, results } = setup();
    fakes[0]!.ownCheck.set('w1', { health: '1', rise: '2' });
    pusher.verdict('web/w1', w1, true);
    await timers.settle();
    expect(fakes[0]!.commands).toEqual(['show stat']);
    expect(results.at(-1)!.result).toBe('deferred');
    fakes[0]!.ownCheck.set('w1', { health: '3', rise: '2' });
    pusher.verdict('web/w1', w1, true);
    await timers.settle();
    expect(fakes[0]!.commands.slice(1)).toEqual(['show stat', 'set server web/w1 agent up']);
    fakes[0]!.ownCheck.set('w1', { health: '', rise: '' }); // no `check` on the server line
    pusher.verdict('web/w1', w1, true);
    await timers.settle();
    expect(fakes[0]!.commands.at(-1)).toBe('set server web/w1 agent up');
  });

  it("a deferred up is asked again until HAProxy's own check agrees, not left to HAProxy's agent poll", async () => {
    const { timers, fakes, pusher, results } = setup();
    fakes[0]!.ownCheck.set('w1', { health: '0', rise: '2' }); // HAProxy's own check failed too
    pusher.verdict('web/w1', w1, true);
    await timers.settle();
    expect(results.map((r) => r.result)).toEqual(['deferred']);
    await timers.advance(50);
    expect(results.map((r) => r.result)).toEqual(['deferred', 'deferred']);
    fakes[0]!.ownCheck.set('w1', { health: '2', rise: '2' }); // its check rose
    await timers.advance(50);
    expect(fakes[0]!.commands.at(-1)).toBe('set server web/w1 agent up');
    expect(results.at(-1)!.result).toBe('ok');
    const n = fakes[0]!.commands.length;
    await timers.advance(1000);
    expect(fakes[0]!.commands.length).toBe(n); // delivered: no more asking
  });

  it('rechecks of a deferred up stop when the verdict goes down, and after the limit', async () => {
    const { timers, fakes, pusher } = setup();
    fakes[0]!.ownCheck.set('w1', { health: '0', rise: '2' });
    pusher.verdict('web/w1', w1, true);
    await timers.advance(120);
    pusher.verdict('web/w1', w1, false);
    await timers.settle();
    const n = fakes[0]!.commands.length;
    expect(fakes[0]!.commands.at(-1)).toBe('set server web/w1 agent down');
    await timers.advance(1000);
    expect(fakes[0]!.commands.length).toBe(n);
    pusher.verdict('web/w1', w1, true); // HAProxy's check never rises: asked for 3 s, then left to its poll
    await timers.advance(10_000);
    const asked = fakes[0]!.commands.length - n;
    expect(asked).toBeGreaterThan(10);
    expect(asked).toBeLessThanOrEqual(2 * (3000 / 50 + 1));
    expect(timers.pending()).toBe(0);
  });

  it('a Runtime API that is down never throws: retried with backoff, logged once per episode, the latest verdict wins', async () => {
    const { timers, fakes, pusher, lines } = setup();
    const f = fakes[0]!;
    f.mode = 'down';
    pusher.verdict('web/w1', w1, false);
    await timers.advance(0);
    await timers.advance(100 + 200 + 400 + 400);
    expect(f.commands.length).toBe(5); // at 0, then after 100, 200, 400, 400 (capped) ms
    pusher.verdict('web/w1', w1, true); // changed its mind while HAProxy was away
    f.mode = 'ok';
    f.ownCheck.set('w1', { health: '', rise: '' });
    await timers.advance(400);
    expect(f.commands.slice(-2)).toEqual(['show stat', 'set server web/w1 agent up']);
    expect(pusher.pending).toBe(0);
    const msgs = lines.map((l) => l.msg);
    expect(msgs.filter((m) => m.startsWith('HAProxy Runtime API unusable'))).toHaveLength(1);
    expect(msgs.filter((m) => m === 'HAProxy Runtime API answers again')).toHaveLength(1);
    // A new episode is logged again.
    f.mode = 'down';
    pusher.verdict('web/w1', w1, false);
    await timers.settle();
    expect(lines.map((l) => l.msg).filter((m) => m.startsWith('HAProxy Runtime API unusable'))).toHaveLength(2);
    pusher.stop();
  });

  it('a command HAProxy refuses (no such server) is logged once and not repeated until the next verdict', async () => {
    const { timers, fakes, pusher, lines } = setup();
    fakes[0]!.mode = 'no-such-server';
    pusher.verdict('web/w1', w1, false);
    await timers.advance(10_000);
    expect(fakes[0]!.commands).toHaveLength(1);
    pusher.verdict('web/w1', w1, false);
    await timers.advance(0);
    expect(fakes[0]!.commands).toHaveLength(2);
    expect(lines.filter((l) => l.msg.startsWith('HAProxy refused the verdict push'))).toHaveLength(1);
  });

  it('a hung Runtime API holds at most `concurrency` commands; the rest wait, and every one is sent when it answers', async () => {
    const { timers, fakes, pusher } = setup();
    const f = fakes[0]!;
    f.mode = 'hang';
    for (let i = 1; i <= 10; i++) pusher.verdict(`web/w${i}`, { backend: 'web', server: `w${i}` }, false);
    await timers.settle();
    expect(f.commands).toHaveLength(4);
    f.mode = 'ok';
    for (const resolve of f.hung.splice(0)) resolve();
    await timers.settle();
    expect(new Set(f.commands).size).toBe(10);
    expect(pusher.pending).toBe(0);
  });
});
