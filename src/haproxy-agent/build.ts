import type { Registry } from 'prom-client';
import { loadReportSource, readKey, resolvePath, type AgentConfig, type LoadedConfig } from '../config/index.js';
import { RuntimeClient } from '../haproxy/index.js';
import type { DrainStore } from '../shared/drain-store.js';
import type { Logger } from '../shared/log.js';
import type { Timers } from '../shared/timers.js';
import type { AgentRequest, AgentResponse } from './control.js';
import { connectionCap, openFdCount, openFileLimit } from './fd-limit.js';
import { LoadSender } from './load-sender.js';
import type { AgentMetrics } from './metrics.js';
import { HaproxyPusher, type HaproxyRef } from './push.js';
import { checksFromConfig, ServerHealth, type ServerChecks, type ServerHealthHooks } from './server-health.js';
import { AgentService } from './service.js';

/** The pieces of one agent, built from `agent:` by startAgent (src/haproxy-agent/index.ts). */

export interface AgentOptions {
  logger?: Logger;
  registry?: Registry;
  timers?: Timers;
  /** Replace the checks built from the config (tests). */
  checks?: (name: string) => ServerChecks;
  /** Sees every check run as it happens (tests follow rise/fall with it). */
  onCheck?: ServerHealthHooks['onCheck'];
  /**
   * Sees each verdict change as it is made (`multisite run`: the backend in the same process
   * records it as a failover's first stage); `haproxy` is the server as HAProxy names it.
   */
  onVerdict?(server: string, haproxy: HaproxyRef | undefined, up: boolean): void;
}

/** A status line per server, for `multisite agent status`. */
export interface ServerStatus {
  server: string;
  reply: string;
  drained: boolean;
  checks: Record<
    string,
    { up: boolean | undefined; reason: string; lastOk: boolean | undefined; lastMs: number | undefined; value?: number }
  >;
}

export interface AgentContext {
  loaded: LoadedConfig;
  cfg: AgentConfig;
  logger: Logger;
  metrics: AgentMetrics;
  timers: Timers;
}

/** Tells HAProxy (Runtime API) at once when a verdict changes. */
export function createPusher({ loaded, cfg, logger, metrics, timers }: AgentContext): HaproxyPusher {
  const hp = cfg.haproxy;
  const clients = hp['runtime-api'].map(
    (socket) => new RuntimeClient(resolvePath(loaded, socket), { timeoutMs: hp['timeout-ms'] }),
  );
  return new HaproxyPusher(clients, {
    timers,
    logger,
    retryMs: hp['retry-ms'],
    maxRetryMs: hp['max-retry-ms'],
    onPush: (socket, server, result, ms) => metrics.push(socket, server, result, ms),
  });
}

/** A ServerHealth (its checks on their own timers) per configured server. */
export function createServers(ctx: AgentContext, pusher: HaproxyPusher, opts: AgentOptions): Map<string, ServerHealth> {
  const { cfg, logger, metrics, timers } = ctx;
  const servers = new Map<string, ServerHealth>();
  for (const s of cfg.servers) {
    const checks = opts.checks ? opts.checks(s.name) : checksFromConfig(s, cfg['database-server']);
    const ref = haproxyRef(s.name, s['haproxy-server']);
    if (!ref && cfg.haproxy['runtime-api'].length > 0) {
      logger.warn(
        { server: s.name },
        'no haproxy-server and the name is not BACKEND/SERVER: its verdicts reach HAProxy only when it polls',
      );
    }
    const health = new ServerHealth(s.name, checks, timers, cfg['ready-window-ms'], {
      onCheck: (server, kind, state, event) => {
        metrics.check(server, kind, state, event);
        opts.onCheck?.(server, kind, state, event);
        if (event.local)
          logger.warn(
            { server, check: kind, why: event.local },
            'check cannot run here (a local shortage, not the server): keeping the last verdict',
          );
        else if (event.local === null) logger.info({ server, check: kind }, 'check runs again');
      },
      onReply: (server, reply, previous) =>
        logger.info({ server, reply: reply.trimEnd(), previous: previous.trimEnd() }, 'agent reply changed'),
      onVerdict: (server, up) => {
        metrics.verdict(server);
        opts.onVerdict?.(server, ref, up);
        if (ref) pusher.verdict(server, ref, up);
      },
    });
    servers.set(s.name, health);
  }
  return servers;
}

