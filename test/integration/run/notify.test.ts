import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import type { Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, waitFor } from '../support/ports.js';
import { startProcess } from '../support/processes.js';
import { connectable, NOTIFY_LISTENER, tcpListener, writeRunConfig } from './support.js';

/**
 * systemd Type=notify: with NOTIFY_SOCKET set, `multisite run` sends READY=1 once every socket
 * listens, and STOPPING=1 on SIGTERM. The socket is a real unix datagram listener, as systemd's.
 */
const cli = resolve(__dirname, '../../../dist/cli/main.js');
let dir: string;
let web: { server: Server; port: number };

beforeAll(async () => {
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run \`make build\` (make test does) first`);
  dir = mkdtempSync(join(tmpdir(), 'ms-notify-'));
  web = await tcpListener();
});
afterAll(() => {
  web?.server.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('multisite run under systemd Type=notify', () => {
  it('sends READY=1 when the backend and agent sockets accept connections, STOPPING=1 on SIGTERM', async () => {
    const notifySocket = join(dir, 'notify.sock');
    const agent = { host: '127.0.0.1', port: await freePort('127.0.0.1') };
    const backendSocket = join(dir, 'backend.sock');
    const listener = startProcess('python3', [
      '-c',
      NOTIFY_LISTENER,
      notifySocket,
      backendSocket,
      `${agent.host}:${agent.port}`,
    ]);
    const config = writeRunConfig({ dir, agentPort: agent.port, webPort: web.port });
    let run: ReturnType<typeof startProcess> | undefined;
    try {
      await waitFor('the notify listener', () => listener.output().includes('listening'));
      run = startProcess(process.execPath, [cli, 'run', '--config', config], {
        env: { ...process.env, NOTIFY_SOCKET: notifySocket },
      });
      const p = run;
      await waitFor('READY=1', () => {
        if (p.child.exitCode !== null) throw new Error(p.output());
        return listener.output().includes('READY=1');
      });
      // When systemd hears READY=1 (and starts PowerDNS), the backend and agent accept connections:
      // the listener tried them the moment the datagram arrived.
      expect(listener.output()).toContain('READY=1 unix:accepted tcp:accepted');
      expect(await connectable({ path: join(dir, 'control.sock') })).toBe(true);
      expect(listener.output()).not.toContain('STOPPING=1');
      p.child.kill('SIGTERM');
      expect(await p.exited).toBe(0);
      await waitFor('STOPPING=1', () => listener.output().includes('STOPPING=1'));
    } finally {
      await run?.stop();
      await listener.stop();
    }
  }, 60_000);
});
