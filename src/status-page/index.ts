import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { LoadedConfig, StatusPageConfig } from '../config/index.js';
import type { Logger } from '../shared/log.js';
import type { Route } from '../shared/metrics.js';
import { realTimers, type Timers } from '../shared/timers.js';
import { ACTION_PATH, actionRoute } from './actions.js';
import { CLIENT_SCRIPT } from './assets.js';
import { EVENTS_PATH, LiveUpdates } from './events.js';
import type { LoadBalancerView } from '../site-health/index.js';
import {
  buildModel,
  ExplainInputError,
  explainFor,
  siteLabel,
  type PageSources,
  type PartitionView,
  type PeerView,
} from './model.js';
import { liveSections, page, type ExplainView } from './render.js';
import { Timeline } from './timeline.js';

/**
 * The operator's status page (docs/status-page.md): one server-rendered HTML page on the backend's
 * metrics listener, live through server-sent events, with drain/undrain behind an API key. The
 * site (src/site/) builds it from its live parts and mounts `routes`; nothing here listens itself.
 */

export { esc } from './render.js';
export { ACTION_PATH, KEY_HEADER } from './actions.js';
export { EVENTS_PATH } from './events.js';
export type { PageSources, PeerView, PartitionView, ReplicationFigures } from './model.js';

export const PAGE_PATH = '/status-page';
/** Only the page's own script may run: a name that slipped past escaping still could not execute. */
const CSP = [
  "default-src 'none'",
  `script-src 'sha256-${createHash('sha256').update(CLIENT_SCRIPT).digest('base64')}'`,
  "style-src 'unsafe-inline'",
  "connect-src 'self'",
  "form-action 'self'",
].join('; ');
/** Open pages are re-rendered this often without a change event (ages, suspect peers, lag). */
const REFRESH_MS = 5000;

export interface StatusPageDeps extends PageSources {
  /** The control socket's drain path (pdns-backend drainSite), with `by` filled in. */
  drain(site: string, drained: boolean, by: string): boolean;
  /** Partition ownership changes (PartitionManager.onChange). */
  onPartitionChange?(fn: () => void): void;
  /** A server of the local pool changed (HAProxy state, weight, agent reply) without the site's state changing. */
  onPoolChange?(fn: () => void): void;
  /** The agent's servers (agent.servers) and its drain path; none: servers are drained elsewhere. */
  servers?: readonly string[];
  drainServer?(server: string, drained: boolean, by: string): Promise<boolean>;
  logger: Logger;
  timers?: Timers;
}

export interface StatusPage {
  routes: Route[];
  live: LiveUpdates;
  stop(): void;
}

/** The site's live parts the page reads (structural: the site passes its own objects as they are). */
export interface SiteView extends Omit<
  StatusPageDeps,
  'site' | 'peers' | 'pool' | 'partitions' | 'onPartitionChange' | 'onPoolChange'
> {
  health?: {
    service?: { status(): PeerView[] };
    pool?(): LoadBalancerView[];
    onPoolChange?(fn: () => void): void;
  };
  partitions?: { manager?: { records(): PartitionView[]; onChange(fn: () => void): void } };
}

/**
 * The page when `status-page:` is configured and enabled; undefined otherwise. `key` is the
 * actions' key the site read before anything started (config's statusPageKey); none: read-only.
 */
export function statusPageFor(loaded: LoadedConfig, key: Buffer | undefined, view: SiteView): StatusPage | undefined {
  const cfg = loaded.config['status-page'];
  if (!cfg?.enabled) return undefined;
  const { health, partitions, ...rest } = view;
  const service = health?.service;
  const pool = health?.pool;
  const manager = partitions?.manager;
  return createStatusPage(cfg, key, {
    ...rest,
    site: loaded.config.site,
    ...(service ? { peers: () => service.status() } : {}),
    ...(pool ? { pool: () => pool() } : {}),
    ...(health?.onPoolChange ? { onPoolChange: (fn: () => void) => health.onPoolChange!(fn) } : {}),
    ...(manager ? { partitions: () => manager.records(), onPartitionChange: (fn) => manager.onChange(fn) } : {}),
  });
}

