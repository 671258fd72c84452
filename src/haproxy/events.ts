/**
 * HAProxy's log lines as `show events RING -w` streams them from a `ring` log target: one line
 * per event, in the ring's format (rfc5424 as docs/agent.md configures it; rfc3164, `short` and
 * `raw` are accepted too). The lines that matter are the server state changes HAProxy 2.6 logs
 * from its backend (src/server.c, srv_update_status and the admin-state changes):
 *   "Server web/w1 is DOWN, reason: Layer4 connection problem, ..."
 *   "Backup Server web/w1 is UP, reason: Layer7 check passed, ..."
 *   "Server web/w1 was DOWN and now enters maintenance."
 *   "Server web/w1 is going DOWN for maintenance. ..."
 *   "Server web/w1 is UP/READY (leaving forced maintenance)."
 *   "Server web/w1 enters drain state."
 *   "backend web has no server available!"
 * A consumer re-reads the backend's state on any of them (HAProxy stays the one source of truth;
 * the line says only *that* something changed), so the kinds below are for logs and metrics.
 */

export type ServerEventKind = 'down' | 'up' | 'maint' | 'ready' | 'drain' | 'other';

export interface ServerEvent {
  type: 'server';
  backend: string;
  server: string;
  kind: ServerEventKind;
  /** The message, without the syslog header. */
  message: string;
}

export interface BackendEvent {
  type: 'backend';
  backend: string;
  message: string;
}

/** Any other line: other log messages, or HAProxy's CLI answer ("No such event sink"). */
export interface TextLine {
  type: 'text';
  message: string;
}

export type HaproxyEvent = ServerEvent | BackendEvent | TextLine;

/** Lines longer than this are dropped (the ring's `maxlen` is far below): input never grows memory. */
export const MAX_EVENT_LINE = 16 * 1024;

const NAME = '[A-Za-z0-9_.:-]+';
const SERVER_RE = new RegExp(`(?:^|\\s)(?:Backup )?Server (${NAME})/(${NAME}) (.*)$`);
const BACKEND_RE = new RegExp(`(?:^|\\s)backend (${NAME}) has no server available!`);
/** `<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG` (RFC 5424, `-` for an empty field). */
const RFC5424_RE = /^<\d{1,3}>1 \S+ \S+ \S+ \S+ \S+ (?:-|\[.*?\]) ?(.*)$/;
/** `<PRI>Mmm dd hh:mm:ss HOST TAG[PID]: MSG` (RFC 3164) or `<PRI>MSG` (short). */
const RFC3164_RE = /^<\d{1,3}>(?:[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \S+ \S+?: )?(.*)$/;

/** The message of one log line, whatever the ring's format. */
export function messageOf(line: string): string {
  const m = RFC5424_RE.exec(line) ?? RFC3164_RE.exec(line);
  return (m ? m[1]! : line).trim();
}

function kindOf(rest: string): ServerEventKind {
  if (/maintenance/.test(rest)) return /leaving/.test(rest) ? 'ready' : 'maint';
  if (/drain/.test(rest)) return /leaving/.test(rest) ? 'ready' : 'drain';
  if (/^is DOWN\b/.test(rest)) return 'down';
  if (/^is UP\b/.test(rest)) return 'up';
  return 'other';
}

/** One complete line (without its newline) → an event; empty lines give nothing. */
export function parseEventLine(line: string): HaproxyEvent | undefined {
  const message = messageOf(line);
  if (message === '') return undefined;
  const s = SERVER_RE.exec(message);
  if (s) return { type: 'server', backend: s[1]!, server: s[2]!, kind: kindOf(s[3]!), message };
  const b = BACKEND_RE.exec(message);
  if (b) return { type: 'backend', backend: b[1]!, message };
  return { type: 'text', message };
}

/**
 * Splits a byte stream into lines and parses each; chunks may end anywhere, even inside a UTF-8
 * character (lines are cut on the newline byte and decoded whole). A line over MAX_EVENT_LINE is
 * skipped up to its newline.
 */
export class EventLineParser {
  private parts: Buffer[] = [];
  private size = 0;
  private skipping = false;

  push(chunk: Buffer): HaproxyEvent[] {
    const out: HaproxyEvent[] = [];
    let start = 0;
    for (let nl = chunk.indexOf(10, start); nl >= 0; nl = chunk.indexOf(10, start)) {
      this.append(chunk.subarray(start, nl));
      if (!this.skipping) {
        const ev = parseEventLine(Buffer.concat(this.parts, this.size).toString('utf8').replace(/\r$/, ''));
        if (ev) out.push(ev);
      }
      this.parts = [];
      this.size = 0;
      this.skipping = false;
      start = nl + 1;
    }
    this.append(chunk.subarray(start));
    return out;
  }

  private append(bytes: Buffer): void {
    if (this.skipping || bytes.length === 0) return;
    if (this.size + bytes.length > MAX_EVENT_LINE) {
      this.skipping = true;
      this.parts = [];
      this.size = 0;
      return;
    }
    this.parts.push(bytes);
    this.size += bytes.length;
  }
}
