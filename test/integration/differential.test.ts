/**
 * PowerDNS with our backend must answer exactly as PowerDNS with its bind backend serving the same
 * zone files: same rcode, flags, sections and records, for hundreds of queries over UDP and TCP,
 * and the same AXFR. Both servers are real pdns_server processes.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { startSite, type RunningSite } from '../../src/site/index.js';
import { parseZone } from '../../src/pdns-backend/zonefile/index.js';
import { startPdns, type Pdns } from './support/pdns.js';

const exec = promisify(execFile);
const fixtures = resolve(__dirname, '../fixtures/zones');
const ZONES = [
  { name: 'example.com.', file: join(fixtures, 'example.com.zone') },
  { name: 'example.net.', file: join(fixtures, 'example.net.zone') },
];
const TYPES = [
  'A',
  'AAAA',
  'NS',
  'SOA',
  'MX',
  'TXT',
  'CNAME',
  'DNAME',
  'SRV',
  'NAPTR',
  'CAA',
  'PTR',
  'DS',
  'HINFO',
  'RP',
  'LOC',
  'SSHFP',
  'TLSA',
  'SPF',
  'ANY',
];

let dir: string;
let bind: Pdns;
let remote: Pdns;
let backend: RunningSite;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ms-diff-'));
  const config = join(dir, 'multisite.yaml');
  writeFileSync(
    config,
    `site: a\nsites: [{ name: a }]\nbackend: { socket: ${dir}/backend.sock, control: ${dir}/control.sock, state-file: ${dir}/state.json }\nzones:\n${ZONES.map((z) => `  - { name: ${z.name}, file: ${z.file} }`).join('\n')}\n`,
  );
  backend = await startSite(loadConfig(config), { logger: pino({ level: 'silent' }), registry: new Registry() });
  [bind, remote] = await Promise.all([
    startPdns({
      host: '127.0.0.4',
      backend: { kind: 'bind', zones: ZONES.map((z) => ({ name: z.name, file: z.file })) },
      probeName: 'example.com.',
    }),
    startPdns({
      host: '127.0.0.5',
      backend: { kind: 'remote', connection: `unix:path=${dir}/backend.sock` },
      probeName: 'example.com.',
    }),
  ]);
});

afterAll(async () => {
  await Promise.allSettled([bind?.stop(), remote?.stop()]);
  await backend?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Every owner name, the parents between it and the apex, names under wildcards and cuts, case variants, misses. */
function queryNames(): string[] {
  const names = new Set<string>();
  for (const z of ZONES) {
    const records = parseZone(readFileSync(z.file, 'utf8'), { origin: z.name, file: z.file });
    for (const r of records) {
      const name = r.name;
      names.add(name);
      const labels = name.split('.');
      for (let i = 1; i < labels.length - z.name.split('.').length + 1; i++) names.add(labels.slice(i).join('.'));
      if (name.startsWith('*.')) {
        names.add(`anything${name.slice(1)}`);
        names.add(`two.deep${name.slice(1)}`);
      }
      if (r.type === 'NS' && name.toLowerCase() !== z.name) names.add(`below.${name}`);
      if (r.type === 'DNAME') names.add(`host.${name}`);
      names.add(`nx-${labels[0]!.replace(/\\/g, '')}.${z.name}`);
    }
    names.add(z.name.toUpperCase());
    names.add(`MiXeD.${z.name}`);
  }
  names.add('not-served.example.org.');
  return [...names];
}

async function dig(server: Pdns, batch: string, extra: string[] = []): Promise<string[]> {
  const file = join(dir, `batch-${server.host}-${extra.join('')}.txt`);
  writeFileSync(file, batch);
  const { stdout } = await exec(
    'dig',
    [
      '-f',
      file,
      `@${server.host}`,
      '-p',
      String(server.port),
      '+norec',
      '+nocmd',
      '+noall',
      '+comments',
      '+question',
      '+answer',
      '+authority',
      '+additional',
      '+tries=1',
      '+time=3',
      ...extra,
    ],
    { maxBuffer: 1 << 26 },
  );
  return stdout
    .split(/(?=^;; ->>HEADER<<-)/m)
    .filter((b) => b.startsWith(';; ->>HEADER'))
    .map((b) =>
      b
        .replace(/, id: \d+/, '')
        .replace(/^;; (Query time|SERVER|WHEN|MSG SIZE).*$/gm, '')
        .trim(),
    );
}

describe('differential: bind backend vs multisite backend, same zone files', () => {
  it('answers hundreds of queries identically over UDP and TCP', async () => {
    const queries = queryNames().flatMap((n) => TYPES.map((t) => `${n} ${t}`));
    expect(queries.length).toBeGreaterThan(300);
    const batch = `${queries.join('\n')}\n`;
    for (const transport of [[], ['+tcp']]) {
      const [want, got] = await Promise.all([dig(bind, batch, transport), dig(remote, batch, transport)]);
      expect(got.length).toBe(queries.length);
      const diffs = queries.map((q, i) => ({ q, want: want[i], got: got[i] })).filter((d) => d.want !== d.got);
      if (process.env.DIFF_DUMP) {
        const { writeFileSync: w } = await import('node:fs');
        w(
          process.env.DIFF_DUMP,
          diffs.map((d) => `### ${d.q}\n--- bind\n${d.want}\n+++ ours\n${d.got}`).join('\n\n') +
            `\n\nBIND LOG\n${bind.proc.output()}`,
        );
      }
      expect(diffs.slice(0, 5)).toEqual([]);
    }
    console.log(`differential: ${queries.length} queries × UDP and TCP identical`);
  });

  it('transfers the same zone by AXFR (same records, order aside)', async () => {
    for (const z of ZONES) {
      const axfr = async (s: Pdns) => {
        const { stdout } = await exec('dig', [
          `@${s.host}`,
          '-p',
          String(s.port),
          'AXFR',
          z.name,
          '+nocmd',
          '+nostats',
          '+noall',
          '+answer',
        ]);
        const lines = stdout.trim().split('\n');
        return { first: lines[0], last: lines[lines.length - 1], body: lines.slice(1, -1).sort() };
      };
      const [want, got] = await Promise.all([axfr(bind), axfr(remote)]);
      expect(got.body.length).toBeGreaterThan(5);
      expect(got).toEqual(want);
    }
  });
});
