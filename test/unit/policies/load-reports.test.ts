import { describe, expect, it } from 'vitest';
import {
  decodeLoadReport,
  encodeLoadReport,
  LoadAggregator,
  type LoadReport,
} from '../../../src/site-health/load-reports.js';
import {
  Prober,
  type ProbeMethod,
  checksum,
  echoRequest,
  hopsFromTtl,
  parseReply,
} from '../../../src/site-health/probes.js';
import { probesSchema } from '../../../src/config/policy-schema.js';
import { VirtualTimers } from '../haproxy-agent/virtual-timers.js';

const KEY = Buffer.from('0123456789abcdef-load');
const base: LoadReport = {
  site: 'a',
  sender: 'agent-1',
  server: 'web/w1',
  boot: 1000,
  seq: 1,
  time: 50_000,
  up: true,
  load: 0.75,
  connections: 12,
  responseMs: 3.25,
};

describe('load report codec', () => {
  it('round-trips every field and leaves unknown numbers out', () => {
    expect(decodeLoadReport(encodeLoadReport(base, KEY), KEY)).toEqual({ ok: true, report: base });
    const { load: _l, connections: _c, responseMs: _r, ...bare } = base;
    expect(decodeLoadReport(encodeLoadReport(bare, KEY), KEY)).toEqual({ ok: true, report: bare });
  });
  it('refuses a wrong key, a flipped bit, truncation and trailing bytes', () => {
    const buf = encodeLoadReport(base, KEY);
    expect(decodeLoadReport(buf, Buffer.from('another-key-of-16-bytes'))).toMatchObject({
      ok: false,
      reason: 'bad-mac',
    });
    for (let i = 0; i < buf.length; i++) {
      const b = Buffer.from(buf);
      b[i]! ^= 1;
      expect(decodeLoadReport(b, KEY).ok).toBe(false);
    }
    expect(decodeLoadReport(buf.subarray(0, buf.length - 1), KEY).ok).toBe(false);
    expect(decodeLoadReport(Buffer.concat([buf, Buffer.from([0])]), KEY).ok).toBe(false);
  });
});

describe('load aggregation', () => {
  const setup = () => {
    const timers = new VirtualTimers();
    let wall = 50_000;
    const out: unknown[] = [];
    const agg = new LoadAggregator({
      site: 'a',
      key: KEY,
      staleAfterMs: 5000,
      maxSkewMs: 1000,
      timers,
      wallNow: () => wall,
      onAggregate: (f) => out.push(f),
    });
    let seq = 0;
    const send = (over: Partial<LoadReport>) =>
      agg.receive(encodeLoadReport({ ...base, seq: ++seq, time: wall, ...over }, KEY));
    return { timers, agg, out, send, setWall: (w: number) => (wall = w) };
  };

  it('means load and response time of servers up, sums connections, drops stale servers', async () => {
    const t = setup();
    t.send({ server: 'web/w1', load: 1, responseMs: 10, connections: 5 });
    t.send({ server: 'web/w2', load: 3, responseMs: 20, connections: 7 });
    t.send({ server: 'web/w3', load: 9, up: false });
    expect(t.agg.aggregate()).toEqual({ load: 2, responseMs: 15, connections: 12 });
    await t.timers.advance(4000);
    t.send({ server: 'web/w1', load: 1, responseMs: 10, connections: 5 });
    await t.timers.advance(2000); // w2 is now 6 s old
    expect(t.agg.aggregate()).toEqual({ load: 1, responseMs: 10, connections: 5 });
    await t.timers.advance(10_000);
    expect(t.agg.aggregate()).toBeUndefined();
  });

  it('refuses (and counts) replays, skewed times, other sites and bad MACs; never uses them', async () => {
    const t = setup();
    t.send({ seq: 10, load: 1 });
    t.agg.receive(encodeLoadReport({ ...base, seq: 10, load: 50 }, KEY)); // replay
    t.agg.receive(encodeLoadReport({ ...base, seq: 11, time: 60_000, load: 50 }, KEY)); // skew
    t.agg.receive(encodeLoadReport({ ...base, seq: 12, site: 'b', load: 50 }, KEY));
    t.agg.receive(encodeLoadReport({ ...base, seq: 13, load: 50 }, Buffer.from('not-the-key-at-all!')));
    expect(t.agg.aggregate()?.load).toBe(1);
    const counts = Object.fromEntries((await t.agg.rejected.get()).values.map((v) => [v.labels.reason, v.value]));
    expect(counts).toEqual({ replay: 1, skew: 1, 'other-site': 1, 'bad-mac': 1 });
    // A restarted agent (later boot) starts its sequence again.
    t.agg.receive(encodeLoadReport({ ...base, boot: 2000, seq: 1, load: 4 }, KEY));
    expect(t.agg.aggregate()?.load).toBe(4);
  });

  it('an agent restarted after its clock went back (an earlier boot) is taken once its old boot fell silent', async () => {
    const t = setup();
    t.send({ boot: 5000, load: 1 });
    t.send({ boot: 4000, seq: 1, load: 2 }); // the old boot spoke just now: could be a replay
    expect(t.agg.aggregate()?.load).toBe(1);
    await t.timers.advance(2001); // silent for more than twice max-skew-ms (1000)
    t.send({ boot: 4000, seq: 2, load: 3 });
    expect(t.agg.aggregate()?.load).toBe(3);
    t.send({ boot: 4000, seq: 2, load: 9 }); // and the new boot's own sequence is guarded again
    expect(t.agg.aggregate()?.load).toBe(3);
  });
});

