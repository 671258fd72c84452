import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../../../src/lab/ports.js';
import { startPdns } from '../../../src/lab/pdns.js';

const HOST = '127.0.0.1';

/** startPdns when its port is taken (the race two suites side by side hit: pick, then bind). */
describe('startPdns on a taken port (real pdns_server)', () => {
  let blocker: Server | undefined;
  afterAll(() => blocker?.close());

  it("fails with pdns_server's own reason as soon as it exits, not at the readiness deadline", async () => {
    const port = await freePort(HOST);
    blocker = createServer();
    await new Promise<void>((r) => blocker!.listen(port, HOST, r));
    const dir = mkdtempSync(join(tmpdir(), 'ms-pdns-start-'));
    const zone = join(dir, 'example.com.zone');
    writeFileSync(zone, '@ 3600 IN SOA ns1.example.com. h.example.com. 1 3600 600 86400 60\n@ NS ns1.example.com.\n');
    const err = await startPdns({
      host: HOST,
      port,
      backend: { kind: 'bind', zones: [{ name: 'example.com', file: zone }] },
    }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    // "timed out ... waiting" would mean the exit was noticed only at the 30 s deadline
    expect((err as Error).message).toMatch(/^pdns_server exited[^]*Address already in use/);
  });
});
