import { createSocket } from 'node:dgram';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type * as packet from 'dns-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { controlRequest } from '../../src/pdns-backend/control.js';
import { encodeLoadReport } from '../../src/site-health/load-reports.js';
import { startSite, type SiteUnderTest } from './support/cluster.js';
import { addresses, query } from './support/dns.js';
import { freePort, waitFor } from './support/ports.js';
import { EXAMPLE_ZONE_YAML } from './support/example-zone.js';

const HOST = '127.0.0.4';
const KEY = 'load-report-test-key-0123456789';

const config = (lrPort: number) => `site: a
sites: [{ name: a }, { name: b }]
backend:
  socket: {{DIR}}/backend.sock
  control: {{DIR}}/control.sock
  state-file: {{DIR}}/state.json
pdns:
  url: {{API_URL}}
  api-key-file: api-key
load-reports:
  listen: ${HOST}:${lrPort}
  key-file: lr.key
  stale-after-ms: 5000
${EXAMPLE_ZONE_YAML}
balanced:
  - name: geo.example.com
    ttl: 300
    policy: topology
    topology: { 10.0.0.0/8: [b], 10.1.0.0/16: [a], "2001:db8::/32": [b] }
    addresses: { a: [192.0.2.1], b: [198.51.100.1] }
  - name: lf.example.com
    ttl: 300
    addresses: { a: [192.0.2.2], b: [198.51.100.2] }
  - name: load.example.com
    ttl: 300
    policy: least-load
    hysteresis: { ratio: 0.25, min: 0.1, hold-ms: 300 }
    addresses: { a: [192.0.2.3], b: [198.51.100.3] }
`;

/** The ECS option of an answer: [source, scope]. */
function ecs(res: packet.Packet): [number, number] | undefined {
  for (const a of res.additionals ?? []) {
    const opts =
      (a as { options?: { code: number; sourcePrefixLength?: number; scopePrefixLength?: number }[] }).options ?? [];
    const o = opts.find((x) => x.code === 8);
    if (o) return [o.sourcePrefixLength ?? -1, o.scopePrefixLength ?? -1];
  }
  return undefined;
}

