// A do-nothing remote backend: answers every line with {"result":false}. The ceiling a Node
// backend can reach on this machine; bench/dns-qps runs it in the same run as ours.
import net from 'node:net';
import { unlinkSync } from 'node:fs';
const path = process.argv[2];
try { unlinkSync(path); } catch {}
const server = net.createServer((s) => {
  s.setEncoding('utf8');
  let pending = '';
  s.on('data', (d) => {
    pending += d;
    let out = '';
    let nl;
    while ((nl = pending.indexOf('\n')) >= 0) { pending = pending.slice(nl + 1); out += '{"result":false}\n'; }
    if (out) s.write(out);
  });
  s.on('error', () => s.destroy());
});
server.listen(path, () => process.stdout.write('ready\n'));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
