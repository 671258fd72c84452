import type { Server } from 'node:http';
import type { Registry } from 'prom-client';
import { readKey, resolvePath, type LoadedConfig, loadReportSource, type AgentConfig } from '../config/index.js';
import { createLogger, type Logger } from '../shared/log.js';
import { createRegistry, serveMetrics } from '../shared/metrics.js';
import { DrainStore } from '../shared/drain-store.js';
import { AgentControl, type AgentRequest, type AgentResponse } from './control.js';
import { LoadSender } from './load-sender.js';
import { AgentMetrics } from './metrics.js';
import { checksFromConfig, ServerHealth, type ServerChecks, type ServerHealthHooks } from './server-health.js';
import { AgentService } from './service.js';
import { connectionCap, openFdCount, openFileLimit } from './fd-limit.js';
import { HaproxyPusher, type HaproxyRef } from './push.js';
import { realTimers, type Timers } from '../shared/timers.js';
import { RuntimeClient } from '../haproxy/index.js';

export { formatReply, loadToWeight, sanitizeReason, type ReplyState } from './reply.js';
export { agentRequest, type AgentRequest, type AgentResponse } from './control.js';
export { ServerHealth, type ServerChecks, type CheckKind } from './server-health.js';
export { CheckRunner, type CheckState, type RunnerOptions } from './runner.js';
export type { Timers } from '../shared/timers.js';

export interface AgentOptions {
  logger?: Logger;
  registry?: Registry;
  timers?: Timers;
  /** Replace the checks built from the config (tests). */
  checks?: (name: string) => ServerChecks;
  /** Sees every check run as it happens (tests follow rise/fall with it). */
  onCheck?: ServerHealthHooks['onCheck'];
}

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

/** A status line per server, for `multisite agent status`. */
export interface ServerStatus {
  server: string;
  reply: string;
  drained: boolean;
  checks: Record<string, { up: boolean | undefined; reason: string; lastOk: boolean | undefined; lastMs: number | undefined; value?: number }>;
}

