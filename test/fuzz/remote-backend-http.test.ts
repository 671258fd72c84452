import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exampleHandler } from '../unit/pdns-backend/fixtures.js';
import { fuzzRuns, fuzzTimeoutMs } from './runs.js';
import { hostileLine, json11, mutatedRequest, probes, validRequest, type Request } from './support/protocol.js';
import { HttpClient, httpPost, startBackendChild, writeInPieces, type BackendChild } from './support/remote-backend.js';

/**
 * The remote backend over the HTTP connector (PowerDNS's post=1 and post=1,post_json=1 modes),
 * fuzzed from the protocol's types and at the byte level. Properties: one HTTP response per
 * request, in order, on a kept-alive connection; 200/405/413 bodies are JSON with "result";
 * broken HTTP gets one 400 and the connection closes; no request goes unanswered past the
 * watchdog; afterwards a known-good lookup is answered correctly.
 */

const { handler } = exampleHandler();
const probeAnswers = probes.map((p) => `200 ${handler.handleLine(p)}`);

let backend: BackendChild;
beforeAll(async () => {
  backend = await startBackendChild();
});
afterAll(() => backend?.stop());

const form = { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' };

/** One request as PowerDNS's two POST modes (and some clients that are not PowerDNS) send it. */
const httpRequest = fc.oneof(
  hostileLine.map((l) => httpPost('/dns', l)),
  fc
    .tuple(
      fc.oneof(validRequest, mutatedRequest),
      fc.constantFrom('/dns/', '/', '/dns/x/', '//', '/dns/%00/', '/dns/../'),
    )
    .map(([r, prefix]: [Request, string]) =>
      httpPost(
        `${prefix}${typeof r.method === 'string' ? encodeURIComponent(r.method) : 'x'}`,
        new URLSearchParams({ parameters: json11(r.parameters ?? {}) }).toString(),
        form,
      ),
    ),
  fc
    .tuple(
      hostileLine,
      fc.constantFrom(
        '',
        'application/json',
        'text/plain',
        'application/x-www-form-urlencoded',
        'APPLICATION/X-WWW-FORM-URLENCODED',
        'multipart/form-data; boundary=x',
      ),
    )
    .map(([l, type]) => httpPost('/dns', l, type ? { 'content-type': type } : {})),
  fc.nat({ max: 9000 }).map((n) => httpPost('/dns', 'y'.repeat(4097 + n))),
  fc
    .constantFrom('GET', 'PUT', 'DELETE', 'OPTIONS', 'PATCH')
    .map((m) => Buffer.from(`${m} /dns/lookup/www.example.com./A HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n`)),
);

function checkResponse(res: string, what: string): void {
  const [status, ...rest] = res.split(' ');
  expect(['200', '405', '413'], `status for ${what}`).toContain(status);
  const body = JSON.parse(rest.join(' ')) as unknown;
  expect(body, `body for ${what}`).toHaveProperty('result');
}

describe('remote backend over the HTTP connector, fuzzed', () => {
  it(
    'answers every generated request once, in order, on one kept-alive connection',
    async () => {
      const c = await HttpClient.open(backend.port);
      try {
        await fc.assert(
          fc.asyncProperty(fc.array(httpRequest, { minLength: 1, maxLength: 6 }), async (reqs) => {
            await c.write(Buffer.concat(reqs.flatMap((r, i) => [r, httpPost('/dns', probes[i % probes.length]!)])));
            for (const [i, r] of reqs.entries()) {
              const what = JSON.stringify(r.subarray(0, 200).toString('latin1'));
              checkResponse(await c.next(what), what);
              expect(await c.next(`probe after ${what}`), `in step after ${what}`).toBe(
                probeAnswers[i % probes.length],
              );
            }
            expect(c.unclaimed).toEqual([]);
          }),
          { numRuns: fuzzRuns(100), endOnFailure: true },
        );
      } finally {
        c.close();
      }
    },
    fuzzTimeoutMs(120_000),
  );

  it(
    'answers the same whatever the framing: requests pipelined and split at any offsets',
    async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(httpRequest, { minLength: 1, maxLength: 4 }),
          fc.array(fc.nat(), { maxLength: 8 }),
          async (reqs, cutsRaw) => {
            const stream = Buffer.concat(reqs.flatMap((r, i) => [r, httpPost('/dns', probes[i % probes.length]!)]));
            const c = await HttpClient.open(backend.port);
            try {
              await writeInPieces(c, stream, cutsRaw);
              for (const i of reqs.keys()) {
                checkResponse(await c.next(`request ${i}`), `request ${i}`);
                expect(await c.next(`probe ${i}`)).toBe(probeAnswers[i % probes.length]);
              }
              expect(c.unclaimed).toEqual([]);
            } finally {
              c.close();
            }
          },
        ),
        { numRuns: fuzzRuns(40), endOnFailure: true },
      );
    },
    fuzzTimeoutMs(120_000),
  );

  it(
    'answers broken HTTP with one 400 and closes that connection only',
    async () => {
      // A NUL first byte can never start a method; the blank line makes the parser decide.
      const garbage = fc
        .uint8Array({ maxLength: 200 })
        .map((b) => Buffer.concat([Buffer.from([0]), Buffer.from(b), Buffer.from('\r\n\r\n')]));
      await fc.assert(
        fc.asyncProperty(garbage, async (bytes) => {
          const c = await HttpClient.open(backend.port);
          await c.write(bytes);
          expect(await c.next('garbage')).toBe('400 ');
          await c.next('nothing more').then(
            (extra) => expect.fail(`a second response to one broken request: ${extra}`),
            (err: Error) => expect(err.message).toMatch(/^connection closed/),
          );
        }),
        { numRuns: fuzzRuns(30), endOnFailure: true },
      );
    },
    fuzzTimeoutMs(120_000),
  );

  it('still answers a known-good lookup correctly', async () => {
    const c = await HttpClient.open(backend.port);
    await c.write(httpPost('/dns', probes[0]!));
    expect(await c.next('the known-good lookup')).toBe(probeAnswers[0]);
    c.close();
    expect(backend.exited()).toBeUndefined();
  });
});
