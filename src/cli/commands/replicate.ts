import { replicateOnce, startReplication } from '../../site/index.js';
import { parse, required } from '../args.js';
import { runDaemon } from '../daemon.js';
import { daemonLogger, preflight } from '../preflight.js';

/**
 * multisite replicate --config FILE [--once]
 * Runs this site's replicator until SIGTERM/SIGINT; --once syncs until caught up and exits.
 * The wiring is src/site/replication.ts, shared with `multisite run`.
 */
export async function run(args: string[]): Promise<number> {
  const { values } = parse(args, {
    config: { type: 'string' },
    once: { type: 'boolean', default: false },
    'log-level': { type: 'string' },
  });
  // The same checks as check-config, before any database is opened.
  const checked = preflight(required(values.config, '--config'), ['replicate']);
  const logger = daemonLogger('replicate', values['log-level'], checked, 'replication');
  if (values.once) {
    try {
      await replicateOnce(checked.loaded, logger);
      return 0;
    } finally {
      logger.flush();
    }
  }
  return runDaemon(logger, () => startReplication(checked.loaded, { logger }));
}