describe('probes', () => {
  it('schedules at most max-per-second probes, each network once, never on the caller', async () => {
    const timers = new VirtualTimers();
    const started: [number, string][] = [];
    const method: ProbeMethod = {
      name: 'tcp',
      measure: async (target) => {
        started.push([timers.now(), target]);
        return { rttMs: 1, completion: 1, method: 'tcp' };
      },
    };
    const results: string[] = [];
    const p = new Prober({
      config: probesSchema.parse({ 'max-per-second': 2, 'max-pending': 3 }),
      timers,
      clock: () => timers.now(),
      method,
      onResult: (k) => results.push(k),
    });
    for (let i = 1; i <= 5; i++) p.request(`10.0.${i}.0/24`, `10.0.${i}.1`);
    p.request('10.0.1.0/24', '10.0.1.1'); // in flight or queued already
    expect(p.dropped).toBe(0);
    await timers.advance(0);
    expect(started.map(([t, x]) => `${t}:${x}`)).toEqual(['0:10.0.1.1', '0:10.0.2.1']);
    await timers.advance(2000);
    expect(started.map(([t, x]) => `${t}:${x}`)).toEqual([
      '0:10.0.1.1',
      '0:10.0.2.1',
      '500:10.0.3.1',
      '1000:10.0.4.1',
      '1500:10.0.5.1',
    ]);
    expect(results).toHaveLength(5);
    p.request('10.0.1.0/24', '10.0.1.1'); // fresh result: not probed again
    await timers.advance(1000);
    expect(started).toHaveLength(5);
    p.stop();
  });

  it('builds echo requests with a valid checksum and reads replies and hop counts', () => {
    const req = echoRequest(0x1234, 7);
    expect(checksum(req)).toBe(0);
    const reply = Buffer.from(req);
    reply[0] = 0;
    const ip = Buffer.alloc(20);
    ip[0] = 0x45;
    ip[8] = 61;
    [127, 0, 0, 1].forEach((b, i) => (ip[12 + i] = b));
    expect(parseReply(Buffer.concat([ip, reply]), 'raw', '127.0.0.1')).toEqual({ ident: 0x1234, seq: 7, ttl: 61 });
    expect(parseReply(Buffer.concat([ip, reply]), 'raw', '127.0.0.2')).toBeUndefined();
    expect(parseReply(reply, 'dgram', '127.0.0.1')).toEqual({ ident: 0x1234, seq: 7 });
    expect([hopsFromTtl(64), hopsFromTtl(61), hopsFromTtl(120), hopsFromTtl(250)]).toEqual([0, 3, 8, 5]);
  });
});
