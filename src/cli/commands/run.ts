import { startRun } from '../../site/index.js';
import { parse, required } from '../args.js';
import { runDaemon } from '../daemon.js';
import { daemonLogger, preflight } from '../preflight.js';

/**
 * `multisite run --config FILE`: every part the file configures (backend, agent, replicator) in one
 * process; the composition is src/site/run.ts. The same checks as check-config run first, for
 * every configured part, before anything listens.
 */
export async function run(args: string[]): Promise<number> {
  const { values } = parse(args, {
    config: { type: 'string', short: 'c' },
    'log-level': { type: 'string' },
  });
  const checked = preflight(required(values.config, '--config'));
  const logger = daemonLogger('run', values['log-level'], checked, 'backend');
  const level = values['log-level'];
  return runDaemon(logger, () => startRun(checked.loaded, level !== undefined ? { logLevel: level } : {}));
}
