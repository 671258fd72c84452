import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

/** The Grafana dashboard queries only metrics the code registers (a renamed metric breaks this test). */

const ROOT = join(import.meta.dirname, '../../..');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

describe('deploy/grafana/multisite.json', () => {
  it('uses only metrics the code exports', () => {
    const code = sourceFiles(join(ROOT, 'src'))
      .map((f) => readFileSync(f, 'utf8'))
      .join('\n')
      .replaceAll('${p}', 'multisite_replication_');
    const dash = JSON.parse(readFileSync(join(ROOT, 'deploy/grafana/multisite.json'), 'utf8')) as {
      panels: { targets: { expr: string }[] }[];
    };
    const used = new Set(
      dash.panels.flatMap((p) => p.targets.flatMap((t) => t.expr.match(/multisite_[a-z_]+/g) ?? [])),
    );
    expect(used.size).toBeGreaterThan(10);
    for (const m of used) {
      const base = m.replace(/_(bucket|sum|count)$/, '');
      expect(code.includes(`'${base}'`) || code.includes(`\`${base}\``), `${m} is not registered in src/`).toBe(true);
    }
  });
});
