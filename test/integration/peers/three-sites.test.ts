import { execFile } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encode } from '../../../src/site-health/peers/codec.js';
import { KEY, startPeerCluster, type ClusterSite, type PeerCluster } from '../support/peer-cluster.js';
import { waitFor } from '../support/ports.js';

/**
 * Three sites on 127.0.0.2/.3/.4, each a real pdns_server and our backend as its own process,
 * heartbeats every second through UDP relays the test controls. Site c is the one that fails.
 */

const exec = promisify(execFile);
let cluster: PeerCluster;
const C_ADDR = '192.0.2.3';
const PROBE_TIMEOUT_MS = 2000;

beforeAll(async () => {
  // A probe's timeout well above the default 400 ms: on a loaded machine a live site's /status
  // may take longer, and a timed-out probe would (rightly) drop it.
  cluster = await startPeerCluster({
    logLevel: process.env.TEST_LOG ?? 'warn',
    peers: { 'probe-timeout-ms': PROBE_TIMEOUT_MS },
  });
}, 60_000);
afterAll(() => cluster?.stop());

/**
 * Polls every 10 ms until `check` holds; the ms it took from `since` (logged, never asserted: speed is
 * bench/failover.ts's).
 */
async function until(what: string, check: () => Promise<boolean>, since = performance.now()): Promise<number> {
  await waitFor(what, check, 30_000, 10);
  return performance.now() - since;
}
const hasC = async (s: ClusterSite) => (await s.answer()).includes(C_ADDR);
const peersOfAB = () => [cluster.site('a'), cluster.site('b')];

function sendUdp(buf: Buffer, host: string, port: number): Promise<void> {
  const sock = createSocket('udp4');
  return new Promise((resolve) => sock.send(buf, port, host, () => sock.close(() => resolve())));
}

