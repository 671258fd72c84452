// Moves files with `git mv` and rewrites every relative import that points at a moved file (or
// sits in one), so a move commit contains nothing else. Usage: node scripts/move-files.mjs OLD=NEW ...
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';

const moves = new Map(process.argv.slice(2).map((a) => a.split('=').map((p) => resolve(p))));
const back = new Map([...moves].map(([o, n]) => [n, o]));
for (const [o, n] of moves) {
  mkdirSync(dirname(n), { recursive: true });
  execFileSync('git', ['mv', o, n]);
}
const files = execFileSync('git', ['ls-files', 'src', 'test', 'bench', 'scripts'], { encoding: 'utf8' })
  .split('\n')
  .filter((f) => /\.(ts|mts|mjs)$/.test(f))
  .map((f) => resolve(f));
const spec = /(from\s+|import\(\s*|vi\.mock\(\s*|import\s+)(['"])(\.{1,2}\/[^'"]+)\2/g;
for (const file of files) {
  const oldFile = back.get(file) ?? file;
  const text = readFileSync(file, 'utf8');
  const out = text.replace(spec, (all, pre, q, s) => {
    const targetOld = resolve(dirname(oldFile), s).replace(/\.js$/, '.ts');
    const targetNew = moves.get(targetOld) ?? targetOld;
    if (targetNew === targetOld && oldFile === file) return all;
    let r = relative(dirname(file), targetNew).replace(/\.ts$/, '.js');
    if (!r.startsWith('.')) r = `./${r}`;
    return `${pre}${q}${r}${q}`;
  });
  if (out !== text) writeFileSync(file, out);
}
