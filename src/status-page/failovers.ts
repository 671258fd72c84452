import type { FailoverRecord, Stage, StageTime } from '../pdns-backend/index.js';
import { FAILOVERS_SHOWN, type Model } from './model.js';
import { esc, state, table, when } from './html.js';

/**
 * The Timeline's failovers and recoveries: each with the stages the backend observed, as times
 * after the first of them (docs/status-page.md says which clock each stage uses). A stage that was
 * not observed is not shown; nothing is estimated.
 */

const LABELS: Record<Stage, string> = {
  verdict: "agent's verdict",
  check: 'check began',
  haproxy: 'HAProxy changed state',
  informed: 'backend informed',
  state: 'site state changed',
  orderings: 'answers recomputed',
  flushed: 'caches flushed',
};

const CLOCKS: Record<StageTime['clock'], string> = {
  haproxy: "HAProxy's clock (its log timestamp)",
  backend: "the backend's clock",
};

/** 0.42 ms, 12.3 ms, 1,234 ms: the digits each range can honestly show. */
function ms(value: number): string {
  const abs = Math.abs(value);
  const digits = abs < 10 ? 2 : abs < 100 ? 1 : 0;
  return `${value.toLocaleString('en', { minimumFractionDigits: digits, maximumFractionDigits: digits })} ms`;
}

/** Across two clocks a later stage can read earlier: shown as it is, with its sign. */
const offset = (d: number) => `${d < 0 ? '−' : '+'}${ms(Math.abs(d))}`;

function stages(r: FailoverRecord): string {
  const first = r.stages[0];
  if (!first) return '';
  return r.stages
    .map(
      (s) =>
        `<span class="stage" data-stage="${esc(s.stage)}" title="${esc(CLOCKS[s.clock])}">` +
        `${esc(LABELS[s.stage])} ${esc(s === first ? '0 ms' : offset(s.at - first.at))}</span>`,
    )
    .join(' → ');
}

function flushNote(r: FailoverRecord): string {
  if (r.names === 0) return 'no answer changed';
  const names = `${r.names} name${r.names === 1 ? '' : 's'}`;
  if (r.flush === 'pending') return `${names}; flush in progress`;
  if (r.flush === 'failed') return `${names}; cache flush failed (old answers until their TTL)`;
  if (r.flush === 'off') return `${names}; not flushed (no pdns: section)`;
  return names;
}

function row(r: FailoverRecord, now: number): string[] {
  const first = r.stages[0];
  const last = r.stages[r.stages.length - 1];
  return [
    first ? when(first.at, now) : '',
    `<span class="name" data-failover="${esc(r.kind)}" data-site="${esc(r.site)}">site ${esc(r.site)}</span>`,
    `${state(r.kind === 'failover' ? 'down' : 'up')} ${esc(r.kind)}`,
    `<span class="stages">${stages(r)}</span>`,
    first && last && last !== first ? esc(ms(last.at - first.at)) : '',
    esc(flushNote(r)),
    esc(r.reason) + (r.trigger ? `<br><small>HAProxy: ${esc(r.trigger)}</small>` : ''),
  ];
}

export function failoversPart(m: Model): string {
  if (!m.failovers) return '';
  const rows = m.failovers.map((r) => row(r, m.now));
  const head = ['when', 'what', 'became', 'stages (after the first observed)', 'total', 'answers', 'why'];
  const more =
    m.failovers.length >= FAILOVERS_SHOWN
      ? `<p class="none">the newest ${FAILOVERS_SHOWN}; <code>GET /failovers</code> has every one kept</p>`
      : '';
  return `<h3>failovers and recoveries</h3>${table(head, rows, 'none since start')}${more}`;
}
