import type { Registry } from 'prom-client';
import { readKey, resolvePath, type LoadedConfig } from '../config/index.js';
import { RuntimeClient } from '../haproxy/index.js';
import { realTimers, type Timers } from '../shared/timers.js';
import type { Logger } from '../shared/log.js';
import type { Route } from '../shared/metrics.js';
import { parseJsonObject, readBody, reply } from '../shared/peer-http.js';
import { AUTH_HEADER, verifyRequest } from './auth.js';
import { Coordinator, UnknownServerError, type LoadBalancer } from './coordinator.js';
import { verifyServer, type ServerCheck } from './verify.js';

export {
  Coordinator,
  UnknownServerError,
  type ReportAnswer,
  type LoadBalancer,
  type CoordinatorOptions,
} from './coordinator.js';
export { signRequest, verifyRequest, AUTH_HEADER } from './auth.js';
export { checkServer, verifyServer, type ServerCheck } from './verify.js';

export const COORDINATOR_PATHS = {
  report: '/coordinator/report',
  online: '/coordinator/online',
  servers: '/coordinator/servers',
} as const;
const MAX_BODY = 8 * 1024;

export interface RunningCoordinator {
  coordinator?: Coordinator;
  routes: Route[];
  stop(): Promise<void>;
}

/** The servers the coordinator may be told about: its own list, or the agent's servers and their message check. */
export function coordinatorServers(loaded: LoadedConfig): ServerCheck[] {
  const c = loaded.config.coordinator!;
  if (c.servers) return c.servers;
  return (loaded.config.agent?.servers ?? []).map((s) => {
    const m = s.checks.message;
    return {
      name: s.name,
      address: s.address,
      check: m?.type ?? 'http',
      path: m?.path ?? '/health',
      status: m?.status ?? 200,
    };
  });
}

/** Starts the coordinator when `coordinator:` is configured; its routes go on the backend's metrics server. */
export function startCoordinator(
  loaded: LoadedConfig,
  logger: Logger,
  registry?: Registry,
  timers: Timers = realTimers,
): RunningCoordinator {
  const c = loaded.config.coordinator;
  if (!c) return { routes: [], stop: async () => {} };
  const key = readKey(loaded, 'coordinator', c);
  const sockets = c['load-balancers'] ?? loaded.config.health?.['load-balancers'] ?? [];
  const loadBalancers: LoadBalancer[] = sockets.map(
    (s) => new RuntimeClient(resolvePath(loaded, s), { timeoutMs: 1000 }),
  );
  const coordinator = new Coordinator({
    servers: coordinatorServers(loaded),
    loadBalancers,
    verify: (s) => verifyServer(s, c['verify-timeout-ms'], c['verify-attempts']),
    recheckMs: c['recheck-ms'],
    timers,
    wallNow: Date.now,
    logger,
    registry,
  });
  logger.info({ servers: coordinatorServers(loaded).map((s) => s.name), loadBalancers: sockets }, 'coordinator ready');
  return {
    coordinator,
    routes: [coordinatorRoute(coordinator, key, c['max-skew-ms'], logger)],
    stop: () => coordinator.stop(),
  };
}

/**
 * POST /coordinator/report {server, reporter?, reason?}: verify, and mark offline if it is.
 * POST /coordinator/online {server, reporter?}: check now, and mark ready if it answers.
 * GET /coordinator/servers: every server's state.
 * Every request is signed (see auth.ts); unsigned or stale ones get 401.
 */
export function coordinatorRoute(coordinator: Coordinator, key: Buffer, maxSkewMs: number, logger: Logger): Route {
  const paths = new Set<string>(Object.values(COORDINATOR_PATHS));
  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    if (!paths.has(path)) return false;
    readBody(req, MAX_BODY)
      .then(
        async (body) => {
          const header = req.headers[AUTH_HEADER];
          const auth = verifyRequest(
            key,
            Array.isArray(header) ? header[0] : header,
            req.method ?? 'GET',
            req.url ?? path,
            body,
            Date.now(),
            maxSkewMs,
          );
          if (!auth.ok) {
            logger.warn({ path, from: req.socket.remoteAddress, reason: auth.reason }, 'coordinator request refused');
            return reply(res, 401, { error: auth.reason });
          }
          if (path === COORDINATOR_PATHS.servers)
            return req.method === 'GET'
              ? reply(res, 200, coordinator.status())
              : reply(res, 405, { error: 'GET only' });
          if (req.method !== 'POST') return reply(res, 405, { error: 'POST only' });
          const parsed = parseJsonObject(body, '{"server": "BACKEND/SERVER", "reporter"?, "reason"?}');
          if (!parsed.ok) return reply(res, 400, { error: parsed.error });
          const json = parsed.value;
          if (typeof json.server !== 'string')
            return reply(res, 400, { error: 'server: "BACKEND/SERVER" is required' });
          const reporter =
            typeof json.reporter === 'string' ? json.reporter.slice(0, 200) : (req.socket.remoteAddress ?? 'unknown');
          const reason = typeof json.reason === 'string' ? json.reason.slice(0, 500) : 'no reason given';
          try {
            const answer =
              path === COORDINATOR_PATHS.report
                ? await coordinator.report(json.server, reporter, reason)
                : await coordinator.reportOnline(json.server, reporter);
            reply(res, 200, answer);
          } catch (err) {
            if (err instanceof UnknownServerError) reply(res, 404, { error: err.message });
            else throw err;
          }
        },
        (err: Error) => reply(res, 413, { error: err.message }),
      )
      .catch((err: Error) => {
        logger.error({ err }, 'coordinator request failed');
        if (!res.headersSent) reply(res, 500, { error: 'internal error' });
      });
    return true;
  };
}
