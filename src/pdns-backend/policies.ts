import {
  commonBits,
  contains,
  probeBits,
  type ClientNet,
  type ProbeFigures,
  type SiteFigures,
} from '../site-health/index.js';

export type { ProbeFigures, SiteFigures } from '../site-health/index.js';

/**
 * The balancing policies as pure functions: (candidate sites already filtered to the usable ones,
 * the figures the policy reads, the client) → an order, and the ECS scope the order depends on.
 * Nothing here reads a clock, a socket or a random source: the caller passes `now`, the previous
 * order and a query counter, so tests check exact schedules.
 */

export type PolicyName =
  'local-first' | 'failover' | 'round-robin' | 'ratio' | 'least-load' | 'fastest' | 'topology' | 'closest';
export const POLICIES: readonly PolicyName[] = [
  'local-first',
  'failover',
  'round-robin',
  'ratio',
  'least-load',
  'fastest',
  'topology',
  'closest',
];

/**
 * How an answer may be cached:
 * - `none`: a function of site states only; cacheable (scopeMask 0), flushed when it changes.
 * - `metrics`: of site states and site load/response time; cacheable, re-decided with hysteresis.
 * - `per-query`: rotates per query (round-robin, ratio); not cacheable in PowerDNS.
 * - `client`: of the client's address (topology, closest); carries the scope it depends on.
 */
export type Dependence = 'none' | 'metrics' | 'per-query' | 'client';

export function dependenceOf(p: PolicyName): Dependence {
  switch (p) {
    case 'local-first':
    case 'failover':
      return 'none';
    case 'least-load':
    case 'fastest':
      return 'metrics';
    case 'round-robin':
    case 'ratio':
      return 'per-query';
    default:
      return 'client';
  }
}

export interface TopologyEntry {
  net: ClientNet;
  /** Text as configured, for traces. */
  text: string;
  sites: string[];
}

export interface Hysteresis {
  /** A site must be better than the one ahead of it by this fraction of that one's figure... */
  ratio: number;
  /** ...and by at least this much (load units, or ms), to move ahead of it. */
  min: number;
  /** After an order change, figures cannot change it again for this long. */
  holdMs: number;
}

export interface ClosestWeights {
  /** Score = rtt / completion + hops × hopMs (lower is closer). */
  hopMs: number;
  /** Probe results older than this are ignored. */
  maxAgeMs: number;
}

export interface PolicyParams {
  policy: PolicyName;
  weights: ReadonlyMap<string, number>;
  /** Longest prefix first. */
  topology: readonly TopologyEntry[];
  hysteresis: Hysteresis;
  closest: ClosestWeights;
}

export interface PolicyInputs {
  /** Per-site figures (least-load, fastest). */
  figures?(site: string): SiteFigures | undefined;
  /** A site's probe of the client's network (closest). */
  probe?(site: string): ProbeFigures | undefined;
  client?: ClientNet;
  /** The order served now (for hysteresis) and since when. */
  previous?: readonly string[];
  previousSince?: number;
  now?: number;
  /** Per-query position (round-robin, ratio). */
  counter?: number;
  /** When given, each step of the decision is pushed here (explain, debug log). */
  trace?: string[];
  /** A site whose replica lags beyond `replication.max-lag-seconds`: demoted, after every fresh site. */
  stale?(site: string): boolean;
}

export interface PolicyResult {
  sites: string[];
  /** ECS scope the order depends on (0: none). */
  scope: number;
  /** closest: no site has figures for this client yet (the caller schedules a probe). */
  unprobed?: boolean;
}

/**
 * Orders `usable` (already in the name's preference order, dead sites left out) by the policy.
 * Ties keep the preference order.
 */
export function applyPolicy(p: PolicyParams, usable: readonly string[], inp: PolicyInputs): PolicyResult {
  const t = inp.trace;
  switch (p.policy) {
    case 'local-first':
    case 'failover':
      t?.push(`${p.policy}: usable sites in preference order: ${list(usable)}`);
      return { sites: [...usable], scope: 0 };
    case 'round-robin':
      return { sites: roundRobin(usable, inp.counter ?? 0, t), scope: perQueryScope(inp.client) };
    case 'ratio':
      return { sites: ratio(usable, p.weights, inp.counter ?? 0, t), scope: perQueryScope(inp.client) };
    case 'least-load':
      return { sites: byFigure(usable, (s) => inp.figures?.(s)?.load, 'load', '', p.hysteresis, inp), scope: 0 };
    case 'fastest':
      return {
        sites: byFigure(usable, (s) => inp.figures?.(s)?.responseMs, 'response time', ' ms', p.hysteresis, inp),
        scope: 0,
      };
    case 'topology':
      return topology(usable, p.topology, inp.client, t);
    case 'closest':
      return closest(usable, p.closest, inp);
  }
}