/** Drains survive a restart (agent.state-file). */
export function restoreDrains(servers: Map<string, ServerHealth>, drains: DrainStore, logger: Logger): void {
  for (const name of drains.read()) {
    const h = servers.get(name);
    if (h) h.setDrained(true);
    else logger.warn({ server: name }, 'state file drains a server that is no longer configured; ignored');
  }
}

/** `multisite agent status|drain|undrain`, over the control socket. */
export function operatorCommands(
  servers: Map<string, ServerHealth>,
  drains: DrainStore,
  logger: Logger,
): (req: AgentRequest) => AgentResponse {
  return (req) => {
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
}

/** The agent-check listener, its connections capped to fit the open-file limit. */
export function createService(
  ctx: AgentContext,
  servers: Map<string, ServerHealth>,
  registry: Registry,
): { service: AgentService; maxConnections: number } {
  const { cfg, logger, metrics } = ctx;
  const cap = connectionCap({
    configured: cfg['max-connections'],
    checks: [...servers.values()].reduce((n, h) => n + h.runners.size, 0),
    runtimeApi: 4 * cfg.haproxy['runtime-api'].length + (cfg['load-report']?.['stats-socket'] ? 1 : 0),
    limit: openFileLimit(),
    openNow: openFdCount(),
  });
  if (cap.lowered) {
    const why = {
      configured: cap.lowered.from,
      maxConnections: cap.maxConnections,
      openFileLimit: cap.lowered.limit,
      reserve: cap.reserve,
    };
    logger.warn(why, "max-connections lowered to fit the open-file limit (ulimit -n) after the checks' reserve");
  }
  const listen = {
    host: cfg.listen.host,
    port: cfg.listen.port,
    clientTimeoutMs: cfg['client-timeout-ms'],
    maxLineBytes: cfg['max-line-bytes'],
    maxConnections: cap.maxConnections,
  };
  const service = new AgentService(servers, listen, metrics, logger);
  metrics.watchConnections(() => service.connections, registry);
  return { service, maxConnections: cap.maxConnections };
}

/** Load reports to the site's backends (agent.load-report), when configured. */
export function createLoadSender(
  { loaded, cfg, logger, timers }: AgentContext,
  servers: Map<string, ServerHealth>,
): LoadSender | undefined {
  const lr = cfg['load-report'];
  if (!lr) return undefined;
  const stats = lr['stats-socket']
    ? new RuntimeClient(resolvePath(loaded, lr['stats-socket']), { timeoutMs: 1000 })
    : undefined;
  return new LoadSender(servers, {
    site: loaded.config.site,
    node: `${cfg.listen.host}:${cfg.listen.port}`,
    key: readKey(loaded, 'agent.load-report', lr),
    to: lr.to,
    source: loadReportSource(lr.to, lr.source, cfg.listen.host) as string,
    periodMs: lr['period-ms'],
    onError: onceLogger(logger, 'load report socket failed (agent.load-report.source must be an address of this host)'),
    timers,
    ...(stats ? { connections: activeConnections(stats) } : {}),
  });
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
    return new Map(
      rows.filter((r) => Number.isFinite(r.currentSessions)).map((r) => [`${r.proxy}/${r.name}`, r.currentSessions]),
    );
  };
}

export function statusOf(h: ServerHealth): ServerStatus {
  const checks: ServerStatus['checks'] = {};
  for (const [kind, r] of h.runners) {
    const s = r.state;
    checks[kind] = {
      up: s.up,
      reason: s.reason,
      lastOk: s.last?.ok,
      lastMs: s.lastDurationMs,
      ...(s.value !== undefined ? { value: s.value } : {}),
    };
  }
  return { server: h.name, reply: h.replyText.trimEnd(), drained: h.drained, checks };
}
