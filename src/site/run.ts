import type { LoadedConfig } from '../config/index.js';
import { startAgent, type RunningAgent } from '../haproxy-agent/index.js';
import { createLogger, logLevel, type Logger } from '../shared/log.js';
import { createRegistry } from '../shared/metrics.js';
import type { Timers } from '../shared/timers.js';
import { startSite, type RunningSite } from './site.js';
import { startReplication, type RunningReplication } from './replication.js';
import { partFailures } from './supervise.js';

/**
 * `multisite run`: every part a site's config names, in one process. Started in order (the
 * backend, then the agent when `agent:` is set, then the replicator when `replication:` is set),
 * stopped in reverse. A part that fails to start stops the start: the parts already started are
 * stopped and the error names the part and where its section is in the file. After the start,
 * the replicator is supervised (src/site/supervise.ts: counted in multisite_part_failures_total,
 * restarted with backoff); the backend's and agent's listeners live as long as the process, and
 * a process that dies is systemd's to restart (deploy/systemd, Restart=on-failure).
 */

export type RunPart = 'backend' | 'agent' | 'replication';

export interface RunOptions {
  /** --log-level: beats MULTISITE_LOG_LEVEL and each section's log-level (src/shared/log.ts). */
  logLevel?: string;
  /** One logger for every part (tests); by default each part logs under its own name. */
  logger?: Logger;
  timers?: Timers;
}

export interface RunningRun {
  /** The parts started, in start order. */
  parts: RunPart[];
  site: RunningSite;
  agent?: RunningAgent;
  replication?: RunningReplication;
  stop(): Promise<void>;
}

/** A part that could not start: names the part and the file, line and column of its section. */
export class PartStartError extends Error {
  override name = 'PartStartError';
  constructor(
    readonly part: RunPart,
    loaded: LoadedConfig,
    cause: unknown,
  ) {
    const { line, column } = loaded.locate([part]);
    const why = cause instanceof Error ? cause.message : String(cause);
    super(`${loaded.file}:${line}:${column}: ${part}: the ${part} could not start: ${why}`, { cause });
  }
}

interface Step {
  part: RunPart;
  start(): Promise<{ stop(): Promise<void> }>;
}

/** Starts every configured part; resolves once every socket of every part listens. */
export async function startRun(loaded: LoadedConfig, opts: RunOptions = {}): Promise<RunningRun> {
  const { config } = loaded;
  const log = (part: RunPart, name: string) =>
    opts.logger ?? createLogger(name, logLevel(opts.logLevel, configuredLevel(loaded, part)));
  // The backend's registry (served on backend.metrics) also counts every part's failures.
  const registry = createRegistry('multisite_backend_');
  const failures = partFailures(registry);
  const running: Partial<Omit<RunningRun, 'parts' | 'stop'>> = {};
  const steps: Step[] = [
    {
      part: 'backend',
      start: async () => (running.site = await startSite(loaded, { logger: log('backend', 'backend'), registry })),
    },
  ];
  if (config.agent) {
    const logger = log('agent', 'agent');
    // The agent's verdicts are the first stage of the backend's failover records (same process, same clock).
    const onVerdict = (_server: string, ref: { backend: string; server: string } | undefined, up: boolean) =>
      ref && running.site?.failovers.agentVerdict(`${ref.backend}/${ref.server}`, up);
    steps.push({
      part: 'agent',
      start: async () => (running.agent = await startAgent(loaded, { logger, onVerdict })),
    });
  }
  if (config.replication) {
    const logger = log('replication', 'replicate');
    const timers = opts.timers ? { timers: opts.timers } : {};
    steps.push({
      part: 'replication',
      start: async () => (running.replication = await startReplication(loaded, { logger, failures, ...timers })),
    });
  }
  const started: Step[] = [];
  const stopStarted = async () => {
    for (const step of [...started].reverse()) await running[key(step.part)]!.stop();
  };
  for (const step of steps) {
    try {
      await step.start();
      started.push(step);
    } catch (err) {
      await stopStarted();
      throw new PartStartError(step.part, loaded, err);
    }
  }
  return { ...running, site: running.site!, parts: started.map((s) => s.part), stop: stopStarted };
}

function key(part: RunPart): 'site' | 'agent' | 'replication' {
  return part === 'backend' ? 'site' : part;
}

/** A section's log-level, only when the file sets it (the schema's default must not beat the environment). */
function configuredLevel(loaded: LoadedConfig, part: RunPart): string | undefined {
  return loaded.has([part, 'log-level']) ? loaded.config[part]?.['log-level'] : undefined;
}