/** Round robin: the usable sites rotated by one per query. */
export function roundRobin(usable: readonly string[], counter: number, t?: string[]): string[] {
  if (usable.length === 0) return [];
  const k = counter % usable.length;
  const out = [...usable.slice(k), ...usable.slice(0, k)];
  t?.push(`round-robin: query #${counter} → rotation ${k} of ${usable.length}: ${list(out)}`);
  return out;
}

/**
 * The smooth weighted round-robin sequence (nginx): over sum(weights) queries each site comes
 * first exactly its weight's times, spread out. Weights of 0 never come first; all 0 = equal.
 */
export function smoothSchedule(sites: readonly string[], weights: ReadonlyMap<string, number>): string[] {
  let w = sites.map((s) => Math.max(0, weights.get(s) ?? 1));
  if (w.every((x) => x === 0)) w = sites.map(() => 1);
  const total = w.reduce((a, b) => a + b, 0);
  const current = sites.map(() => 0);
  const out: string[] = [];
  for (let n = 0; n < total; n++) {
    let best = -1;
    for (let i = 0; i < sites.length; i++) {
      current[i]! += w[i]!;
      if (w[i]! > 0 && (best < 0 || current[i]! > current[best]!)) best = i;
    }
    current[best]! -= total;
    out.push(sites[best]!);
  }
  return out;
}

/** Ratio: the site the weighted schedule picks for this query first, the others in preference order. */
export function ratio(
  usable: readonly string[],
  weights: ReadonlyMap<string, number>,
  counter: number,
  t?: string[],
  schedule = smoothSchedule(usable, weights),
): string[] {
  if (usable.length === 0) return [];
  const first = schedule[counter % schedule.length]!;
  const out = [first, ...usable.filter((s) => s !== first)];
  t?.push(
    `ratio: weights ${usable.map((s) => `${s}=${weights.get(s) ?? 1}`).join(', ')}; query #${counter} is slot ${counter % schedule.length} of ${schedule.length} → ${first} first: ${list(out)}`,
  );
  return out;
}

/**
 * least-load / fastest: lower figure first; sites without a figure after those with one. With
 * hysteresis: start from the order served now and let a site pass the one ahead of it only when
 * it is better by more than max(ratio × that one's figure, min); and not at all within holdMs of
 * the last change. Dead sites are already out and new sites join by their figure.
 */
export function byFigure(
  usable: readonly string[],
  fig: (s: string) => number | undefined,
  what: string,
  unit: string,
  h: Hysteresis,
  inp: Pick<PolicyInputs, 'previous' | 'previousSince' | 'now' | 'trace'>,
): string[] {
  const t = inp.trace;
  t?.push(
    `${what}: ${usable.map((s) => `${s}=${fig(s) === undefined ? 'unknown' : `${round(fig(s)!)}${unit}`}`).join(', ')}`,
  );
  const pref = (s: string) => usable.indexOf(s);
  const key = (s: string) => fig(s) ?? Infinity;
  const fresh = [...usable].sort((a, b) => key(a) - key(b) || pref(a) - pref(b));
  const prev = inp.previous?.filter((s) => usable.includes(s));
  if (!prev || prev.length === 0) {
    t?.push(`no previous order: by ${what}, ties in preference order: ${list(fresh)}`);
    return fresh;
  }
  // The previous order, with sites that were not in it placed by their figure.
  const start = [...prev];
  for (const s of fresh) if (!start.includes(s)) insertBy(start, s, key, pref);
  const held = inp.now !== undefined && inp.previousSince !== undefined && inp.now - inp.previousSince < h.holdMs;
  if (held) {
    t?.push(
      `hold: the order changed ${inp.now! - inp.previousSince!} ms ago (< hold ${h.holdMs} ms): keep ${list(start)}`,
    );
    return start;
  }
  // Insertion sort with a sticky comparator: b passes a only when clearly better.
  const out: string[] = [];
  for (const s of start) {
    let i = out.length;
    while (i > 0 && passes(key(s), key(out[i - 1]!), h)) i--;
    out.splice(i, 0, s);
  }
  const moved = out.join() !== start.join();
  t?.push(
    moved
      ? `hysteresis (ratio ${h.ratio}, min ${h.min}${unit}): reordered ${list(start)} → ${list(out)}`
      : `hysteresis (ratio ${h.ratio}, min ${h.min}${unit}): no site better by the margin; keep ${list(out)}`,
  );
  return out;
}

