import type { Explanation } from '../pdns-backend/index.js';
import type { LoadBalancerView } from '../site-health/index.js';
import { ago, localTime } from '../shared/local-time.js';
import { esc, state, table, when } from './html.js';
import { CLIENT_SCRIPT, STYLE } from './assets.js';
import { failoversPart } from './failovers.js';
import type { Model } from './model.js';

export { esc } from './html.js';

/**
 * Server-rendered HTML. Every value that comes from the config, the network or the request goes
 * through `esc` (a zone, server or site name may hold `<script>`); the only unescaped strings are
 * this file's own markup and assets.ts.
 */

export function sitesBody(m: Model): string {
  const rows = m.sites.map((s) => [
    `<span class="name" data-site="${esc(s.site)}">${esc(s.site)}</span>` +
      (s.local ? ' <small>(this site)</small>' : ''),
    state(s.state),
    when(s.since, m.now),
    esc(s.why),
    s.lastHeartbeat !== undefined ? esc(ago(m.now - s.lastHeartbeat)) : s.local ? '' : '-',
  ]);
  return table(['site', 'state', 'since', 'why', 'last heartbeat'], rows, 'no sites');
}

function lbRows(v: LoadBalancerView): string[][] {
  if (v.error) return [[esc(v.socket), '-', state('down'), esc(v.error), '']];
  return (v.servers ?? []).map((s) => [
    esc(v.socket),
    `<span class="name" data-server="${esc(s.name)}">${esc(s.name)}</span>`,
    state(s.usable ? 'up' : s.status.toLowerCase().startsWith('drain') ? 'draining' : 'down'),
    esc(s.status + (s.weight === 0 ? ' (weight 0)' : ` (weight ${s.weight})`)),
    esc(s.agent || '-'),
  ]);
}

export function poolsBody(m: Model): string {
  const local = m.pool
    ? table(
        ['load balancer', 'server', 'usable', 'HAProxy state', 'agent verdict'],
        m.pool.flatMap(lbRows),
        'no reads yet',
      )
    : `<p class="none">this backend does not read the local pool (no <code>health:</code> section)</p>`;
  const peers = m.peers
    .filter((p) => p.summary?.pool)
    .map((p) => [
      esc(p.site),
      state(p.summary!.pool === 'up' ? 'up' : p.summary!.pool === 'down' ? 'down' : 'unknown'),
      p.summary!.usable !== undefined ? esc(`${p.summary!.usable} of ${p.summary!.servers ?? '?'} usable`) : '-',
    ]);
  const peerTable = table(['site', 'pool', 'servers (as its heartbeat says)'], peers, 'no pool reports from peers');
  return `<h3>${esc(m.site)} (this site)</h3>${local}<h3>other sites</h3>${peerTable}`;
}

export function answersBody(m: Model): string {
  const rows = m.answers.map((a) => [
    `<span class="name">${esc(a.name)}</span>`,
    a.sites.length ? a.sites.map((s, i) => `${i + 1}. ${esc(s)}`).join(' ') : '<em>(none: fallback)</em>',
  ]);
  const more = m.moreNames ? `<p class="none">and ${m.moreNames} more (status-page.max-names)</p>` : '';
  return table(['balanced name', `answer from ${m.site} (sites in order)`], rows, 'no balanced names') + more;
}

export function replicationBody(m: Model): string {
  const rows = m.replication.map((r) => [
    esc(r.site),
    r.lagMs === undefined ? 'unknown' : esc(`${(r.lagMs / 1000).toFixed(1)} s`),
    r.stale ? state('lagging') : 'no',
  ]);
  const lag = table(['site', 'replica lag', 'demoted for lag'], rows, 'no sites');
  if (!m.inbound)
    return (
      lag +
      '<p class="none">pending changes and conflicts: not read by this backend (replication with PostgreSQL ' +
      'databases configured here), or not yet; <code>multisite status</code> shows them</p>'
    );
  return `${lag}<h3>into ${esc(m.site)}'s database</h3>${inboundTable(m)}<h3>recent conflicts</h3>${conflictsTable(m)}`;
}

