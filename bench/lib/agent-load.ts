import { Worker } from 'node:worker_threads';
import { percentile } from './table.js';

/**
 * HAProxy's side of agent checks, as fast as it goes: `connections` clients at once, each
 * connecting, sending "BACKEND/SERVER\n", reading the reply to the close, and starting again, for
 * `seconds`. The clients run in `threads` worker threads so one event loop is not the limit.
 * Latency is connect() to the reply's end, in ms.
 */
export async function agentLoad(opts: {
  host: string;
  port: number;
  names: string[];
  connections: number;
  seconds: number;
  threads: number;
}) {
  const code = `
    const { workerData, parentPort } = require('node:worker_threads');
    const net = require('node:net');
    const { host, port, names, connections, seconds } = workerData;
    const lat = []; let n = 0; let errors = 0; let bad = 0; let active = connections;
    const end = Date.now() + seconds * 1000;
    const one = (i) => {
      if (Date.now() >= end) { if (--active === 0) parentPort.postMessage({ n, errors, bad, lat }); return; }
      const t0 = process.hrtime.bigint();
      const name = names[(n + i) % names.length];
      const s = net.connect({ host, port, noDelay: true });
      let got = '';
      s.on('connect', () => s.write(name + '\\n'));
      s.on('data', (d) => { got += d; });
      s.on('error', () => { errors++; });
      s.on('close', () => {
        if (got.endsWith('\\n')) { n++; lat.push(Number(process.hrtime.bigint() - t0) / 1e6); } else bad++;
        setImmediate(() => one(i));
      });
    };
    for (let i = 0; i < connections; i++) one(i);
  `;
  const per = Math.ceil(opts.connections / opts.threads);
  const started = Date.now();
  const results = await Promise.all(
    Array.from(
      { length: opts.threads },
      (_, t) =>
        new Promise<{ n: number; errors: number; bad: number; lat: number[] }>((resolve, reject) => {
          const w = new Worker(code, {
            eval: true,
            workerData: { ...opts, connections: Math.min(per, opts.connections - t * per) },
          });
          w.once('message', (m) => {
            resolve(m);
            void w.terminate();
          });
          w.once('error', reject);
        }),
    ),
  );
  const elapsed = (Date.now() - started) / 1000;
  const lat = results.flatMap((r) => r.lat).sort((a, b) => a - b);
  const total = results.reduce((s, r) => s + r.n, 0);
  return {
    perSecond: Math.round(total / elapsed),
    replies: total,
    errors: results.reduce((s, r) => s + r.errors + r.bad, 0),
    p50ms: percentile(lat, 50),
    p99ms: percentile(lat, 99),
    maxms: lat[lat.length - 1] ?? NaN,
  };
}
