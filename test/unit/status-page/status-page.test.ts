import { EventEmitter } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { preflight } from '../../../src/cli/preflight.js';
import { ConfigErrors, loadConfig, parseConfig, statusPageKey } from '../../../src/config/index.js';
import { FailoverLog, type BalancedName, type Orderings } from '../../../src/pdns-backend/index.js';
import { SiteStateTable } from '../../../src/site-health/index.js';
import { createStatusPage, statusPageFor, type StatusPage } from '../../../src/status-page/index.js';
import { createLogger } from '../../../src/shared/log.js';
import { VirtualTimers } from '../haproxy-agent/virtual-timers.js';

/** The status page with fakes: escaping, coalesced live updates, the actions' key. */

const KEY = Buffer.from('unit-test-status-page-key');
const EVIL = '<script>window.x=1</script>';
const logger = createLogger('test', 'silent');

/** Orderings as the page reads them: names, each one's shared decision, change events. */
function fakeOrderings(table: SiteStateTable, names: string[]): Orderings {
  const o = new EventEmitter() as unknown as Record<string, unknown>;
  o.names = names.map((name) => ({ name, dependence: 'none' }));
  o.table = table;
  o.sharedDecision = () => ({ sites: table.sites.filter((s) => table.isUsable(s)) });
  return o as unknown as Orderings;
}

/** Pending changes and one conflict, with markup in every name and value the replicator recorded. */
const REPLICATION = {
  peers: [{ peer: 'b', pending: 3, lagSeconds: 1.5, conflicts: 1, updatedAt: '2026-01-01T00:00:00.000+00' }],
  recentConflicts: [
    {
      at: '2026-01-01T00:00:00.000+00',
      peer: 'b',
      tbl: `public.${EVIL}`,
      pk: '{"id": 7}',
      kind: 'update-update',
      columns: ['v'],
      winnerSite: 'b',
      loserSite: 'a',
      winner: `{"v": "${EVIL}"}`,
      loser: `{"v": "${'x'.repeat(500)}"}`,
      reason: 'the latest clock kept b',
    },
  ],
};

/**
 * The backend's failover log on the table, as the site wires it: the recompute (the fake orderings
 * emit nothing) is told from a listener between the log's first and last, and its flush waits.
 */
function failoverLog(table: SiteStateTable) {
  const clock = { t: Date.UTC(2026, 0, 1) };
  const log = new FailoverLog({ clock: () => clock.t });
  const flushes: ((ok: boolean) => void)[] = [];
  table.on('change', () => {
    clock.t += 0.25;
    log.recomputed(['www.example.com.'], () => new Promise((r) => flushes.push(r)));
  });
  log.attach(table);
  return { log, clock, flushes };
}

function setup(opts: { key?: Buffer; timers?: VirtualTimers; agentFails?: boolean } = {}) {
  const table = new SiteStateTable(['a', 'b']);
  const failovers = failoverLog(table);
  const drains: [string, boolean][] = [];
  const serverDrains: [string, boolean][] = [];
  const poolListeners: (() => void)[] = [];
  const page = createStatusPage(
    { enabled: true, 'timeline-size': 50, 'coalesce-ms': 100, 'max-clients': 4, 'max-names': 200 },
    opts.key,
    {
      site: 'a',
      table,
      orderings: fakeOrderings(table, [`${EVIL}.example.com.`, 'www.example.com.']),
      balanced: [] as BalancedName[],
      pool: () => [
        {
          socket: '/run/lb1.sock',
          usable: 0,
          total: 1,
          unusable: [],
          servers: [{ name: EVIL, status: 'DOWN', weight: 0, usable: false, agent: `down #${EVIL}`, check: '' }],
        },
      ],
      drain: (site, drained) => (drains.push([site, drained]), table.setDrained(site, drained)),
      servers: ['web/w1', EVIL],
      drainServer: async (server, drained) => {
        if (opts.agentFails) throw new Error('agent: cannot connect to /run/agent.sock (ECONNREFUSED)');
        serverDrains.push([server, drained]);
        return true;
      },
      onPoolChange: (fn) => poolListeners.push(fn),
      replicationFigures: () => REPLICATION,
      failovers: failovers.log,
      logger,
      ...(opts.timers ? { timers: opts.timers } : {}),
    },
  );
  return { table, page, drains, serverDrains, failovers, poolChanged: () => poolListeners.forEach((f) => f()) };
}

