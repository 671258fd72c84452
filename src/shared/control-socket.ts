import { chmodSync, mkdirSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { LineSplitter, OVERSIZED_LINE } from './line-splitter.js';

/** A request line longer than this (UTF-8 bytes) gets one error reply; the connection stays open. */
const MAX_LINE = 4096;
/** A bind of a control socket that has not completed by then fails the daemon's start. */
const LISTEN_TIMEOUT_MS = 10_000;
/** A client silent this long is dropped (a local CLI answers in milliseconds). */
const IDLE_TIMEOUT_MS = 5000;

/**
 * A daemon's local control socket (mode 0600): one JSON object per line, exactly one JSON reply
 * line per request, in order (blank lines are not requests). Malformed JSON, a non-object or a
 * missing/non-string `cmd` is refused here; `handle` gets the rest and may throw: its message
 * becomes `{ok: false, error}`. Over-long lines are framed as in LineSplitter. A stale socket file
 * is replaced; idle clients are dropped after 5 s.
 */
export class JsonLineServer {
  private server?: Server;

  constructor(
    readonly path: string,
    private readonly handle: (req: ControlRequestObject) => object | Promise<object>,
  ) {}

  async start(): Promise<void> {
    mkdirSync(dirname(this.path), { recursive: true });
    removeSocket(this.path);
    const server = createServer((s) => this.serve(s));
    await new Promise<void>((resolve, reject) => {
      // Bounded: a bind that never completes must fail the start, not hang it.
      const timer = setTimeout(
        () => (server.close(), reject(new Error(`could not listen on ${this.path} within ${LISTEN_TIMEOUT_MS} ms`))),
        LISTEN_TIMEOUT_MS,
      );
      server.once('error', (err) => (clearTimeout(timer), reject(err)));
      server.listen(this.path, () => (clearTimeout(timer), resolve()));
    });
    chmodSync(this.path, 0o600);
    this.server = server;
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    removeSocket(this.path);
  }

  private serve(socket: Socket): void {
    socket.setEncoding('utf8');
    socket.setTimeout(IDLE_TIMEOUT_MS, () => socket.destroy());
    socket.on('error', () => socket.destroy());
    const lines = new LineSplitter(MAX_LINE);
    // Replies leave in request order; one that waits (drain --everywhere asks the peers) holds
    // back the ones after it on this connection only.
    let pending: Promise<void> | undefined;
    socket.on('data', (chunk: string) => {
      lines.push(chunk);
      let line: string | typeof OVERSIZED_LINE | undefined;
      const answers: (object | Promise<object>)[] = [];
      while ((line = lines.next()) !== undefined) {
        if (line === OVERSIZED_LINE) answers.push(refusal(`request longer than ${MAX_LINE} bytes`));
        else if (line.trim() !== '') answers.push(this.answer(line));
      }
      if (answers.length === 0) return;
      if (!pending && answers.every((a) => !(a instanceof Promise)))
        return void socket.write(replyLines(answers as object[]));
      const previous = pending ?? Promise.resolve();
      const mine: Promise<void> = previous
        .then(() => Promise.all(answers))
        .then((done) => void (socket.destroyed || socket.write(replyLines(done))))
        .finally(() => {
          if (pending === mine) pending = undefined;
        });
      pending = mine;
    });
  }

  /** `handle` only ever sees an object with a string `cmd`; anything else is refused here, named. */
  private answer(line: string): object | Promise<object> {
    let req: unknown;
    try {
      req = JSON.parse(line);
    } catch {
      return refusal('malformed JSON');
    }
    if (typeof req !== 'object' || req === null || Array.isArray(req))
      return refusal(`a request is a JSON object like {"cmd":"status"}, not ${describe(req)}`);
    const { cmd } = req as { cmd?: unknown };
    if (typeof cmd !== 'string') return refusal(`"cmd" must be a string, not ${describe(cmd)}`);
    try {
      const a = this.handle(req as ControlRequestObject);
      return a instanceof Promise ? a.catch((err: Error) => refusal(err.message)) : a;
    } catch (err) {
      return refusal((err as Error).message);
    }
  }
}

function replyLines(answers: object[]): string {
  return answers.map((a) => `${JSON.stringify(a)}\n`).join('');
}

/** A request that passed the shape check: its other fields are still the handler's to check. */
export type ControlRequestObject = { cmd: string; [field: string]: unknown };

function refusal(error: string): { ok: false; error: string } {
  return { ok: false, error };
}

/** A value's JSON type for error messages (never its content, which may be huge). */
export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (v === '') return 'an empty string';
  if (Array.isArray(v)) return 'an array';
  if (v === undefined) return 'missing';
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

function removeSocket(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    /* none there */
  }
}

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
      reject(
        new Error(
          err.code === 'ENOENT' || err.code === 'ECONNREFUSED'
            ? `no ${who} is running on ${path} (${err.code})`
            : err.message,
        ),
      ),
    );
  });
}
