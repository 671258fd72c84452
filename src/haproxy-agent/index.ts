import type { Server } from 'node:http';
import { resolvePath, type AgentConfig, type LoadedConfig } from '../config/index.js';
import { createLogger } from '../shared/log.js';
import { createRegistry, serveMetrics } from '../shared/metrics.js';
import { DrainStore } from '../shared/drain-store.js';
import { realTimers } from '../shared/timers.js';
import { AgentControl, type AgentRequest, type AgentResponse } from './control.js';
import {
  createLoadSender,
  createPusher,
  createServers,
  createService,
  operatorCommands,
  restoreDrains,
  type AgentContext,
  type AgentOptions,
} from './build.js';

export type { AgentOptions, ServerStatus } from './build.js';
import { AgentMetrics } from './metrics.js';
import type { HaproxyPusher } from './push.js';
import type { ServerHealth } from './server-health.js';
import type { AgentService } from './service.js';

export { formatReply, loadToWeight, sanitizeReason, type ReplyState } from './reply.js';
export { agentRequest, type AgentRequest, type AgentResponse } from './control.js';
export { ServerHealth, type ServerChecks, type CheckKind } from './server-health.js';
export { CheckRunner, type CheckState, type RunnerOptions } from './runner.js';
export type { Timers } from '../shared/timers.js';

export interface RunningAgent {
  servers: Map<string, ServerHealth>;
  service: AgentService;
  pusher: HaproxyPusher;
  /** Where HAProxy connects (the actual port when the config says port 0). */
  address: { host: string; port: number };
  control: string;
  execute(req: AgentRequest): AgentResponse;
  stop(): Promise<void>;
}

/** Starts the checks, the agent service, the control socket and metrics of `loaded.config.agent`. */
export async function startAgent(loaded: LoadedConfig, opts: AgentOptions = {}): Promise<RunningAgent> {
  const cfg: AgentConfig | undefined = loaded.config.agent;
  if (!cfg) throw new Error(`${loaded.file}: no agent: section`);
  const logger = opts.logger ?? createLogger('agent', cfg['log-level']);
  const registry = opts.registry ?? createRegistry('multisite_agent_');
  const ctx: AgentContext = {
    loaded,
    cfg,
    logger,
    metrics: new AgentMetrics(registry),
    timers: opts.timers ?? realTimers,
  };
  const pusher = createPusher(ctx);
  const servers = createServers(ctx, pusher, opts);
  const drains = new DrainStore(resolvePath(loaded, cfg['state-file']));
  restoreDrains(servers, drains, logger);
  const execute = operatorCommands(servers, drains, logger);
  const { service, maxConnections } = createService(ctx, servers, registry);
  const controlPath = resolvePath(loaded, cfg.control);
  const control = new AgentControl(controlPath, execute);
  const loadSender = createLoadSender(ctx, servers);
  let metricsServer: Server | undefined;
  const stopAll = async () => {
    pusher.stop();
    loadSender?.stop();
    for (const h of servers.values()) h.stop();
    await Promise.allSettled([service.stop(), control.stop()]);
    if (metricsServer) await new Promise((r) => metricsServer!.close(r));
  };
  try {
    // Checks first: the first results are usually in before HAProxy's first agent connection.
    for (const h of servers.values()) h.start();
    await service.start();
    await control.start();
    if (cfg.metrics) metricsServer = await serveMetrics(registry, cfg.metrics.host, cfg.metrics.port);
    loadSender?.start();
  } catch (err) {
    await stopAll();
    throw err;
  }
  const ready = {
    listen: service.address,
    servers: [...servers.keys()],
    control: controlPath,
    runtimeApi: cfg.haproxy['runtime-api'],
  };
  logger.info({ ...ready, maxConnections }, 'agent ready');
  return {
    servers,
    service,
    pusher,
    address: service.address,
    control: controlPath,
    execute,
    async stop() {
      await stopAll();
      logger.info('agent stopped');
      logger.flush();
    },
  };
}
