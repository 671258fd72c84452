import type { LoadedConfig } from '../../config/index.js';
import { FAILOVERS_PATH, type FailoverRecord } from '../../pdns-backend/index.js';
import { localTime } from '../../shared/local-time.js';

/** Failovers the text output lists (the JSON has every one the backend keeps). */
const SHOWN = 5;

/**
 * The `failovers` section of `multisite status`: the backend's last failovers and recoveries with
 * their stage times (GET /failovers on backend.metrics; docs/status-page.md says which clock each
 * stage uses). Says nothing about health: a failover that happened is not a problem now.
 */
export async function failoversSection(
  loaded: LoadedConfig,
  now = Date.now(),
): Promise<{ name: string; text: string; data: unknown; reachable: boolean }> {
  const m = loaded.config.backend.metrics!;
  const url = `http://${m.host.includes(':') ? `[${m.host}]` : m.host}:${m.port}${FAILOVERS_PATH}`;
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const body = (await res.json()) as { failovers: FailoverRecord[] };
    return { name: 'failovers', text: formatFailovers(body.failovers, now), data: body.failovers, reachable: true };
  } catch (err) {
    const error = `backend failovers ${url} not reachable: ${(err as Error).message}`;
    return { name: 'failovers', text: `failovers: ${error}\n`, data: { error }, reachable: false };
  }
}

/** Across two clocks a later stage can read earlier: its sign is kept. */
const signed = (d: number) => `${d < 0 ? '' : '+'}${d.toFixed(1)}`;

export function formatFailovers(records: FailoverRecord[], now: number): string {
  if (records.length === 0) return 'failovers: none since the backend started\n';
  const lines = records.slice(0, SHOWN).map((r) => {
    const first = r.stages[0];
    const stages = r.stages.map((s) => `${s.stage} ${s === first ? '0' : signed(s.at - first!.at)} ms`).join(' → ');
    const flush = r.flush === 'failed' ? ' (cache flush failed)' : r.flush === 'pending' ? ' (flushing)' : '';
    return `  site ${r.site} ${r.kind} ${first ? localTime(first.at, now) : '?'}: ${stages}${flush}; ${r.reason}`;
  });
  const more = records.length > SHOWN ? `  ... ${records.length - SHOWN} more (--json)\n` : '';
  return `failovers (newest first; stage times after the first observed):\n${lines.join('\n')}\n${more}`;
}
