import { createServer, type Server } from 'node:http';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { dnsdistConf, DNSDIST_FLUSH_PATH } from '../../../src/pdns-backend/dnsdist-conf.js';
import { Flusher } from '../../../src/pdns-backend/flusher.js';
import { waitFor } from '../../../src/lab/ports.js';
import { BackendMetrics } from '../../../src/pdns-backend/metrics.js';

const servers: Server[] = [];
afterEach(async () => {
  // The flushers keep their connections alive: close those too, or close() waits for their timeout.
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => (s.close(r), s.closeAllConnections()))));
});

/** A fake API recording every request into one shared log, answering 200 after `delayMs`. */
async function fake(label: string, log: string[], delayMs = 0): Promise<string> {
  const s = createServer((req, res) => {
    log.push(`${label} ${req.method} ${req.url} ${String(req.headers['x-api-key'])}`);
    setTimeout(() => res.end('{}'), delayMs);
  });
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  return `http://127.0.0.1:${(s.address() as { port: number }).port}`;
}

const silent = pino({ level: 'silent' });

describe('dnsdist cache flushes', () => {
  it("flushes dnsdist after each of PowerDNS's passes, never before, with dnsdist's own key and endpoint", async () => {
    const log: string[] = [];
    const metrics = new BackendMetrics(new Registry());
    const dd = new Flusher(
      {
        url: await fake('dnsdist', log),
        target: 'dnsdist',
        serverId: '',
        apiKey: 'dk',
        timeoutMs: 500,
        retries: 0,
        settleMs: 0,
      },
      silent,
      metrics,
    );
    const pdns = new Flusher(
      // PowerDNS slow: a dnsdist flush sent before its pass ended would show up first.
      {
        url: await fake('pdns', log, 30),
        serverId: 'localhost',
        apiKey: 'pk',
        timeoutMs: 500,
        retries: 0,
        settleMs: 40,
        next: dd,
      },
      silent,
      metrics,
    );
    pdns.flush(['www.example.com.']);
    const pd = 'pdns PUT /api/v1/servers/localhost/cache/flush?domain=www.example.com. pk';
    const dn = `dnsdist GET ${DNSDIST_FLUSH_PATH}?domain=www.example.com. dk`;
    // Three passes at PowerDNS (first, at once again, settle), each followed by dnsdist's.
    await waitFor('three dnsdist flushes', () => log.filter((l) => l.startsWith('dnsdist')).length >= 3);
    await dd.settled();
    expect(log.filter((l) => l === pd)).toHaveLength(3);
    expect(log.filter((l) => l === dn)).toHaveLength(3);
    expect(log[0]).toBe(pd);
    // Every dnsdist flush follows a finished PowerDNS one: never more dnsdist flushes than PowerDNS ones so far.
    let p = 0;
    for (const l of log) {
      if (l === pd) p++;
      else expect(log.slice(0, log.indexOf(l) + 1).filter((x) => x === dn).length).toBeLessThanOrEqual(p);
    }
    const ok = (await metrics.dnsdistFlushes.get()).values.find((v) => v.labels.result === 'ok')?.value;
    expect(ok).toBe(3);
  });

  it("resolves a flush once dnsdist acknowledged it too (a failover's `flushed` stage), false when dnsdist did not", async () => {
    const log: string[] = [];
    const make = (url: string, next?: Flusher) =>
      new Flusher(
        { url, serverId: 'localhost', apiKey: 'k', timeoutMs: 500, retries: 0, settleMs: 0, ...(next ? { next } : {}) },
        silent,
        new BackendMetrics(new Registry()),
      );
    const dnsdist = (url: string) =>
      new Flusher(
        { url, target: 'dnsdist', serverId: '', apiKey: 'dk', timeoutMs: 500, retries: 0, settleMs: 0 },
        silent,
        new BackendMetrics(new Registry()),
      );
    const pdns = make(await fake('pdns', log), dnsdist(await fake('dnsdist', log, 30)));
    expect(await pdns.flush(['www.example.com.'])).toBe(true);
    expect(log.map((l) => l.split(' ')[0])).toEqual(['pdns', 'dnsdist']); // dnsdist's (slow) answer was waited for
    const refused = make(await fake('pdns', log), dnsdist('http://127.0.0.1:1'));
    expect(await refused.flush(['www.example.com.'])).toBe(false);
  });

  it('the generated dnsdist.conf keys its cache on ECS, leaves per-query names uncached, and registers the flush', () => {
    const conf = dnsdistConf({
      listen: '192.0.2.1:53',
      pdns: '127.0.0.1:5300',
      webserver: '127.0.0.1:8083',
      apiKeyHash: '$scrypt$ln=10,p=1,r=8$c2FsdA==$aGFzaA==',
      uncachedNames: ['rr.example.com.', "it's.example.com."],
      listeners: 2,
    });
    expect(conf).toContain("newServer({ address = '127.0.0.1:5300', name = 'pdns', useClientSubnet = true");
    expect(conf).toContain('parseECS = true');
    expect(conf.match(/Local\('192\.0\.2\.1:53', \{ reusePort = true \}\)/g)).toHaveLength(2);
    expect(conf).toContain("uncached:add(newDNSName('rr.example.com.'))");
    expect(conf).toContain("uncached:add(newDNSName('it\\'s.example.com.'))");
    expect(conf).toContain(`registerWebHandler('${DNSDIST_FLUSH_PATH}'`);
    expect(conf).toContain("apiKey = '$scrypt$ln=10,p=1,r=8$c2FsdA==$aGFzaA=='");
    expect(
      dnsdistConf({ listen: 'x:1', pdns: 'y:2', webserver: 'z:3', apiKeyHash: 'h', uncachedNames: [] }),
    ).not.toContain('SetSkipCacheAction');
  });
});
