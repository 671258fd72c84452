import { spawn, type ChildProcess } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { resolve } from 'node:path';

/**
 * How long one request may go unanswered before the property fails. Not a speed bound (answers
 * take microseconds): a hang detector, generous so a loaded machine never trips it.
 */
export const WATCHDOG_MS = 15_000;

export interface BackendChild {
  socket: string;
  port: number;
  /** Why the child is gone, if it is (crashed: a failure in itself). */
  exited(): string | undefined;
  stop(): Promise<void>;
}

/** Starts test/fuzz/support/backend-child.ts in its own node process (TypeScript through tsx). */
export async function startBackendChild(): Promise<BackendChild> {
  const script = resolve(__dirname, 'backend-child.ts');
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  let exit: string | undefined;
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  child.on('exit', (code, signal) => (exit = `backend child exited (code ${code}, signal ${signal}): ${stderr}`));
  const where = await new Promise<{ socket: string; port: number }>((ok, fail) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) ok(JSON.parse(out.slice(0, nl)) as { socket: string; port: number });
    });
    child.on('exit', () => fail(new Error(exit)));
  });
  return {
    ...where,
    exited: () => exit,
    stop: () =>
      new Promise<void>((done) => {
        if (exit !== undefined) return done();
        child.once('exit', () => done());
        child.stdin!.end();
        // A hung child (the defect this suite hunts) never reads its stdin: kill it.
        setTimeout(() => child.kill('SIGKILL'), 2000).unref();
      }),
  };
}

/** Bytes arrive in order; `take` hands out complete replies as a parser finds them. */
abstract class WatchedConnection {
  protected buf: Buffer = Buffer.alloc(0);
  protected readonly replies: string[] = [];
  private waiter?: () => void;
  private closedWhy?: string;
  readonly sock: Socket;

  constructor(sock: Socket) {
    this.sock = sock;
    sock.on('data', (d: Buffer) => {
      this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d]);
      this.parse();
      this.waiter?.();
    });
    sock.on('error', () => {});
    sock.on('close', () => {
      this.closedWhy ??= 'connection closed';
      this.waiter?.();
    });
  }

  protected abstract parse(): void;

  get closed(): boolean {
    return this.closedWhy !== undefined;
  }

  /** The next reply; fails if none comes within the watchdog or the connection closes first. */
  async next(what: string): Promise<string> {
    const deadline = Date.now() + WATCHDOG_MS;
    while (this.replies.length === 0) {
      if (this.closedWhy) throw new Error(`${this.closedWhy} before the reply to ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no reply within ${WATCHDOG_MS} ms (hang?) to ${what}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiter = () => {
          clearTimeout(t);
          r();
        };
      });
    }
    return this.replies.shift()!;
  }

  /** Replies already received that no request has claimed (an extra reply is a failure). */
  get unclaimed(): string[] {
    return [...this.replies];
  }

  write(data: string | Buffer): Promise<void> {
    return new Promise((r) => (this.sock.write(data) ? r() : this.sock.once('drain', () => r())));
  }

  close(): void {
    this.sock.destroy();
  }
}

/** Newline-delimited replies (the unix connector). */
export class UnixClient extends WatchedConnection {
  static open(path: string): Promise<UnixClient> {
    return new Promise((ok, fail) => {
      const s = connect(path);
      s.once('connect', () => ok(new UnixClient(s)));
      s.once('error', fail);
    });
  }

  protected parse(): void {
    let nl: number;
    while ((nl = this.buf.indexOf(10)) >= 0) {
      this.replies.push(this.buf.subarray(0, nl).toString('utf8'));
      this.buf = this.buf.subarray(nl + 1);
    }
  }
}

/** HTTP/1.1 responses with content-length (what the HTTP connector always sends): "STATUS BODY". */
export class HttpClient extends WatchedConnection {
  static open(port: number): Promise<HttpClient> {
    return new Promise((ok, fail) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => ok(new HttpClient(s)));
      s.once('error', fail);
    });
  }

  protected parse(): void {
    for (;;) {
      const end = this.buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = this.buf.subarray(0, end).toString('latin1');
      const status = /^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 'garbled';
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
      if (this.buf.length < end + 4 + length) return;
      this.replies.push(`${status} ${this.buf.subarray(end + 4, end + 4 + length).toString('utf8')}`);
      this.buf = this.buf.subarray(end + 4 + length);
    }
  }
}

/** A raw HTTP/1.1 POST as PowerDNS's post_json mode sends it (plus whatever headers a case wants). */
export function httpPost(
  path: string,
  body: string | Buffer,
  headers: Record<string, string> = { 'content-type': 'text/javascript; charset=utf-8' },
): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body) : body;
  const lines = [
    `POST ${path} HTTP/1.1`,
    'host: 127.0.0.1',
    'accept: application/json',
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
    `content-length: ${b.length}`,
  ];
  return Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`), b]);
}

/** Writes `stream` in pieces cut at `cutsRaw` (any offsets), yielding to the event loop between. */
export async function writeInPieces(
  c: { write(d: Buffer): Promise<void> },
  stream: Buffer,
  cutsRaw: number[],
): Promise<void> {
  const cuts = [...new Set(cutsRaw.map((x) => x % stream.length))].sort((a, b) => a - b);
  let from = 0;
  for (const cut of [...cuts, stream.length]) {
    await c.write(stream.subarray(from, cut));
    from = cut;
    await new Promise((r) => setImmediate(r));
  }
}
