import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exampleHandler } from '../unit/pdns-backend/fixtures.js';
import { fuzzRuns, fuzzTimeoutMs } from './runs.js';
import { hostileLine, probes } from './support/protocol.js';
import { startBackendChild, writeInPieces, UnixClient, type BackendChild } from './support/remote-backend.js';

/**
 * The remote backend over the unix connector, fuzzed from the protocol's types (values) and at
 * the byte level (framing). Properties: exactly one reply per request line, in order; each reply
 * is JSON with "result"; no request goes unanswered past the watchdog (a hang fails the run);
 * afterwards the backend still answers a known-good lookup correctly.
 */

const { handler } = exampleHandler();
/** The answers to the probes, from a handler in this process (valid requests: they cannot hang). */
const probeAnswers = probes.map((p) => handler.handleLine(p));
const goodLookup = probes[0]!;

let backend: BackendChild;
let conn: UnixClient;
beforeAll(async () => {
  backend = await startBackendChild();
  conn = await UnixClient.open(backend.socket);
});
afterAll(async () => {
  conn?.close();
  await backend?.stop();
});

function checkReply(reply: string, request: string): void {
  let parsed: unknown;
  try {
    parsed = JSON.parse(reply);
  } catch {
    throw new Error(`reply is not JSON: ${reply.slice(0, 200)} (request ${request.slice(0, 200)})`);
  }
  expect(parsed, `reply to ${request.slice(0, 200)}`).toHaveProperty('result');
}

/** Sends each hostile line followed by a probe, then checks the replies pair by pair. */
async function exchange(c: UnixClient, lines: string[]): Promise<void> {
  const payload = lines.map((l, i) => `${l}\n${probes[i % probes.length]}\n`).join('');
  await c.write(payload);
  for (const [i, line] of lines.entries()) {
    checkReply(await c.next(`request ${JSON.stringify(line.slice(0, 200))}`), line);
    expect(
      await c.next(`probe after ${JSON.stringify(line.slice(0, 200))}`),
      `in step after ${line.slice(0, 200)}`,
    ).toBe(probeAnswers[i % probes.length]);
  }
  expect(c.unclaimed, 'replies nobody asked for').toEqual([]);
}

describe('remote backend over the unix connector, fuzzed', () => {
  it(
    'answers every generated request exactly once, in order, with a result',
    async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(hostileLine, { minLength: 1, maxLength: 8 }), (lines) => exchange(conn, lines)),
        { numRuns: fuzzRuns(150), endOnFailure: true },
      );
      expect(backend.exited()).toBeUndefined();
    },
    fuzzTimeoutMs(120_000),
  );

  it(
    'answers the same whatever the framing: split at any offsets, concatenated, oversized, garbage bytes',
    async () => {
      const oversized = fc
        .nat({ max: 9000 })
        .map((n) => `{"method":"lookup","parameters":{"qname":"${'a'.repeat(4097 + n)}"}}`);
      const garbage = fc
        .uint8Array({ minLength: 1, maxLength: 100 })
        .map((b) => Buffer.from(b.map((x) => (x === 10 ? 32 : x))));
      const item = fc.oneof(
        { weight: 4, arbitrary: hostileLine.map((l) => ({ bytes: Buffer.from(l), oversized: false })) },
        { weight: 1, arbitrary: oversized.map((l) => ({ bytes: Buffer.from(l), oversized: true })) },
        { weight: 1, arbitrary: garbage.map((bytes) => ({ bytes, oversized: bytes.length > 4096 })) },
      );
      await fc.assert(
        fc.asyncProperty(
          fc.array(item, { minLength: 1, maxLength: 6 }),
          fc.array(fc.nat(), { maxLength: 8 }),
          async (items, cutsRaw) => {
            // Blank lines are not requests: a whitespace-only garbage line gets a byte that is not.
            const lines = items.map(({ bytes }) =>
              bytes.toString('latin1').trim() === '' ? Buffer.concat([bytes, Buffer.from('x')]) : bytes,
            );
            const stream = Buffer.concat(lines.flatMap((l, i) => [l, Buffer.from(`\n${probes[i % probes.length]}\n`)]));
            const c = await UnixClient.open(backend.socket);
            try {
              await writeInPieces(c, stream, cutsRaw);
              for (const [i, item] of items.entries()) {
                const reply = await c.next(`item ${i} (${item.bytes.length} bytes)`);
                checkReply(reply, item.bytes.toString('latin1'));
                if (item.oversized)
                  expect(JSON.parse(reply)).toEqual({ result: false, log: ['request longer than 4096 bytes'] });
                expect(await c.next(`probe ${i}`)).toBe(probeAnswers[i % probes.length]);
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
    fuzzTimeoutMs(120_000),
  );

  it('still answers a known-good lookup correctly on a new connection and the old one', async () => {
    const fresh = await UnixClient.open(backend.socket);
    await fresh.write(`${goodLookup}\n`);
    expect(await fresh.next('the known-good lookup')).toBe(probeAnswers[0]);
    fresh.close();
    await conn.write(`${goodLookup}\n`);
    expect(await conn.next('the known-good lookup')).toBe(probeAnswers[0]);
    expect(backend.exited()).toBeUndefined();
  });
});
