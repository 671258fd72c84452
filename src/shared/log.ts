import { pino, type Logger } from 'pino';

export type { Logger };

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** A log level that is not one of LOG_LEVELS, naming where it came from. */
export class LogLevelError extends Error {
  override name = 'LogLevelError';
}

/** A MULTISITE_LOG_FORMAT that is neither json nor text. */
export class LogFormatError extends Error {
  override name = 'LogFormatError';
}

/**
 * The level a command logs at. Precedence (README "Logging"): the --log-level flag, then the
 * MULTISITE_LOG_LEVEL environment variable, then the config file's log-level key (only when the
 * file sets it), then info.
 */
export function logLevel(flag?: string, configured?: string, env: NodeJS.ProcessEnv = process.env): string {
  const sources: [string | undefined, string][] = [
    [flag, '--log-level'],
    [env.MULTISITE_LOG_LEVEL, 'MULTISITE_LOG_LEVEL'],
    [configured, 'log-level in the config'],
  ];
  for (const [value, from] of sources) {
    if (value === undefined || value === '') continue;
    if (!(LOG_LEVELS as readonly string[]).includes(value))
      throw new LogLevelError(`${from}: '${value}' is not a log level (${LOG_LEVELS.join(', ')})`);
    return value;
  }
  return 'info';
}

/** `json`: one JSON object per line, for machines. `text`: one line a person reads. */
export type LogFormat = 'json' | 'text';

/** MULTISITE_LOG_FORMAT (json, text); unset: text on a terminal, JSON otherwise (journald, files, pipes). */
export function logFormat(env: NodeJS.ProcessEnv = process.env, isTTY = process.stderr.isTTY === true): LogFormat {
  const v = env.MULTISITE_LOG_FORMAT;
  if (v === 'json' || v === 'text') return v;
  if (v !== undefined && v !== '')
    throw new LogFormatError(`MULTISITE_LOG_FORMAT: '${v}' is not a log format (json, text)`);
  return isTTY ? 'text' : 'json';
}

/**
 * Log lines on stderr (stdout stays free for command output): JSON with an ISO-8601 UTC `time`, or
 * text (see logFormat). Never log secrets: values under keys named like one are replaced by pino's
 * redaction as a second line of defence.
 */
export function createLogger(name: string, level = logLevel(), format = logFormat()): Logger {
  const options = {
    name,
    level,
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: ['password', 'apiKey', 'secret', '*.password', '*.apiKey', '*.secret'], censor: '***' },
  };
  if (format === 'json') return pino(options, pino.destination({ fd: 2, sync: false }));
  return pino(options, { write: (line: string) => void process.stderr.write(textLine(line)) });
}

const LEVEL_NAMES: Record<number, string> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO',
  40: 'WARN',
  50: 'ERROR',
  60: 'FATAL',
};

/**
 * One JSON log line as a person reads it: local time, level, part, message, then the fields as
 * key=value (`2026-12-06 00:20:01.123 WARN  backend: peer suspected site=b silentMs=1500`).
 */
export function textLine(json: string): string {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.endsWith('\n') ? json : `${json}\n`;
  }
  const { level, time, name, msg, pid: _pid, ...fields } = rec;
  const when = typeof time === 'string' || typeof time === 'number' ? localStamp(new Date(time)) : '';
  const lvl = (LEVEL_NAMES[level as number] ?? String(level)).padEnd(5);
  const rest = Object.entries(fields).map(([k, v]) => `${k}=${fieldText(v)}`);
  return `${[when, lvl, `${String(name ?? '')}:`, String(msg ?? ''), ...rest].filter((x) => x !== '').join(' ')}\n`;
}

function fieldText(v: unknown): string {
  if (typeof v === 'string') return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
  // pino's error serializer: the message is what a person needs; the stack stays in JSON logs.
  if (typeof v === 'object' && v !== null && 'message' in v && 'type' in v)
    return JSON.stringify((v as { message: unknown }).message);
  return JSON.stringify(v) ?? String(v);
}

function localStamp(d: Date): string {
  const two = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, '0')}`;
}
