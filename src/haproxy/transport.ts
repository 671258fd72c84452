import { createConnection } from 'node:net';
import { commandError, RuntimeApiError, RuntimeTimeoutError, RuntimeUnavailableError } from './errors.js';

export interface TransportOptions {
  /** Per-command timeout (connect + answer), default 1000 ms. */
  timeoutMs?: number;
  /** An answer longer than this is cut off with an error (a `show stat` of 10k servers is ~5 MB). */
  maxReplyBytes?: number;
}

/**
 * The one transport of the Runtime API client: HAProxy's non-interactive CLI mode. One connection
 * per command: connect to the `stats socket`, write the command and a newline, read until HAProxy
 * closes. Commands never contain a newline or `;` (that would run a second command).
 */
export class RuntimeTransport {
  readonly timeoutMs: number;
  private readonly maxReplyBytes: number;

  constructor(
    /** Path of a unix `stats socket ... level admin`. */
    readonly socket: string,
    opts: TransportOptions = {},
  ) {
    this.timeoutMs = opts.timeoutMs ?? 1000;
    this.maxReplyBytes = opts.maxReplyBytes ?? 64 * 1024 * 1024;
  }

  /** Sends one command and resolves with HAProxy's full answer text. */
  send(command: string, timeoutMs = this.timeoutMs): Promise<string> {
    if (/[\r\n;]/.test(command))
      return Promise.reject(new RuntimeApiError(command, this.socket, 'a command may not contain a newline or ;'));
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let settled = false;
      const conn = createConnection(this.socket);
      const finish = (err: Error | undefined, text?: string) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        conn.destroy();
        if (err) reject(err);
        else resolve(text!);
      };
      const timer = setTimeout(() => finish(new RuntimeTimeoutError(command, this.socket, timeoutMs)), timeoutMs);
      conn.on('connect', () => conn.write(`${command}\n`));
      conn.on('data', (d: Buffer) => {
        size += d.length;
        if (size > this.maxReplyBytes)
          return finish(new RuntimeApiError(command, this.socket, `answer longer than ${this.maxReplyBytes} bytes`));
        chunks.push(d);
      });
      conn.on('end', () => finish(undefined, Buffer.concat(chunks).toString('utf8')));
      conn.on('error', (err: NodeJS.ErrnoException) => {
        const code = err.code ?? 'EIO';
        finish(
          code === 'ENOENT' || code === 'ECONNREFUSED' || code === 'EACCES'
            ? new RuntimeUnavailableError(command, this.socket, code)
            : new RuntimeApiError(command, this.socket, err.message),
        );
      });
    });
  }

  /**
   * For commands that answer nothing on success (`set server ...`): any text is HAProxy's error
   * message, thrown as a typed RuntimeCommandError.
   */
  async execute(command: string, timeoutMs?: number): Promise<void> {
    const reply = (await this.send(command, timeoutMs)).trim();
    if (reply !== '') throw commandError(command, this.socket, reply);
  }
}
