import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { Server } from 'node:http';
import { createRegistry, serveMetrics } from '../../../src/shared/metrics.js';

/** One raw HTTP request; resolves with whatever the server wrote before closing. */
function rawRequest(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.end(text));
    let out = '';
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (out += d));
    socket.on('close', () => resolve(out));
    socket.on('error', reject);
  });
}

describe('metrics HTTP server', () => {
  let server: Server | undefined;
  afterEach(() => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve())));

  it('answers 400 when a route throws on a hostile path (`//`, which new URL refuses), and keeps serving', async () => {
    // The /status and /partitions routes parse req.url the same way.
    const route = (req: { url?: string }) => new URL(req.url ?? '/', 'http://x').pathname === '/status';
    server = await serveMetrics(createRegistry('t_'), '127.0.0.1', 0, [route as never]);
    const port = (server.address() as { port: number }).port;
    for (const path of ['//', '/\\']) {
      const reply = await rawRequest(port, `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      expect(reply).toMatch(/^HTTP\/1\.1 400 /);
    }
    expect(await rawRequest(port, 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')).toMatch(
      /^HTTP\/1\.1 200 [\s\S]*ok/,
    );
  });
});
