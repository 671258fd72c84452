import { createHmac } from 'node:crypto';
import { createSocket } from 'node:dgram';
import fc from 'fast-check';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { realTimers } from '../../src/shared/timers.js';
import { freePort } from '../../src/lab/ports.js';
import { decode, encode, MAX_DATAGRAM, type Message } from '../../src/site-health/peers/codec.js';
import { ReplayGuard } from '../../src/site-health/peers/guard.js';
import { PeerMetrics } from '../../src/site-health/peers/metrics.js';
import { PeerService } from '../../src/site-health/peers/service.js';
import { UdpTransport } from '../../src/site-health/peers/transport.js';
import { SiteStateTable } from '../../src/site-health/state-table.js';
import { fuzzRuns, fuzzTimeoutMs } from './runs.js';

/**
 * Heartbeats (src/site-health/peers: codec, guard, UDP listener), fuzzed from the wire format's
 * own types. decode() never throws and trusts a datagram whole or not at all; every decoded
 * message's fields are within the format's ranges; the guard never throws on any decoded message;
 * a live listener that received hostile datagrams still accepts a legitimate heartbeat.
 */

const key = Buffer.from('the cluster key, 32 bytes long!!');
const sign = (body: Buffer) => Buffer.concat([body, createHmac('sha256', key).update(body).digest()]);
const U48_MAX = 2 ** 48 - 1;

const name = fc.oneof(
  fc.constantFrom('b', 'b1', 'a', 'zz', '', ' ', 'é', '\u0000', 'x'.repeat(63), 'x'.repeat(64), 'x'.repeat(300)),
  fc.string({ maxLength: 70 }),
);
const hostileNumber = fc.oneof(
  fc.constantFrom(
    NaN,
    Infinity,
    -Infinity,
    -1,
    -0,
    0.5,
    2 ** 32,
    2 ** 32 - 1,
    2 ** 48,
    U48_MAX,
    Number.MAX_SAFE_INTEGER,
    Number.MAX_VALUE,
    -Number.MAX_VALUE,
  ),
  fc.integer(),
  fc.double(),
);
const anyNumber = fc.oneof(hostileNumber, fc.nat());
const optNumber = fc.option(anyNumber, { nil: undefined });
const envelope = fc.record({ site: name, sender: name, boot: anyNumber, seq: anyNumber, time: anyNumber });
const probeEntry = fc.record({
  key: fc.oneof(
    fc.constantFrom('192.0.2.0/24', '2001:db8:1::/48', '192.0.2.1/24', 'nonsense', ''),
    fc.string({ maxLength: 20 }),
  ),
  rttMs: anyNumber,
  completion: anyNumber,
  hops: optNumber,
  method: fc.constantFrom('icmp' as const, 'tcp' as const),
  ageMs: anyNumber,
});
/** Messages as the types allow them, with hostile values (encode() must clamp or refuse them). */
const hostileMessage: fc.Arbitrary<Message> = fc.oneof(
  fc
    .tuple(
      envelope,
      fc.record({
        pool: fc.constantFrom('unknown' as const, 'up' as const, 'down' as const),
        usable: optNumber,
        servers: optNumber,
        load: optNumber,
        responseMs: optNumber,
        replicationLagMs: optNumber,
      }),
    )
    .map(([e, summary]) => ({ type: 'heartbeat' as const, ...e, summary })),
  fc
    .tuple(envelope, name, fc.constantFrom('down' as const, 'up' as const), fc.string({ maxLength: 400 }))
    .map(([e, subject, state, reason]) => ({ type: 'announce' as const, ...e, subject, state, reason })),
  fc
    .tuple(envelope, fc.array(probeEntry, { maxLength: 18 }))
    .map(([e, entries]) => ({ type: 'probes' as const, ...e, entries })),
);

/** Encodes, or undefined when encode() refuses (a RangeError naming what is too long). */
function tryEncode(m: Message): Buffer | undefined {
  try {
    return encode(m, key);
  } catch (err) {
    if (!(err instanceof RangeError)) throw err;
    return undefined;
  }
}

function checkDecoded(buf: Buffer): void {
  const d = decode(buf, key);
  if (!d.ok) return void expect(d.detail.length).toBeGreaterThan(0);
  const m = d.msg;
  for (const v of [m.boot, m.time]) expect(Number.isInteger(v) && v >= 0 && v <= U48_MAX).toBe(true);
  expect(Number.isInteger(m.seq) && m.seq >= 0 && m.seq < 2 ** 32).toBe(true);
  expect(m.site).toMatch(/^[\x21-\x7e]{1,63}$/);
  expect(m.sender).toMatch(/^[\x21-\x7e]{1,63}$/);
  // The guard takes whatever decoded: it must answer, never throw.
  const verdict = new ReplayGuard({ site: 'a', peers: new Set(['b']), maxSkewMs: 5000 }).check(m, Date.now(), 0);
  expect(typeof verdict.ok).toBe('boolean');
}

