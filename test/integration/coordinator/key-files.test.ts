import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/index.js';
import { startCoordinator, type RunningCoordinator } from '../../../src/coordinator/index.js';
import { FailoverClient, type FailoverEvent } from '../../../src/index.js';
import { serveMetrics } from '../../../src/shared/metrics.js';
import { Registry } from 'prom-client';

/**
 * Issue 15 item 10: the coordinator (started from a config's key-file, as the backend starts it)
 * and FailoverClient (given the same file, or its bytes as readFileSync returns them) agree on the
 * key whatever the file ends with. A client with another key gets 401, logged loudly and counted.
 */

const hex = randomBytes(32).toString('hex');
// Raw random bytes ending in CR LF: a reader that trims or decodes them as text disagrees.
const raw = Buffer.concat([randomBytes(30), Buffer.from([0x0d, 0x0a])]);
raw[0] = 0xff; // never valid UTF-8: read as raw bytes
const files: Record<string, Buffer | string> = {
  'hex text, trailing newline (openssl rand -hex 32 > file)': `${hex}\n`,
  'hex text, CRLF': `${hex}\r\n`,
  'hex text, spaces and newlines around': `  ${hex} \n\n`,
  'base64 text, trailing newline': `${randomBytes(32).toString('base64')}\n`,
  'raw bytes (openssl rand 32 > file)': raw,
};

let dir: string;
let web: Server;
let webPort: number;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ms-keys-'));
  web = createServer((_req, res) => res.end('ok'));
  await new Promise<void>((r) => web.listen(0, '127.0.0.1', () => r()));
  webPort = (web.address() as AddressInfo).port;
});
afterAll(async () => {
  await new Promise((r) => web.close(r));
  rmSync(dir, { recursive: true, force: true });
});

/** The real coordinator, from a config naming `keyFile`, on an HTTP server of its own. */
async function coordinatorWith(keyFile: string): Promise<{ url: string; stop(): Promise<void> }> {
  const file = join(dir, `c-${Math.random().toString(36).slice(2)}.yaml`);
  const text =
    `site: a\nsites: [{ name: a }]\nbackend:\n  metrics: 127.0.0.1:1\n` +
    `coordinator:\n  key-file: ${keyFile}\n  load-balancers: [${dir}/no-haproxy.sock]\n` +
    `  servers: [{ name: web/w1, address: 127.0.0.1:${webPort}, check: http, path: /health }]\n`;
  writeFileSync(file, text);
  const running: RunningCoordinator = startCoordinator(parseConfig(text, file), pino({ level: 'silent' }));
  const server = await serveMetrics(new Registry(), '127.0.0.1', 0, running.routes);
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    stop: async () => {
      await running.stop();
      await new Promise((r) => server.close(r));
    },
  };
}

/** One failed request (no retries) against a dead server makes the client report web/w1. */
async function reportOnce(coordinator: { url: string; keyFile?: string; key?: Buffer | string }) {
  const events: FailoverEvent[] = [];
  const logged: string[] = [];
  const client = new FailoverClient({
    servers: { p1: { url: 'http://127.0.0.1:1', failover: `http://127.0.0.1:${webPort}`, name: 'web/w1' } },
    retries: 0,
    coordinator: { ...coordinator, reporter: 'key-test' },
    onEvent: (e) => events.push(e),
    logError: (m) => logged.push(m),
  });
  await client.request('p1', '/');
  await Promise.all(client.pending);
  return { reported: events.find((e) => e.type === 'reported'), rejected: client.rejectedReports, logged };
}

describe('one key reader: the coordinator and FailoverClient agree on every key file', () => {
  for (const [name, content] of Object.entries(files)) {
    it(`${name}: accepted by path and by readFileSync bytes`, async () => {
      const keyFile = join(dir, `${name.replace(/\W+/g, '-')}.key`);
      writeFileSync(keyFile, content, { mode: 0o600 });
      const c = await coordinatorWith(keyFile);
      try {
        for (const link of [
          { url: c.url, keyFile },
          { url: c.url, key: readFileSync(keyFile) },
        ]) {
          const r = await reportOnce(link);
          // The coordinator verified web/w1 (it answers) and said so: the report got through.
          expect(r.reported).toMatchObject({ state: 'offline', answer: { server: 'web/w1' } });
          expect(r.rejected).toBe(0);
        }
      } finally {
        await c.stop();
      }
    });
  }

  it('a client with another key is refused (401), logs it loudly and counts it', async () => {
    const keyFile = join(dir, 'right.key');
    writeFileSync(keyFile, `${hex}\n`);
    chmodSync(keyFile, 0o600);
    const c = await coordinatorWith(keyFile);
    try {
      const r = await reportOnce({ url: c.url, key: `${randomBytes(32).toString('hex')}\n` });
      expect(r.rejected).toBe(1);
      expect(r.logged).toHaveLength(1);
      expect(r.logged[0]).toContain('refused the offline report of web/w1 (HTTP 401');
      expect(r.logged[0]).toContain('same key file');
      expect(r.logged[0]).not.toContain(hex);
    } finally {
      await c.stop();
    }
  });
});
