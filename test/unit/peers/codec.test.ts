import { createHmac } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decode,
  encode,
  MAX_DATAGRAM,
  MAX_PROBES,
  type Message,
  type SharedProbe,
} from '../../../src/site-health/peers/codec.js';

const key = Buffer.from('a shared key of at least 16 bytes');
const hb: Message = {
  type: 'heartbeat',
  site: 'paris',
  sender: '127.0.0.2:7946',
  boot: 1_700_000_000_000,
  seq: 42,
  time: 1_700_000_001_234,
  summary: { pool: 'up', usable: 3, servers: 4, load: 1.25, responseMs: 12.345, replicationLagMs: 250 },
};
const ann: Message = {
  type: 'announce',
  site: 'paris',
  sender: 'p1',
  boot: 1,
  seq: 2,
  time: 3,
  subject: 'london',
  state: 'down',
  reason: 'tcp 127.0.0.3:80: ECONNREFUSED — verified',
};

/** Signs arbitrary bytes as a datagram, to reach the parser behind the MAC. */
const signed = (body: Buffer) => Buffer.concat([body, createHmac('sha256', key).update(body).digest()]);

const probe = (i: number): SharedProbe => ({
  key: `10.${i}.7.0/24`,
  rttMs: 12.345,
  completion: 0.75,
  hops: 9,
  method: 'icmp',
  ageMs: 1500,
});
const probes: Message = {
  type: 'probes',
  site: 'paris',
  sender: 'p1',
  boot: 1,
  seq: 5,
  time: 9,
  entries: [
    probe(1),
    { key: '2001:db8:42::/48', rttMs: 80, completion: 1, method: 'tcp', ageMs: 0 },
    { key: '10.2.7.0/24', rttMs: 3, completion: 0, method: 'tcp', ageMs: 20 },
  ],
};

