import { localTime } from '../shared/local-time.js';

/** The page's HTML pieces: every value from outside goes through `esc` (render.ts says why). */

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function esc(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

export function when(ms: number, now: number): string {
  return `<time datetime="${esc(new Date(ms).toISOString())}">${esc(localTime(ms, now))}</time>`;
}

export function table(head: string[], rows: string[][], empty: string): string {
  if (rows.length === 0) return `<p class="none">${esc(empty)}</p>`;
  const th = head.map((h) => `<th>${esc(h)}</th>`).join('');
  const tr = rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join('')}</tr>`).join('\n');
  return `<table><thead><tr>${th}</tr></thead><tbody>\n${tr}\n</tbody></table>`;
}

export const state = (s: string) => `<span class="st st-${esc(s.replace(/[^a-z-]/g, ''))}">${esc(s)}</span>`;
