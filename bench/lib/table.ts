import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Prints rows as an aligned table and writes them (with context) to bench/results/NAME.json. */
export function report(
  name: string,
  rows: Record<string, string | number>[],
  context: Record<string, unknown> = {},
): void {
  const cols = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const cell = (v: unknown) =>
    typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(2)) : String(v ?? '');
  const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (vals: string[]) => vals.map((v, i) => v.padEnd(width[i]!)).join('  ');
  process.stdout.write(
    `\n${line(cols)}\n${line(width.map((w) => '-'.repeat(w)))}\n${rows.map((r) => line(cols.map((c) => cell(r[c])))).join('\n')}\n`,
  );
  const dir = join(process.cwd(), 'bench/results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${name}.json`);
  writeFileSync(
    file,
    `${JSON.stringify({ bench: name, at: new Date().toISOString(), host: hostFacts(), ...context, rows }, null, 2)}\n`,
  );
  process.stdout.write(`\nwrote ${file}\n`);
}

function hostFacts() {
  return {
    node: process.version,
    cpus: (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator?.hardwareConcurrency,
  };
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