function passes(challenger: number, ahead: number, h: Hysteresis): boolean {
  if (challenger === Infinity) return false;
  if (ahead === Infinity) return true;
  return ahead - challenger > Math.max(h.ratio * ahead, h.min);
}

/** Before the first site with a worse figure, or an equal one (unknown included) later in preference. */
function insertBy(arr: string[], s: string, key: (s: string) => number, pref: (s: string) => number): void {
  const i = arr.findIndex((x) => key(x) > key(s) || (key(x) === key(s) && pref(x) > pref(s)));
  if (i < 0) arr.push(s);
  else arr.splice(i, 0, s);
}

/**
 * topology: the longest configured prefix containing the client wins; its sites (the usable ones)
 * come first in its order, the other usable sites after in preference order. The scope is the
 * fewest leading bits that fix the answer: the winning prefix's length, and one bit more than the
 * client shares with any other entry it is not in (so no more specific entry hides inside).
 */
export function topology(
  usable: readonly string[],
  entries: readonly TopologyEntry[],
  client: ClientNet | undefined,
  t?: string[],
): PolicyResult {
  if (!client) {
    t?.push('topology: no client address; preference order');
    return { sites: [...usable], scope: 0 };
  }
  let win: TopologyEntry | undefined;
  let scope = 0;
  for (const e of entries) {
    if (e.net.family !== client.family) continue;
    if (contains(e.net, client)) {
      if (!win) win = e; // entries are sorted longest first
    } else {
      scope = Math.max(scope, Math.min(commonBits(e.net, client) + 1, e.net.bits));
    }
  }
  if (win) scope = Math.max(scope, win.net.bits);
  if (scope === 0) scope = client.bits > 0 ? Math.min(client.bits, client.family === 4 ? 32 : 128) : 0;
  if (!win) {
    t?.push(`topology: no entry contains the client; preference order: ${list(usable)} (scope /${scope})`);
    return { sites: [...usable], scope };
  }
  const first = win.sites.filter((s) => usable.includes(s));
  const out = [...first, ...usable.filter((s) => !first.includes(s))];
  t?.push(`topology: longest match ${win.text} → ${list(win.sites)}; usable: ${list(out)} (scope /${scope})`);
  return { sites: out, scope };
}

/**
 * closest: by the probes from each site to the client's /24 or /48: score = rtt / completion +
 * hops × hopMs; sites without a fresh result after those with one; nobody probed → preference
 * order (and `unprobed`, so the caller schedules probes; never waits for them).
 */
export function closest(usable: readonly string[], w: ClosestWeights, inp: PolicyInputs): PolicyResult {
  const t = inp.trace;
  if (!inp.client) {
    t?.push('closest: no client address; preference order');
    return { sites: [...usable], scope: 0 };
  }
  const scope = probeBits(inp.client);
  const now = inp.now ?? 0;
  const scores = new Map<string, number>();
  for (const s of usable) {
    const p = inp.probe?.(s);
    if (!p || now - p.at > w.maxAgeMs) {
      t?.push(`closest: ${s}: ${p ? `probe ${now - p.at} ms old (max ${w.maxAgeMs})` : 'not probed'}`);
      continue;
    }
    const score = p.completion <= 0 ? Infinity : p.rttMs / p.completion + (p.hops ?? 0) * w.hopMs;
    scores.set(s, score);
    t?.push(
      `closest: ${s}: rtt ${round(p.rttMs)} ms, completion ${round(p.completion * 100)}%, hops ${p.hops ?? '?'} (${p.method}) → score ${round(score)}`,
    );
  }
  if (scores.size === 0) {
    t?.push(`closest: no probe results for this client yet; preference order: ${list(usable)}`);
    return { sites: [...usable], scope, unprobed: true };
  }
  const key = (s: string) => scores.get(s) ?? Infinity;
  const out = [...usable].sort((a, b) => key(a) - key(b) || usable.indexOf(a) - usable.indexOf(b));
  t?.push(`closest: lowest score first: ${list(out)} (scope /${scope})`);
  return { sites: out, scope };
}

/** Per-query answers must not be cached by PowerDNS: they carry the client's source prefix as scope. */
function perQueryScope(client: ClientNet | undefined): number {
  if (!client) return 32;
  return Math.max(1, client.bits);
}

function list(s: readonly string[]): string {
  return s.length ? `[${s.join(', ')}]` : '[]';
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}