describe('heartbeat codec', () => {
  it('round-trips shared probe results (IPv4 /24, IPv6 /48, unknown hops), 16 to a datagram under 512 bytes', () => {
    expect(decode(encode(probes, key), key)).toEqual({ ok: true, msg: probes });
    const long = 'x'.repeat(63);
    const full = encode(
      {
        ...probes,
        site: long,
        sender: long,
        entries: Array.from({ length: MAX_PROBES }, (_, i) => ({ ...probe(i), key: `2001:db8:${i + 1}::/48` })),
      },
      key,
    );
    expect(full.length).toBeLessThan(512);
    expect(() =>
      encode({ ...probes, entries: Array.from({ length: MAX_PROBES + 1 }, (_, i) => probe(i)) }, key),
    ).toThrow(/at most 16/);
    expect(() => encode({ ...probes, entries: [{ ...probe(1), key: '10.1.7.5/32' }] }, key)).toThrow(
      /not a \/24 or \/48/,
    );
  });

  it('rejects a probes datagram with a bad family, a completion over 1, or a truncated entry', () => {
    const good = encode(probes, key);
    const body = good.subarray(0, good.length - 32);
    const first = body.indexOf(Buffer.from([4, 10, 1, 7]));
    const badFamily = Buffer.from(body);
    badFamily[first] = 5;
    expect(decode(signed(badFamily), key)).toMatchObject({
      ok: false,
      reason: 'malformed',
      detail: 'bad probe family 5',
    });
    const badCompletion = Buffer.from(body);
    badCompletion.writeUInt16BE(10_001, first + 4 + 4);
    expect(decode(signed(badCompletion), key)).toMatchObject({
      ok: false,
      reason: 'malformed',
      detail: 'bad probe entry',
    });
    expect(decode(signed(body.subarray(0, body.length - 1)), key)).toMatchObject({ ok: false, reason: 'malformed' });
  });

  it('round-trips heartbeats and announces, keeping unknown summary numbers unknown', () => {
    expect(decode(encode(hb, key), key)).toEqual({ ok: true, msg: hb });
    expect(decode(encode(ann, key), key)).toEqual({ ok: true, msg: ann });
    const bare: Message = { ...hb, summary: { pool: 'unknown' } };
    expect(decode(encode(bare, key), key)).toEqual({ ok: true, msg: bare });
  });

  it('stays under 512 bytes with the longest names and reason; refuses longer names', () => {
    const long = 'x'.repeat(63);
    const biggest = encode({ ...ann, site: long, sender: long, subject: long, reason: 'é'.repeat(500) }, key);
    expect(biggest.length).toBeLessThan(512);
    expect(encode({ ...hb, site: long, sender: long }, key).length).toBeLessThan(200);
    const decoded = decode(biggest, key);
    expect(decoded.ok && decoded.msg.type === 'announce' && decoded.msg.reason.endsWith('...')).toBe(true);
    expect(() => encode({ ...hb, site: 'y'.repeat(64) }, key)).toThrow(RangeError);
  });

  it('rejects every single-bit change anywhere in the datagram', () => {
    for (const msg of [hb, ann]) {
      const good = encode(msg, key);
      for (let i = 0; i < good.length; i++) {
        for (let bit = 0; bit < 8; bit++) {
          const bad = Buffer.from(good);
          bad[i]! ^= 1 << bit;
          const r = decode(bad, key);
          expect(r, `byte ${i} bit ${bit}`).toMatchObject({
            ok: false,
            reason: expect.stringMatching(/^(bad-mac|malformed|version)$/),
          });
        }
      }
    }
  });

  it('rejects every split of a datagram: each prefix, each suffix, and two glued together', () => {
    const good = encode(hb, key);
    for (let cut = 0; cut < good.length; cut++) {
      expect(decode(good.subarray(0, cut), key).ok).toBe(false);
      expect(decode(good.subarray(cut + 1), key).ok).toBe(false);
    }
    expect(decode(Buffer.concat([good, encode(ann, key)]), key).ok).toBe(false);
    expect(decode(Buffer.alloc(MAX_DATAGRAM + 1), key)).toMatchObject({ ok: false, reason: 'malformed' });
  });

  it('names why: wrong key, unknown version, bad magic', () => {
    const good = encode(hb, key);
    expect(decode(good, Buffer.from('another key, also long enough'))).toMatchObject({ ok: false, reason: 'bad-mac' });
    const v2 = Buffer.from(good);
    v2[2] = 2;
    expect(decode(v2, key)).toMatchObject({ ok: false, reason: 'version', detail: 'version 2; this build speaks 1' });
    const magic = Buffer.from(good);
    magic[0] = 0;
    expect(decode(magic, key)).toMatchObject({ ok: false, reason: 'malformed', detail: 'bad magic' });
  });

  it('refuses correctly signed bodies that do not parse: trailing bytes, bad flags, unknown type, non-ASCII names', () => {
    const body = encode(hb, key).subarray(0, -32);
    expect(decode(signed(Buffer.concat([body, Buffer.from([0])])), key)).toMatchObject({
      ok: false,
      reason: 'malformed',
      detail: '1 trailing bytes',
    });
    const at = 4 + 1 + 5 + 1 + 14 + 6 + 4 + 6; // pool flag of hb
    const flag = Buffer.from(body);
    flag[at] = 7;
    expect(decode(signed(flag), key)).toMatchObject({ ok: false, reason: 'malformed', detail: 'bad pool flag' });
    const type = Buffer.from(body);
    type[3] = 9;
    expect(decode(signed(type), key)).toMatchObject({
      ok: false,
      reason: 'malformed',
      detail: 'unknown message type 9',
    });
    const name = Buffer.from(body);
    name[5] = 0x20;
    expect(decode(signed(name), key)).toMatchObject({
      ok: false,
      reason: 'malformed',
      detail: 'site is not printable ASCII',
    });
    expect(decode(signed(body.subarray(0, 30)), key)).toMatchObject({ ok: false, reason: 'malformed' });
  });

  it('round-trips arbitrary messages and never accepts random bytes (property)', () => {
    const name = fc.stringMatching(/^[\x21-\x7e]{1,63}$/);
    const u = (max: number) => fc.option(fc.integer({ min: 0, max }), { nil: undefined });
    const summary = fc.record(
      {
        pool: fc.constantFrom('unknown', 'up', 'down'),
        usable: u(65534),
        servers: u(65534),
        replicationLagMs: u(2 ** 32 - 2),
      },
      { requiredKeys: ['pool'] },
    );
    const envelope = {
      site: name,
      sender: name,
      boot: fc.integer({ min: 0, max: 2 ** 48 - 1 }),
      seq: fc.integer({ min: 0, max: 2 ** 32 - 2 }),
      time: fc.integer({ min: 0, max: 2 ** 48 - 1 }),
    };
    const msg = fc.oneof(
      fc.record({ type: fc.constant('heartbeat' as const), ...envelope, summary }),
      fc.record({
        type: fc.constant('announce' as const),
        ...envelope,
        subject: name,
        state: fc.constantFrom('down' as const, 'up' as const),
        reason: fc.string({ maxLength: 60 }),
      }),
    );
    fc.assert(
      fc.property(msg, (m) => {
        const clean = JSON.parse(JSON.stringify(m)) as Message;
        expect(decode(encode(m as Message, key), key)).toEqual({ ok: true, msg: clean });
      }),
    );
    fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => decode(Buffer.from(bytes), key).ok === false));
  });
});
