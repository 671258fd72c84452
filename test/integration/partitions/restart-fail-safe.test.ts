import { join } from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpGet, startPartitionLab, type LabSite, type PartitionLab } from '../../../src/lab/partitions.js';
import { startProcess, type Started } from '../../../src/lab/processes.js';
import { startSite, type RunningSite } from '../../../src/site/index.js';
import { waitFor, waitForValue } from '../support/ports.js';

/**
 * A whole-site failure of a (its HAProxy and backend gone): b takes p1 over (epoch 2). a comes
 * back, HAProxy first (the order the issue found serving p1 at a for 1.8 s), then its backend. From
 * the moment a's HAProxy listens until its backend has read b's records, every p1 request at a is
 * forwarded to b or refused, never served by a's pool; afterwards it is forwarded to b.
 */
describe('partitions: a site restarted after a whole-site failure', () => {
  let lab: PartitionLab;
  let a: LabSite;
  let b: LabSite;
  const extra: { haproxy?: Started; backend?: RunningSite } = {};
  beforeAll(async () => {
    lab = await startPartitionLab({ timeoutMs: 2000 });
    a = lab.site('a');
    b = lab.site('b');
  }, 60_000);
  afterAll(async () => {
    await extra.backend?.stop();
    await extra.haproxy?.stop();
    await lab?.stop();
  }, 30_000);

  it("never serves p1 from a's pool before a's backend knows b owns it", async () => {
    await a.backend.stop();
    await a.haproxy.stop();
    await waitForValue(
      'b owns p1',
      async () => b.backend.partitions!.manager!.get('p1')!,
      (o) => o.active === 'b' && o.epoch === 2,
    );

    extra.haproxy = startProcess('haproxy', ['-db', '-f', join(lab.dir, 'a', 'haproxy.cfg')]);
    await waitFor(
      'a haproxy listens',
      async () => (await httpGet(a.lb.host, a.lb.port, '/multisite/lb-health')).status > 0,
    );
    const seen: { status: number; servedBy?: string }[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const r = await httpGet(a.lb.host, a.lb.port, '/', 'p1.example.com', {}, 5000);
        seen.push({ status: r.status, ...(r.servedBy ? { servedBy: r.servedBy } : {}) });
      }
    })();
    try {
      // Requests reach HAProxy before the backend exists: none may be served here.
      await waitFor('p1 requests answered at a before its backend starts', async () => seen.length >= 20);
      const logger = pino({ level: process.env.TEST_LOG ?? 'silent' });
      extra.backend = await startSite(a.loaded, { logger, registry: new Registry() });
      await waitFor('p1 at a forwarded to b', async () => /^b\//.test(seen.at(-1)?.servedBy ?? ''));
      expect(extra.backend.partitions!.manager!.get('p1')).toMatchObject({ active: 'b', epoch: 2 });
    } finally {
      sampling = false;
      await sampler;
    }
    const servedHere = seen.filter((r) => /^a\//.test(r.servedBy ?? ''));
    const summary = `${seen.length} requests: ${seen.filter((r) => r.status === 503).length} refused, ${seen.filter((r) => /^b\//.test(r.servedBy ?? '')).length} forwarded to b`;
    console.log(summary);
    expect(servedHere, summary).toEqual([]);
    expect(extra.backend.partitions!.manager!.synced).toBe(true);
  });
});
