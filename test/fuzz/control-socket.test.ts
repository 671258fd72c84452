import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ControlRequest } from '../../src/pdns-backend/control.js';
import { fuzzRuns, fuzzTimeoutMs } from './runs.js';
import { checkReply, isStatusReply, PROBE, SITES, startControl } from './support/control-socket.js';
import { hostileValue } from './support/protocol.js';
import { writeInPieces, type UnixClient } from './support/remote-backend.js';

/**
 * The backend's control socket (`multisite drain|undrain|status|explain`), fuzzed from its request
 * types (ControlRequest: values) and at the byte level (framing), against the real ControlServer
 * on a real unix socket. Properties: exactly one reply per request line, in order, each
 * `{ok: true, ...}` or `{ok: false, error}` with a message; a status probe after every case still
 * answers; nothing hangs (the client's watchdog fails the run).
 */

let ctl: Awaited<ReturnType<typeof startControl>>;
let conn: UnixClient;
beforeAll(async () => {
  ctl = await startControl();
  conn = await ctl.open();
});
afterAll(async () => {
  conn?.close();
  await ctl?.stop();
});

const validRequest: fc.Arbitrary<ControlRequest> = fc.oneof(
  fc.constant({ cmd: 'status' as const }),
  fc.record({ cmd: fc.constantFrom('drain' as const, 'undrain' as const), site: fc.constantFrom(...SITES) }),
  fc.record(
    {
      cmd: fc.constant('explain' as const),
      name: fc.constantFrom('www.example.', 'other.example.'),
      client: fc.option(fc.ipV4(), { nil: undefined }),
    },
    { requiredKeys: ['cmd', 'name'] },
  ),
);
const oddName = fc.constantFrom(
  '',
  'cmd',
  '__proto__',
  'constructor',
  'toString',
  'hasOwnProperty',
  'site ',
  'SITE',
  '\u0000',
  '💥',
);
/** A site or cmd value the daemon never expects: unknown, odd, huge (under the line limit). */
const oddValue = fc.oneof(
  hostileValue,
  oddName,
  fc.constantFrom('paris ', 'PARIS', 'status ', 'STATUS', 'drain\u0000'),
);

type Req = Record<string, unknown>;
/** A valid request with values replaced, removed or added (wrong type, missing, empty, huge...). */
const mutatedRequest = fc
  .tuple(
    validRequest,
    fc.array(fc.tuple(fc.nat({ max: 3 }), fc.nat(), oddValue, oddName), { minLength: 1, maxLength: 3 }),
  )
  .map(([req, edits]) => {
    const out: Req = { ...req };
    for (const [kind, at, value, key] of edits) {
      const keys = Object.keys(out);
      const k = keys[at % keys.length] ?? key;
      if (kind <= 1) out[k] = value;
      else if (kind === 2) delete out[k];
      else Object.defineProperty(out, key, { value, enumerable: true, configurable: true, writable: true });
    }
    return out;
  });

/** Never a newline (JSON.stringify escapes them), never blank (blank lines are not requests). */
const hostileLine = fc
  .oneof(
    { weight: 4, arbitrary: mutatedRequest.map((r) => JSON.stringify(r)) },
    { weight: 1, arbitrary: validRequest.map((r) => JSON.stringify(r)) },
    { weight: 1, arbitrary: hostileValue.map((v) => JSON.stringify(v)) },
    {
      weight: 1,
      arbitrary: fc
        .tuple(
          validRequest.map((r) => JSON.stringify(r)),
          fc.nat(),
        )
        .map(([s, n]) => s.slice(0, n % s.length)),
    },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 200 }) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        'null',
        '5',
        '-1',
        '[]',
        '{}',
        '""',
        'true',
        '{"cmd":null}',
        '{"cmd":{}}',
        '{"cmd":"drain","site":null}',
        `${'['.repeat(2000)}${']'.repeat(2000)}`,
      ),
    },
  )
  .map((l) => {
    const line = l.replace(/\n/g, ' ');
    return line.trim() === '' ? `${line}x` : line;
  });

const tooLong = (line: string) => Buffer.byteLength(line) > 4096;

async function expectProbe(c: UnixClient, after: string): Promise<void> {
  const reply = await c.next(`probe after ${after.slice(0, 200)}`);
  expect(isStatusReply(reply), `probe in step after ${after.slice(0, 200)}: ${reply.slice(0, 200)}`).toBe(true);
}

describe('control socket, fuzzed', () => {
  it(
    'answers every generated request exactly once, in order, then still answers a status probe',
    async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(hostileLine, { minLength: 1, maxLength: 8 }), async (lines) => {
          await conn.write(lines.map((l) => `${l}\n${PROBE}\n`).join(''));
          for (const line of lines) {
            const reply = checkReply(await conn.next(line.slice(0, 200)), line);
            if (tooLong(line)) expect(reply).toEqual({ ok: false, error: 'request longer than 4096 bytes' });
            await expectProbe(conn, line);
          }
          expect(conn.unclaimed, 'replies nobody asked for').toEqual([]);
        }),
        { numRuns: fuzzRuns(200), endOnFailure: true },
      );
    },
    fuzzTimeoutMs(),
  );

  it(
    'answers the same whatever the framing: split at any offsets, many per chunk, oversized, garbage',
    async () => {
      const oversized = fc
        .nat({ max: 20_000 })
        .map((n) => JSON.stringify({ cmd: 'explain', name: 'n'.repeat(4097 + n) }));
      const item = fc.oneof({ weight: 4, arbitrary: hostileLine }, { weight: 1, arbitrary: oversized });
      await fc.assert(
        fc.asyncProperty(
          fc.array(item, { minLength: 1, maxLength: 8 }),
          fc.array(fc.nat(), { maxLength: 12 }),
          async (lines, cuts) => {
            const c = await ctl.open();
            try {
              await writeInPieces(c, Buffer.from(lines.map((l) => `${l}\n${PROBE}\n`).join('')), cuts);
              for (const line of lines) {
                const reply = checkReply(await c.next(line.slice(0, 200)), line);
                if (tooLong(line)) expect(reply).toEqual({ ok: false, error: 'request longer than 4096 bytes' });
                await expectProbe(c, line);
              }
              expect(c.unclaimed).toEqual([]);
            } finally {
              c.close();
            }
          },
        ),
        { numRuns: fuzzRuns(60), endOnFailure: true },
      );
    },
    fuzzTimeoutMs(),
  );

  // (The first property's connection may be gone by now: a client silent for 5 s is dropped.)
  it('still answers on a new connection', async () => {
    const fresh = await ctl.open();
    await fresh.write(`${PROBE}\n`);
    await expectProbe(fresh, 'the fuzz runs');
    fresh.close();
  });
});
