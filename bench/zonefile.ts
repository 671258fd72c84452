/**
 * The zone-file parser's speed (moved here from the unit tests, which assert no times):
 * (1) 100,000 ordinary records, our parser beside PowerDNS's own `zone2sql` on the same file
 * (process start included for zone2sql, so the ratio flatters it slightly);
 * (2) pathological lines (long quotes, escapes, parentheses, comments, deep names) at n and 2n
 * bytes: the time ratio 2n/n stays near 2 when the parser is linear (4 would be quadratic).
 *   npx tsx bench/zonefile.ts [--records 100000] [--n 200000]
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseZone, ZoneFileError } from '../src/pdns-backend/zonefile/index.js';
import { report } from './lib/table.js';

const arg = (name: string, def: number) =>
  process.argv.includes(name) ? Number(process.argv[process.argv.indexOf(name) + 1]) : def;
const RECORDS = arg('--records', 100_000);
const N = arg('--n', 200_000);

function zoneText(records: number): string {
  const lines = ['$TTL 1h', '@ SOA ns1 host ( 1 2 3 4 5 )'];
  for (let i = 0; i < records; i++) {
    const n = `h${i}`;
    lines.push(
      i % 4 === 0
        ? `${n} 300 IN A 10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`
        : i % 4 === 1
          ? `${n} MX 10 mail${i}`
          : i % 4 === 2
            ? `${n} TXT "record ${i}" ; comment`
            : `${n} AAAA 2001:db8::${(i & 0xffff).toString(16)}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

/** Best of three runs, in ms. */
function best(run: () => void): number {
  let min = Infinity;
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    run();
    min = Math.min(min, performance.now() - t0);
  }
  return min;
}

function parseOrZoneError(text: string): void {
  try {
    parseZone(text, { origin: 'example.com' });
  } catch (e) {
    if (!(e instanceof ZoneFileError)) throw e;
  }
}

const PATHOLOGICAL: [string, (n: number) => string][] = [
  ['escaped quotes', (n) => `a TXT "${'\\"'.repeat(n)}"`],
  ['many strings', (n) => `a TXT ${'"x" '.repeat(n / 4)}`],
  ['parenthesised lines', (n) => `a TXT (${'\n"x"'.repeat(n / 10)} )`],
  ['comment', (n) => ';'.repeat(n)],
  ['quoted ( and ;', (n) => `a TXT "${'(;'.repeat(n)}"`],
  ['deep name', (n) => `a.${'b.'.repeat(n)} A 1.2.3.4`],
  ['generic rdata', (n) => `a TYPE65280 \\# ${n / 2} ${'0'.repeat(n)}`],
];

const dir = mkdtempSync(join(tmpdir(), 'ms-bench-zonefile-'));
try {
  const text = zoneText(RECORDS);
  const file = join(dir, 'example.com.zone');
  writeFileSync(file, text);
  const ours = best(() => parseZone(text, { origin: 'example.com' }));
  let theirs: number | string = 'zone2sql not installed';
  try {
    theirs = best(() =>
      execFileSync('zone2sql', [`--zone=${file}`, '--zone-name=example.com', '--gsqlite3'], {
        stdio: ['ignore', 'ignore', 'ignore'],
      }),
    );
  } catch {
    /* left as "not installed" */
  }
  const rows: Record<string, string | number>[] = [
    {
      case: `${RECORDS} records: multisite parser`,
      'ms (best of 3)': ours,
      ratio: typeof theirs === 'number' ? `${(ours / theirs).toFixed(2)} × zone2sql` : '',
    },
    { case: `${RECORDS} records: pdns zone2sql`, 'ms (best of 3)': theirs, ratio: '' },
  ];
  for (const [name, make] of PATHOLOGICAL) {
    const small = best(() => parseOrZoneError(make(N)));
    const large = best(() => parseOrZoneError(make(2 * N)));
    rows.push({
      case: `${name}: n=${N} → 2n`,
      'ms (best of 3)': `${small.toFixed(1)} → ${large.toFixed(1)}`,
      ratio: `${(large / small).toFixed(2)} (2 = linear)`,
    });
  }
  report('zonefile', rows, { records: RECORDS, n: N });
} finally {
  rmSync(dir, { recursive: true, force: true });
}
