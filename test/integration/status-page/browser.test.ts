import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDb } from '../../../src/db/index.js';
import { waitFor } from '../support/ports.js';
import { STATUS_PAGE_KEY, startRunCluster, type RunCluster } from './run-cluster.js';

/**
 * The status page in a real browser (Debian's chromium, driven by puppeteer-core) against a
 * two-site cluster of `multisite run` processes with real pdns_server, haproxy, web server
 * processes and PostgreSQL (run-cluster.ts): a web server killed shows in the page without a
 * reload, then the site down and the answers without it; sites and servers drained from the page
 * with the key (confirmed) and refused without it; pending changes and a conflict's winner and
 * loser; the page with JavaScript off, names escaped, under 100 KB. Screenshots go to
 * test-results/status-page/.
 */

const OUT = join(import.meta.dirname, '../../../test-results/status-page');
let cluster: RunCluster;
let browser: Browser;
let url: string;

beforeAll(async () => {
  mkdirSync(OUT, { recursive: true });
  cluster = await startRunCluster();
  url = `${cluster.a.metricsUrl}/status-page`;
  for (const s of [cluster.a, cluster.b])
    await waitFor(`${s.name} answers both sites`, async () => (await s.answer()).length === 2, 30_000, 20);
  browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await cluster?.stop();
});

/** The text of the cell of column `col` (0-based) in the row of `selector` (a name's span). */
const cell = (page: Page, selector: string, col: number) =>
  page.$eval(selector, (el, c) => el.closest('tr')!.querySelectorAll('td')[c]!.textContent!, col);
const siteState = (page: Page, site: string) => cell(page, `#sites-body [data-site="${site}"]`, 1);
const serverState = (page: Page, server: string) => cell(page, `#pools-body [data-server="${server}"]`, 2);

/** Waits in the page (its live updates, no reload) until a row's cell reads `text`. */
function waitForCell(page: Page, selector: string, col: number, text: string, timeout = 30_000) {
  return page.waitForFunction(
    (sel, c, t) => document.querySelector(sel)?.closest('tr')?.querySelectorAll('td')[c]?.textContent === t,
    { timeout, polling: 'mutation' },
    selector,
    col,
    text,
  );
}

/**
 * a's failover in the Timeline, and the stages a killed web server must show there: every one from
 * HAProxy's on, and before it the agent's verdict (this run's agent, pushed to HAProxy) or, when
 * HAProxy's own check happened to see the death first, that check's start (from its log line).
 */
const FAILOVER_ROW = '#timeline-body [data-failover="failover"][data-site="a"]';
const FAILOVER_STAGES = { all: ['haproxy', 'informed', 'state', 'orderings', 'flushed'], first: ['verdict', 'check'] };

/** In the page: the newest failover of a lists every stage of `all`, and first one of `first`. */
function failoverShown(wanted: { all: string[]; first: string[] }): boolean {
  const row = document.querySelector('#timeline-body [data-failover="failover"][data-site="a"]')?.closest('tr');
  const seen = [...(row?.querySelectorAll<HTMLElement>('[data-stage]') ?? [])].map((e) => e.dataset.stage!);
  return wanted.all.every((s) => seen.includes(s)) && wanted.first.includes(seen[0] ?? '');
}

/** A page; every confirm() it asks is recorded and answered with `accept`. */
async function open(js = true, accept = true): Promise<{ page: Page; dialogs: string[] }> {
  const page = await browser.newPage();
  const dialogs: string[] = [];
  await page.setJavaScriptEnabled(js);
  page.on('dialog', (d) => {
    dialogs.push(d.message());
    void (accept ? d.accept() : d.dismiss());
  });
  await page.goto(url, { waitUntil: 'domcontentloaded' });
  return { page, dialogs };
}

async function live(js = true): Promise<{ page: Page; dialogs: string[] }> {
  const p = await open(js);
  await p.page.waitForFunction(() => document.getElementById('live')!.textContent === '(live)');
  return p;
}

/** Fills the site or server form and sends it; resolves with the navigation's response. */
async function act(page: Page, form: 'act' | 'act-server', target: string, action: string, key: string) {
  await page.select(`#${form} select`, target);
  await page.$eval(`#${form} input[name=key]`, (el) => ((el as HTMLInputElement).value = ''));
  await page.type(`#${form} input[name=key]`, key);
  const [res] = await Promise.all([page.waitForNavigation(), page.click(`#${form} button[value=${action}]`)]);
  return res;
}

