import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { parseConfig } from '../../../src/config/index.js';
import { Coordinator, coordinatorRoute } from '../../../src/coordinator/index.js';
import { realTimers } from '../../../src/shared/timers.js';
import { serveMetrics } from '../../../src/shared/metrics.js';
import { PartitionManager } from '../../../src/partitions/manager.js';
import { partitionsRoute } from '../../../src/partitions/index.js';
import { rulesOf } from '../../../src/partitions/ownership.js';
import { compileBalanced } from '../../../src/pdns-backend/balanced.js';
import { decideRoute } from '../../../src/pdns-backend/decided-by.js';
import { Orderings } from '../../../src/pdns-backend/orderings.js';
import { SiteStateTable } from '../../../src/site-health/state-table.js';
import { statusRoute } from '../../../src/site-health/peers/index.js';
import { TWO_SITES } from '../../unit/partitions/fixtures.js';
import { WATCHDOG_MS } from './remote-backend.js';

export const KEY = Buffer.from('the peers key, 32 bytes long!!!!');
const silent = pino({ level: 'silent' });

/**
 * One metrics/status listener (serveMetrics) carrying the real signed routes: the coordinator,
 * /decide and /partitions, each on real objects (fake load balancers and checks only).
 */
export async function startEndpoints(): Promise<{ port: number; stop(): Promise<void> }> {
  const table = new SiteStateTable(['a', 'b']);
  const coordinator = new Coordinator({
    servers: [{ name: 'web/w1', address: { host: '127.0.0.1', port: 1 }, check: 'http', path: '/health', status: 200 }],
    loadBalancers: [{ socket: 'lb1', setServerState: async () => {} }],
    verify: async () => ({ ok: true, detail: 'HTTP 200' }),
    recheckMs: 600_000,
    timers: realTimers,
    wallNow: Date.now,
    logger: silent,
    registry: new Registry(),
  });
  const names = [
    compileBalanced(
      { name: 'lf.example.com.', ttl: 20, fallback: 'all', addresses: { a: ['192.0.2.1'], b: ['198.51.100.1'] } },
      'a',
      ['a', 'b'],
    ),
  ];
  const orderings = new Orderings(names, table, undefined, { clock: Date.now });
  const manager = new PartitionManager({
    site: 'a',
    rules: rulesOf(parseConfig(TWO_SITES, 'site.yaml').config.partitions!, ['a', 'b']),
    auto: { holdDownMs: 2000, maxLagMs: 1000 },
    table,
    effects: { haproxy: async () => {}, dns: () => {}, announce: async () => {}, lagMs: async () => 0 },
    timers: realTimers,
    wallNow: Date.now,
    logger: silent,
    reconcileMs: 600_000,
  });
  const routes = [
    coordinatorRoute(coordinator, KEY, 30_000, silent),
    decideRoute(orderings, KEY, silent),
    partitionsRoute(manager, 'a', KEY),
    statusRoute('a', table),
  ];
  const server = await serveMetrics(new Registry(), '127.0.0.1', 0, routes);
  return {
    port: (server.address() as AddressInfo).port,
    async stop() {
      coordinator.stop();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

/**
 * Sends raw bytes on a new connection (pieces yield to the event loop between them, so a body
 * can arrive slowly), half-closes if asked, and returns everything the server sent before it
 * closed: undefined status if it closed without answering. A hang fails after the watchdog.
 */
export function rawExchange(
  port: number,
  pieces: Buffer[],
  halfClose: boolean,
): Promise<{ status?: number; body: string }> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    const got: Buffer[] = [];
    const timer = setTimeout(
      () => (s.destroy(), reject(new Error(`no answer and no close within ${WATCHDOG_MS} ms (hang?)`))),
      WATCHDOG_MS,
    );
    s.on('data', (d: Buffer) => got.push(d));
    s.on('error', () => {});
    s.on('close', () => {
      clearTimeout(timer);
      const text = Buffer.concat(got).toString('utf8');
      const status = /^HTTP\/1\.1 (\d{3})/.exec(text)?.[1];
      const end = text.indexOf('\r\n\r\n');
      const raw = text.slice(end + 4);
      const chunked = /\r\ntransfer-encoding: *chunked/i.test(text.slice(0, end));
      resolve({ ...(status ? { status: Number(status) } : {}), body: chunked ? dechunk(raw) : raw });
    });
    s.once('connect', async () => {
      for (const p of pieces) {
        if (s.destroyed) return;
        s.write(p);
        await new Promise((r) => setImmediate(r));
      }
      if (halfClose) s.end();
    });
  });
}

/** A chunked body's bytes (what a reply without content-length is sent as). */
function dechunk(raw: string): string {
  let out = '';
  let at = 0;
  for (;;) {
    const eol = raw.indexOf('\r\n', at);
    const size = eol < 0 ? 0 : parseInt(raw.slice(at, eol), 16);
    if (!size) return out;
    out += raw.slice(eol + 2, eol + 2 + size);
    at = eol + 2 + size + 2;
  }
}
