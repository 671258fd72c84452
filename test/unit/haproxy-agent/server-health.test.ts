import { describe, expect, it } from 'vitest';
import { ServerHealth } from '../../../src/haproxy-agent/server-health.js';
import { scriptedCheck, VirtualTimers } from './virtual-timers.js';

const t = (intervalMs = 100) => ({ intervalMs, timeoutMs: 80, rise: 1, fall: 1 });

describe('ServerHealth', () => {
  it('says nothing until every health check has a result, then up with the load weight', async () => {
    const timers = new VirtualTimers();
    const replies: string[] = [];
    const h = new ServerHealth(
      'web/w1',
      {
        message: { fn: scriptedCheck([true]), timing: t() },
        keyword: { fn: scriptedCheck([true]), timing: t() },
        load: { fn: scriptedCheck([4, 8]), timing: t(1000), capacity: 8, floor: 10 },
      },
      timers,
      30_000,
      { onReply: (_s, r) => replies.push(r) },
    );
    expect(h.reply.toString()).toBe('\n');
    h.start();
    await timers.advance(0);
    expect(h.replyText).toBe('up 55%\n');
    await timers.advance(1000);
    expect(h.replyText).toBe('up 10%\n');
    // Health checks and the load check finish independently: 'up' first, then the weight.
    expect(replies).toEqual(['up\n', 'up 55%\n', 'up 10%\n']);
    h.stop();
  });

  it('is down with the reason of the failing check; a failing load check only drops the weight word', async () => {
    const timers = new VirtualTimers();
    const h = new ServerHealth(
      'web/w1',
      {
        message: { fn: scriptedCheck([true]), timing: t() },
        keyword: { fn: scriptedCheck([true, "keyword 'db1' not found in /dbcheck", true]), timing: t() },
        load: { fn: scriptedCheck([50, 'connection refused (/load)']), timing: t(150), capacity: 100, floor: 10 },
      },
      timers,
      30_000,
    );
    h.start();
    await timers.advance(0);
    expect(h.replyText).toBe('up 55%\n');
    await timers.advance(100);
    expect(h.replyText).toBe("down #keyword 'db1' not found in /dbcheck\n");
    await timers.advance(100);
    expect(h.replyText).toBe('up\n'); // load failed at 150: no weight word, HAProxy keeps the last weight
    h.stop();
  });

  it('answers drain while drained, then ready for the ready window after undrain, then no admin word', async () => {
    const timers = new VirtualTimers();
    const h = new ServerHealth('web/w1', { message: { fn: scriptedCheck([true]), timing: t() } }, timers, 5000);
    h.start();
    await timers.advance(0);
    expect(h.setDrained(true)).toBe(true);
    expect(h.setDrained(true)).toBe(false);
    expect(h.replyText).toBe('drain up\n');
    await timers.advance(10_000);
    expect(h.replyText).toBe('drain up\n');
    h.setDrained(false);
    expect(h.replyText).toBe('ready up\n');
    await timers.advance(4999);
    expect(h.replyText).toBe('ready up\n');
    await timers.advance(1);
    expect(h.replyText).toBe('up\n');
    h.stop();
  });
});