function inboundTable(m: Model): string {
  const rows = m.inbound!.peers.map((p) => [
    `<span class="name" data-peer="${esc(p.peer)}">${esc(p.peer)}</span>`,
    `<span class="pending">${esc(p.pending ?? '?')}</span>`,
    p.lagSeconds === null ? '?' : esc(`${p.lagSeconds.toFixed(1)} s`),
    esc(p.conflicts),
    esc(p.updatedAt ?? 'never'),
    p.error ? `<span class="err">${esc(p.error)}</span>` : '',
  ]);
  const head = ['from', 'pending changes', 'oldest pending', 'conflicts logged', 'last batch applied', 'error'];
  return table(head, rows, 'no peers');
}

/** Row versions are JSON of any size: the page shows their start (the conflict log keeps them whole). */
const short = (v: string | null | undefined) =>
  v === undefined ? '-' : v === null ? '(deleted)' : v.length > 160 ? `${v.slice(0, 160)}…` : v;

function conflictsTable(m: Model): string {
  const rows = m.inbound!.recentConflicts.map((c) => [
    esc(c.at),
    esc(c.kind),
    esc(`${c.tbl} ${c.pk}`) + (c.columns ? ` <small>[${esc(c.columns.join(', '))}]</small>` : ''),
    `<span class="winner">${esc(c.winnerSite ?? '-')}</span> <code>${esc(short(c.winner))}</code>`,
    `<span class="loser">${esc(c.loserSite ?? '-')}</span> <code>${esc(short(c.loser))}</code>`,
    esc(c.reason),
  ]);
  const head = ['when', 'kind', 'row', 'winner (site, version)', 'loser (site, version)', 'why'];
  return table(head, rows, 'no conflicts logged');
}

export function partitionsBody(m: Model): string {
  if (!m.partitions) return `<p class="none">no <code>partitions:</code> configured</p>`;
  const rows = m.partitions.map((p) => [
    esc(p.partition),
    esc(p.active) + (p.active === m.site ? ' <small>(here)</small>' : ''),
    esc(p.home),
    esc(p.epoch),
    when(p.since, m.now),
    esc(p.reason),
  ]);
  return table(['partition', 'served from (owner)', 'home', 'epoch', 'since', 'why'], rows, 'no partitions');
}

export function timelineBody(m: Model): string {
  return `${failoversPart(m)}<h3>state changes</h3>${changesTable(m)}`;
}

function changesTable(m: Model): string {
  const rows = m.timeline.map((e) => [
    when(e.at, m.now),
    esc(e.subject),
    state(e.to.split(' ')[0]!) + (e.to.includes(' ') ? ` ${esc(e.to.slice(e.to.indexOf(' ') + 1))}` : ''),
    e.lastedMs === undefined ? '' : esc(`${(e.lastedMs / 1000).toFixed(1)} s`),
    esc(e.reason),
  ]);
  return table(['when', 'what', 'became', 'after (previous state lasted)', 'why'], rows, 'no changes since start');
}

/** The sections SSE updates replace (id → inner HTML). */
export function liveSections(m: Model): Record<string, string> {
  return {
    'sites-body': sitesBody(m),
    'pools-body': poolsBody(m),
    'answers-body': answersBody(m),
    'replication-body': replicationBody(m),
    'partitions-body': partitionsBody(m),
    'timeline-body': timelineBody(m),
    updated: esc(localTime(m.now, m.now).replace(/ \(.*\)$/, '')),
  };
}

export interface ExplainView {
  name: string;
  client: string;
  result?: Explanation[];
  error?: string;
}

