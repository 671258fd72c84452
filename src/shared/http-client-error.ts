import type { Server } from 'node:http';
import type { Duplex } from 'node:stream';

/** How long a refused connection is still read (and dropped) so the refusal reaches the client. */
export const LINGER_MS = 2000;

/**
 * Answers a request Node's HTTP parser refused (header too large, malformed, timed out) with a
 * status that says why, then keeps reading and dropping what the client still sends for a short
 * while before closing. Closing at once with unread bytes makes the kernel send a reset, and the
 * client then loses the reply it was owed (Node's default does exactly that for a 431).
 */
export function answerClientErrors(server: Server, onError: (err: NodeJS.ErrnoException) => void = () => {}): void {
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    onError(err);
    if (err.code === 'ECONNRESET' || !socket.writable) return void socket.destroy();
    socket.end(`HTTP/1.1 ${clientErrorStatus(err.code)}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
    linger(socket);
  });
}

function linger(socket: Duplex): void {
  const timer = setTimeout(() => socket.destroy(), LINGER_MS);
  timer.unref();
  socket.on('data', () => {});
  socket.once('end', () => (clearTimeout(timer), socket.destroy()));
  socket.once('close', () => clearTimeout(timer));
  socket.resume();
}

function clientErrorStatus(code: string | undefined): string {
  if (code === 'HPE_HEADER_OVERFLOW') return '431 Request Header Fields Too Large';
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return '408 Request Timeout';
  return '400 Bad Request';
}
