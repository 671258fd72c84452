// A do-nothing agent: answers every connection "up\n" and closes, like `multisite agent` minus its
// work. The ceiling for a one-process Node agent on this machine; bench/agent runs it in the same run.
import net from 'node:net';
const reply = Buffer.from('up\n');
const server = net.createServer({ noDelay: true }, (s) => {
  s.on('error', () => s.destroy());
  s.once('data', () => s.end(reply));
});
server.listen({ host: '127.0.0.1', port: Number(process.argv[2]), backlog: 4096 }, () =>
  process.stdout.write('ready\n'),
);
process.on('SIGTERM', () => server.close(() => process.exit(0)));
