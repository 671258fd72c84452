/**
 * Site failover through real PowerDNS: three sites on 127.0.0.2/.3/.4 (pdns_server + our backend
 * process each), peers at their defaults (period 1 s, suspect after 1.5 s, 2 probes of 400 ms).
 *   1. death → every peer's PowerDNS answer changed: SIGKILL (and SIGSTOP, hung) of site c's
 *      backend at a random phase of the heartbeat period, 5 runs each; median and max.
 *   2. false failovers with 30% of all heartbeats lost (UDP relays drop them at random): transitions
 *      to down and answers missing a site, sampled every 100 ms.
 *   npx tsx bench/site-failover.ts [--runs 5] [--loss-seconds 60] [--full]   (--full: 5 minutes of loss)
 * Needs a build (`make build`): the backends run as `node dist/cli/main.js backend`.
 */
import { report, percentile } from './lib/table.js';
import { startPeerCluster, type ClusterSite } from '../test/integration/support/peer-cluster.js';

const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const runs = arg('--runs', 5);
const lossSeconds = process.argv.includes('--full') ? 300 : arg('--loss-seconds', 60);
const LOSS = 0.3;
const C = '192.0.2.3';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(
  check: () => Promise<boolean>,
  timeoutMs = 30_000,
  what = 'a condition',
  sites: ClusterSite[] = [],
): Promise<number> {
  const t0 = performance.now();
  while (performance.now() - t0 < timeoutMs) {
    try {
      if (await check()) return performance.now();
    } catch {
      /* a query timing out counts as not yet */
    }
    await sleep(5);
  }
  const views = await Promise.all(
    sites.map(async (s) => `${s.name}: ${JSON.stringify((await s.status().catch(() => null))?.sites)}`),
  );
  throw new Error(
    `timed out waiting for ${what}\n${views.join('\n')}\n${sites.at(-1)?.backend.output().slice(-3000) ?? ''}`,
  );
}

const hasC = async (s: ClusterSite) => (await s.answer()).includes(C);

async function main(): Promise<void> {
  const cluster = await startPeerCluster({ logLevel: 'warn' });
  const [a, b, c] = cluster.sites as [ClusterSite, ClusterSite, ClusterSite];
  const rows: Record<string, string | number>[] = [];
  try {
    await until(async () => (await Promise.all([a, b].map(hasC))).every(Boolean));
    for (const signal of ['SIGKILL', 'SIGSTOP'] as const) {
      const times: number[] = [];
      for (let run = 0; run < runs; run++) {
        await until(
          async () => (await Promise.all([a, b].map(hasC))).every(Boolean),
          30_000,
          'a and b to answer with c',
          [a, b, c],
        );
        await sleep(1000 + Math.random() * 1000); // a random phase of the heartbeat period
        const t0 = performance.now();
        c.backend.child.kill(signal);
        const done = await Promise.all([a, b].map((p) => until(async () => !(await hasC(p)))));
        const ms = Math.max(...done) - t0;
        times.push(ms);
        process.stdout.write(`${signal} run ${run + 1}: every peer's answer changed after ${ms.toFixed(0)} ms\n`);
        if (signal === 'SIGKILL') await c.startBackend();
        else c.backend.child.kill('SIGCONT');
      }
      times.sort((x, y) => x - y);
      rows.push({
        measure: `${signal} of a site's backend → every peer's PowerDNS answer changed`,
        runs,
        median: `${percentile(times, 50).toFixed(0)} ms`,
        max: `${times.at(-1)!.toFixed(0)} ms`,
        target: '< 3000 ms',
      });
    }

    await until(async () => (await Promise.all([a, b].map(hasC))).every(Boolean));
    const downs = async () =>
      (
        await Promise.all(cluster.sites.map((s) => s.metric('multisite_peers_transitions_total', { to: 'down' })))
      ).reduce((x, y) => x + y, 0);
    const probes = async () =>
      (await Promise.all(cluster.sites.map((s) => s.metric('multisite_peers_probes_total')))).reduce(
        (x, y) => x + y,
        0,
      );
    const proxies = cluster.sites.flatMap((x) =>
      cluster.sites.filter((y) => y !== x).map((y) => cluster.proxy(x.name, y.name)),
    );
    const [downs0, probes0] = [await downs(), await probes()];
    const counts0 = proxies.map((p) => [p.forwarded, p.dropped] as const);
    for (const p of proxies) p.lossRate = LOSS;
    let samples = 0;
    let missing = 0;
    let unanswered = 0;
    const end = performance.now() + lossSeconds * 1000;
    while (performance.now() < end) {
      for (const s of cluster.sites) {
        const got = await s.answer().catch(() => null);
        samples++;
        if (got === null) unanswered++;
        else if (got.length !== 3) missing++;
      }
      await sleep(100);
    }
    for (const p of proxies) p.lossRate = 0;
    const forwarded = proxies.reduce((n, p, i) => n + p.forwarded - counts0[i]![0], 0);
    const dropped = proxies.reduce((n, p, i) => n + p.dropped - counts0[i]![1], 0);
    rows.push({
      measure: `false failovers in ${lossSeconds} s at ${LOSS * 100}% heartbeat loss (${dropped} of ${forwarded + dropped} heartbeats dropped, ${(await probes()) - probes0} verification probes)`,
      runs: 1,
      median: `${(await downs()) - downs0} transitions to down`,
      max: `${missing} of ${samples} answers missing a site${unanswered ? ` (${unanswered} queries unanswered within 1 s)` : ''}`,
      target: '0',
    });
  } finally {
    await cluster.stop();
  }
  report('site-failover', rows, {
    periodMs: 1000,
    suspectAfterMs: 1500,
    probeTimeoutMs: 400,
    probeAttempts: 2,
    recoverPeriods: 3,
    lossSeconds,
    loss: LOSS,
    full: lossSeconds >= 300,
  });
}

main().then(
  () => process.exit(0),
  (err: Error) => {
    process.stderr.write(`${err.stack ?? err.message}\n`);
    process.exit(1);
  },
);
