import { resolve } from 'node:path';
import { placeProblem } from '../../config/index.js';
import { startSite } from '../../site/index.js';
import { parse, required, UsageError } from '../args.js';
import { runDaemon } from '../daemon.js';
import { daemonLogger, preflight } from '../preflight.js';

export async function run(args: string[]): Promise<number> {
  const { values } = parse(args, {
    config: { type: 'string', short: 'c' },
    socket: { type: 'string' },
    'log-level': { type: 'string' },
  });
  // The same checks as check-config, before anything listens.
  const checked = preflight(required(values.config, '--config'), ['backend']);
  const socketProblem = values.socket !== undefined ? placeProblem(resolve(values.socket), 'socket') : undefined;
  if (socketProblem) throw new UsageError(`--socket: ${socketProblem}`);
  const logger = daemonLogger('backend', values['log-level'], checked, 'backend');
  return runDaemon(logger, () => startSite(checked.loaded, { socket: values.socket, logger }));
}
