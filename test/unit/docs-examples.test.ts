import { mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';

const root = resolve(__dirname, '../..');

/** Every markdown file that documents configuration. */
function docs(): string[] {
  const files = ['README.md'];
  for (const dir of ['docs', ...readdirSync(join(root, 'src')).map((d) => join('src', d))]) {
    if (!existsSync(join(root, dir)) || !statSync(join(root, dir)).isDirectory()) continue;
    for (const f of readdirSync(join(root, dir))) if (f.endsWith('.md')) files.push(join(dir, f));
  }
  return files;
}

/** Complete config examples: ```yaml blocks that start with `site:`. */
function examples(file: string): { index: number; text: string }[] {
  const text = readFileSync(join(root, file), 'utf8');
  return [...text.matchAll(/```ya?ml\n([\s\S]*?)```/g)]
    .map((m, index) => ({ index, text: m[1]! }))
    .filter((b) => /^site:/m.test(b.text.split('\n').find((l) => l.trim() && !l.trim().startsWith('#')) ?? ''));
}

describe('config examples in the docs are valid configs', () => {
  const cases = docs().flatMap((f) => examples(f).map((e) => ({ file: f, ...e })));
  it('finds the README example', () => expect(cases.some((c) => c.file === 'README.md')).toBe(true));
  it.each(cases.map((c) => [`${c.file} #${c.index}`, c] as const))('%s', (_name, c) => {
    const dir = mkdtempSync(join(tmpdir(), 'ms-doc-'));
    // Files an example names (zones, keys) are created so only the schema is under test.
    const data = parse(c.text) as { zones?: { file?: string; name: string }[] };
    for (const z of data.zones ?? []) {
      if (!z.file) continue;
      const path = z.file.startsWith('/') ? join(dir, z.file) : join(dir, z.file);
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, `@ SOA ns1 hostmaster 1 3600 600 86400 60\n@ NS ns1\nns1 A 192.0.2.1\n`);
    }
    const text = c.text.replace(
      /(file|key-file|api-key-file):\s*\/(\S+)/g,
      (_m, k: string, p: string) => `${k}: ${join(dir, p)}`,
    );
    writeFileSync(join(dir, 'multisite.yaml'), text);
    expect(() => loadConfig(join(dir, 'multisite.yaml'))).not.toThrow();
  });
});
