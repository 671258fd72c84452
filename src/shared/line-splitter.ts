/** What `LineSplitter.next()` yields for a line over the limit (its bytes were never kept). */
export const OVERSIZED_LINE: unique symbol = Symbol('oversized line');

/**
 * Newline framing for line protocols (the PowerDNS unix connector, the control sockets): every
 * line is yielded once, in order, so every request gets exactly one reply. A line over
 * `maxBytes` (UTF-8) is yielded as OVERSIZED_LINE once its newline arrives; its bytes are dropped
 * as they come, so memory stays bounded whatever the client sends, and the connection stays in
 * step. Pull-based (`next()`) so a caller can stop answering while its socket is full.
 */
export class LineSplitter {
  /** Received, not yet yielded from `start` on: complete lines, then at most one unfinished line. */
  private pending = '';
  private start = 0;
  /** Inside an over-long line: its bytes are dropped until its newline. */
  private discarding = false;

  /** `onDropStart` is told once per over-long line, when its bytes start being dropped. */
  constructor(
    readonly maxBytes: number,
    private readonly onDropStart?: () => void,
  ) {}

  push(chunk: string): void {
    this.pending = this.start === 0 && this.pending.length === 0 ? chunk : this.pending.slice(this.start) + chunk;
    this.start = 0;
  }

  /** The next complete line (without its newline), OVERSIZED_LINE, or undefined: none complete yet. */
  next(): string | typeof OVERSIZED_LINE | undefined {
    const nl = this.pending.indexOf('\n', this.start);
    if (nl < 0) {
      this.dropUnfinishedIfTooLong();
      return undefined;
    }
    const line = this.pending.slice(this.start, nl);
    this.start = nl + 1;
    if (this.discarding || tooLong(line, this.maxBytes)) {
      this.discarding = false;
      return OVERSIZED_LINE;
    }
    return line;
  }

  /** Half a line is waiting (the caller may time such a connection out). */
  get midLine(): boolean {
    return this.discarding || this.pending.length > this.start;
  }

  /** Non-blank bytes after the last newline, or an over-long line: a request left unfinished. */
  get unfinishedRequest(): boolean {
    return this.discarding || this.pending.slice(this.start).trim() !== '';
  }

  /** Bytes kept of the unfinished line (for logs). */
  get unfinishedBytes(): number {
    return this.pending.length - this.start;
  }

  /** No newline left: the rest is one unfinished line. Past the limit it can only become an error. */
  private dropUnfinishedIfTooLong(): void {
    this.pending = this.pending.slice(this.start);
    this.start = 0;
    if (!this.discarding && !tooLong(this.pending, this.maxBytes)) return;
    if (!this.discarding) this.onDropStart?.();
    this.discarding = true;
    this.pending = '';
  }
}

/** Over the limit in UTF-8 bytes (a JS string's length counts UTF-16 units). */
function tooLong(s: string, max: number): boolean {
  return s.length > max || (s.length * 3 > max && Buffer.byteLength(s) > max);
}
