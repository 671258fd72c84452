/**
 * The remote backend under fuzz, in its own process: a request that hangs it must not hang the
 * test (the test's watchdog sees no reply, fails the property and kills this process). Serves the
 * unit tests' example zone over both connectors and prints where it listens as one JSON line.
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { HttpConnector } from '../../../src/pdns-backend/connectors/http.js';
import { UnixConnector } from '../../../src/pdns-backend/connectors/unix.js';
import { exampleHandler } from '../../unit/pdns-backend/fixtures.js';

export const MAX_REQUEST_BYTES = 4096;

const { handler } = exampleHandler();
const deps = {
  handleLine: (l: string) => handler.handleLine(l),
  handle: (r: unknown) => handler.handle(r),
  logger: pino({ level: 'silent' }),
  maxRequestBytes: MAX_REQUEST_BYTES,
};
const socket = join(tmpdir(), `ms-fuzz-${process.pid}.sock`);
const unix = new UnixConnector(socket, deps);
const http = new HttpConnector('127.0.0.1', 0, deps);
await unix.start();
await http.start();
process.stdout.write(`${JSON.stringify({ socket, port: http.boundPort })}\n`);
// The test closes our stdin when it is done (or dies): stop with it.
process.stdin.resume();
process.stdin.on('end', () => void Promise.all([unix.stop(), http.stop()]).then(() => process.exit(0)));
