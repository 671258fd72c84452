import { Worker } from 'node:worker_threads';
import { percentile } from './table.js';

/**
 * Lookups against the backend's unix socket the way PowerDNS sends them: one request in flight
 * per connection, `connections` connections at once (each in its own worker thread, so the
 * client is not the bottleneck on one event loop).
 */
export async function backendAlone(socket: string, connections: number, seconds: number) {
  const code = `
    const { workerData, parentPort } = require('node:worker_threads');
    const net = require('node:net');
    const names = ['www.bench.example.', 'host1.bench.example.', 'host500.bench.example.', 'bench.example.'];
    const s = net.createConnection(workerData.socket);
    const lat = []; let n = 0; let t0 = 0; let buf = '';
    const end = Date.now() + workerData.seconds * 1000;
    const send = () => { t0 = process.hrtime.bigint(); s.write(JSON.stringify({ method: 'lookup', parameters: { qtype: 'ANY', qname: names[n % 4], remote: '127.0.0.1', local: '127.0.0.1', 'real-remote': '127.0.0.1/32', 'zone-id': -1 } }) + '\\n'); };
    s.setEncoding('utf8');
    s.on('connect', send);
    s.on('data', (d) => { buf += d; const i = buf.indexOf('\\n'); if (i < 0) return; buf = buf.slice(i + 1); lat.push(Number(process.hrtime.bigint() - t0) / 1000); n++; if (Date.now() < end) send(); else { s.end(); parentPort.postMessage({ n, lat }); } });
  `;
  const started = Date.now();
  const results = await Promise.all(
    Array.from(
      { length: connections },
      () =>
        new Promise<{ n: number; lat: number[] }>((resolve, reject) => {
          const w = new Worker(code, { eval: true, workerData: { socket, seconds } });
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
    connections,
    perSecond: Math.round(total / elapsed),
    p50us: +percentile(lat, 50).toFixed(1),
    p99us: +percentile(lat, 99).toFixed(1),
  };
}
