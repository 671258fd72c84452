import { describe, expect, it } from 'vitest';
import { LoadSender } from '../../../src/haproxy-agent/load-sender.js';
import { ServerHealth } from '../../../src/haproxy-agent/server-health.js';
import { decodeLoadReport, type LoadReport } from '../../../src/site-health/load-reports.js';
import { scriptedCheck, VirtualTimers } from './virtual-timers.js';

const key = Buffer.from('load-report key of 32 bytes.....');
const t = (intervalMs = 100) => ({ intervalMs, timeoutMs: 80, rise: 1, fall: 1 });

/** Two servers in virtual time, an agent's load sender sending to one backend; reports decoded. */
function setup(connections?: () => Promise<Map<string, number>>) {
  const timers = new VirtualTimers();
  const servers = new Map(
    ['web/w1', 'web/w2'].map((name) => [
      name,
      new ServerHealth(
        name,
        {
          message: { fn: scriptedCheck([true]), timing: t() },
          load: { fn: scriptedCheck([2]), timing: t(1000), capacity: 8, floor: 10 },
        },
        timers,
        30_000,
      ),
    ]),
  );
  const reports: { at: number; report: LoadReport }[] = [];
  const sender = new LoadSender(servers, {
    site: 'a',
    node: 'agent-1',
    key,
    to: [{ host: '127.0.0.1', port: 7947 }],
    source: '127.0.0.1',
    periodMs: 2000,
    timers,
    wallNow: () => 1_700_000_000_000 + timers.now(),
    send: (buf) => {
      const d = decodeLoadReport(buf, key);
      if (!d.ok) throw new Error(d.detail);
      reports.push({ at: timers.now(), report: d.report });
    },
    ...(connections ? { connections } : {}),
  });
  return { timers, servers, sender, reports };
}

describe('LoadSender', () => {
  it('one report per server per period: up, the load check value, the message check time; connections unknown without HAProxy', async () => {
    const { timers, servers, sender, reports } = setup();
    for (const h of servers.values()) h.start();
    await timers.advance(0);
    sender.start();
    await timers.advance(4000);
    expect(reports.map((r) => `${r.at}:${r.report.server}`)).toEqual([
      '0:web/w1',
      '0:web/w2',
      '2000:web/w1',
      '2000:web/w2',
      '4000:web/w1',
      '4000:web/w2',
    ]);
    expect(reports[0]!.report).toMatchObject({ site: 'a', sender: 'agent-1', server: 'web/w1', up: true, load: 2 });
    expect(reports[0]!.report.connections).toBeUndefined();
    expect(new Set(reports.map((r) => r.report.seq)).size).toBe(reports.length);
    sender.stop();
  });

  it("carries HAProxy's current sessions per server from the previous reading; unknown again when the reading fails", async () => {
    const readings: (Map<string, number> | Error)[] = [
      new Map([
        ['web/w1', 7],
        ['web/w2', 0],
      ]),
      new Map([['web/w1', 9]]),
      new Error('socket gone'),
    ];
    const { timers, servers, sender, reports } = setup(async () => {
      const r = readings.shift() ?? new Error('no more');
      if (r instanceof Error) throw r;
      return r;
    });
    for (const h of servers.values()) h.start();
    await timers.advance(0);
    sender.start();
    await timers.advance(6000);
    const conns = (at: number) => reports.filter((r) => r.at === at).map((r) => r.report.connections);
    expect(conns(0)).toEqual([undefined, undefined]); // nothing read yet
    expect(conns(2000)).toEqual([7, 0]);
    expect(conns(4000)).toEqual([9, undefined]); // w2 missing from that reading
    expect(conns(6000)).toEqual([undefined, undefined]); // the reading failed
    sender.stop();
  });
});