describe('three sites, real pdns_server and backends, 1 s heartbeats', () => {
  it('answers every site, own site first, once heartbeats flow', async () => {
    const want: Record<string, string[]> = {
      a: ['192.0.2.1', '192.0.2.2', '192.0.2.3'],
      b: ['192.0.2.2', '192.0.2.1', '192.0.2.3'],
      c: ['192.0.2.3', '192.0.2.1', '192.0.2.2'],
    };
    for (const s of cluster.sites) {
      await until(
        `${s.name} answers ${want[s.name]}`,
        async () => JSON.stringify(await s.answer()) === JSON.stringify(want[s.name]),
      );
      await until(`${s.name} has heard every peer`, async () =>
        (await s.status()).sites.every((x) => x.site === s.name || x.peer?.lastHeartbeat !== undefined),
      );
    }
    // Sites start one after the other: a may have verified c down before c started, and taken it back since.
    const st = await cluster.site('a').status();
    expect(st.sites.find((x) => x.site === 'c')!.peer!.state).toBe('up');
  });

  it('heartbeats lost while c still serves: suspected, verified by probe, never out of the answers', async () => {
    const downs = async () =>
      Promise.all(peersOfAB().map((p) => p.metric('multisite_peers_transitions_total', { site: 'c', to: 'down' })));
    const probes = async () =>
      Promise.all(peersOfAB().map((p) => p.metric('multisite_peers_probes_total', { site: 'c', result: 'ok' })));
    const [downs0, probes0] = [await downs(), await probes()];
    for (const p of peersOfAB()) cluster.proxy('c', p.name).lossRate = 1;
    // Silence until a and b have each suspected c and verified it up by probe twice; all along,
    // c stays in their answers.
    let samples = 0;
    try {
      await waitFor(
        'two probes of c at a and at b',
        async () => {
          for (const p of peersOfAB()) expect(await p.answer(), `${p.name} at sample ${samples}`).toContain(C_ADDR);
          samples++;
          return (await probes()).every((n, i) => n - probes0[i]! >= 2);
        },
        60_000,
        50,
      );
    } finally {
      for (const p of peersOfAB()) cluster.proxy('c', p.name).lossRate = 0;
    }
    expect(await downs()).toEqual(downs0);
    for (const p of peersOfAB()) expect(await p.answer()).toContain(C_ADDR);
  });

  it('refuses forged, replayed and stale heartbeats, and counts them by reason', async () => {
    const a = cluster.site('a');
    const toA = cluster.proxy('c', 'a');
    const before = toA.forwarded;
    await until('a fresh heartbeat c→a', async () => toA.forwarded > before);
    const captured = toA.recent.at(-1)!;
    const now = Date.now();
    const forged = encode(
      { type: 'heartbeat', site: 'c', sender: 'evil', boot: now, seq: 1, time: now, summary: { pool: 'up' } },
      Buffer.from('a guessed key, long enough'),
    );
    const forgedAnnounce = encode(
      {
        type: 'announce',
        site: 'c',
        sender: 'evil',
        boot: now,
        seq: 2,
        time: now,
        subject: 'b',
        state: 'down',
        reason: 'forged',
      },
      Buffer.from('a guessed key, long enough'),
    );
    const stale = encode(
      {
        type: 'heartbeat',
        site: 'c',
        sender: 'old',
        boot: now - 120_000,
        seq: 1,
        time: now - 60_000,
        summary: { pool: 'up' },
      },
      Buffer.from(KEY),
    );
    const counts = async () =>
      Promise.all(
        ['bad-mac', 'replay', 'skew'].map((reason) => a.metric('multisite_peers_messages_rejected_total', { reason })),
      );
    const [mac0, replay0, skew0] = await counts();
    const accepted0 = await a.metric('multisite_peers_announces_total', { direction: 'received' });
    for (const buf of [forged, forgedAnnounce, captured, captured, stale]) await sendUdp(buf, a.host, a.hbPort);
    await until('the rejections counted', async () => {
      const [mac, replay, skew] = await counts();
      return mac! - mac0! === 2 && replay! - replay0! === 2 && skew! - skew0! === 1;
    });
    // The forged announce moved nothing: no announce got past authentication. (Probes of b are no
    // measure of that: a late genuine heartbeat from b makes a probe it, legitimately.)
    expect(await a.metric('multisite_peers_announces_total', { direction: 'received' })).toBe(accepted0);
    expect(await a.answer()).toEqual(['192.0.2.1', '192.0.2.2', '192.0.2.3']);
  });

  it('SIGKILL of c: a and b verify and drop it from their PowerDNS answers', async () => {
    const c = cluster.site('c');
    const t0 = performance.now();
    c.backend.child.kill('SIGKILL');
    const ms = await Promise.all(peersOfAB().map((p) => until(`${p.name} drops c`, async () => !(await hasC(p)), t0)));
    console.log(`SIGKILL → answer changed at a: ${ms[0]!.toFixed(0)} ms, b: ${ms[1]!.toFixed(0)} ms`);
    for (const p of peersOfAB()) {
      const row = (await p.status()).sites.find((x) => x.site === 'c')!;
      expect(row).toMatchObject({ usable: false, peer: { state: 'down' } });
      expect(row.reason).toMatch(/verified down: .*ECONNREFUSED/);
      expect(await p.answer()).toEqual(p.name === 'a' ? ['192.0.2.1', '192.0.2.2'] : ['192.0.2.2', '192.0.2.1']);
    }
    // multisite status shows it too: state, since, why, last heartbeat.
    // Exit code 1: degraded (c is down).
    const status = await exec(process.execPath, [
      'dist/cli/main.js',
      'status',
      '--config',
      cluster.site('a').configFile,
    ]).catch((e: { code: number; stdout: string }) => e);
    expect(status).toMatchObject({ code: 1 });
    const { stdout } = status;
    expect(stdout).toMatch(/^sites \(as seen by a, backend 127\.0\.0\.2:\d+\):$/m);
    // The last change in local time (today: no date) and how long ago; no replication: lag "-".
    expect(stdout).toMatch(
      /^c +down +down +(answers|peer) down (\d{4}-\d\d-\d\d )?\d\d:\d\d:\d\d \([^)]* ago\) +\S+ (s|min) ago +- +peer: verified down: /m,
    );
    expect(stdout).toMatch(/^health: degraded$/m);
    expect(stdout).toMatch(/^b +up +up +/m);
  });

  it('c restarts: back in the answers once heartbeats arrived in each of the last 3 periods', async () => {
    const c = cluster.site('c');
    await c.startBackend();
    const t0 = performance.now();
    const ms = await Promise.all(peersOfAB().map((p) => until(`${p.name} takes c back`, () => hasC(p), t0)));
    console.log(`restart → back at a: ${ms[0]!.toFixed(0)} ms, b: ${ms[1]!.toFixed(0)} ms`);
    // Taken back by the recovery rule (heartbeats at 0, 1 and 2 periods after the restart), not by a probe.
    const row = (await cluster.site('a').status()).sites.find((x) => x.site === 'c')!;
    expect(row.peer!.reason).toMatch(/heartbeats in each of the last 3 periods/);
  });

  it('SIGSTOP of c (hung): dropped after the probe times out; SIGCONT: back', async () => {
    const c = cluster.site('c');
    await until('a and b have c', async () => (await Promise.all(peersOfAB().map(hasC))).every(Boolean));
    const t0 = performance.now();
    c.backend.child.kill('SIGSTOP');
    try {
      const ms = await Promise.all(
        peersOfAB().map((p) => until(`${p.name} drops hung c`, async () => !(await hasC(p)), t0)),
      );
      console.log(`SIGSTOP → answer changed at a: ${ms[0]!.toFixed(0)} ms, b: ${ms[1]!.toFixed(0)} ms`);
      const row = (await cluster.site('a').status()).sites.find((x) => x.site === 'c')!;
      expect(row.reason).toMatch(new RegExp(`no answer within ${PROBE_TIMEOUT_MS} ms|probe gave no result|announced`));
    } finally {
      c.backend.child.kill('SIGCONT');
    }
    await Promise.all(peersOfAB().map((p) => until(`${p.name} takes c back`, () => hasC(p))));
  });
});
