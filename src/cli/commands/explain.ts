import { loadConfig, resolvePath } from '../../config/index.js';
import { controlRequest, formatExplanation, type Explanation } from '../../pdns-backend/index.js';
import { parse, UsageError } from '../args.js';

/**
 * multisite explain NAME [--client IP[/BITS]] [--config FILE | --control PATH] [--json]
 * Asks the running backend (control socket) what NAME answers for the client and why: each site's
 * state, load, response time and probe figures, and the policy's decision step by step.
 */
export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parse(
    args,
    {
      config: { type: 'string', short: 'c' },
      control: { type: 'string' },
      client: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
    true,
  );
  const [name, extra] = positionals;
  if (!name || extra !== undefined) throw new UsageError('give one NAME');
  let path = values.control;
  if (!path) {
    if (!values.config) throw new UsageError('give --config FILE (to find backend.control) or --control PATH');
    const loaded = loadConfig(values.config);
    path = resolvePath(loaded, loaded.config.backend.control);
  }
  const res = await controlRequest(path, { cmd: 'explain', name, ...(values.client ? { client: values.client } : {}) });
  if (!res.ok) throw new Error(res.error);
  const e = res.explain as Explanation;
  process.stdout.write(values.json ? `${JSON.stringify(e, null, 2)}\n` : formatExplanation(e));
  return 0;
}
