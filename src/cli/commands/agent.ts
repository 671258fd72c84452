import { loadConfig, resolvePath } from '../../config/index.js';
import { agentRequest, startAgent, type ServerStatus } from '../../haproxy-agent/index.js';
import { parse, UsageError } from '../args.js';
import { runDaemon } from '../daemon.js';
import { daemonLogger, preflight } from '../preflight.js';

/**
 * `multisite agent --config FILE`: the HAProxy agent-check service.
 * `multisite agent drain|undrain SERVER` and `multisite agent status`: through its control socket.
 */
export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parse(
    args,
    {
      config: { type: 'string', short: 'c' },
      control: { type: 'string' },
      json: { type: 'boolean' },
      'log-level': { type: 'string' },
    },
    true,
  );
  const [action, server] = positionals;
  if (action === undefined) {
    if (!values.config) throw new UsageError('--config FILE is required');
    // The same checks as check-config, before anything listens.
    const checked = preflight(values.config, ['agent']);
    if (!checked.loaded.config.agent) throw new UsageError(`${values.config} has no agent: section`);
    const logger = daemonLogger('agent', values['log-level'], checked, 'agent');
    return runDaemon(logger, () => startAgent(checked.loaded, { logger }));
  }
  const path = controlPath(values.config, values.control);
  if (action === 'status') {
    const res = await agentRequest(path, { cmd: 'status' });
    if (!res.ok) throw new Error(res.error);
    const servers = res.servers as ServerStatus[];
    process.stdout.write(values.json ? `${JSON.stringify(servers)}\n` : formatStatus(servers));
    return 0;
  }
  if (action !== 'drain' && action !== 'undrain')
    throw new UsageError(`unknown action '${action}' (drain, undrain, status)`);
  if (!server) throw new UsageError(`${action} needs a SERVER (BACKEND/SERVER, as in agent-send)`);
  const res = await agentRequest(path, { cmd: action, server });
  if (!res.ok) throw new Error(res.error);
  process.stdout.write(
    `server ${server} ${action}ed${res.changed ? '' : ' (it already was)'}; the agent now answers: ${String(res.reply)}\n`,
  );
  return 0;
}

function controlPath(config?: string, control?: string): string {
  if (control) return control;
  if (!config) throw new UsageError('give --config FILE (to find agent.control) or --control PATH');
  const loaded = loadConfig(config);
  if (!loaded.config.agent) throw new UsageError(`${config} has no agent: section`);
  return resolvePath(loaded, loaded.config.agent.control);
}

export function formatStatus(servers: ServerStatus[]): string {
  const rows = servers.map((s) => {
    const checks = Object.entries(s.checks)
      .map(
        ([k, c]) =>
          `${k}=${c.up === undefined ? '?' : c.up ? 'up' : 'down'}${c.value !== undefined ? `(${c.value})` : ''}${c.lastMs !== undefined ? ` ${c.lastMs.toFixed(1)}ms` : ''}`,
      )
      .join(' ');
    return `${s.server.padEnd(20)} ${s.reply.padEnd(40)} ${checks}`;
  });
  return `${'SERVER'.padEnd(20)} ${'REPLY'.padEnd(40)} CHECKS\n${rows.join('\n')}\n`;
}