describe('client-dependent answers through a real pdns_server with ECS', () => {
  let site: SiteUnderTest;
  let lrPort: number;
  const ask = (name: string, subnet?: string, type = 'A') =>
    query(site.pdns.host, site.pdns.port, name, type, subnet ? { subnet } : {});

  beforeAll(async () => {
    lrPort = await freePort(HOST);
    // The key file sits next to the config (startSite writes the config into its own directory).
    const cfg = config(lrPort).replace('key-file: lr.key', `key-file: ${join('/tmp', `ms-lr-${process.pid}.key`)}`);
    writeFileSync(join('/tmp', `ms-lr-${process.pid}.key`), `${KEY}\n`);
    site = await startSite({ host: HOST, config: cfg, pdnsSettings: { 'edns-subnet-processing': 'yes' } });
  }, 60_000);
  afterAll(() => site?.stop());

  it('orders topology names by the client subnet, with the matching ECS scope, packet cache on', async () => {
    for (let round = 0; round < 2; round++) {
      // Asked twice: a packet-cached answer for one subnet must never reach another.
      const r1 = await ask('geo.example.com.', '10.2.3.0/24');
      expect(addresses(r1)).toEqual(['198.51.100.1', '192.0.2.1']);
      expect(ecs(r1)).toEqual([24, 15]);
      const r2 = await ask('geo.example.com.', '10.1.3.0/24');
      expect(addresses(r2)).toEqual(['192.0.2.1', '198.51.100.1']);
      expect(ecs(r2)).toEqual([24, 16]);
      const r3 = await ask('geo.example.com.', '192.0.2.0/24');
      expect(addresses(r3)).toEqual(['192.0.2.1', '198.51.100.1']);
      expect(ecs(r3)![1]).toBeGreaterThan(0);
    }
    // Without ECS, the resolver's address (127.0.0.1/32) decides.
    expect(addresses(await ask('geo.example.com.'))).toEqual(['192.0.2.1', '198.51.100.1']);
    // A client-independent name answers scope 0.
    const lf = await ask('lf.example.com.', '10.2.3.0/24');
    expect(addresses(lf)).toEqual(['192.0.2.2', '198.51.100.2']);
    expect(ecs(lf)).toEqual([24, 0]);
  });

  it('a dead site leaves every client-dependent answer at once', async () => {
    site.backend.table.setHealth('b', 'test', false, 'killed by the test');
    expect(addresses(await ask('geo.example.com.', '10.2.3.0/24'))).toEqual(['192.0.2.1']);
    site.backend.table.setHealth('b', 'test', true, 'ok');
    expect(addresses(await ask('geo.example.com.', '10.2.3.0/24'))).toEqual(['198.51.100.1', '192.0.2.1']);
  });

  it('load reports move a least-load name to the other site and back, without flapping under noise', async () => {
    const sock = createSocket('udp4');
    let seq = 0;
    const send = (server: string, site: string, load: number) =>
      new Promise<void>((r) =>
        sock.send(
          encodeLoadReport(
            { site, sender: 'agent-1', server, boot: 1, seq: ++seq, time: Date.now(), up: true, load },
            Buffer.from(KEY),
          ),
          lrPort,
          HOST,
          () => r(),
        ),
      );
    const first = async () => addresses(await ask('load.example.com.'))[0];
    try {
      expect(await first()).toBe('192.0.2.3');
      // Only our own site's aggregate comes from reports (site b's comes from its heartbeats): set b's directly.
      site.backend.metricsTable.setFigures('b', { load: 0.5 });
      const changes: string[] = [];
      // From a's address (asserted above): setting b's figure may already move the answer.
      let last: string | undefined = '192.0.2.3';
      const watch = async () => {
        const now = await first();
        if (now !== last) changes.push(now!);
        last = now;
      };
      // a heavily loaded: the order moves to b (and PowerDNS's cache is flushed).
      await send('web/w1', 'a', 2.0);
      await waitFor('b first', async () => (await first()) === '198.51.100.3');
      await watch();
      // Noise around a = 0.45..0.55 vs b = 0.5: never better by the margin, so no change. Each
      // report is awaited until it is a's figure (received and aggregated), then the answer read.
      for (let i = 0; i < 10; i++) {
        const load = 0.45 + (i % 3) * 0.05;
        await send('web/w1', 'a', load);
        await waitFor(
          `a's load ${load}`,
          () => Math.abs((site.backend.metricsTable.figures('a')?.load ?? NaN) - load) < 1e-6,
        );
        await watch();
      }
      expect(changes).toEqual(['198.51.100.3']);
      // a lightly loaded: back to a.
      await send('web/w1', 'a', 0.1);
      await waitFor('a first again', async () => (await first()) === '192.0.2.3');
      // Forged and replayed reports are refused and counted, never used.
      const badMac = () => site.metric('multisite_load_reports_rejected_total', { reason: 'bad-mac' });
      const replays = () => site.metric('multisite_load_reports_rejected_total', { reason: 'replay' });
      const [badMac0, replays0] = [await badMac(), await replays()];
      await new Promise<void>((r) =>
        sock.send(
          encodeLoadReport(
            {
              site: 'a',
              sender: 'agent-1',
              server: 'web/w1',
              boot: 1,
              seq: ++seq,
              time: Date.now(),
              up: true,
              load: 9,
            },
            Buffer.from('a-wrong-key-of-enough-length'),
          ),
          lrPort,
          HOST,
          () => r(),
        ),
      );
      await new Promise<void>((r) =>
        sock.send(
          encodeLoadReport(
            {
              site: 'a',
              sender: 'agent-1',
              server: 'web/w1',
              boot: 1,
              seq: seq - 1,
              time: Date.now(),
              up: true,
              load: 9,
            },
            Buffer.from(KEY),
          ),
          lrPort,
          HOST,
          () => r(),
        ),
      );
      await waitFor(
        'the forged and the replayed report refused',
        async () => (await badMac()) > badMac0 && (await replays()) > replays0,
      );
      expect(site.backend.metricsTable.figures('a')?.load).toBe(0.1);
      expect(await first()).toBe('192.0.2.3');
      const res = await controlRequest(site.control, { cmd: 'explain', name: 'load.example.com', client: '10.1.2.3' });
      expect(res.ok).toBe(true);
      expect(JSON.stringify(res)).toMatch(/least-load/);
    } finally {
      sock.close();
    }
  }, 30_000);
});
