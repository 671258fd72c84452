/**
 * The agent's answer to HAProxy: one line ending in "\n" (HAProxy 2.6 src/tcpcheck.c,
 * tcpcheck_agent_expect_reply). Words are separated by spaces, tabs or commas:
 *   - health: `up`, `down`, `stopped`, `fail`;
 *   - admin: `ready`, `drain`, `maint` (applied like the CLI, so sent only on an operator's drain);
 *   - weight: `75%` of the server's configured weight;
 *   - `#` at the start of a word begins the description, the rest of the line. A `#` inside a word
 *     does not: `down#why` is one unknown word, and the server stays UP. So: `down #why`.
 */
export interface ReplyState {
  /** undefined: no check result yet (the reply says nothing, and HAProxy changes nothing). */
  up: boolean | undefined;
  /** Why it is down (shown by HAProxy as "via agent : down (WHY)"). */
  reason?: string;
  /** Percentage of the configured weight, from the load check, while up. */
  weightPercent?: number;
  /** Operator's drain, or `ready` once after an undrain. */
  admin?: 'drain' | 'ready';
}

/** HAProxy reads up to the first CR/LF into a 16 kB buffer; keep reasons short and on one line. */
export const MAX_REASON_CHARS = 200;

export function sanitizeReason(reason: string): string {
  const clean = reason
    .replace(/[^\x20-\x7e]+/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  return clean.length > MAX_REASON_CHARS ? `${clean.slice(0, MAX_REASON_CHARS - 3)}...` : clean;
}

export function formatReply(state: ReplyState): string {
  const words: string[] = [];
  if (state.admin) words.push(state.admin);
  if (state.up === true) {
    words.push('up');
    if (state.weightPercent !== undefined)
      words.push(`${Math.max(0, Math.min(100, Math.round(state.weightPercent)))}%`);
  } else if (state.up === false) {
    words.push('down');
    const why = sanitizeReason(state.reason ?? '');
    if (why !== '') words.push(`#${why}`);
  }
  return `${words.join(' ')}\n`;
}

/** The load→weight formula: 100% when idle, falling linearly to `floor` at `capacity` and beyond. */
export function loadToWeight(load: number, capacity: number, floor: number): number {
  if (!Number.isFinite(load) || load <= 0) return 100;
  const w = 100 - (100 - floor) * Math.min(1, load / capacity);
  return Math.max(floor, Math.min(100, Math.round(w)));
}
