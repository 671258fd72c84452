import { createConnection } from 'node:net';

/**
 * One JSON request line to a daemon's local control socket, one JSON reply line back. `who` names
 * the daemon in errors ("no backend is running on PATH").
 */
export function controlSocketRequest<Res>(path: string, req: unknown, who: string, timeoutMs = 3000): Promise<Res> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    let buf = '';
    socket.setEncoding('utf8');
    socket.setTimeout(timeoutMs, () => {
      socket.destroy();
      reject(new Error(`no answer from the ${who} on ${path} within ${timeoutMs} ms`));
    });
    socket.on('connect', () => socket.write(`${JSON.stringify(req)}\n`));
    socket.on('data', (c: string) => {
      buf += c;
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        socket.end();
        resolve(JSON.parse(buf.slice(0, nl)) as Res);
      }
    });
    socket.on('error', (err: NodeJS.ErrnoException) =>
      reject(new Error(err.code === 'ENOENT' || err.code === 'ECONNREFUSED' ? `no ${who} is running on ${path} (${err.code})` : err.message)),
    );
  });
}
