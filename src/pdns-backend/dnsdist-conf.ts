/**
 * dnsdist in front of PowerDNS: a packet cache keyed on the EDNS client subnet, so answers that
 * depend on the client (topology, closest) are served from a cache per client network instead of
 * a remote-backend round trip per query (docs/performance.md "Client-dependent names"). multisite
 * writes its dnsdist.conf (`multisite dnsdist-config`, `multisite init`) and flushes its cache
 * through the URL below when an answer changes, as it flushes PowerDNS's.
 */

/** The flush endpoint the generated dnsdist.conf registers: `GET ?domain=NAME` (X-API-Key) expunges NAME and below. */
export const DNSDIST_FLUSH_PATH = '/api/v1/multisite/flush';

export interface DnsdistConfOptions {
  /** Where dnsdist answers DNS ("192.0.2.1:53"). */
  listen: string;
  /** PowerDNS's DNS address behind it ("127.0.0.1:5300"). */
  pdns: string;
  /** dnsdist's web server, for flushes ("127.0.0.1:8083"). */
  webserver: string;
  /** The API key, hashed (`$scrypt$...`, as hashApiKey writes it): the key itself stays in its file. */
  apiKeyHash: string;
  /**
   * Names whose answer changes per query (round-robin, ratio): never cached, or every client
   * network would keep one rotation for the TTL.
   */
  uncachedNames: readonly string[];
  /** Packet cache entries (each client network × name × type is one). */
  cacheEntries?: number;
  /** Client networks the cache keys on when the query has no ECS: IPv4 and IPv6 prefix lengths. */
  ecsV4?: number;
  ecsV6?: number;
  /** UDP listener threads (SO_REUSEPORT), one per core is the usual choice. */
  listeners?: number;
}

const lua = (s: string) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

/** The dnsdist.conf (Lua) for these options. */
export function dnsdistConf(o: DnsdistConfOptions): string {
  const listeners = Math.max(1, o.listeners ?? 2);
  const adds = o.uncachedNames.map((n) => `uncached:add(newDNSName(${lua(n)}))`).join('\n');
  return `-- dnsdist in front of PowerDNS for multisite (written by multisite; regenerate, do not edit).
-- Client-dependent answers (topology, closest) are cached per client network: the cache keys on
-- the EDNS client subnet of the query, or the one dnsdist adds from the client's address.
setLocal(${lua(o.listen)}, { reusePort = true })
${Array.from({ length: listeners - 1 }, () => `addLocal(${lua(o.listen)}, { reusePort = true })`).join('\n')}
setACL({ '0.0.0.0/0', '::/0' })
-- useClientSubnet: send ECS to PowerDNS (the client's own, or its address cut to the prefixes below).
newServer({ address = ${lua(o.pdns)}, name = 'pdns', useClientSubnet = true, checkName = 'multisite-health.invalid.' })
setECSSourcePrefixV4(${o.ecsV4 ?? 24})
setECSSourcePrefixV6(${o.ecsV6 ?? 56})
-- parseECS: entries are told apart by their subnet, and an answer PowerDNS gives scope 0 (the
-- same for every client) is cached once for all. dontAge: TTLs as PowerDNS gave them.
local cache = newPacketCache(${o.cacheEntries ?? 200000}, { parseECS = true, dontAge = true, maxNegativeTTL = 60 })
getPool(''):setCache(cache)
${adds ? `-- Answers that change per query (round-robin, ratio) are not cached.\nlocal uncached = newDNSNameSet()\n${adds}\naddAction(QNameSetRule(uncached), SetSkipCacheAction())` : '-- No name answers differently per query: everything is cacheable.'}
-- The flush multisite calls when an answer changes: GET ${DNSDIST_FLUSH_PATH}?domain=NAME expunges
-- NAME and every name below it (dnsdist's web server allows GET only outside its own config API).
webserver(${lua(o.webserver)})
setWebserverConfig({ apiKey = ${lua(o.apiKeyHash)}, acl = '127.0.0.0/8, ::1' })
registerWebHandler(${lua(DNSDIST_FLUSH_PATH)}, function(req, resp)
  local domain = req.getvars['domain']
  if domain == nil or domain == '' then
    resp.status = 400
    resp.body = '{"error":"give ?domain=NAME"}'
    return
  end
  cache:expungeByName(newDNSName(domain), DNSQType.ANY, true)
  resp.status = 200
  resp.headers = { ['Content-Type'] = 'application/json' }
  resp.body = '{"result":"flushed"}'
end)
`;
}
