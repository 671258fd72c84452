import fc from 'fast-check';

/**
 * The PowerDNS 4.7 remote-backend protocol as types (modules/remotebackend/remotebackend.cc: what
 * each method sends), one arbitrary per method and parameter, then mutations of the values. The
 * serialisation is json11's (keys sorted), so the valid requests take the backend's fast path.
 */

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export interface Request {
  method: Json;
  parameters?: Json;
}

/** Names the example zone (test/unit/pdns-backend/fixtures.ts) has, and some it has not. */
const knownNames = [
  'example.com.',
  'www.example.com.',
  'ns1.example.com.',
  'ent.example.com.',
  'deep.ent.example.com.',
  'sub.example.com.',
  'ns.sub.example.com.',
  'nothing.example.com.',
  'other.org.',
  '.',
];

/** A label as PowerDNS prints one (DNSName::toString: printable ASCII, `\.` `\\` `\DDD`). */
const label = fc.oneof(
  { weight: 4, arbitrary: fc.stringMatching(/^[a-z0-9-]{1,12}$/) },
  { weight: 1, arbitrary: fc.stringMatching(/^([A-Za-z0-9_*]|\\\.|\\\\|\\[0-2][0-9][0-9]){1,6}$/) },
);

/** What PowerDNS sends: absolute, any case (0x20 randomisation from resolvers), escapes. */
export const validName = fc.oneof(
  fc.constantFrom(...knownNames),
  fc
    .constantFrom(...knownNames)
    .chain((n) =>
      fc
        .array(fc.boolean(), { minLength: n.length, maxLength: n.length })
        .map((up) => [...n].map((c, i) => (up[i] ? c.toUpperCase() : c)).join('')),
    ),
  fc.array(label, { minLength: 1, maxLength: 4 }).map((ls) => `${ls.join('.')}.example.com.`),
);

/** Names PowerDNS never sends: relative, empty labels, too long, raw bytes, unicode, bad escapes. */
export const oddName = fc.oneof(
  fc.constantFrom(
    'foo',
    'www.example.com',
    'example.com',
    'com',
    '',
    '.',
    '..',
    'a..b.',
    '.a.',
    'a.b..',
    '\\',
    'a\\',
    '\\999.',
    '\\65.',
    '\\0651.',
    'é.example.com.',
    '💥.',
    '\ud800.',
    'a\u0000b.',
    '\t.',
    ' .',
    'a b.',
    '*.',
    '@',
    'a\\.b.example.com.',
    '\\065.example.com.',
  ),
  fc.string({ maxLength: 30 }),
  fc.string({ unit: 'binary', maxLength: 30 }),
  fc.nat({ max: 300 }).map((n) => `${'a'.repeat(n)}.example.com.`), // a label over 63
  fc.nat({ max: 200 }).map((n) => `${'a.'.repeat(n)}`), // a name over 255
  fc.nat({ max: 5000 }).map((n) => 'x'.repeat(n)),
);

const zoneId = fc.oneof(fc.constantFrom(-1, 1), fc.integer({ min: -1, max: 3 }));
const address = fc.oneof(fc.ipV4(), fc.ipV6(), fc.constantFrom('0.0.0.0'));
const subnet = fc.oneof(
  address.map((a) => `${a}/${a.includes(':') ? 56 : 24}`),
  fc.constantFrom('0.0.0.0/0'),
);
const qtype = fc.constantFrom(
  'A',
  'AAAA',
  'ANY',
  'SOA',
  'NS',
  'TXT',
  'DS',
  'MX',
  'CNAME',
  'TYPE65534',
  'NAPTR',
  'a',
  'Any',
);

/** One valid request per method PowerDNS 4.7 sends to a backend like ours (json11 key order). */
export const validRequest: fc.Arbitrary<Request> = fc.oneof(
  fc
    .record({ local: address, qname: validName, qtype, 'real-remote': subnet, remote: address, 'zone-id': zoneId })
    .map((p) => ({ method: 'lookup', parameters: p })),
  fc
    .record({ domain_id: zoneId, include_disabled: fc.boolean(), zonename: validName })
    .map((p) => ({ method: 'list', parameters: p })),
  validName.map((name) => ({ method: 'getDomainInfo', parameters: { name } })),
  fc.boolean().map((b) => ({ method: 'getAllDomains', parameters: { include_disabled: b } })),
  validName.map((name) => ({ method: 'getAllDomainMetadata', parameters: { name } })),
  fc
    .record({ kind: fc.constantFrom('PRESIGNED', 'NSEC3PARAM', 'ALSO-NOTIFY', 'SOA-EDIT'), name: validName })
    .map((p) => ({ method: 'getDomainMetadata', parameters: p })),
  fc.constant({ method: 'initialize', parameters: { path: '/run/multisite/backend.sock', timeout: '2000' } }),
  // Methods we do not implement; PowerDNS calls some of them anyway.
  fc.record({ id: zoneId, qname: validName }).map((p) => ({ method: 'getBeforeAndAfterNamesAbsolute', parameters: p })),
  fc.record({ id: zoneId, serial: fc.nat() }).map((p) => ({ method: 'setNotified', parameters: p })),
  validName.map((name) => ({ method: 'getDomainKeys', parameters: { name } })),
  fc.constant({ method: 'getUpdatedMasters', parameters: {} }),
);

