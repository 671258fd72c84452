/**
 * PowerDNS's round trips to the remote backend per client-dependent query, by method and qtype:
 * a counting proxy (count-proxy.mjs) sits between pdns_server and `multisite backend`, dnsperf
 * sends N queries with ECS from 1000 networks. docs/performance.md has what each one is for.
 *   npx tsx bench/lib/roundtrips.ts '{"consistent-backends":"no"}' [N] [qname]
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startPdns } from '../../src/lab/pdns.js';
import { waitFor } from '../../src/lab/ports.js';
import { startProcess } from '../../src/lab/processes.js';
import { benchConfig, subnets, writeEcsQueries } from './ecs-compare.js';

const dir = mkdtempSync(join(tmpdir(), 'ms-count-'));
const extra = JSON.parse(process.argv[2] ?? '{}') as Record<string, string>;
const N = Number(process.argv[3] ?? 2000);
const qname = process.argv[4] ?? 'topo.bench.example';
const zone = join(dir, 'z.zone');
writeFileSync(
  zone,
  `$ORIGIN bench.example.\n$TTL 300\n@ SOA ns1 hostmaster 1 3600 600 86400 60\n@ NS ns1\nns1 A 192.0.2.53\n`,
);
const config = join(dir, 'ms.yaml');
writeFileSync(config, benchConfig(dir, zone));
const backend = startProcess(process.execPath, ['dist/cli/main.js', 'backend', '--config', config]);
const proxy = startProcess(process.execPath, [
  'bench/lib/count-proxy.mjs',
  `${dir}/proxy.sock`,
  `${dir}/backend.sock`,
  `${dir}/counts.json`,
]);
await waitFor('proxy', () => proxy.output().includes('ready'));
await new Promise((r) => setTimeout(r, 1000));
const pdns = await startPdns({
  host: '127.0.0.9',
  backend: { kind: 'remote', connection: `unix:path=${dir}/proxy.sock` },
  settings: { 'edns-subnet-processing': 'yes', 'distributor-threads': 3, loglevel: 3, ...extra },
  probeName: 'bench.example.',
});
const file = writeEcsQueries(join(dir, 'q.bin'), [qname], subnets(1000), N);
await new Promise((r) => setTimeout(r, 500));
const read = (): Record<string, number> => {
  for (;;) {
    try {
      return JSON.parse(readFileSync(`${dir}/counts.json`, 'utf8'));
    } catch {
      /* mid-write */
    }
  }
};
const before = read();
const out = execFileSync('dnsperf', [
  '-s',
  pdns.host,
  '-p',
  String(pdns.port),
  '-d',
  file,
  '-n',
  '1',
  '-B',
  '-c',
  '1',
  '-q',
  '20',
]).toString();
await new Promise((r) => setTimeout(r, 500));
const after = read();
const sent = Number(/Queries completed:\s+(\d+)/.exec(out)?.[1]);
console.log(`queries completed ${sent}`);
let total = 0;
for (const [k, v] of Object.entries(after)) {
  const d = v - (before[k] ?? 0);
  if (d) {
    console.log(`${(d / sent).toFixed(3)}/query  ${d}  ${k}`);
    total += d;
  }
}
console.log(`total ${(total / sent).toFixed(3)} per query`);
await pdns.stop();
await proxy.stop();
await backend.stop();