export function createStatusPage(cfg: StatusPageConfig, key: Buffer | undefined, deps: StatusPageDeps): StatusPage {
  const timers = deps.timers ?? realTimers;
  const now = () => Date.now();
  const timeline = new Timeline(
    cfg['timeline-size'],
    now(),
    deps.table.sites.map((s) => `site ${s}`),
  );
  const labels = new Map<string, string>();
  /** Records each site whose label changed since last looked (suspect and lagging emit no table event). */
  const observe = () => {
    const peers = new Map((deps.peers?.() ?? []).map((p) => [p.site, p]));
    for (const s of deps.table.snapshot()) {
      const peer = peers.get(s.site);
      const label = siteLabel(s.usable, s.drained, peer?.state, deps.metricsTable?.isStale(s.site) ?? false);
      const before = labels.get(s.site);
      labels.set(s.site, label);
      if (before !== undefined && before !== label)
        timeline.add(`site ${s.site}`, label, label === 'suspect' ? `peer: ${peer?.reason}` : s.reason, now());
    }
  };
  observe();
  const model = () => (observe(), buildModel(deps, timeline.list(), cfg['max-names'], now()));
  const live = new LiveUpdates({
    render: () => liveSections(model()),
    coalesceMs: cfg['coalesce-ms'],
    refreshMs: REFRESH_MS,
    maxClients: cfg['max-clients'],
    timers,
  });
  const onTable = () => (observe(), live.changed());
  const onOrder = () => live.changed();
  deps.table.on('change', onTable);
  deps.orderings.on('changed', onOrder);
  let stopped = false;
  deps.onPartitionChange?.(() => {
    if (stopped) return;
    partitionEntries(deps, timeline, now());
    live.changed();
  });
  deps.onPoolChange?.(() => {
    if (!stopped) live.changed();
  });
  // A failover's flush ends after the table change: its stage arrives with this event only.
  const onFailover = () => live.changed();
  deps.failovers?.on('change', onFailover);
  const servers = deps.servers ?? [];
  const drainServer = deps.drainServer;
  const action = actionRoute({
    ...(key ? { key } : {}),
    sites: deps.table.sites,
    drain: (site, drained) => deps.drain(site, drained, 'the status page'),
    servers,
    ...(drainServer
      ? { drainServer: (server: string, on: boolean) => drainServer(server, on, 'the status page') }
      : {}),
    logger: deps.logger,
  });
  const route: Route = (req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (path === PAGE_PATH || path === `${PAGE_PATH}/`)
      servePage(req, res, deps, model, key !== undefined ? servers : undefined);
    else if (path === EVENTS_PATH) live.serve(req, res);
    else if (path === ACTION_PATH) action(req, res);
    else return false;
    return true;
  };
  return {
    routes: [route],
    live,
    stop() {
      stopped = true;
      deps.table.off('change', onTable);
      deps.orderings.off('changed', onOrder);
      deps.failovers?.off('change', onFailover);
      live.stop();
    },
  };
}

/** Partition changes in the timeline: the newest record of each partition that moved. */
function partitionEntries(deps: StatusPageDeps, timeline: Timeline, at: number): void {
  const seen = new Set(timeline.list().map((e) => `${e.subject} ${e.to}`));
  for (const p of deps.partitions?.() ?? []) {
    const to = `active at ${p.active} (epoch ${p.epoch})`;
    if (p.epoch > 1 && !seen.has(`partition ${p.partition} ${to}`))
      timeline.add(`partition ${p.partition}`, to, p.reason, at);
  }
}

function servePage(
  req: IncomingMessage,
  res: ServerResponse,
  deps: StatusPageDeps,
  model: () => ReturnType<typeof buildModel>,
  /** The drainable servers when actions are on; undefined: read-only. */
  actions: readonly string[] | undefined,
): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET' });
    res.end();
    return;
  }
  const q = new URL(req.url ?? '/', 'http://x').searchParams;
  const x: ExplainView = { name: q.get('name') ?? '', client: q.get('client') ?? '' };
  if (x.client !== '') {
    try {
      x.result = explainFor(deps, x.name, x.client);
    } catch (err) {
      if (!(err instanceof ExplainInputError)) throw err;
      x.error = err.message;
    }
  }
  const did = q.get('did');
  const what = q.has('server') ? `server ${q.get('server')}` : `site ${q.get('site') ?? '?'}`;
  const notice = did === 'drain' || did === 'undrain' ? `${what}: ${did}ed` : undefined;
  const opts = { actions: actions !== undefined, servers: actions ?? [], explain: x };
  const body = page(model(), { ...opts, ...(notice ? { notice } : {}) });
  res.writeHead(200, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    'content-security-policy': CSP,
    'x-frame-options': 'DENY',
  });
  res.end(req.method === 'HEAD' ? undefined : body);
}