/** A value of the wrong kind, or of the right kind at an extreme. */
export const hostileValue: fc.Arbitrary<Json> = fc.oneof(
  fc.constantFrom<Json>(
    null,
    true,
    false,
    0,
    -1,
    -2,
    1.5,
    -0.5,
    1e21,
    -1e21,
    1e308,
    -1e308,
    2147483647,
    2147483648,
    -2147483649,
    Number.MAX_SAFE_INTEGER,
    '',
    '1',
    '-1',
    'NaN',
    [],
    {},
    [1, 2],
    { a: 1 },
    ['www.example.com.'],
  ),
  oddName,
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.nat({ max: 6000 }).map((n) => 'Z'.repeat(n)),
  fc.jsonValue({ maxDepth: 3 }) as fc.Arbitrary<Json>,
);

const oddMethod = fc.oneof(
  fc.constantFrom<Json>(
    '',
    'LOOKUP',
    'lookup ',
    '__proto__',
    'constructor',
    'toString',
    'hasOwnProperty',
    null,
    7,
    true,
    [],
    {},
    ['lookup'],
  ),
  fc.string({ maxLength: 40 }),
);

/** A valid request with one or more of its values changed, removed, added to, or its shape broken. */
export const mutatedRequest: fc.Arbitrary<Request> = fc
  .tuple(
    validRequest,
    fc.array(fc.tuple(fc.nat({ max: 7 }), fc.nat(), hostileValue, fc.string({ maxLength: 12 }), oddMethod), {
      minLength: 1,
      maxLength: 3,
    }),
  )
  .map(([req, edits]) => {
    let out: Request = structuredClone(req);
    for (const [kind, at, shared, key, method] of edits) {
      // A copy: fc.constantFrom hands out the same object every time, and putting one into
      // itself (parameters = {a: 1}, then parameters.x = {a: 1}) made a cycle that overflowed
      // the stack in json11 and changed the constant for every later case (make fuzz found it).
      const value = structuredClone(shared);
      const params =
        typeof out.parameters === 'object' && out.parameters !== null && !Array.isArray(out.parameters)
          ? out.parameters
          : undefined;
      const keys = params ? Object.keys(params) : [];
      const k = keys.length > 0 ? keys[at % keys.length]! : key;
      if (kind <= 2 && params)
        params[k] = value; // wrong type / extreme value
      else if (kind === 3 && params)
        delete params[k]; // missing
      else if (kind === 4 && params)
        params[key] = value; // extra key
      else if (kind === 5)
        out = { ...out, parameters: value }; // parameters not an object
      else if (kind === 6) delete out.parameters;
      else out = { ...out, method };
    }
    return out;
  });

/** Serialised as json11 does (keys sorted, compact): the valid ones match the fast path. */
export function json11(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) =>
    x && typeof x === 'object' && !Array.isArray(x)
      ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : x,
  );
}

/** Line-level damage: truncated, bytes spliced in, raw garbage. Never a newline, never blank. */
export const hostileLine = fc
  .oneof(
    { weight: 3, arbitrary: mutatedRequest.map(json11) },
    { weight: 1, arbitrary: validRequest.map(json11) },
    {
      weight: 1,
      arbitrary: fc
        .tuple(validRequest.map(json11), fc.nat(), fc.nat())
        .map(([s, a, b]) => s.slice(Math.min(a, b) % s.length, Math.max(a, b) % (s.length + 1))),
    },
    {
      weight: 1,
      arbitrary: fc
        .tuple(validRequest.map(json11), fc.nat(), fc.string({ unit: 'binary', maxLength: 8 }))
        .map(([s, at, junk]) => s.slice(0, at % s.length) + junk + s.slice((at % s.length) + 1)),
    },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 200 }) },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((j) => JSON.stringify(j)) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        '[]',
        '{}',
        'null',
        '"lookup"',
        '{"method":"lookup"}',
        '{"method":"lookup","parameters":null}',
        '{"method":"lookup","parameters":{"qname":"foo","qtype":"A","zone-id":-1}}',
        '{"method":"lookup","parameters":{"qname":"foo","qtype":"A"}}',
        `${'['.repeat(2000)}${']'.repeat(2000)}`,
        '{"method":"lookup","parameters":{"local":"0.0.0.0","qname":"foo","qtype":"A","real-remote":"0.0.0.0/0","remote":"0.0.0.0","zone-id":-1}}',
      ),
    },
  )
  .map((l) => {
    const line = l.replace(/\n/g, ' ');
    return line.trim() === '' ? `${line}x` : line;
  });

/** Requests whose answers are known: sent between hostile ones, they prove replies stay in step. */
export const probes = [
  {
    method: 'lookup',
    parameters: {
      local: '127.0.0.1',
      qname: 'www.example.com.',
      qtype: 'A',
      'real-remote': '127.0.0.1/32',
      remote: '127.0.0.1',
      'zone-id': 1,
    },
  },
  {
    method: 'lookup',
    parameters: {
      local: '127.0.0.1',
      qname: 'ns1.example.com.',
      qtype: 'A',
      'real-remote': '127.0.0.1/32',
      remote: '127.0.0.1',
      'zone-id': -1,
    },
  },
  { method: 'getDomainInfo', parameters: { name: 'example.com.' } },
  { method: 'initialize', parameters: { path: '/x' } },
].map(json11);
