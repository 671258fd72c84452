import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exampleHandler } from '../unit/pdns-backend/fixtures.js';
import { HttpClient, httpPost, startBackendChild, UnixClient, type BackendChild } from './support/remote-backend.js';

/**
 * Issue 15, items 1 and 2, against the backend in its own process: a request that hangs it fails
 * here by the watchdog instead of hanging the test runner.
 */

const { handler } = exampleHandler();
const good = JSON.stringify({
  method: 'lookup',
  parameters: {
    local: '127.0.0.1',
    qname: 'www.example.com.',
    qtype: 'A',
    'real-remote': '127.0.0.1/32',
    remote: '127.0.0.1',
    'zone-id': 1,
  },
});
const goodAnswer = handler.handleLine(good);

/** Lookups of names without their final dot, with zone-id -1 or none: the loop in zoneFor. */
const relative = ['foo', 'com', 'www.example.com', 'nothing.example.org'].flatMap((qname) => [
  JSON.stringify({
    method: 'lookup',
    parameters: { local: '0.0.0.0', qname, qtype: 'A', 'real-remote': '0.0.0.0/0', remote: '0.0.0.0', 'zone-id': -1 },
  }),
  JSON.stringify({ method: 'lookup', parameters: { qname, qtype: 'ANY' } }),
]);

/**
 * PowerDNS's DNSName reads "foo" as "foo.": the answer is the absolute name's (computed here: absolute names never
 * looped).
 */
const asAbsolute = (line: string) => {
  const req = JSON.parse(line) as { parameters: { qname: string } };
  req.parameters.qname += '.';
  return handler.handleLine(JSON.stringify(req));
};

let backend: BackendChild;
beforeAll(async () => {
  backend = await startBackendChild();
});
afterAll(() => backend?.stop());

describe('remote backend regressions (issue 15)', () => {
  it('answers relative-name lookups without a zone id over the unix connector, then still answers', async () => {
    const c = await UnixClient.open(backend.socket);
    for (const line of relative) {
      await c.write(`${line}\n${good}\n`);
      expect(await c.next(line), line).toBe(asAbsolute(line));
      expect(await c.next(`the lookup after ${line}`)).toBe(goodAnswer);
    }
    c.close();
    expect(backend.exited()).toBeUndefined();
  });

  it('answers relative-name lookups without a zone id over the HTTP connector, then still answers', async () => {
    const c = await HttpClient.open(backend.port);
    for (const line of relative) {
      await c.write(Buffer.concat([httpPost('/dns', line), httpPost('/dns', good)]));
      expect(await c.next(line), line).toBe(`200 ${asAbsolute(line)}`);
      expect(await c.next(`the lookup after ${line}`)).toBe(`200 ${goodAnswer}`);
    }
    c.close();
  });

  it('gives an over-long unix request line exactly one reply, after its newline, and stays in step', async () => {
    const c = await UnixClient.open(backend.socket);
    await c.write('x'.repeat(3000));
    await c.write('y'.repeat(3000)); // over the child's 4096-byte limit, newline not yet sent
    await c.write(`\n${good}\n`);
    expect(await c.next('the over-long line')).toBe(
      JSON.stringify({ result: false, log: ['request longer than 4096 bytes'] }),
    );
    expect(await c.next('the lookup after it')).toBe(goodAnswer);
    expect(c.unclaimed).toEqual([]);
    c.close();
  });

  it('answers an oversized HTTP body 413 and the next request on the same connection', async () => {
    const c = await HttpClient.open(backend.port);
    await c.write(Buffer.concat([httpPost('/dns', 'z'.repeat(20_000)), httpPost('/dns', good)]));
    expect(await c.next('the oversized body')).toBe(
      `413 ${JSON.stringify({ result: false, log: ['request longer than 4096 bytes'] })}`,
    );
    expect(await c.next('the lookup after it')).toBe(`200 ${goodAnswer}`);
    c.close();
  });
});
