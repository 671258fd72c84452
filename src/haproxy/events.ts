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
  /** HAProxy's clock when it logged the line (epoch ms, µs fraction): rfc5424 only, see headerOf. */
  loggedAt?: number;
  /** "check duration: Nms" of the check that changed the state (HAProxy's own or agent check; not a CLI change). */
  checkMs?: number;
}

export interface BackendEvent {
  type: 'backend';
  backend: string;
  message: string;
  loggedAt?: number;
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
const RFC5424_RE = /^<\d{1,3}>1 (\S+) \S+ \S+ \S+ \S+ (?:-|\[.*?\]) ?(.*)$/;
/** HAProxy 2.6 writes `2026-12-06T03:15:45.746225+00:00`: its wall clock, in microseconds. */
const TIME_RE = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/;
const CHECK_MS_RE = /check duration: (\d+)ms/;
/** `<PRI>Mmm dd hh:mm:ss HOST TAG[PID]: MSG` (RFC 3164) or `<PRI>MSG` (short). */
const RFC3164_RE = /^<\d{1,3}>(?:[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \S+ \S+?: )?(.*)$/;

/** The message of one log line, whatever the ring's format. */
export function messageOf(line: string): string {
  return headerOf(line).message;
}

/**
 * The message and, in rfc5424 only, HAProxy's timestamp of the line. rfc3164 says the second
 * without the year and `short`/`raw` say nothing: too coarse to time a sub-second failover, so
 * those lines carry no time (never a guessed one).
 */
export function headerOf(line: string): { message: string; loggedAt?: number } {
  const r = RFC5424_RE.exec(line);
  if (r) {
    const loggedAt = rfc5424Time(r[1]!);
    return { message: r[2]!.trim(), ...(loggedAt !== undefined ? { loggedAt } : {}) };
  }
  const m = RFC3164_RE.exec(line);
  return { message: (m ? m[1]! : line).trim() };
}

/** Epoch ms with the sub-millisecond digits kept (Date.parse drops them); undefined when not a time. */
export function rfc5424Time(ts: string): number | undefined {
  const t = TIME_RE.exec(ts);
  if (!t) return undefined;
  const base = Date.parse(`${t[1]}${t[3]}`);
  if (Number.isNaN(base)) return undefined;
  return base + (t[2] ? Number(`0.${t[2]}`) * 1000 : 0);
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
  const { message, loggedAt } = headerOf(line);
  if (message === '') return undefined;
  const at = loggedAt !== undefined ? { loggedAt } : {};
  const s = SERVER_RE.exec(message);
  if (s) {
    const check = CHECK_MS_RE.exec(s[3]!);
    const checkMs = check ? { checkMs: Number(check[1]) } : {};
    return { type: 'server', backend: s[1]!, server: s[2]!, kind: kindOf(s[3]!), message, ...at, ...checkMs };
  }
  const b = BACKEND_RE.exec(message);
  if (b) return { type: 'backend', backend: b[1]!, message, ...at };
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
