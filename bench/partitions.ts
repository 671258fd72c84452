/**
 * bench/partitions: (1) the latency a forwarded request adds: p1 asked at a (active: served there)
 * versus at b (forwarded over the inter-site link to a), p50/p99 over sequential requests on new
 * connections; (2) failure transfer time: a's pool killed → the first p1 request at b served by b,
 * median of 5 runs (manual failback between runs). Plain loopback: no WAN delay is added (tc netem
 * on `lo` would delay every other test on the machine; the sites share one network namespace).
 */
import { httpGet, startPartitionLab } from '../src/partitions/lab.js';
import { post, sharedKey } from '../src/partitions/index.js';
import { percentile, report } from './lib/table.js';

const N = Number(process.env.N ?? 2000);
const RUNS = Number(process.env.RUNS ?? 5);
const lab = await startPartitionLab({ hosts: ['127.0.0.6', '127.0.0.7'] });
try {
  const [a, b] = [lab.site('a'), lab.site('b')];
  const rows: Record<string, string | number>[] = [];
  const measure = async (label: string, host: string, port: number) => {
    for (let i = 0; i < 100; i++) await httpGet(host, port, '/', 'p1.example.com'); // warm-up
    const ms: number[] = [];
    for (let i = 0; i < N; i++) {
      const r = await httpGet(host, port, '/', 'p1.example.com');
      if (r.status !== 200 || !r.servedBy?.startsWith('a/')) throw new Error(`${label}: ${r.status} ${r.servedBy}`);
      ms.push(r.ms);
    }
    ms.sort((x, y) => x - y);
    return { label, p50: percentile(ms, 50), p99: percentile(ms, 99) };
  };
  const direct = await measure('direct (p1 at a, served at a)', a.lb.host, a.lb.port);
  const fwd = await measure('forwarded (p1 at b, served at a)', b.lb.host, b.lb.port);
  for (const m of [direct, fwd]) rows.push({ measure: m.label, requests: N, 'p50 ms': m.p50, 'p99 ms': m.p99 });
  rows.push({ measure: 'added by forwarding', requests: N, 'p50 ms': fwd.p50 - direct.p50, 'p99 ms': fwd.p99 - direct.p99 });

  const transfer: number[] = [];
  const key = sharedKey(a.loaded);
  for (let run = 0; run < RUNS; run++) {
    const t0 = performance.now();
    for (const w of a.web) await w.kill();
    for (;;) {
      const r = await httpGet(b.lb.host, b.lb.port, '/', 'p1.example.com');
      if (r.status === 200 && r.servedBy?.startsWith('b/')) break;
      if (performance.now() - t0 > 20_000) throw new Error('no transfer in 20 s');
      await new Promise((res) => setTimeout(res, 5));
    }
    transfer.push(performance.now() - t0);
    for (const w of a.web) await w.revive();
    // back to the start: a usable at b, then the operator failback
    for (let i = 0; ; i++) {
      const r = await post(`http://${a.metrics.host}:${a.metrics.port}/partitions/failback`, JSON.stringify({ partition: 'p1', time: Date.now() }), key);
      if (r.status === 200) break;
      if (i > 400) throw new Error(`failback refused: ${r.body}`);
      await new Promise((res) => setTimeout(res, 50));
    }
    for (;;) {
      const r = await httpGet(b.lb.host, b.lb.port, '/', 'p1.example.com');
      if (r.servedBy?.startsWith('a/')) break;
      await new Promise((res) => setTimeout(res, 20));
    }
  }
  const sorted = [...transfer].sort((x, y) => x - y);
  rows.push({ measure: `a's pool dead → b serves p1 (median of ${RUNS})`, requests: RUNS, 'p50 ms': percentile(sorted, 50), 'p99 ms': sorted[sorted.length - 1]! });
  report('partitions', rows, { network: 'loopback, no added WAN delay', runs: transfer.map((x) => Math.round(x)) });
} finally {
  await lab.stop();
}
