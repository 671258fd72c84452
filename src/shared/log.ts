import { pino, type Logger } from 'pino';

export type { Logger };

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** A log level that is not one of LOG_LEVELS, naming where it came from. */
export class LogLevelError extends Error {
  override name = 'LogLevelError';
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

/**
 * Structured JSON lines on stderr (stdout stays free for command output). Never log secrets: values
 * under keys named like one are replaced by pino's redaction as a second line of defence.
 */
export function createLogger(name: string, level = logLevel()): Logger {
  return pino(
    {
      name,
      level,
      base: { pid: process.pid },
      redact: { paths: ['password', 'apiKey', 'secret', '*.password', '*.apiKey', '*.secret'], censor: '***' },
    },
    pino.destination({ fd: 2, sync: false }),
  );
}
