import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STATUS_PAGE_KEY, startPeerCluster, type ClusterSite, type PeerCluster } from '../support/peer-cluster.js';
import { waitFor } from '../support/ports.js';

/**
 * The status page in a real browser (Debian's chromium, driven by puppeteer-core) against a real
 * two-site cluster (a backend process and pdns_server per site): live updates by server-sent
 * events when b's backend dies, drain from the page with the key and refused without it, the page
 * with JavaScript off, names escaped, under 100 KB. Screenshots go to test-results/status-page/.
 */

const OUT = join(import.meta.dirname, '../../../test-results/status-page');
const B_ADDR = '192.0.2.2';
let cluster: PeerCluster;
let browser: Browser;
let a: ClusterSite;
let url: string;

beforeAll(async () => {
  mkdirSync(OUT, { recursive: true });
  cluster = await startPeerCluster({ names: ['a', 'b'], statusPage: true, logLevel: process.env.TEST_LOG ?? 'warn' });
  a = cluster.site('a');
  url = `http://${a.host}:${a.metricsPort}/status-page`;
  for (const s of cluster.sites)
    await waitFor(`${s.name} answers both sites`, async () => (await s.answer()).length === 2, 30_000, 20);
  browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await cluster?.stop();
});

/** The state label the Sites section shows for a site. */
const siteState = (page: Page, site: string) =>
  page.$eval(`#sites-body [data-site="${site}"]`, (el) => el.closest('tr')!.querySelector('.st')!.textContent);

async function open(js = true): Promise<Page> {
  const page = await browser.newPage();
  await page.setJavaScriptEnabled(js);
  page.on('dialog', (d) => void d.accept());
  await page.goto(url, { waitUntil: 'domcontentloaded' });
  return page;
}

describe('status page', () => {
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

  it('with JavaScript off the page shows the state as of load', async () => {
    const page = await open(false);
    expect(await siteState(page, 'a')).toBe('up');
    expect(await siteState(page, 'b')).toBe('up');
    expect(await page.$eval('#live', (el) => el.textContent)).toContain('reload');
    await page.screenshot({ path: join(OUT, 'no-js.png'), fullPage: true });
    await page.close();
  });

  it('shows names and typed input as text, never as markup', async () => {
    const page = await open();
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
    const page = await open(false);
    await page.type('input[name=client]', '198.51.100.7');
    await Promise.all([page.waitForNavigation(), page.click('#explain button')]);
    const text = await page.$eval('#explain-body', (el) => el.textContent!);
    expect(text).toContain('www.example.com.');
    expect(text).toContain('198.51.100.7/32');
    await page.close();
  });

  it('refuses a drain without the right key, in the page and over HTTP', async () => {
    const page = await open();
    await page.select('#act select[name=site]', 'b');
    await page.type('#act input[name=key]', 'not-the-key-at-all');
    const [res] = await Promise.all([page.waitForNavigation(), page.click('#act button[value=drain]')]);
    expect(res?.status()).toBe(401);
    expect(await page.$eval('#result', (el) => el.textContent)).toContain('refused');
    const api = await fetch(`${url}/action`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ action: 'drain', site: 'b' }),
    });
    expect(api.status).toBe(401);
    const inUrl = await fetch(`${url}/action?key=${STATUS_PAGE_KEY}`, { method: 'POST', body: 'site=b&action=drain' });
    expect(inUrl.status).toBe(400);
    expect(await a.answer()).toContain(B_ADDR);
    await page.close();
  });

  it('drains and undrains a site from the page with the key, after a confirm', async () => {
    const page = await open();
    const act = async (action: string) => {
      await page.select('#act select[name=site]', 'b');
      await page.type('#act input[name=key]', STATUS_PAGE_KEY);
      await Promise.all([page.waitForNavigation(), page.click(`#act button[value=${action}]`)]);
    };
    await act('drain');
    await waitFor('a stops answering b', async () => !(await a.answer()).includes(B_ADDR), 10_000);
    expect(await siteState(page, 'b')).toBe('draining');
    await page.screenshot({ path: join(OUT, 'drained.png'), fullPage: true });
    await act('undrain');
    await waitFor('a answers b again', async () => (await a.answer()).includes(B_ADDR), 10_000);
    await page.close();
  });

  it("updates live when b's backend is killed, without a reload", async () => {
    const page = await open();
    await page.waitForFunction(() => document.getElementById('live')!.textContent === '(live)');
    const b = cluster.site('b');
    b.backend.child.kill('SIGKILL');
    await page.waitForFunction(
      () =>
        document.querySelector('#sites-body [data-site="b"]')!.closest('tr')!.querySelector('.st')!.textContent ===
        'down',
      { timeout: 30_000 },
    );
    expect(Number(await page.$eval('body', (el) => el.dataset.updates))).toBeGreaterThan(0);
    expect(await page.$eval('#timeline-body', (el) => el.textContent)).toContain('site b');
    await page.screenshot({ path: join(OUT, 'b-down.png'), fullPage: true });
    await page.close();
  }, 60_000);
});
