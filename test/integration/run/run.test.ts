import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import type { Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/index.js';
import { openDb } from '../../../src/db/index.js';
import { PartStartError, startRun } from '../../../src/site/index.js';
import { freePort, waitFor, waitForValue } from '../support/ports.js';
import { startProcess } from '../support/processes.js';
import { connectable, exchange, lookup, replicatedPair, tcpListener, writeRunConfig } from './support.js';

/**
 * `multisite run`: one process per site starting the backend, the agent and the replicator of one
 * config (real PostgreSQL, the built CLI as a child process), and a start that fails part-way.
 */
const cli = resolve(__dirname, '../../../dist/cli/main.js');
let dir: string;
let pair: Awaited<ReturnType<typeof replicatedPair>>;
let web: { server: Server; port: number };

beforeAll(async () => {
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run \`make build\` (make test does) first`);
  dir = mkdtempSync(join(tmpdir(), 'ms-run-'));
  pair = await replicatedPair();
  web = await tcpListener();
}, 60_000);
afterAll(async () => {
  web?.server.close();
  await pair?.drop();
  rmSync(dir, { recursive: true, force: true });
});

describe('multisite run', () => {
  it('starts backend, agent and replicator from one config, and stops them on SIGTERM with exit 0', async () => {
    const agentPort = await freePort('127.0.0.1');
    const config = writeRunConfig({ dir, agentPort, webPort: web.port, urls: pair.urls });
    const p = startProcess(process.execPath, [cli, 'run', '--config', config]);
    try {
      const socket = join(dir, 'backend.sock');
      await waitFor('the backend socket', () => {
        if (p.child.exitCode !== null) throw new Error(p.output());
        return connectable({ path: socket });
      });
      expect(await lookup(socket, 'www.example.com')).toEqual(['192.0.2.10', '198.51.100.10']);
      // The agent answers HAProxy's agent-check; its tcp check reaches the listener, so: up.
      const agent = { host: '127.0.0.1', port: agentPort };
      const reply = await waitForValue(
        'the agent to answer up',
        () => exchange(agent, 'web/w1'),
        (r) => r.startsWith('up'),
      );
      expect(reply.value).toMatch(/^up/);
      // A row written at site b reaches site a through this process's replicator.
      const b = await openDb(pair.urls.b);
      const a = await openDb(pair.urls.a);
      try {
        await b.query("INSERT INTO items VALUES (1, 'from b')");
        const rows = await waitForValue(
          'the row to replicate to a',
          () => a.query<{ v: string }>('SELECT v FROM items WHERE id = 1'),
          (r) => r.rowCount === 1,
        );
        expect(rows.value.rows[0]!.v).toBe('from b');
      } finally {
        await Promise.all([a.close(), b.close()]);
      }
      expect(await p.stop(10_000)).toBe(0);
      expect(await connectable({ path: socket })).toBe(false);
      expect(await connectable(agent)).toBe(false);
      expect(p.output()).toContain('replicator stopped');
    } finally {
      await p.stop();
    }
  }, 60_000);

  it('a part that cannot start stops the start: the error names it and its line, nothing is left listening', async () => {
    // The agent's listen address is taken: the backend has started by then, and must be stopped.
    const taken = await tcpListener();
    const sub = mkdtempSync(join(dir, 'broken-'));
    const config = writeRunConfig({ dir: sub, agentPort: taken.port, webPort: web.port, urls: pair.urls });
    try {
      const p = startProcess(process.execPath, [cli, 'run', '--config', config]);
      expect(await p.exited).toBe(1);
      expect(p.output()).toMatch(new RegExp(`${config}:\\d+:\\d+: agent: the agent could not start: .*EADDRINUSE`));
      // In-process, where a listener left open would stay open: the backend's sockets are closed.
      const loaded = loadConfig(config);
      const err = await startRun(loaded, { logger: pino({ level: 'silent' }) }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PartStartError);
      expect((err as PartStartError).part).toBe('agent');
      expect(await connectable({ path: join(sub, 'backend.sock') })).toBe(false);
      expect(await connectable({ path: join(sub, 'control.sock') })).toBe(false);
      expect(await connectable({ path: join(sub, 'agent.sock') })).toBe(false);
    } finally {
      taken.server.close();
    }
  }, 60_000);
});
