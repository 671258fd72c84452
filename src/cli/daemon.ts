import type { Logger } from '../log.js';

/**
 * Keeps a daemon running until SIGTERM or SIGINT, then stops it cleanly. Errors that escape a
 * handler are logged, never fatal: a daemon must not crash on input.
 */
export function runUntilSignal(logger: Logger, stop: () => Promise<void>): Promise<number> {
  process.on('uncaughtException', (err) => logger.error({ err }, 'uncaught exception (kept running)'));
  process.on('unhandledRejection', (err) => logger.error({ err }, 'unhandled rejection (kept running)'));
  return new Promise((resolve) => {
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, 'stopping');
      stop().then(
        () => resolve(0),
        (err: unknown) => {
          logger.error({ err }, 'error while stopping');
          resolve(1);
        },
      );
    };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
  });
}
