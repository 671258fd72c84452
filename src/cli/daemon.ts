import type { Logger } from '../shared/log.js';
import { sdNotify } from '../shared/sd-notify.js';

/**
 * Starts a daemon and keeps it running until SIGTERM or SIGINT, then stops it cleanly. The signal
 * handlers are installed before `start` runs: a daemon is reachable (its socket listens) before
 * start resolves, and a SIGTERM in that window must still mean a clean stop, not death by signal.
 * Errors that escape a handler are logged, never fatal: a daemon must not crash on input.
 * Under systemd `Type=notify` (NOTIFY_SOCKET set), READY=1 goes out once start resolved (every
 * socket listens) and STOPPING=1 when the stop begins (src/shared/sd-notify.ts says how and why).
 */
export async function runDaemon(logger: Logger, start: () => Promise<{ stop(): Promise<void> }>): Promise<number> {
  process.on('uncaughtException', (err) => logger.error({ err }, 'uncaught exception (kept running)'));
  process.on('unhandledRejection', (err) => logger.error({ err }, 'unhandled rejection (kept running)'));
  let signalled: (signal: NodeJS.Signals) => void = () => {};
  const signal = new Promise<NodeJS.Signals>((resolve) => (signalled = resolve));
  process.once('SIGTERM', signalled);
  process.once('SIGINT', signalled);
  try {
    // A failed start throws to the caller (the CLI prints it and exits 1). A signal during a start
    // that does not finish (a bind that never completes) still stops the process.
    const starting = start();
    const first = await Promise.race([starting, signal]);
    if (typeof first === 'string') {
      logger.error({ signal: first }, 'signal while starting: giving up the start');
      void starting.then(
        (d) => d.stop(),
        () => undefined,
      );
      await new Promise<void>((resolve) => logger.flush(() => resolve()));
      process.exit(1);
    }
    const daemon = first;
    // Every socket listens now (start resolves after the last listen): systemd may start PowerDNS.
    notify(logger, 'READY=1');
    logger.info({ signal: await signal }, 'stopping');
    notify(logger, 'STOPPING=1');
    try {
      await daemon.stop();
      return 0;
    } catch (err) {
      logger.error({ err }, 'error while stopping');
      return 1;
    }
  } finally {
    process.off('SIGTERM', signalled);
    process.off('SIGINT', signalled);
  }
}

/** Tells systemd (Type=notify) where the daemon is; says so when it cannot, a unit would time out. */
function notify(logger: Logger, state: string): void {
  if (!process.env.NOTIFY_SOCKET) return;
  const r = sdNotify(state);
  if (r.sent) logger.debug({ state }, 'told systemd');
  else logger.error({ state, why: r.why }, 'cannot tell systemd (Type=notify units time out waiting for READY=1)');
}
