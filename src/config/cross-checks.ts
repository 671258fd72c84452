import { isIP } from 'node:net';
import type { z } from 'zod';
import { checkPartitions } from './partitions-schema.js';
import { checkPolicies } from './policy-checks.js';
import type { Config } from './schema.js';

type Ctx = z.RefinementCtx;

/** Checks that span keys: names that must refer to configured sites and zones. */
export function crossCheck(cfg: Config, ctx: Ctx): void {
  const sites = new Set<string>();
  cfg.sites.forEach((s, i) => {
    if (sites.has(s.name)) issue(ctx, ['sites', i, 'name'], `site '${s.name}' is listed twice`);
    sites.add(s.name);
  });
  if (!sites.has(cfg.site)) issue(ctx, ['site'], `'${cfg.site}' is not one of sites: ${[...sites].join(', ')}`);

  const zones = new Set<string>();
  cfg.zones.forEach((zn, i) => {
    if (zones.has(zn.name)) issue(ctx, ['zones', i, 'name'], `zone '${zn.name}' is listed twice`);
    zones.add(zn.name);
  });

  const names = new Set<string>();
  cfg.balanced.forEach((b, i) => {
    if (names.has(b.name)) issue(ctx, ['balanced', i, 'name'], `'${b.name}' is balanced twice`);
    names.add(b.name);
    if (!zoneOf(b.name, zones)) issue(ctx, ['balanced', i, 'name'], `'${b.name}' is in none of the zones`);
    for (const site of Object.keys(b.addresses)) {
      if (!sites.has(site)) issue(ctx, ['balanced', i, 'addresses', site], `unknown site '${site}'`);
    }
    b.order?.forEach((site, j) => {
      if (!sites.has(site)) issue(ctx, ['balanced', i, 'order', j], `unknown site '${site}'`);
    });
  });
  checkPartitions(cfg, ctx);
  checkListenAddresses(cfg, ctx);
  checkPeersAndCoordinator(cfg, ctx);
  checkPolicies(cfg, ctx);
}

/** peers: every peer site must be reachable and verifiable; both endpoints need backend.metrics. */
function checkPeersAndCoordinator(cfg: Config, ctx: Ctx): void {
  if (cfg['status-page']?.enabled && !cfg.backend.metrics)
    issue(ctx, ['status-page'], 'the status page needs backend.metrics: it is served on that listener');
  if (cfg.peers) {
    if (!cfg.backend.metrics)
      issue(ctx, ['peers'], 'peers need backend.metrics: it serves /status, which peers probe to verify this site');
    cfg.sites.forEach((s, i) => {
      const own = s.name === cfg.site;
      const listen = cfg.peers!.listen;
      if (own && s.heartbeat.length > 0 && !s.heartbeat.some((h) => h.host === listen.host && h.port === listen.port)) {
        issue(
          ctx,
          ['peers', 'listen'],
          `${listen.host}:${listen.port} is not one of site '${s.name}' heartbeat addresses`,
        );
      }
      if (own) return;
      if (s.heartbeat.length === 0)
        issue(
          ctx,
          ['sites', i],
          `peer site '${s.name}' needs heartbeat: [ADDRESS:PORT, ...] (its backends' peers.listen)`,
        );
      if (s['status-url'].length === 0 && s['lb-address'].length === 0) {
        issue(
          ctx,
          ['sites', i],
          `peer site '${s.name}' needs status-url or lb-address, to verify it before declaring it down`,
        );
      }
    });
  }
  // The backend flushes PowerDNS's caches with this key; without one it cannot start.
  if (cfg.pdns && !cfg.pdns['api-key-file'] && !cfg.pdns['api-key-env'])
    issue(ctx, ['pdns'], 'give api-key-file or api-key-env (the PowerDNS api-key) so the backend can flush caches');
  if (cfg.dnsdist && !cfg.dnsdist['api-key-file'] && !cfg.dnsdist['api-key-env'])
    issue(
      ctx,
      ['dnsdist'],
      'give api-key-file or api-key-env (the dnsdist web server key) so the backend can flush its cache',
    );
  checkDnsdistPrefixes(cfg, ctx);
  if (cfg.coordinator) {
    if (!cfg.backend.metrics)
      issue(ctx, ['coordinator'], 'the coordinator needs backend.metrics: its endpoint is served there');
    if (!cfg.coordinator['load-balancers'] && !cfg.health)
      issue(ctx, ['coordinator'], 'give coordinator.load-balancers (or health.load-balancers)');
    if (!cfg.coordinator.servers && !cfg.agent)
      issue(ctx, ['coordinator'], 'give coordinator.servers (or agent.servers)');
  }
}

/**
 * dnsdist adds ECS cut to ecs-prefix-v4/-v6 for a client that sent none, and caches per that
 * network: a topology entry longer than it would be answered as the whole network (a /28 inside a
 * /24 gets the /24's answer), so such a map needs a longer prefix there.
 */
function checkDnsdistPrefixes(cfg: Config, ctx: Ctx): void {
  const d = cfg.dnsdist;
  if (!d) return;
  cfg.balanced.forEach((b, i) => {
    for (const net of Object.keys(b.topology ?? {})) {
      const [addr, bits] = net.split('/');
      const v6 = isIP(addr ?? '') === 6;
      const limit = v6 ? d['ecs-prefix-v6'] : d['ecs-prefix-v4'];
      if (Number(bits) > limit)
        issue(
          ctx,
          ['balanced', i, 'topology', net],
          `${net} is longer than dnsdist.ecs-prefix-${v6 ? 'v6' : 'v4'} (${limit}): dnsdist would answer its clients as the whole /${limit}; raise it to ${bits}`,
        );
    }
  });
}

/**
 * Addresses whose schemas check only their shape (agent.listen, agent.metrics, replication.metrics):
 * 999.999.1.1:99999 must be refused here, not by bind() at start.
 */
function checkListenAddresses(cfg: Config, ctx: Ctx): void {
  const check = (path: (string | number)[], a: { host: string; port: number } | undefined) => {
    // Cross-checks also run when a key failed its own schema: only shaped values are checked.
    if (typeof a !== 'object' || typeof a.host !== 'string') return;
    if (isIP(a.host) === 0) issue(ctx, path, `'${a.host}' is not an IPv4 or IPv6 address`);
    else if (!(a.port >= 1 && a.port <= 65535)) issue(ctx, path, `port ${a.port} is not in 1..65535`);
  };
  check(['agent', 'listen'], cfg.agent?.listen);
  check(['agent', 'metrics'], cfg.agent?.metrics);
  const m = cfg.replication?.metrics;
  if (typeof m === 'string' && /:\d+$/.test(m)) {
    const i = m.lastIndexOf(':');
    check(['replication', 'metrics'], { host: m.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(m.slice(i + 1)) });
  }
}

/** The zone (longest suffix) a name belongs to, or undefined. */
export function zoneOf(name: string, zones: Iterable<string>): string | undefined {
  let best: string | undefined;
  for (const z of zones) {
    const inside = name === z || z === '.' || name.endsWith(`.${z}`);
    if (inside && (best === undefined || z.length > best.length)) best = z;
  }
  return best;
}

function issue(ctx: Ctx, path: (string | number)[], message: string): void {
  ctx.addIssue({ code: 'custom', path, message });
}
