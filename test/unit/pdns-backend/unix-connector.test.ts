import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UnixConnector } from '../../../src/pdns-backend/connectors/unix.js';
import { exampleHandler } from './fixtures.js';

const path = join(tmpdir(), `ms-unix-${process.pid}.sock`);
const { handler } = exampleHandler();
const connector = new UnixConnector(path, {
  handleLine: (l) => handler.handleLine(l),
  handle: (r) => handler.handle(r),
  logger: pino({ level: 'silent' }),
  maxRequestBytes: 4096,
});

beforeAll(() => connector.start());
afterAll(() => connector.stop());

/** A client that collects response lines. */
function client(): Promise<{
  sock: Socket;
  lines: string[];
  next(n?: number): Promise<string[]>;
  closed: Promise<void>;
}> {
  return new Promise((resolve, reject) => {
    const sock = connect(path);
    const lines: string[] = [];
    let buf = '';
    let waiter: (() => void) | undefined;
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      buf += d;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        lines.push(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      }
      waiter?.();
    });
    const closed = new Promise<void>((r) => sock.on('close', () => r()));
    sock.on('error', () => {});
    let ended = false;
    sock.on('close', () => {
      ended = true;
      waiter?.();
    });
    const next = async (n = 1) => {
      while (lines.length < n) {
        if (ended) throw new Error(`connection closed after ${lines.length} of ${n} replies: ${JSON.stringify(lines)}`);
        await new Promise<void>((r) => (waiter = r));
      }
      return lines.splice(0, n);
    };
    sock.on('connect', () => resolve({ sock, lines, next, closed }));
    sock.once('error', reject);
  });
}

const lookupLine = JSON.stringify({
  method: 'lookup',
  parameters: { qtype: 'A', qname: 'www.example.com.', 'zone-id': 1 },
});
const expected = handler.handleLine(lookupLine);

describe('unix connector framing', () => {
  it('answers the same whatever byte offset the request is split at', async () => {
    const two = `${lookupLine}\n${JSON.stringify({ method: 'initialize', parameters: {} })}\n`;
    const c = await client();
    for (let cut = 0; cut <= two.length; cut++) {
      c.sock.write(two.slice(0, cut));
      await new Promise((r) => setImmediate(r));
      c.sock.write(two.slice(cut));
      expect(await c.next(2)).toEqual([expected, '{"result":true}']);
    }
    c.sock.end();
  });

  it('answers pipelined requests in order on one connection', async () => {
    const c = await client();
    c.sock.write(`${lookupLine}\n`.repeat(500));
    const got = await c.next(500);
    expect(new Set(got)).toEqual(new Set([expected]));
    c.sock.end();
  });

  it('answers an oversized line once, with the reason, when its newline arrives, and stays in step', async () => {
    // Regression (issue 15, item 2): the error went out before the newline and the connection
    // closed, so the client saw a reply for a request it had not finished sending.
    const c = await client();
    const replies: string[] = [];
    c.sock.on('close', () => replies.push('(closed)'));
    for (let i = 0; i < 5; i++) {
      c.sock.write('x'.repeat(2000));
      await new Promise((r) => setImmediate(r));
    }
    c.sock.write(`\n${lookupLine}\n{"method":"initialize","parameters":{}}\n`);
    replies.push(...(await c.next(3)));
    expect(replies).toEqual([
      JSON.stringify({ result: false, log: ['request longer than 4096 bytes'] }),
      expected,
      '{"result":true}',
    ]);
    c.sock.end();
  });
  // Random and mutated requests, values and framing: test/fuzz/remote-backend-unix.test.ts.
});
