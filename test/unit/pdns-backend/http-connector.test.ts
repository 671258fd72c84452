import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HttpConnector } from '../../../src/pdns-backend/connectors/http.js';
import { exampleHandler } from './fixtures.js';

const { handler } = exampleHandler();
const connector = new HttpConnector('127.0.0.1', 0, {
  handleLine: (l) => handler.handleLine(l),
  handle: (r) => handler.handle(r),
  logger: pino({ level: 'silent' }),
  maxRequestBytes: 4096,
});
let base: string;
beforeAll(async () => {
  await connector.start();
  base = `http://127.0.0.1:${connector.boundPort}`;
});
afterAll(() => connector.stop());

const lookup = { method: 'lookup', parameters: { qtype: 'A', qname: 'www.example.com.', 'zone-id': 1 } };

describe('HTTP connector', () => {
  it('answers post_json requests (the JSON request is the body)', async () => {
    const res = await fetch(`${base}/dns`, {
      method: 'POST',
      headers: { 'content-type': 'text/javascript; charset=utf-8' },
      body: JSON.stringify(lookup),
    });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe(handler.handleLine(JSON.stringify(lookup)));
  });

  it('answers plain post=1 requests (method in the path, parameters as a form field)', async () => {
    const body = new URLSearchParams({ parameters: JSON.stringify(lookup.parameters) });
    const res = await fetch(`${base}/dns/lookup`, { method: 'POST', body });
    expect(await res.text()).toBe(handler.handleLine(JSON.stringify(lookup)));
  });

  it('refuses REST GETs with the settings to use', async () => {
    const res = await fetch(`${base}/dns/lookup/www.example.com./A`);
    expect(res.status).toBe(405);
    expect(await res.json()).toEqual({
      result: false,
      log: ['use remote-connection-string=http:url=...,post=1,post_json=1'],
    });
  });

  it('refuses oversized bodies and malformed JSON with a reason', async () => {
    // The body is read to its end and dropped, so the 413 always reaches the client (issue 15).
    const big = await fetch(`${base}/dns`, { method: 'POST', body: 'x'.repeat(10_000) });
    expect(big.status).toBe(413);
    expect(await big.json()).toEqual({ result: false, log: ['request longer than 4096 bytes'] });
    const bad = await fetch(`${base}/dns`, { method: 'POST', body: '{"method":' });
    expect((await bad.json()) as object).toMatchObject({
      result: false,
      log: [expect.stringMatching(/^malformed JSON/)],
    });
    const badForm = await fetch(`${base}/dns/lookup`, {
      method: 'POST',
      body: new URLSearchParams({ parameters: '{' }),
    });
    expect((await badForm.json()) as object).toMatchObject({
      result: false,
      log: [expect.stringMatching(/form field parameters/)],
    });
    // Still serving.
    const ok = await fetch(`${base}/dns`, { method: 'POST', body: JSON.stringify(lookup) });
    expect(ok.status).toBe(200);
  });
});
