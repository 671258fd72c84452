// Baseline remote backends for bench/dns-qps, run in the same run as ours:
// - `canned-backend.mjs SOCKET`: canned answers, no zone, no logic beyond the qname (the apex
//   answers SOA and NS, every other name one A record, domain metadata empty): the uncached
//   ceiling of *any* Node remote backend through PowerDNS on this machine.
// - `canned-backend.mjs SOCKET --nothing`: answers every line {"result":false}: the ceiling of a
//   Node server on the unix socket alone (no PowerDNS).
import net from 'node:net';
import { unlinkSync } from 'node:fs';
const path = process.argv[2];
const nothing = process.argv[3] === '--nothing';
const APEX = 'bench.example.';
const soa = `{"qtype":"SOA","qname":"${APEX}","content":"ns1.${APEX} hostmaster.${APEX} 1 3600 600 86400 60","ttl":300,"auth":true}`;
const ns = `{"qtype":"NS","qname":"${APEX}","content":"ns1.${APEX}","ttl":300,"auth":true}`;
const apex = { SOA: `{"result":[${soa}]}\n`, NS: `{"result":[${ns}]}\n`, ANY: `{"result":[${soa},${ns}]}\n` };
const QNAME = /"qname":"([^"]*)","qtype":"([A-Za-z0-9]+)"/;
function answer(line) {
  if (line.startsWith('{"method":"lookup"')) {
    const m = QNAME.exec(line);
    if (!m) return '{"result":false}\n';
    const [, qname, qtype] = m;
    if (qname.toLowerCase() === APEX) return apex[qtype] ?? '{"result":false}\n';
    if (qtype !== 'A' && qtype !== 'ANY') return '{"result":false}\n';
    return `{"result":[{"qtype":"A","qname":"${qname}","content":"192.0.2.1","ttl":300,"auth":true}]}\n`;
  }
  if (line.includes('"method":"initialize"')) return '{"result":true}\n';
  if (line.includes('"method":"getAllDomainMetadata"') || line.includes('"method":"getDomainMetadata"'))
    return '{"result":[]}\n';
  return '{"result":false}\n';
}
try {
  unlinkSync(path);
} catch {
  /* no stale socket to remove */
}
const server = net.createServer((s) => {
  s.setEncoding('utf8');
  let pending = '';
  s.on('data', (d) => {
    pending += d;
    let out = '';
    let nl;
    while ((nl = pending.indexOf('\n')) >= 0) {
      out += nothing ? '{"result":false}\n' : answer(pending.slice(0, nl));
      pending = pending.slice(nl + 1);
    }
    if (out) s.write(out);
  });
  s.on('error', () => s.destroy());
});
server.listen(path, () => process.stdout.write('ready\n'));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
