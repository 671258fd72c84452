import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

/**
 * The import-boundary rule of `make lint` (dependency-cruiser fed from boundaries.json): it passes
 * on the tree, and it fails on a deliberately forbidden import, on an import past a part's
 * index.ts, and on product code importing the lab. The list itself has no cycle and allows none of
 * the arrows DESIGN.md forbids.
 */

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const config = join(root, '.dependency-cruiser.cjs');
const depcruise = join(root, 'node_modules/dependency-cruiser/bin/dependency-cruise.mjs');

interface Boundaries {
  allowed: Record<string, string[]>;
  openParts: string[];
  forbidden: { from: string; to: string; except?: string[] }[];
}
const boundaries = JSON.parse(readFileSync(join(root, 'boundaries.json'), 'utf8')) as Boundaries;

interface Cruise {
  code: number;
  violations: { rule: string; from: string; to: string }[];
}

function cruise(cwd: string): Promise<Cruise> {
  const args = [depcruise, 'src', '--config', config, '--output-type', 'json'];
  return new Promise((done, fail) => {
    execFile(process.execPath, args, { cwd, maxBuffer: 64 * 1024 * 1024 }, (err, stdout) => {
      const code = err ? Number((err as { code?: number }).code ?? 1) : 0;
      try {
        const out = JSON.parse(stdout) as {
          summary: { violations: { rule: { name: string }; from: string; to: string }[] };
        };
        done({ code, violations: out.summary.violations.map((v) => ({ rule: v.rule.name, from: v.from, to: v.to })) });
      } catch {
        fail(err ?? new Error(`depcruise printed no JSON: ${stdout.slice(0, 200)}`));
      }
    });
  });
}

const scratch: string[] = [];
afterAll(() => scratch.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** A small tree of parts (files: path → source), cruised with the project's rules. */
function fixture(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'multisite-boundaries-'));
  scratch.push(dir);
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions: { module: 'NodeNext' } }));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  return dir;
}

const parts = {
  'src/pdns-backend/index.ts': 'export const backend = 1;\n',
  'src/site-health/index.ts': "export { table } from './state-table.js';\n",
  'src/site-health/state-table.ts': 'export const table = 1;\n',
  'src/lab/ports.ts': 'export const port = 1;\n',
};

describe('import boundaries (make lint)', () => {
  it('the tree has no violation and no cycle', async () => {
    const r = await cruise(root);
    expect(r.violations).toEqual([]);
    expect(r.code).toBe(0);
  });

  it('fails on a forbidden arrow: site health importing the backend', async () => {
    const r = await cruise(
      fixture({
        ...parts,
        'src/site-health/peers.ts': "import { backend } from '../pdns-backend/index.js';\nexport const x = backend;\n",
      }),
    );
    expect(r.violations).toContainEqual({
      rule: 'arrow-from-site-health',
      from: 'src/site-health/peers.ts',
      to: 'src/pdns-backend/index.ts',
    });
  });

  it("fails on an import past another part's index.ts", async () => {
    const r = await cruise(
      fixture({
        ...parts,
        'src/pdns-backend/order.ts':
          "import { table } from '../site-health/state-table.js';\nexport const x = table;\n",
      }),
    );
    expect(r.violations).toContainEqual({
      rule: 'past-index',
      from: 'src/pdns-backend/order.ts',
      to: 'src/site-health/state-table.ts',
    });
  });

  it('fails when product code imports the lab', async () => {
    const r = await cruise(
      fixture({
        ...parts,
        'src/pdns-backend/x.ts': "import { port } from '../lab/ports.js';\nexport const x = port;\n",
      }),
    );
    expect(r.violations).toContainEqual({
      rule: 'arrow-from-pdns-backend',
      from: 'src/pdns-backend/x.ts',
      to: 'src/lab/ports.ts',
    });
  });

  it('passes the same fixture without the forbidden import', async () => {
    const r = await cruise(
      fixture({
        ...parts,
        'src/pdns-backend/x.ts': "import { table } from '../site-health/index.js';\nexport const x = table;\n",
      }),
    );
    expect(r.violations).toEqual([]);
  });

  it('the list names every part, allows none of the forbidden arrows and has no folder cycle', () => {
    const folders = readdirSync(join(root, 'src'), { withFileTypes: true }).map((e) => e.name);
    expect(Object.keys(boundaries.allowed).sort()).toEqual(
      folders.filter((f) => !f.endsWith('.ts') || f === 'index.ts').sort(),
    );
    for (const f of boundaries.forbidden) {
      for (const [from, to] of Object.entries(boundaries.allowed)) {
        if (f.from !== '*' && f.from !== from) continue;
        if (f.except?.includes(from)) continue;
        const bad = to.filter((t) => (f.to === '*' ? t !== 'shared' : t === f.to));
        expect(bad, `${from} → ${bad.join(', ')} (${JSON.stringify(f)})`).toEqual([]);
      }
    }
    // Depth-first search for a cycle in the allowed graph: with every import following an allowed
    // arrow, no cycle here means no cycle between folders.
    const state = new Map<string, 'open' | 'done'>();
    const visit = (p: string, path: string[]): void => {
      if (state.get(p) === 'done') return;
      expect(state.get(p), `cycle: ${[...path, p].join(' → ')}`).not.toBe('open');
      state.set(p, 'open');
      for (const q of boundaries.allowed[p] ?? []) visit(q, [...path, p]);
      state.set(p, 'done');
    };
    for (const p of Object.keys(boundaries.allowed)) visit(p, []);
  });
});