/** Starts the checks, the agent service, the control socket and metrics of `loaded.config.agent`. */
export async function startAgent(loaded: LoadedConfig, opts: AgentOptions = {}): Promise<RunningAgent> {
  const cfg: AgentConfig | undefined = loaded.config.agent;
  if (!cfg) throw new Error(`${loaded.file}: no agent: section`);
  const logger = opts.logger ?? createLogger('agent', cfg['log-level']);
  const registry = opts.registry ?? createRegistry('multisite_agent_');
  const metrics = new AgentMetrics(registry);
  const timers = opts.timers ?? realTimers;
  const drains = new DrainStore(resolvePath(loaded, cfg['state-file']));

  const hp = cfg.haproxy;
  const pusher = new HaproxyPusher(
    hp['runtime-api'].map((socket) => new RuntimeClient(resolvePath(loaded, socket), { timeoutMs: hp['timeout-ms'] })),
    { timers, logger, retryMs: hp['retry-ms'], maxRetryMs: hp['max-retry-ms'], onPush: (socket, server, result, ms) => metrics.push(socket, server, result, ms) },
  );
  const servers = new Map<string, ServerHealth>();
  for (const s of cfg.servers) {
    const checks = opts.checks ? opts.checks(s.name) : checksFromConfig(s, cfg['database-server']);
    const ref = haproxyRef(s.name, s['haproxy-server']);
    if (!ref && hp['runtime-api'].length > 0) logger.warn({ server: s.name }, 'no haproxy-server and the name is not BACKEND/SERVER: its verdicts reach HAProxy only when it polls');
    servers.set(
      s.name,
      new ServerHealth(s.name, checks, timers, cfg['ready-window-ms'], {
        onCheck: (server, kind, state, event) => {
          metrics.check(server, kind, state, event);
          opts.onCheck?.(server, kind, state, event);
          if (event.local) logger.warn({ server, check: kind, why: event.local }, 'check cannot run here (a local shortage, not the server): keeping the last verdict');
          else if (event.local === null) logger.info({ server, check: kind }, 'check runs again');
        },
        onReply: (server, reply, previous) => logger.info({ server, reply: reply.trimEnd(), previous: previous.trimEnd() }, 'agent reply changed'),
        onVerdict: (server, up) => {
          metrics.verdict(server);
          if (ref) pusher.verdict(server, ref, up);
        },
      }),
    );
  }
  for (const name of drains.read()) {
    const h = servers.get(name);
    if (h) h.setDrained(true);
    else logger.warn({ server: name }, 'state file drains a server that is no longer configured; ignored');
  }

  const execute = (req: AgentRequest): AgentResponse => {
    if (req.cmd === 'status') return { ok: true, servers: [...servers.values()].map(statusOf) };
    if (req.cmd === 'drain' || req.cmd === 'undrain') {
      const h = servers.get(req.server);
      if (!h) return { ok: false, error: `unknown server '${req.server}' (known: ${[...servers.keys()].join(', ')})` };
      const changed = h.setDrained(req.cmd === 'drain');
      if (changed) {
        drains.write([...servers.values()].filter((x) => x.drained).map((x) => x.name));
        logger.info({ server: req.server, cmd: req.cmd }, `server ${req.cmd}ed by operator`);
      }
      return { ok: true, server: req.server, drained: h.drained, changed, reply: h.replyText.trimEnd() };
    }
    return { ok: false, error: `unknown command '${(req as { cmd?: unknown }).cmd}' (status, drain, undrain)` };
  };

  const cap = connectionCap({
    configured: cfg['max-connections'],
    checks: [...servers.values()].reduce((n, h) => n + h.runners.size, 0),
    runtimeApi: 4 * hp['runtime-api'].length + (cfg['load-report']?.['stats-socket'] ? 1 : 0),
    limit: openFileLimit(),
    openNow: openFdCount(),
  });
  if (cap.lowered) logger.warn({ configured: cap.lowered.from, maxConnections: cap.maxConnections, openFileLimit: cap.lowered.limit, reserve: cap.reserve }, 'max-connections lowered to fit the open-file limit (ulimit -n) after the checks\' reserve');
  const service = new AgentService(servers, {
    host: cfg.listen.host,
    port: cfg.listen.port,
    clientTimeoutMs: cfg['client-timeout-ms'],
    maxLineBytes: cfg['max-line-bytes'],
    maxConnections: cap.maxConnections,
  }, metrics, logger);
  metrics.watchConnections(() => service.connections, registry);
  const controlPath = resolvePath(loaded, cfg.control);
  const control = new AgentControl(controlPath, execute);
  let metricsServer: Server | undefined;
  const lr = cfg['load-report'];
  const loadSender = lr
    ? new LoadSender(servers, {
        site: loaded.config.site,
        node: `${cfg.listen.host}:${cfg.listen.port}`,
        key: readKey(loaded, 'agent.load-report', lr),
        to: lr.to,
        source: loadReportSource(lr.to, lr.source, cfg.listen.host) as string,
        periodMs: lr['period-ms'],
        onError: onceLogger(logger, 'load report socket failed (agent.load-report.source must be an address of this host)'),
        timers,
        ...(lr['stats-socket'] ? { connections: activeConnections(new RuntimeClient(resolvePath(loaded, lr['stats-socket']), { timeoutMs: 1000 })) } : {}),
      })
    : undefined;
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
  logger.info({ listen: service.address, servers: [...servers.keys()], control: controlPath, maxConnections: cap.maxConnections, runtimeApi: hp['runtime-api'] }, 'agent ready');
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

/** An error logger that logs the first error only (a socket failing every period would flood the log). */
function onceLogger(logger: Logger, msg: string): (err: Error) => void {
  let logged = false;
  return (err) => {
    if (!logged) logger.error({ err: err.message }, msg);
    logged = true;
  };
}

/** The HAProxy server a configured server is pushed to: haproxy-server, else its name if it reads BACKEND/SERVER. */
function haproxyRef(name: string, configured: HaproxyRef | undefined): HaproxyRef | undefined {
  if (configured) return configured;
  const m = /^([A-Za-z0-9_.:-]+)\/([A-Za-z0-9_.:-]+)$/.exec(name);
  return m ? { backend: m[1]!, server: m[2]! } : undefined;
}

/** Current sessions of every server, keyed "BACKEND/SERVER" as the agent names servers. */
function activeConnections(haproxy: RuntimeClient): () => Promise<Map<string, number>> {
  return async () => {
    const rows = await haproxy.showStat({ serversOnly: true });
    return new Map(rows.filter((r) => Number.isFinite(r.currentSessions)).map((r) => [`${r.proxy}/${r.name}`, r.currentSessions]));
  };
}

function statusOf(h: ServerHealth): ServerStatus {
  const checks: ServerStatus['checks'] = {};
  for (const [kind, r] of h.runners) {
    const s = r.state;
    checks[kind] = { up: s.up, reason: s.reason, lastOk: s.last?.ok, lastMs: s.lastDurationMs, ...(s.value !== undefined ? { value: s.value } : {}) };
  }
  return { server: h.name, reply: h.replyText.trimEnd(), drained: h.drained, checks };
}
