import { compileBalanced } from '../../../src/pdns-backend/balanced.js';
import { Handler } from '../../../src/pdns-backend/handler.js';
import { buildZone } from '../../../src/pdns-backend/zone-index.js';
import type { LoadedZone } from '../../../src/pdns-backend/zones.js';
import type { ZoneRecord } from '../../../src/pdns-backend/zonefile/index.js';
import { SiteStateTable } from '../../../src/site-health/state-table.js';

const r = (name: string, type: string, content: string, ttl = 3600): ZoneRecord => ({ name, type, content, ttl });

/** A small zone with a delegation, glue, an empty non-terminal and a balanced name. */
export function exampleZone(): LoadedZone {
  const records = [
    r('example.com.', 'SOA', 'ns1.example.com. hostmaster.example.com. 2024010101 3600 600 86400 60'),
    r('example.com.', 'NS', 'ns1.example.com.'),
    r('ns1.example.com.', 'A', '192.0.2.53'),
    r('www.example.com.', 'TXT', '"hello"'),
    r('sub.example.com.', 'NS', 'ns.sub.example.com.'),
    r('sub.example.com.', 'DS', '12345 8 2 49FD46E6C4B45C55D4AC69CBD3CD34AC1AFE51DE1B2C8F2E6E4C2F3A4B5C6D7E'),
    r('ns.sub.example.com.', 'A', '192.0.2.54'),
    r('deep.ent.example.com.', 'A', '192.0.2.7'),
  ];
  return { id: 1, name: 'example.com.', records, recordCount: records.length, serial: 2024010101 };
}

export function exampleHandler(local = 'a') {
  const table = new SiteStateTable(['a', 'b', 'c']);
  const balanced = compileBalanced(
    {
      name: 'www.example.com.',
      ttl: 20,
      fallback: 'all',
      policy: 'local-first',
      addresses: { a: ['192.0.2.1', '2001:db8::1'], b: ['198.51.100.1'] },
    },
    local,
    ['a', 'b', 'c'],
  );
  const handler = new Handler([buildZone(exampleZone(), [balanced])], table);
  return { table, handler };
}
