/**
 * bench/partitions: (1) the latency a forwarded request adds: p1 asked at a (active: served there)
 * versus at b (forwarded over the inter-site link to a), p50/p99 over sequential requests on new
 * connections, on plain loopback and with a WAN delay on the inter-site link; (2) failure
 * transfer time: a's pool killed → the first p1 request at b served by b, median of RUNS runs
 * (manual failback between runs).
 * WAN delay: `tc netem` needs the kernel's sch_netem, which these machines lack ("Specified
 * qdisc kind is unknown"), and the lab's sites share one network namespace; so each site's
 * `inter-site` address is a relay holding every chunk WAN_MS in each direction
 * (src/lab/tcp-delay.ts). Only forwarded requests and the remote health checks cross it.
 */
import { httpGet, startPartitionLab, type PartitionLab } from '../src/lab/partitions.js';
import { post, sharedKey } from '../src/partitions/index.js';
import { percentile, report } from './lib/table.js';

const N = Number(process.env.N ?? 2000);
const RUNS = Number(process.env.RUNS ?? 5);
const WAN_MS = Number(process.env.WAN_MS ?? 10);

type Row = Record<string, string | number>;

async function latency(lab: PartitionLab, network: string): Promise<Row[]> {
  const [a, b] = [lab.site('a'), lab.site('b')];
  const measure = async (label: string, host: string, port: number) => {
    for (let i = 0; i < 100; i++) await httpGet(host, port, '/', 'p1.example.com'); // warm-up
    const ms: number[] = [];
    for (let i = 0; i < N; i++) {
      const r = await httpGet(host, port, '/', 'p1.example.com');
      if (r.status !== 200 || !r.servedBy?.startsWith('a/')) throw new Error(`${label}: ${r.status} ${r.servedBy}`);
      ms.push(r.ms);
    }
    ms.sort((x, y) => x - y);
    return { p50: percentile(ms, 50), p99: percentile(ms, 99) };
  };
  const direct = await measure('direct', a.lb.host, a.lb.port);
  const fwd = await measure('forwarded', b.lb.host, b.lb.port);
  return [
    { network, measure: 'direct (p1 at a, served at a)', n: N, 'p50 ms': direct.p50, 'p99 ms': direct.p99 },
    { network, measure: 'forwarded (p1 at b, served at a)', n: N, 'p50 ms': fwd.p50, 'p99 ms': fwd.p99 },
    { network, measure: 'added by forwarding', n: N, 'p50 ms': fwd.p50 - direct.p50, 'p99 ms': fwd.p99 - direct.p99 },
  ];
}

async function transfer(lab: PartitionLab, network: string): Promise<{ row: Row; runs: number[] }> {
  const [a, b] = [lab.site('a'), lab.site('b')];
  const key = sharedKey(a.loaded);
  const runs: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    const t0 = performance.now();
    for (const w of a.web) await w.kill();
    for (;;) {
      const r = await httpGet(b.lb.host, b.lb.port, '/', 'p1.example.com');
      if (r.status === 200 && r.servedBy?.startsWith('b/')) break;
      if (performance.now() - t0 > 20_000) throw new Error('no transfer in 20 s');
      await new Promise((res) => setTimeout(res, 5));
    }
    runs.push(performance.now() - t0);
    for (const w of a.web) await w.revive();
    // back to the start: a usable at b, then the operator failback
    for (let i = 0; ; i++) {
      const r = await post(
        `http://${a.metrics.host}:${a.metrics.port}/partitions/failback`,
        JSON.stringify({ partition: 'p1', time: Date.now() }),
        key,
      );
      if (r.status === 200) break;
      if (i > 400) throw new Error(`failback refused: ${r.body}`);
      await new Promise((res) => setTimeout(res, 50));
    }
    while (!(await httpGet(b.lb.host, b.lb.port, '/', 'p1.example.com')).servedBy?.startsWith('a/'))
      await new Promise((res) => setTimeout(res, 20));
  }
  const sorted = [...runs].sort((x, y) => x - y);
  return {
    row: {
      network,
      measure: `a's pool dead → b serves p1 (median; max) of ${RUNS}`,
      n: RUNS,
      'p50 ms': percentile(sorted, 50),
      'p99 ms': sorted.at(-1)!,
    },
    runs: runs.map(Math.round),
  };
}

const rows: Row[] = [];
const context: Record<string, unknown> = {
  wanDelayMs: WAN_MS,
  wanEmulation: 'TCP relay on the inter-site address (tc netem unavailable)',
};
for (const [network, wanDelayMs, hosts] of [
  ['loopback', 0, ['127.0.0.6', '127.0.0.7']],
  [`WAN ${WAN_MS} ms each way`, WAN_MS, ['127.0.0.10', '127.0.0.11']],
] as const) {
  const lab = await startPartitionLab({ hosts: [...hosts], ...(wanDelayMs ? { wanDelayMs } : {}) });
  try {
    rows.push(...(await latency(lab, network)));
    const t = await transfer(lab, network);
    rows.push(t.row);
    context[`transferRuns ${network}`] = t.runs;
  } finally {
    await lab.stop();
  }
}
report('partitions', rows, context);
