import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAC_HEADER, sign } from '../../../src/shared/peer-http.js';
import { KEY, startPeerCluster, type ClusterSite, type PeerCluster } from '../support/peer-cluster.js';
import { waitFor } from '../support/ports.js';

/**
 * `multisite site drain SITE --everywhere`: three real sites (pdns_server + backend process each);
 * the operator at a drains c, and every site's PowerDNS stops answering c, over the signed peer
 * channel. Forged, replayed and stale requests are refused; a peer that is down is named.
 */

const exec = promisify(execFile);
const CLI = join(import.meta.dirname, '../../../dist/cli/main.js');
const C_ADDR = '192.0.2.3';
const B_ADDR = '192.0.2.2';
let cluster: PeerCluster;

beforeAll(async () => {
  cluster = await startPeerCluster({ logLevel: process.env.TEST_LOG ?? 'warn', peers: { 'probe-timeout-ms': 2000 } });
  for (const s of cluster.sites)
    await waitFor(`${s.name} answers every site`, async () => (await s.answer()).length === 3, 30_000, 20);
}, 90_000);
afterAll(() => cluster?.stop());

async function site(args: string[], from = cluster.site('a')): Promise<{ code: number; out: string; err: string }> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [CLI, 'site', ...args, '--config', from.configFile]);
    return { code: 0, out: stdout, err: stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, out: x.stdout, err: x.stderr };
  }
}

const everyAnswer = (sites: ClusterSite[], has: string, want: boolean) =>
  Promise.all(
    sites.map((s) =>
      waitFor(
        `${s.name} ${want ? 'answers' : 'leaves out'} ${has}`,
        async () => (await s.answer()).includes(has) === want,
      ),
    ),
  );

function post(to: ClusterSite, body: string, mac?: string): Promise<Response> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (mac) headers[MAC_HEADER] = mac;
  return fetch(`http://${to.host}:${to.metricsPort}/site-drain`, { method: 'POST', body, headers });
}

describe('drain a site everywhere', () => {
  it('drains c at every site from a, says so per site, and undrains it the same way', async () => {
    const r = await site(['drain', 'c', '--everywhere']);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/^a +drained c\n/m);
    expect(r.out).toMatch(/^b +drained c\n/m);
    expect(r.out).toMatch(/^c +drained c\n/m);
    await everyAnswer(cluster.sites, C_ADDR, false);
    expect(await cluster.site('b').metric('multisite_backend_answer_includes', { site: 'c' })).toBe(0);
    expect(await cluster.site('b').metric('multisite_backend_answer_includes', { site: 'b' })).toBe(1);

    const again = await site(['drain', 'c', '--everywhere'], cluster.site('b'));
    expect(again.out).toMatch(/^a +drained c \(it already was\)$/m);

    const u = await site(['undrain', 'c', '--everywhere'], cluster.site('b'));
    expect(u.code, u.err).toBe(0);
    await everyAnswer(cluster.sites, C_ADDR, true);
    expect(await cluster.site('b').metric('multisite_backend_answer_includes', { site: 'c' })).toBe(1);
  });

  it('refuses unsigned, wrongly signed, replayed and stale requests, and drains nothing', async () => {
    const b = cluster.site('b');
    const body = (at = Date.now(), nonce = `n-${Math.random()}`) =>
      JSON.stringify({ from: 'a', site: 'a', drained: false, at, nonce });
    expect((await post(b, body())).status).toBe(403);
    const forged = body();
    expect((await post(b, forged, sign(Buffer.from('another-key-of-enough-bytes'), forged))).status).toBe(403);
    const stale = body(Date.now() - 3_600_000);
    const s = await post(b, stale, sign(Buffer.from(KEY), stale));
    expect(s.status).toBe(400);
    expect(((await s.json()) as { error: string }).error).toMatch(/ms off this site's clock/);
    const good = body();
    expect((await post(b, good, sign(Buffer.from(KEY), good))).status).toBe(200);
    const replay = await post(b, good, sign(Buffer.from(KEY), good));
    expect(replay.status).toBe(409);
    const bad = JSON.stringify({ from: 'a', site: 'nowhere', drained: true, at: Date.now(), nonce: 'x1' });
    expect((await post(b, bad, sign(Buffer.from(KEY), bad))).status).toBe(404);
    expect(await b.answer()).toHaveLength(3);
  });

  it('names a site that did not take it and exits 1; the others did', async () => {
    const c = cluster.site('c');
    await c.backend.stop(1000);
    const r = await site(['drain', 'b', '--everywhere']);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/^c +NOT drained: /m);
    expect(r.out).toMatch(/^b +drained b$/m);
    expect(r.err).toMatch(/not taken everywhere \(not taken by c\)/);
    await everyAnswer([cluster.site('a'), cluster.site('b')], B_ADDR, false);
    const u = await site(['undrain', 'b', '--everywhere']);
    expect(u.code).toBe(1);
    await everyAnswer([cluster.site('a'), cluster.site('b')], B_ADDR, true);
  });
});
