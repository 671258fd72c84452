// Import-boundary rules for `make lint`, generated from boundaries.json (the one checked-in list
// of allowed arrows between parts), so the list and the check cannot drift apart.
const { boundaries, boundaryRules } = require('./scripts/boundaries.cjs');

module.exports = {
  forbidden: [
    ...boundaryRules(boundaries),
    { name: 'no-circular', severity: 'error', from: { path: '^src/' }, to: { circular: true } },
    { name: 'not-to-unresolvable', severity: 'error', from: { path: '^src/' }, to: { couldNotResolve: true } },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(node_modules|dist)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
