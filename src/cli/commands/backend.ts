import { loadConfig } from '../../config/index.js';
import { createLogger } from '../../log.js';
import { start } from '../../pdns-backend/index.js';
import { parse, required } from '../args.js';
import { runDaemon } from '../daemon.js';

export async function run(args: string[]): Promise<number> {
  const { values } = parse(args, { config: { type: 'string', short: 'c' }, socket: { type: 'string' } });
  const loaded = loadConfig(required(values.config, '--config'));
  const logger = createLogger('backend', loaded.config.backend['log-level']);
  return runDaemon(logger, () => start(loaded, { socket: values.socket, logger }));
}
