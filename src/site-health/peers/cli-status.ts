import type { LoadedConfig } from '../../config/index.js';
import { ago as agoText, localTime } from '../../shared/local-time.js';
import type { StatusBody } from './index.js';

/**
 * The `sites` section of `multisite status`: every site as this site's backend sees it (GET
 * /status on backend.metrics): usable or not, the peer state, since when, why, the last heartbeat.
 */
export async function sitesSection(
  loaded: LoadedConfig,
  now = Date.now(),
): Promise<{ name: string; text: string; data: unknown }> {
  const m = loaded.config.backend.metrics!;
  const url = `http://${m.host.includes(':') ? `[${m.host}]` : m.host}:${m.port}/status`;
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const body = (await res.json()) as StatusBody;
    return { name: 'sites', text: formatSites(body, now), data: body };
  } catch (err) {
    const error = `backend status ${url} not reachable: ${(err as Error).message}`;
    return { name: 'sites', text: `sites (as seen by ${loaded.config.site}): ${error}\n`, data: { error } };
  }
}

/** A peer's replica lag as its heartbeats report it ("-": unknown or not reported). */
const lag = (ms: number | undefined) =>
  ms === undefined ? '-' : ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;

export function formatSites(body: StatusBody, now: number): string {
  const ago = (t: number | undefined) => (t === undefined ? '-' : agoText(now - t));
  const rows = body.sites.map((s) => [
    s.site === body.site ? `${s.site} (this site)` : s.site,
    s.drained ? 'drained' : s.usable ? 'up' : 'down',
    s.peer ? s.peer.state : '-',
    lastChange(s, now),
    s.peer ? ago(s.peer.lastHeartbeat) : '-',
    lag(s.peer?.summary?.replicationLagMs),
    s.drained || !s.usable ? s.reason : (s.peer?.reason ?? s.reason),
  ]);
  const head = ['site', 'answers', 'peer', 'last change (local time)', 'last heartbeat', 'replica lag', 'why'];
  const width = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(width[i]!))).join('  ');
  return `sites (as seen by ${body.site}${body.node ? `, backend ${body.node}` : ''}):\n${[head, ...rows].map(line).join('\n')}\n`;
}

/** What changed last for a site, and when: its place in the answers, or its peer state. */
function lastChange(s: StatusBody['sites'][number], now: number): string {
  const answers = s.drained ? 'drained' : s.usable ? 'up' : 'down';
  if (s.peer && s.peer.since > s.since) return `peer ${s.peer.state} ${localTime(s.peer.since, now)}`;
  return `answers ${answers} ${localTime(s.since, now)}`;
}
