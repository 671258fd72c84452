import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as packet from 'dns-packet';
import { loadConfig } from '../../src/config/index.js';
import { compileBalanced } from '../../src/pdns-backend/balanced.js';
import { Handler } from '../../src/pdns-backend/handler.js';
import { MetricsTable } from '../../src/site-health/metrics-table.js';
import { Orderings } from '../../src/pdns-backend/orderings.js';
import { buildZone } from '../../src/pdns-backend/zone-index.js';
import { loadZones } from '../../src/pdns-backend/zones.js';
import { SiteStateTable } from '../../src/site-health/state-table.js';
import { percentile } from './table.js';

/**
 * Client-dependent names (topology, closest) and PowerDNS LUA records doing the same job
 * (`view` + `ifportup`, `pickclosest`), asked with EDNS client subnets from many networks.
 */

/** Client networks of the query mix: 10.x.y.0/24 (inside the topology map) and 172.16-31.y.0/24 (outside). */
export function subnets(n: number): string[] {
  return Array.from({ length: n }, (_, i) =>
    i % 2 === 0 ? `10.${(i >> 8) & 255}.${i & 255}.0/24` : `172.${16 + ((i >> 8) & 15)}.${i & 255}.0/24`,
  );
}

/** The balanced names for our backend. `closest` has probe results for every subnet (set by the caller). */
export const OURS_YAML = `
  - name: topo.bench.example
    policy: topology
    topology: { 10.0.0.0/8: [b], 172.16.0.0/12: [a] }
    addresses: { a: [192.0.2.10], b: [198.51.100.10] }
  - name: near.bench.example
    policy: closest
    addresses: { a: [192.0.2.11], b: [198.51.100.11] }
`;

/** The bench backend's config: the zone file, a balanced name `www`, and the client-dependent names above. */
export function benchConfig(dir: string, zone: string): string {
  return `site: a
sites: [{ name: a }, { name: b }]
backend: { socket: ${dir}/backend.sock, control: ${dir}/control.sock, state-file: ${dir}/state.json, log-level: warn }
zones: [{ name: bench.example, file: ${zone} }]
balanced:
  - name: www.bench.example
    addresses: { a: [192.0.2.10, 192.0.2.11], b: [198.51.100.10] }
${OURS_YAML}
probes: { networks: [127.0.0.0/8] }
`;
}

/** The same jobs as LUA records in the bind zone (needs enable-lua-records=yes). */
export function luaRecords(upPort: number): string[] {
  return [
    // A view by client subnet, each branch checking the site's port as ifportup does.
    `topo LUA A "view({ {{'10.0.0.0/8'}, ifportup(${upPort}, {'198.51.100.10', '192.0.2.10'})}, {{'0.0.0.0/0'}, ifportup(${upPort}, {'192.0.2.10', '198.51.100.10'})} })"`,
    `near LUA A "pickclosest({'192.0.2.11', '198.51.100.11'})"`,
  ];
}

/** A dnsperf -B input file (TCP-stream framing: u16 length + message) with one ECS subnet per query. */
export function writeEcsQueries(file: string, names: string[], nets: string[], count: number): string {
  const bufs: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const [ip, bits] = nets[i % nets.length]!.split('/');
    const msg = packet.encode({
      type: 'query',
      id: i & 0xffff,
      flags: 0,
      questions: [{ type: 'A', name: names[i % names.length]!, class: 'IN' }],
      additionals: [
        {
          type: 'OPT',
          name: '.',
          udpPayloadSize: 1232,
          flags: 0,
          options: [{ code: 'CLIENT_SUBNET', ip: ip!, sourcePrefixLength: Number(bits) }],
        } as unknown as packet.Answer,
      ],
    });
    const len = Buffer.alloc(2);
    len.writeUInt16BE(msg.length);
    bufs.push(len, msg);
  }
  writeFileSync(file, Buffer.concat(bufs));
  return file;
}

/**
 * The backend's own lookup latency for the client-dependent names: PowerDNS's exact lookup line
 * through Handler.handleLine, real-remote varying over `nets` (every /24 probed for closest).
 */
export function backendLookupLatency(configFile: string, nets: string[], lookups = 200_000) {
  const loaded = loadConfig(configFile);
  const { config } = loaded;
  const sites = config.sites.map((s) => s.name);
  const balanced = config.balanced.map((b) => compileBalanced(b, config.site, sites));
  const zones = loadZones(loaded).zones.map((z) => buildZone(z, balanced));
  const table = new SiteStateTable(sites);
  const metrics = new MetricsTable(sites);
  for (const n of nets) {
    metrics.setProbe('a', n, { rttMs: 5 + (n.length % 7), completion: 1, at: Date.now(), method: 'icmp' });
    metrics.setProbe('b', n, { rttMs: 8, completion: 1, at: Date.now(), method: 'icmp' });
  }
  const orderings = new Orderings(balanced, table, metrics);
  const handler = new Handler(zones, table, undefined, orderings);
  const out: Record<string, string | number>[] = [];
  for (const qname of ['topo.bench.example.', 'near.bench.example.']) {
    const lines = nets.map(
      (n) =>
        `{"method":"lookup","parameters":{"local":"127.0.0.9","qname":"${qname}","qtype":"ANY","real-remote":"${n}","remote":"127.0.0.1","zone-id":1}}`,
    );
    for (let i = 0; i < 20_000; i++) handler.handleLine(lines[i % lines.length]!);
    const lat = new Float64Array(lookups);
    for (let i = 0; i < lookups; i++) {
      const t0 = performance.now();
      handler.handleLine(lines[i % lines.length]!);
      lat[i] = performance.now() - t0;
    }
    const sorted = [...lat].sort((a, b) => a - b);
    out.push({
      name: qname,
      lookups,
      networks: nets.length,
      'p50 µs': +(percentile(sorted, 50) * 1000).toFixed(2),
      'p99 µs': +(percentile(sorted, 99) * 1000).toFixed(2),
      'max µs': +(sorted[sorted.length - 1]! * 1000).toFixed(1),
    });
  }
  return out;
}

export function lineFile(dir: string, name: string, text: string): string {
  const f = join(dir, name);
  writeFileSync(f, text);
  return f;
}
