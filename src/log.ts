import { pino, type Logger } from 'pino';

export type { Logger };

/** Structured JSON lines on stderr (stdout stays free for command output). Never log secrets. */
export function createLogger(name: string, level = process.env.MULTISITE_LOG_LEVEL ?? 'info'): Logger {
  return pino({ name, level, base: { pid: process.pid } }, pino.destination({ fd: 2, sync: false }));
}