function explainTable(e: Explanation): string {
  const fallback = e.answer.fallback ? ` fallback ${esc(e.answer.fallback)}` : '';
  const head = `<p><b>${esc(e.name)}</b> policy ${esc(e.policy)} for ${esc(e.client ?? '-')}: answer ${esc(
    [...e.answer.a, ...e.answer.aaaa].join(' ') || '(none)',
  )} sites [${esc(e.answer.sites.join(', '))}] scope /${esc(e.answer.scope)}${fallback}</p>`;
  const rows = e.sites.map((s) => [
    esc(s.site),
    state(s.usable ? 'up' : 'down'),
    esc(s.load?.toFixed(2) ?? '-'),
    esc(s.responseMs?.toFixed(1) ?? '-'),
    esc(s.probe ? `${s.probe.network} rtt ${s.probe.rttMs.toFixed(2)} ms (${s.probe.method})` : '-'),
    esc(s.usable ? '' : s.reason),
  ]);
  const steps = `<ol>${e.steps.map((s) => `<li>${esc(s)}</li>`).join('')}</ol>`;
  return head + table(['site', 'state', 'load', 'resp ms', 'probe', 'why'], rows, '') + steps;
}

function explainSection(m: Model, x: ExplainView): string {
  const options = [`<option value="">every name</option>`]
    .concat(m.answers.map((a) => `<option${a.name === x.name ? ' selected' : ''}>${esc(a.name)}</option>`))
    .join('');
  const form = `<form method="get" action="/status-page#explain">
<label>name <select name="name">${options}</select></label>
<label>client address or subnet
<input name="client" value="${esc(x.client)}" placeholder="198.51.100.7 or 198.51.100.0/24" required></label>
<button>explain</button></form>`;
  const out = x.error ? `<p class="err">${esc(x.error)}</p>` : (x.result ?? []).map(explainTable).join('');
  return `<section id="explain"><h2>Explain an answer</h2>${form}<div id="explain-body">${out}</div></section>`;
}

function actionForm(id: string, label: string, field: string, names: string[], note: string): string {
  const options = names.map((n) => `<option>${esc(n)}</option>`).join('');
  return `<form id="${id}" class="act" method="post" action="/status-page/action">
<label>${label} <select name="${field}">${options}</select></label>
<label>API key <input type="password" name="key" autocomplete="off" required></label>
<noscript><label><input type="checkbox" name="confirm" value="yes" required> I mean it</label></noscript>
<button name="action" value="drain">drain</button> <button name="action" value="undrain">undrain</button>
</form><p class="none">${note}</p>`;
}

function actionsSection(m: Model, enabled: boolean, servers: readonly string[]): string {
  if (!enabled)
    return (
      '<section id="actions"><h2>Actions</h2><p class="none">read-only: set <code>status-page.api-key-file</code>' +
      ' to drain and undrain from here</p></section>'
    );
  const sites = m.sites.map((s) => s.site);
  const siteForm = actionForm(
    'act',
    'site',
    'site',
    sites,
    "drains this site's answers only, like <code>multisite site drain SITE</code>",
  );
  const serverForm = servers.length
    ? actionForm(
        'act-server',
        'server',
        'server',
        [...servers],
        'the agent answers HAProxy <code>drain</code> at its next check, like <code>multisite agent drain SERVER</code>',
      )
    : '<p class="none">no servers to drain here: the agent is not in this config (<code>agent:</code>)</p>';
  return `<section id="actions"><h2>Actions</h2>${siteForm}${serverForm}</section>`;
}

export interface PageOptions {
  actions: boolean;
  /** Servers the page can drain (through the agent). */
  servers: readonly string[];
  explain: ExplainView;
  notice?: string;
}

export function page(m: Model, o: PageOptions): string {
  const live = liveSections(m);
  const section = (id: string, title: string) =>
    `<section id="${id}"><h2>${title}</h2><div id="${id}-body">${live[`${id}-body`]}</div></section>`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>multisite: ${esc(m.site)}</title><style>${STYLE}</style></head>
<body data-updates="0"><header><h1>multisite: site ${esc(m.site)}</h1>
<p>as of <span id="updated">${live.updated}</span> <span id="live">(reload for newer state)</span></p></header>
${o.notice ? `<p class="notice">${esc(o.notice)}</p>` : ''}
${section('sites', 'Sites')}
${section('pools', 'Pools')}
${section('answers', 'Answers')}
${explainSection(m, o.explain)}
${section('replication', 'Replication')}
${section('partitions', 'Partitions')}
${section('timeline', 'Timeline')}
${actionsSection(m, o.actions, o.servers)}
<script>${CLIENT_SCRIPT}</script></body></html>
`;
}