let server: Server | undefined;
let stopPage: StatusPage | undefined;
afterEach(async () => {
  stopPage?.stop();
  if (server) await new Promise((r) => server!.close(r));
  server = stopPage = undefined;
});

async function serve(page: StatusPage): Promise<string> {
  stopPage = page;
  server = createServer((req, res) => void page.routes.some((r) => r(req, res)));
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe('status page rendering', () => {
  it('shows names from the config, HAProxy and the agent as text', async () => {
    const base = await serve(setup().page);
    const res = await fetch(`${base}/status-page`);
    const html = await res.text();
    expect(html).not.toContain(EVIL);
    expect(html).toContain('&lt;script&gt;window.x=1&lt;/script&gt;.example.com.');
    expect(html).toContain('down #&lt;script&gt;');
    expect(res.headers.get('content-security-policy')).toMatch(/script-src 'sha256-/);
    expect(html.match(/<script>/g)).toHaveLength(1);
  });

  it('shows pending changes and the recent conflicts with winner and loser, escaped and shortened', async () => {
    const html = await (await fetch(`${await serve(setup({ key: KEY }).page)}/status-page`)).text();
    const replication = html.slice(
      html.indexOf('<section id="replication">'),
      html.indexOf('<section id="partitions">'),
    );
    expect(replication).toContain('<span class="pending">3</span>');
    expect(replication).toContain('public.&lt;script&gt;');
    expect(replication).toContain('<span class="winner">b</span> <code>{&quot;v&quot;: &quot;&lt;script&gt;');
    expect(replication).toContain('<span class="loser">a</span>');
    expect(replication).toContain(`${'x'.repeat(150)}`);
    expect(replication).not.toContain('x'.repeat(200));
    expect(replication).not.toContain(EVIL);
    // The server form lists the agent's servers, escaped.
    expect(html).toContain('<form id="act-server"');
    expect(html).toContain('<option>&lt;script&gt;window.x=1&lt;/script&gt;</option>');
  });
});

describe('the Timeline: failovers and recoveries with their stage times', () => {
  it('lists each with the stages observed, after the first, escaped; with JavaScript off too', async () => {
    const { table, page, failovers } = setup();
    const cause = { message: `Server web/${EVIL} is DOWN, check duration: 2ms`, events: 1 };
    const t0 = failovers.clock.t;
    failovers.log.withCause('a', { ...cause, loggedAt: t0 - 10.5, checkMs: 2, receivedAt: t0 - 3 }, () =>
      table.setHealth('a', 'pool', false, `pool web: ${EVIL} DOWN`),
    );
    table.setHealth('b', 'peer', false, 'heartbeats missed, probe failed');
    failovers.clock.t += 40;
    failovers.flushes[0]!(true);
    await new Promise((r) => setImmediate(r));
    const html = await (await fetch(`${await serve(page)}/status-page`)).text();
    const timeline = html.slice(html.indexOf('<section id="timeline">'), html.indexOf('<section id="actions">'));
    expect(timeline).not.toContain(EVIL);
    expect(timeline).toContain('Server web/&lt;script&gt;');
    const rows = timeline.split('<tr>').filter((r) => r.includes('data-failover'));
    expect(rows).toHaveLength(2);
    const stages = (row: string) =>
      [...row.matchAll(/data-stage="([a-z]+)"[^>]*>([^<]*)</g)].map((m) => `${m[1]}: ${m[2]}`);
    expect(stages(rows[0]!)).toEqual(['state: site state changed 0 ms', 'orderings: answers recomputed +0.25 ms']);
    expect(rows[0]).toContain('flush in progress');
    expect(stages(rows[1]!)).toEqual([
      'check: check began 0 ms',
      'haproxy: HAProxy changed state +2.00 ms',
      'informed: backend informed +9.50 ms',
      'state: site state changed +12.5 ms',
      'orderings: answers recomputed +12.8 ms',
      'flushed: caches flushed +53.0 ms', // the clock moved on for b's change too
    ]);
    expect(rows[1]).toContain('data-site="a"');
    expect(rows[1]).toContain('title="HAProxy&#39;s clock (its log timestamp)"');
  });

  it("pushes a failover's flush to open pages when PowerDNS acknowledges it, after the state change", async () => {
    const timers = new VirtualTimers();
    const { table, page, failovers } = setup({ timers });
    stopPage = page;
    const c = liveClient();
    page.live.serve(c.req, c.res);
    table.setHealth('b', 'peer', false, 'gone');
    await timers.advance(100);
    expect(c.data()).toHaveLength(2);
    expect(c.data()[1]).not.toContain('caches flushed');
    failovers.flushes[0]!(true);
    await new Promise((r) => setImmediate(r));
    await timers.advance(100);
    expect(c.data()).toHaveLength(3);
    expect(c.data()[2]).toContain('caches flushed');
  });
});

function liveClient() {
  const req = new EventEmitter() as IncomingMessage;
  const writes: string[] = [];
  const res = {
    destroyed: false,
    writeHead: () => res,
    write: (s: string) => (writes.push(s), true),
    end: () => undefined,
  } as unknown as ServerResponse;
  return { req, res, data: () => writes.filter((w) => w.startsWith('data: ')) };
}

describe('live updates', () => {
  const fakeClient = liveClient;

  it('pushes a burst of changes as one update, and nothing while no page is open', async () => {
    const timers = new VirtualTimers();
    const { table, page } = setup({ timers });
    stopPage = page;
    table.setDrained('b', true);
    await timers.advance(1000);
    expect(page.live.pushes).toBe(0);
    const c = fakeClient();
    page.live.serve(c.req, c.res);
    expect(c.data()).toHaveLength(1);
    for (let i = 0; i < 50; i++) table.setDrained('b', i % 2 === 0);
    await timers.advance(100);
    expect(page.live.pushes).toBe(1);
    expect(c.data()).toHaveLength(2);
    expect(c.data()[1]).toContain('timeline-body');
  });

  it("pushes a server's changed row (the site's state unchanged) within the coalescing window", async () => {
    const timers = new VirtualTimers();
    const { page, poolChanged } = setup({ timers });
    stopPage = page;
    const c = fakeClient();
    page.live.serve(c.req, c.res);
    poolChanged();
    poolChanged();
    await timers.advance(100);
    expect(page.live.pushes).toBe(1);
    expect(c.data()[1]).toContain('pools-body');
  });
});

describe('actions', () => {
  const post = (base: string, body: string, headers: Record<string, string> = {}, path = '/status-page/action') =>
    fetch(`${base}${path}`, { method: 'POST', body, headers, redirect: 'manual' });
  const json = { 'content-type': 'application/json' };

  it('refuses without the key (401), with a key in the URL (400), and when no key is configured (403)', async () => {
    const { page, drains } = setup({ key: KEY });
    const base = await serve(page);
    expect((await post(base, '{"action":"drain","site":"b"}', json)).status).toBe(401);
    expect((await post(base, '{"action":"drain","site":"b"}', { ...json, 'x-api-key': 'wrong' })).status).toBe(401);
    expect(
      (await post(base, `key=${KEY}&site=b&action=drain&confirm=yes`, {}, `/status-page/action?key=${KEY}`)).status,
    ).toBe(400);
    expect(drains).toEqual([]);
    const readOnly = await serve(setup().page);
    expect(
      (await post(readOnly, '{"action":"drain","site":"b"}', { ...json, 'x-api-key': KEY.toString() })).status,
    ).toBe(403);
  });

  it('drains with the key in a header, and from the form only when confirmed', async () => {
    const { page, drains, table } = setup({ key: KEY });
    const base = await serve(page);
    const r = await post(base, '{"action":"drain","site":"b"}', { ...json, 'x-api-key': KEY.toString() });
    expect(r.status).toBe(200);
    expect(await r.json()).toMatchObject({ ok: true, site: 'b', drained: true, changed: true });
    expect(table.get('b')!.drained).toBe(true);
    expect((await post(base, `key=${KEY}&site=b&action=undrain`)).status).toBe(400);
    const form = await post(base, `key=${KEY}&site=b&action=undrain&confirm=yes`);
    expect(form.status).toBe(303);
    expect(drains).toEqual([
      ['b', true],
      ['b', false],
    ]);
    expect((await post(base, `key=${KEY}&site=${encodeURIComponent(EVIL)}&action=drain&confirm=yes`)).status).toBe(400);
  });

  it('drains a server through the agent with the key, confirmed; refuses without it, in a URL, or an unknown server', async () => {
    const { page, serverDrains } = setup({ key: KEY });
    const base = await serve(page);
    const hdr = { ...json, 'x-api-key': KEY.toString() };
    expect((await post(base, '{"action":"drain","server":"web/w1"}', json)).status).toBe(401);
    expect(
      (await post(base, `key=${KEY}&server=web%2Fw1&action=drain&confirm=yes`, {}, `/status-page/action?x=1`)).status,
    ).toBe(400);
    expect((await post(base, `key=${KEY}&server=web%2Fw1&action=drain`)).status).toBe(400);
    expect((await post(base, '{"action":"drain","server":"web/w9"}', hdr)).status).toBe(400);
    expect((await post(base, '{"action":"drain","server":"web/w1","site":"b"}', hdr)).status).toBe(400);
    expect(serverDrains).toEqual([]);
    const r = await post(base, '{"action":"drain","server":"web/w1"}', hdr);
    expect(await r.json()).toMatchObject({ ok: true, server: 'web/w1', drained: true, changed: true });
    const form = await post(base, `key=${KEY}&server=web%2Fw1&action=undrain&confirm=yes`);
    expect([form.status, form.headers.get('location')]).toEqual([303, '/status-page?did=undrain&server=web%2Fw1']);
    expect(serverDrains).toEqual([
      ['web/w1', true],
      ['web/w1', false],
    ]);
  });

  it('says when the agent cannot be reached (502), naming the server and why', async () => {
    const base = await serve(setup({ key: KEY, agentFails: true }).page);
    const r = await post(base, '{"action":"drain","server":"web/w1"}', { ...json, 'x-api-key': KEY.toString() });
    expect(r.status).toBe(502);
    expect((await r.json()).error).toMatch(/did not drain web\/w1: .*ECONNREFUSED/);
  });
});

describe('status-page config', () => {
  const base = `site: a
sites: [{ name: a }]
`;
  it('needs backend.metrics, with the error at status-page', () => {
    try {
      parseConfig(`${base}status-page: { api-key-file: k }\n`, 'c.yaml');
      expect.unreachable();
    } catch (e) {
      expect((e as ConfigErrors).errors.map((x) => x.message).join('\n')).toMatch(
        /c\.yaml:3.*status-page.*backend\.metrics/,
      );
    }
  });

  it('is off unless configured; an unreadable key is a located config error, the same in check-config', () => {
    const text = `${base}backend: { metrics: 127.0.0.1:9100 }\n`;
    const table = new SiteStateTable(['a']);
    const deps = { table, orderings: fakeOrderings(table, []), balanced: [], drain: () => false, logger };
    expect(statusPageFor(parseConfig(text, '/nowhere/c.yaml'), undefined, deps)).toBeUndefined();
    const dir = mkdtempSync(join(tmpdir(), 'ms-status-key-'));
    try {
      const file = join(dir, 'c.yaml');
      writeFileSync(file, `${text}status-page:\n  api-key-file: missing.key\n`);
      const withKey = loadConfig(file);
      expect(withKey.config['status-page']).toMatchObject({ enabled: true, 'coalesce-ms': 100, 'max-clients': 32 });
      const located = new RegExp(`^${file}:5:3: status-page\\.api-key-file: .*missing\\.key`);
      // What the site reads before it starts anything (buildSite) ...
      expect(() => statusPageKey(withKey)).toThrow(ConfigErrors);
      expect(() => statusPageKey(withKey)).toThrow(located);
      // ... is what check-config reports (and every daemon's preflight), with the same words.
      expect(() => preflight(file)).toThrow(located);
      writeFileSync(join(dir, 'missing.key'), 'short\n');
      expect(() => preflight(file)).toThrow(/status-page\.api-key-file: .*16/);
      writeFileSync(join(dir, 'missing.key'), `${KEY.toString()}\n`);
      expect(statusPageKey(loadConfig(file))).toEqual(KEY);
      expect(preflight(file).warnings).toEqual([
        expect.stringMatching(/status-page\.api-key-file: warning: .*mode 644/),
      ]);
      chmodSync(join(dir, 'missing.key'), 0o600);
      expect(preflight(file).warnings).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
