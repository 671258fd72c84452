import { createServer, type Server } from 'node:http';
import { createServer as createTcpServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keywordCheckSchema, loadCheckSchema, messageCheckSchema } from '../../../src/config/agent-schema.js';
import { keywordCheck, loadCheck, messageCheck } from '../../../src/haproxy-agent/checks.js';

/** Checks against a local HTTP server: the reasons an operator reads must be exact. */
describe('checks', () => {
  let server: Server;
  let port: number;
  let closedPort: number;
  const never = new AbortController().signal;

  beforeAll(async () => {
    server = createServer((req, res) => {
      if (req.url === '/health') return res.end('ok');
      if (req.url === '/dbcheck') return res.end('<html>database server: db1</html>');
      if (req.url === '/big') {
        res.write('a'.repeat(100_000));
        return res.end('db1');
      }
      if (req.url === '/load') return res.end('load 3.5\n');
      if (req.url === '/slow') return setTimeout(() => res.end('late'), 5000).unref();
      res.writeHead(500);
      res.end('error: database "app" does not exist');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    port = (server.address() as { port: number }).port;
    const tmp = createTcpServer();
    await new Promise<void>((r) => tmp.listen(0, '127.0.0.1', () => r()));
    closedPort = (tmp.address() as { port: number }).port;
    await new Promise((r) => tmp.close(r));
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  const target = () => ({ host: '127.0.0.1', port });

  it('message: HTTP status, TCP connect, refused', async () => {
    expect(await messageCheck(target(), messageCheckSchema.parse({}))(never)).toEqual({ ok: true });
    expect(await messageCheck(target(), messageCheckSchema.parse({ path: '/nope' }))(never)).toEqual({
      ok: false,
      reason: 'status 500 from /nope (expected 200)',
    });
    expect(await messageCheck(target(), messageCheckSchema.parse({ type: 'tcp' }))(never)).toEqual({ ok: true });
    expect(await messageCheck({ host: '127.0.0.1', port: closedPort }, messageCheckSchema.parse({}))(never)).toEqual({
      ok: false,
      reason: 'connection refused (/health)',
      certain: true,
    });
    expect(
      await messageCheck({ host: '127.0.0.1', port: closedPort }, messageCheckSchema.parse({ type: 'tcp' }))(never),
    ).toEqual({ ok: false, reason: 'connection refused', certain: true });
  });

  it('keyword: found, not found, a failing page, and only the first max-bytes are read', async () => {
    expect(await keywordCheck(target(), keywordCheckSchema.parse({}), 'db1')(never)).toEqual({ ok: true });
    expect(await keywordCheck(target(), keywordCheckSchema.parse({}), 'db2')(never)).toEqual({
      ok: false,
      reason: "keyword 'db2' not found in /dbcheck",
    });
    expect(await keywordCheck(target(), keywordCheckSchema.parse({ path: '/broken' }), 'db1')(never)).toEqual({
      ok: false,
      reason: 'status 500 from /broken (expected 200): error: database "app" does not exist',
    });
    expect(
      await keywordCheck(target(), keywordCheckSchema.parse({ path: '/big', 'max-bytes': 1000 }), 'db1')(never),
    ).toEqual({ ok: false, reason: "keyword 'db1' not found in /big (first 1000 bytes)" });
  });

  it('an aborted check (the runner timeout) settles at once', async () => {
    const ac = new AbortController();
    const p = keywordCheck(target(), keywordCheckSchema.parse({ path: '/slow' }), 'db1')(ac.signal);
    setImmediate(() => ac.abort());
    expect(await p).toEqual({ ok: false, reason: 'aborted (/slow)' });
  });

  it('load: the first number of the body', async () => {
    expect(await loadCheck(target(), loadCheckSchema.parse({}))(never)).toEqual({ ok: true, value: 3.5 });
    expect(await loadCheck(target(), loadCheckSchema.parse({ path: '/health' }))(never)).toEqual({
      ok: false,
      reason: 'no number in /health',
    });
  });
});
