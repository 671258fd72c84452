import { readdirSync, readFileSync } from 'node:fs';

/** The soft open-file limit (RLIMIT_NOFILE) of this process, from /proc/self/limits; undefined elsewhere. */
export function openFileLimit(limitsText?: string): number | undefined {
  let text = limitsText;
  try {
    text ??= readFileSync('/proc/self/limits', 'utf8');
  } catch {
    return undefined;
  }
  const m = /^Max open files\s+(\S+)/m.exec(text);
  if (!m || m[1] === 'unlimited') return undefined;
  const n = Number(m[1]);
  return Number.isInteger(n) && n > 0 ? n : undefined;
}

/** Descriptors open now (stdio, the event loop's own, the log...), from /proc/self/fd. */
export function openFdCount(): number | undefined {
  try {
    return readdirSync('/proc/self/fd').length;
  } catch {
    return undefined;
  }
}

export interface CapInput {
  /** agent.max-connections. */
  configured: number | 'auto';
  /** Check runs that may be in flight at once (each holds one socket). */
  checks: number;
  /** Runtime API connections that may be open at once (pushes, load-report readings). */
  runtimeApi: number;
  limit: number | undefined;
  openNow: number | undefined;
}

export interface Cap {
  maxConnections: number;
  /** Set when the configured number was lowered to fit the open-file limit. */
  lowered?: { from: number; limit: number };
  reserve: number;
}

/** Used when the open-file limit cannot be read (not Linux): the previous fixed default. */
const FALLBACK = 20_000;
/** For the metrics and control sockets' clients, DNS, the state file, and some slack. */
const SLACK = 64;

/**
 * How many agent connections may be open at once: what the open-file limit leaves after the
 * descriptors the process needs for everything else. A client flood then fills the agent's own
 * quota and is refused there, instead of starving the checks (a check that cannot open a socket
 * would otherwise be taken for a dead server).
 */
export function connectionCap(i: CapInput): Cap {
  // Each check socket can linger while it closes: count two per check.
  const reserve = (i.openNow ?? 32) + 2 * i.checks + i.runtimeApi + SLACK;
  if (i.limit === undefined) return { maxConnections: i.configured === 'auto' ? FALLBACK : i.configured, reserve };
  const fits = Math.max(1, i.limit - reserve);
  if (i.configured === 'auto') return { maxConnections: fits, reserve };
  if (i.configured <= fits) return { maxConnections: i.configured, reserve };
  return { maxConnections: fits, lowered: { from: i.configured, limit: i.limit }, reserve };
}