describe('heartbeat codec, fuzzed', () => {
  it(
    'decodes random bytes, signed or not, without throwing',
    () => {
      const bytes = fc.uint8Array({ maxLength: 600 }).map((b) => Buffer.from(b));
      const framed = fc
        .tuple(fc.constantFrom(1, 2, 3, 0, 255), fc.uint8Array({ maxLength: 480 }))
        .map(([type, b]) => sign(Buffer.concat([Buffer.from([0x4d, 0x53, 1, type]), b])));
      fc.assert(
        fc.property(fc.oneof(bytes, bytes.map(sign), framed), (buf) => checkDecoded(buf)),
        { numRuns: fuzzRuns(2000) },
      );
    },
    fuzzTimeoutMs(120_000),
  );

  it(
    'encodes hostile field values in range or refuses them, and decodes what it encoded',
    () => {
      fc.assert(
        fc.property(hostileMessage, (m) => {
          const buf = tryEncode(m);
          if (buf === undefined) return;
          expect(buf.length).toBeLessThanOrEqual(MAX_DATAGRAM);
          checkDecoded(buf);
        }),
        { numRuns: fuzzRuns(1000) },
      );
    },
    fuzzTimeoutMs(),
  );

  it(
    'refuses a signed datagram truncated at every offset, or with bytes appended, as malformed',
    () => {
      fc.assert(
        fc.property(hostileMessage, fc.uint8Array({ minLength: 1, maxLength: 8 }), (m, extra) => {
          const buf = tryEncode(m);
          if (buf === undefined || !decode(buf, key).ok) return;
          const body = buf.subarray(0, buf.length - 32);
          for (let cut = 0; cut < body.length; cut++) {
            const d = decode(sign(body.subarray(0, cut)), key);
            expect(d.ok, `cut at ${cut}`).toBe(false);
            expect(d.ok || d.reason).toBe('malformed');
            expect(decode(buf.subarray(0, cut + 32), key).ok).toBe(false);
          }
          expect(decode(sign(Buffer.concat([body, extra])), key)).toMatchObject({ ok: false, reason: 'malformed' });
        }),
        { numRuns: fuzzRuns(150) },
      );
    },
    fuzzTimeoutMs(),
  );
});

describe('heartbeat UDP listener, fuzzed', () => {
  let service: PeerService;
  let port: number;
  const accepted = new Set<string>();
  let wakeUp = () => {};
  const client = createSocket('udp4');
  beforeAll(async () => {
    port = await freePort();
    const peerPort = await freePort();
    service = new PeerService({
      site: 'a',
      node: 'a1',
      key,
      peers: [{ site: 'b', heartbeat: [{ host: '127.0.0.1', port: peerPort }], statusUrls: [], lbAddresses: [] }],
      periodMs: 600_000,
      suspectAfterMs: 1_200_000,
      recoverPeriods: 3,
      maxSkewMs: 5000,
      probeBudgetMs: 1000,
      transport: new UdpTransport({ host: '127.0.0.1', port }),
      probe: async () => ({ ok: true, detail: 'ok', ms: 0 }),
      summary: () => ({ pool: 'up' }),
      table: new SiteStateTable(['a', 'b']),
      timers: realTimers,
      wallNow: Date.now,
      logger: pino({ level: 'silent' }),
      metrics: new PeerMetrics(new Registry()),
      onSummary: (_site, sender) => (accepted.add(sender), wakeUp()),
    });
    await service.start();
  });
  afterAll(async () => {
    client.close();
    await service?.stop();
  });

  const send = (buf: Buffer) =>
    new Promise<void>((ok, fail) => client.send(buf, port, '127.0.0.1', (err) => (err ? fail(err) : ok())));
  let legit = 0;

  it(
    'accepts a legitimate heartbeat after any hostile datagrams',
    async () => {
      const now = Date.now();
      // Signed, fresh, from the configured peer: only values are hostile (they reach the guard).
      const fresh = hostileMessage.map((m) => ({ ...m, site: 'b', time: now }) as Message);
      const datagram = fc.oneof(
        fc.uint8Array({ maxLength: 600 }).map((b) => Buffer.from(b)),
        hostileMessage.map(tryEncode),
        fresh.map(tryEncode),
        fc
          .tuple(fresh.map(tryEncode), fc.nat())
          .map(([b, cut]) => b && sign(b.subarray(0, cut % Math.max(1, b.length - 32)))),
      );
      await fc.assert(
        fc.asyncProperty(fc.array(datagram, { minLength: 1, maxLength: 10 }), async (bufs) => {
          for (const b of bufs) if (b && b.length > 0) await send(b);
          // A sender the hostile ones never use: its first heartbeat must be accepted.
          // UDP may lose a datagram on a loaded machine: it is sent again (next seq) until accepted.
          const sender = `legit-${++legit}`;
          const boot = Date.now();
          const deadline = Date.now() + 15_000;
          for (let seq = 1; !accepted.has(sender); seq++) {
            if (Date.now() > deadline) throw new Error(`heartbeat from ${sender} not accepted within 15 s`);
            await send(
              encode(
                { type: 'heartbeat', site: 'b', sender, boot, seq, time: Date.now(), summary: { pool: 'up' } },
                key,
              ),
            );
            await new Promise<void>((r) => ((wakeUp = r), setTimeout(r, 500)));
          }
        }),
        // Each case waits for a heartbeat to be accepted: 20,000 of them took 59 min at load 10.
        { numRuns: fuzzRuns(40, 3000), endOnFailure: true },
      );
    },
    fuzzTimeoutMs(),
  );
});