describe('status page of `multisite run`', () => {
  it('shows every section, under 100 KB, with no outside resources', async () => {
    const res = await fetch(url);
    const body = await res.text();
    expect(res.status).toBe(200);
    expect(Buffer.byteLength(body)).toBeLessThan(100 * 1024);
    expect(body).not.toMatch(/<(script|link|img)[^>]+(src|href)=/);
    for (const id of ['sites', 'pools', 'answers', 'explain', 'replication', 'partitions', 'timeline', 'actions'])
      expect(body).toContain(`<section id="${id}">`);
    expect(body).toContain('www.example.com.');
  });

  it('with JavaScript off the page shows the state as of load: both servers up through the agent', async () => {
    await waitFor('both servers up in HAProxy through the agent', async () => {
      const { page } = await open(false);
      let up = true;
      for (const w of ['w1', 'w2'])
        up &&=
          (await serverState(page, w)) === 'up' && /up/.test(await cell(page, `#pools-body [data-server="${w}"]`, 4));
      await page.close();
      return up;
    });
    const { page } = await open(false);
    expect(await siteState(page, 'a')).toBe('up');
    expect(await siteState(page, 'b')).toBe('up');
    expect(await page.$eval('#live', (el) => el.textContent)).toContain('reload');
    await page.screenshot({ path: join(OUT, 'no-js.png'), fullPage: true });
    await page.close();
  });

  it('shows names and typed input as text, never as markup', async () => {
    const { page } = await open();
    const hostile = '<img src=x onerror="window.__xss=1">';
    const q = new URLSearchParams({ client: hostile, did: 'drain', site: '<script>window.__xss=2</script>' });
    await page.goto(`${url}?${q}`, { waitUntil: 'domcontentloaded' });
    expect(await page.$eval('#explain-body', (el) => el.textContent)).toContain(hostile);
    expect(await page.$eval('.notice', (el) => el.textContent)).toContain('<script>window.__xss=2</script>');
    expect(await page.$('#explain-body img')).toBeNull();
    expect(await page.evaluate(() => (window as unknown as { __xss?: number }).__xss)).toBeUndefined();
    await page.close();
  });

  it('answers the explain form for a client address', async () => {
    const { page } = await open(false);
    await page.type('input[name=client]', '198.51.100.7');
    await Promise.all([page.waitForNavigation(), page.click('#explain button')]);
    const text = await page.$eval('#explain-body', (el) => el.textContent!);
    expect(text).toContain('www.example.com.');
    expect(text).toContain('198.51.100.7/32');
    await page.close();
  });

  it('refuses a drain without the right key, in the page and over HTTP, and never takes a key in a URL', async () => {
    const { page } = await open();
    expect((await act(page, 'act', 'b', 'drain', 'not-the-key-at-all'))?.status()).toBe(401);
    expect(await page.$eval('#result', (el) => el.textContent)).toContain('refused');
    await page.goto(url, { waitUntil: 'domcontentloaded' });
    expect((await act(page, 'act-server', 'web/w2', 'drain', 'not-the-key-at-all'))?.status()).toBe(401);
    for (const body of [
      { action: 'drain', site: 'b' },
      { action: 'drain', server: 'web/w2' },
    ]) {
      const api = await fetch(`${url}/action`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      expect(api.status).toBe(401);
    }
    for (const what of ['site=b', 'server=web%2Fw2']) {
      const inUrl = await fetch(`${url}/action?key=${STATUS_PAGE_KEY}`, {
        method: 'POST',
        body: `${what}&action=drain&confirm=yes&key=${STATUS_PAGE_KEY}`,
      });
      expect(inUrl.status).toBe(400);
    }
    expect(await cluster.a.answer()).toContain(cluster.b.address);
    await page.goto(url, { waitUntil: 'domcontentloaded' });
    expect(await siteState(page, 'b')).toBe('up');
    expect(await serverState(page, 'w2')).toBe('up');
    await page.close();
  });

  it('drains and undrains a site from the page with the key, only after a confirm', async () => {
    const declined = await open(true, false);
    await declined.page.select('#act select', 'b');
    await declined.page.type('#act input[name=key]', STATUS_PAGE_KEY);
    await declined.page.click('#act button[value=drain]');
    expect(declined.dialogs).toEqual(['drain site b?']);
    expect(declined.page.url()).toBe(url);
    await declined.page.close();
    const { page, dialogs } = await live();
    await act(page, 'act', 'b', 'drain', STATUS_PAGE_KEY);
    expect(dialogs).toEqual(['drain site b?']);
    expect(page.url()).not.toContain(STATUS_PAGE_KEY);
    await waitFor('a stops answering b', async () => !(await cluster.a.answer()).includes(cluster.b.address), 10_000);
    expect(await siteState(page, 'b')).toBe('draining');
    await page.screenshot({ path: join(OUT, 'site-drained.png'), fullPage: true });
    await act(page, 'act', 'b', 'undrain', STATUS_PAGE_KEY);
    await waitFor('a answers b again', async () => (await cluster.a.answer()).includes(cluster.b.address), 10_000);
    await page.close();
  });

  it('drains and undrains a server from the page: the agent answers drain, HAProxy drains it, the page shows it live', async () => {
    const { page, dialogs } = await live();
    const w2 = '#pools-body [data-server="w2"]';
    await act(page, 'act-server', 'web/w2', 'drain', STATUS_PAGE_KEY);
    expect(dialogs).toEqual(['drain server web/w2?']);
    expect(page.url()).not.toContain(STATUS_PAGE_KEY);
    expect(await page.$eval('.notice', (el) => el.textContent)).toBe('server web/w2: drained');
    await page.waitForFunction(() => document.getElementById('live')!.textContent === '(live)');
    await waitForCell(page, w2, 2, 'draining');
    expect(await cell(page, w2, 3)).toMatch(/^DRAIN/);
    expect(await siteState(page, 'a')).toBe('up');
    await page.screenshot({ path: join(OUT, 'server-drained.png'), fullPage: true });
    await act(page, 'act-server', 'web/w2', 'undrain', STATUS_PAGE_KEY);
    await page.waitForFunction(() => document.getElementById('live')!.textContent === '(live)');
    await waitForCell(page, w2, 2, 'up');
    await page.close();
  });

  it('shows pending changes and a conflict with its winner and loser, names escaped', async () => {
    const { page } = await live();
    await waitForCell(page, '#replication-body [data-peer="b"]', 1, '0', 15_000);
    const [a, b] = [await openDb(cluster.db.a), await openDb(cluster.db.b)];
    try {
      // a's write is never replicated to b (b runs no replicator): b's write of the same row conflicts at a.
      await a.query(`INSERT INTO items VALUES (7, '<b>written at a</b>')`);
      await b.query(`INSERT INTO items VALUES (7, '<img src=x onerror="window.__xss=3">')`);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
    await page.waitForFunction(() => document.querySelector('#replication-body .winner') !== null, { timeout: 30_000 });
    const row = await page.$eval('#replication-body .winner', (el) => el.closest('tr')!.textContent!);
    expect(row).toContain('insert-insert');
    expect(row).toContain('<img src=x onerror=\\"window.__xss=3\\">'); // the row as JSON
    expect(row).toContain('<b>written at a</b>');
    expect(await page.$eval('#replication-body .winner', (el) => el.textContent)).toBe('b');
    expect(await page.$eval('#replication-body .loser', (el) => el.textContent)).toBe('a');
    expect(await page.$('#replication-body img, #replication-body b')).toBeNull();
    expect(await page.evaluate(() => (window as unknown as { __xss?: number }).__xss)).toBeUndefined();
    await page.screenshot({ path: join(OUT, 'conflict.png'), fullPage: true });
    await page.close();
  }, 60_000);

  it('a web server killed: its row goes down live, then with both killed the site is down and answers change', async () => {
    const { page } = await live();
    const w1 = '#pools-body [data-server="w1"]';
    const updates = Number(await page.$eval('body', (el) => el.dataset.updates));
    let t0 = performance.now();
    cluster.web[0]!.proc.child.kill('SIGKILL');
    await waitForCell(page, w1, 2, 'down');
    const oneMs = performance.now() - t0;
    expect(Number(await page.$eval('body', (el) => el.dataset.updates))).toBeGreaterThan(updates);
    expect(await cell(page, w1, 3)).toMatch(/^DOWN/);
    expect(await siteState(page, 'a')).toBe('up');
    await page.screenshot({ path: join(OUT, 'server-killed.png'), fullPage: true });
    t0 = performance.now();
    cluster.web[1]!.proc.child.kill('SIGKILL');
    await waitForCell(page, '#sites-body [data-site="a"]', 1, 'down');
    const siteMs = performance.now() - t0;
    await page.waitForFunction(
      () => [...document.querySelectorAll('#answers-body tr')].some((r) => r.textContent === 'www.example.com.1. b'),
      { timeout: 10_000 },
    );
    const answerMs = performance.now() - t0;
    expect(await page.$eval('#timeline-body', (el) => el.textContent)).toContain('site a');
    await waitFor('a answers b only', async () => (await cluster.a.answer()).join() === cluster.b.address, 10_000);
    // The failover in the Timeline with each stage the backend observed, live (the flush ends last).
    await page.waitForFunction(failoverShown, { timeout: 10_000, polling: 'mutation' }, FAILOVER_STAGES);
    const stages = await page.$eval(FAILOVER_ROW, (el) => el.closest('tr')!.querySelector('.stages')!.textContent!);
    await page.screenshot({ path: join(OUT, 'site-down.png'), fullPage: true });
    console.log(
      `status page saw: a server killed → its row down in ${Math.round(oneMs)} ms; ` +
        `the last one → site down in ${Math.round(siteMs)} ms, answer changed in ${Math.round(answerMs)} ms; ` +
        `the backend's stages: ${stages}`,
    );
    await page.close();
    const still = await open(false); // with JavaScript off, the same failover as of load
    expect(await still.page.evaluate(failoverShown, FAILOVER_STAGES)).toBe(true);
    await still.page.close();
  }, 60_000);
});
