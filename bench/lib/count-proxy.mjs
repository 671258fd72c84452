// A unix-socket proxy between pdns_server and the backend that counts requests by method, qtype
// and qname, written to OUT as JSON every 200 ms (bench/lib/roundtrips.ts).
//   node count-proxy.mjs LISTEN_SOCKET TARGET_SOCKET OUT.json
import net from 'node:net';
import { unlinkSync, writeFileSync } from 'node:fs';
const [listen, target, out] = process.argv.slice(2);
try {
  unlinkSync(listen);
} catch {
  /* no stale socket */
}
const counts = {};
const server = net.createServer((c) => {
  const b = net.createConnection(target);
  c.pipe(b);
  b.pipe(c);
  let pending = '';
  c.setEncoding('utf8');
  c.on('data', (d) => {
    pending += d;
    let nl;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      let k;
      try {
        const j = JSON.parse(line);
        const p = j.parameters ?? {};
        k = `${j.method} ${p.qtype ?? p.kind ?? ''} ${p.qname ?? p.name ?? ''}`;
      } catch {
        k = 'unparsable';
      }
      counts[k] = (counts[k] ?? 0) + 1;
    }
  });
  c.on('error', () => b.destroy());
  b.on('error', () => c.destroy());
});
server.listen(listen, () => process.stdout.write('ready\n'));
setInterval(() => writeFileSync(out, JSON.stringify(counts, null, 1)), 200);
process.on('SIGTERM', () => {
  writeFileSync(out, JSON.stringify(counts, null, 1));
  process.exit(0);
});
