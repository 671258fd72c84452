import { parseCsv } from './csv.js';
import type { RuntimeTransport } from './transport.js';

/** `type` column of `show stat`. */
export type StatType = 'frontend' | 'backend' | 'server' | 'listener';
const TYPES: Record<string, StatType> = { '0': 'frontend', '1': 'backend', '2': 'server', '3': 'listener' };

/** One row of `show stat`, typed for what multisite uses; `fields` keeps every column by name. */
export interface StatRow {
  proxy: string;
  name: string;
  type: StatType;
  /** "UP", "DOWN", "DRAIN", "MAINT", "MAINT (via w/x)", "NOLB", "UP 1/3", "DOWN 1/2", "no check", "OPEN", ... */
  status: string;
  /** Effective weight (0 while drained). */
  weight: number;
  currentSessions: number;
  /** Last agent-check output (HAProxy's `last_agt`), e.g. "down (keyword 'db1' not found in /dbcheck)". */
  lastAgent: string;
  /** Last health check output (`last_chk`). */
  lastCheck: string;
  fields: Record<string, string>;
}

/** Which rows to ask for: all proxies, or one proxy; all types, or servers only (`show stat B 4 -1`). */
export interface StatFilter {
  proxy?: string;
  serversOnly?: boolean;
}

export async function showStat(transport: RuntimeTransport, filter: StatFilter = {}): Promise<StatRow[]> {
  const command =
    filter.proxy !== undefined || filter.serversOnly
      ? `show stat ${filter.proxy ?? '-1'} ${filter.serversOnly ? 4 : -1} -1`
      : 'show stat';
  const text = await transport.send(command);
  return parseCsv(text, command, transport.socket).map(toStatRow);
}

export function toStatRow(f: Record<string, string>): StatRow {
  const num = (k: string) => (f[k] === undefined || f[k] === '' ? 0 : Number(f[k]));
  return {
    proxy: f.pxname ?? '',
    name: f.svname ?? '',
    type: TYPES[f.type ?? ''] ?? 'server',
    status: f.status ?? '',
    weight: num('weight'),
    currentSessions: num('scur'),
    lastAgent: f.last_agt ?? '',
    lastCheck: f.last_chk ?? '',
    fields: f,
  };
}

/**
 * Whether a server takes new traffic, as `show stat` says it: up (or going down but still up,
 * "UP 1/3"), or without checks ("no check"); not drained, not in maintenance, not NOLB; weight > 0.
 */
export function isUsable(row: StatRow): boolean {
  const s = row.status.toUpperCase();
  const up = s === 'UP' || s.startsWith('UP ') || s === 'NO CHECK';
  return up && row.weight > 0;
}
