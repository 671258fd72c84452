// Turns boundaries.json (the one list of allowed arrows between parts) into dependency-cruiser
// rules; used by .dependency-cruiser.cjs and by test/unit/lint/boundaries.test.ts.
const { readFileSync } = require('node:fs');
const { join } = require('node:path');

const boundaries = JSON.parse(readFileSync(join(__dirname, '..', 'boundaries.json'), 'utf8'));

/** A part's folder (or root file) as a path regex. */
const at = (part) => (part.endsWith('.ts') ? `^src/${part.replace('.', '\\.')}$` : `^src/${part}/`);

function boundaryRules(b) {
  const parts = Object.keys(b.allowed);
  const arrows = parts.map((part) => ({
    name: `arrow-from-${part}`,
    comment: `${part} may import only: ${b.allowed[part].join(', ') || 'nothing outside itself'} (boundaries.json)`,
    severity: 'error',
    from: { path: at(part) },
    to: { path: '^src/', pathNot: [at(part), ...b.allowed[part].map(at)] },
  }));
  const closed = parts.filter((p) => !b.openParts.includes(p) && !p.endsWith('.ts'));
  const pastIndex = {
    name: 'past-index',
    comment: 'another part is imported through its index.ts, its whole public surface',
    severity: 'error',
    from: { path: '^src/([^/]+)/' },
    to: { path: `^src/(${closed.join('|')})/.+`, pathNot: ['^src/$1/', `^src/(${closed.join('|')})/index\\.ts$`] },
  };
  return [...arrows, pastIndex];
}

module.exports = { boundaries, boundaryRules };
