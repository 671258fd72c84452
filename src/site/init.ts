import { randomBytes, scryptSync } from 'node:crypto';
import { isIP } from 'node:net';

/**
 * `multisite init`: a commented starting config for one site, derived from the sites list (every
 * address a site needs is its IP and a default port), and the pdns.conf lines it needs. Pure: the
 * CLI writes the files, generates the keys, and adds the HAProxy lines from the written config.
 */
export interface InitSite {
  name: string;
  ip: string;
}

export interface InitOptions {
  site: string;
  sites: InitSite[];
  /** The zone the starting config serves (default example.com); www.ZONE is balanced. */
  zone?: string | undefined;
}

/** A wrong `--sites` or `--site`: said with what was given and what is expected. */
export class InitError extends Error {
  override name = 'InitError';
}

export const INIT_PORTS = { heartbeat: 7946, metrics: 9153, lb: 80, agent: 5555, web: 8080, pdnsApi: 8081 } as const;

/** Parses `a=192.0.2.1,b=198.51.100.1`. */
export function parseSites(text: string): InitSite[] {
  const sites = text.split(',').map((part) => {
    const [name, ip, ...rest] = part.trim().split('=');
    if (!name || !ip || rest.length > 0 || !/^[a-z0-9][a-z0-9-]{0,30}$/.test(name))
      throw new InitError(`--sites: '${part}' is not NAME=IP (e.g. a=192.0.2.1,b=198.51.100.1)`);
    if (isIP(ip) === 0) throw new InitError(`--sites: '${ip}' (site ${name}) is not an IPv4 or IPv6 address`);
    return { name, ip };
  });
  const names = sites.map((s) => s.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) throw new InitError(`--sites: site '${dup}' is listed twice`);
  if (sites.length < 2) throw new InitError('--sites: give at least two sites (NAME=IP,NAME=IP)');
  return sites;
}

const hp = (ip: string, port: number) => (ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`);

/** The starting config (YAML with comments); key files are named relative to it. */
export function initConfig(o: InitOptions): string {
  const me = o.sites.find((s) => s.name === o.site);
  if (!me) throw new InitError(`--site ${o.site} is not in --sites (${o.sites.map((s) => s.name).join(', ')})`);
  const zone = o.zone ?? 'example.com';
  const P = INIT_PORTS;
  const sites = o.sites.flatMap((s) => [
    `  - name: ${s.name}`,
    `    heartbeat: ["${hp(s.ip, P.heartbeat)}"]       # its backend's peers.listen (UDP)`,
    `    status-url: ["http://${hp(s.ip, P.metrics)}/status"]  # its backend.metrics: probed before "down"`,
    `    lb-address: ["${hp(s.ip, P.lb)}"]              # its HAProxy, probed too`,
  ]);
  const addresses = o.sites.map((s) => `      ${s.name}: [${s.ip}]`);
  return `# multisite: site ${o.site} of ${o.sites.length} (written by multisite init). Check it, then run it:
#   multisite check-config ${o.site}.yaml && multisite run --config ${o.site}.yaml
# Every key left out has a default; README "Configuration" lists them all.
site: ${o.site}
sites:                          # every site; this order is the default preference order
${sites.join('\n')}

backend:                        # sockets in /run/multisite, state in /var/lib/multisite (defaults)
  metrics: ${hp(me.ip, P.metrics)}           # Prometheus /metrics, /healthz, and /status for the peers

pdns:                           # cache flushes through the PowerDNS API (pdns.conf: api-key)
  url: http://127.0.0.1:${P.pdnsApi}
  api-key-file: pdns-api-key    # the one copy of the key; mode 600

# dnsdist:                      # optional, in front of PowerDNS: caches topology/closest answers per
#   api-key-file: dnsdist-api-key  # client subnet (README "Client-dependent names, fast";
#   listen: ${hp(me.ip, 53)}           # then multisite dnsdist-config --out /etc/dnsdist/dnsdist.conf)

peers:                          # heartbeats between the sites' backends (docs/peers.md)
  listen: ${hp(me.ip, P.heartbeat)}
  key-file: peers.key           # the same file at every site: copy it; mode 600

zones:
  - name: ${zone}
    records:                    # or file: ${zone}.zone (an RFC 1035 master file)
      - "@ SOA ns1 hostmaster 1 3600 600 86400 60"
      - "@ NS ns1"
      - "ns1 A ${me.ip}"

balanced:                       # answered with every up site's addresses, this site's first
  - name: www.${zone}
    addresses:
${addresses.join('\n')}

agent:                          # answers HAProxy's agent-check for each web server (docs/agent.md)
  listen: 127.0.0.1:${P.agent}
  servers:                      # this site's web servers, as HAProxy names them (BACKEND/SERVER)
    - name: web/w1
      address: 127.0.0.1:${P.web}
      checks: { message: { type: http, path: /health } }

# replication:                  # PostgreSQL multi-master (docs/replication.md); then multisite migrate
#   tables: [orders]
#   sites:
${o.sites.map((s) => `#     ${s.name}: { db: "postgres://multisite@${s.ip}:5432/app", password-file: db-password }`).join('\n')}
`;
}

/**
 * PowerDNS's hashed form of an API key, as `pdnsutil hash-password` writes it:
 * `$scrypt$ln=10,p=1,r=8$SALT$HASH` (base64; N = 2^10, 32-byte hash). With it in pdns.conf the key
 * is written once, in the file the backend reads.
 */
export function hashApiKey(key: string, salt: Buffer = randomBytes(16)): string {
  const hash = scryptSync(key, salt, 32, { N: 1 << 10, r: 8, p: 1 });
  return `$scrypt$ln=10,p=1,r=8$${salt.toString('base64')}$${hash.toString('base64')}`;
}

/** The pdns.conf lines (e.g. /etc/powerdns/pdns.d/multisite.conf) the config needs. */
export function initPdnsConf(o: InitOptions, apiKey: string): string {
  return `# PowerDNS for multisite site ${o.site} (written by multisite init): put in /etc/powerdns/pdns.d/.
launch=remote
remote-connection-string=unix:path=/run/multisite/backend.sock
# Answers are ordered: PowerDNS must not shuffle them.
no-shuffle=yes
# One backend round trip per query for client-dependent names (topology, closest), not two:
# with yes, PowerDNS's NS-referral lookup is an ANY lookup, uncacheable when the answer has a scope.
consistent-backends=no
# The backend flushes changed names through the API. The key itself is only in pdns-api-key:
# this is its salted scrypt hash (PowerDNS >= 4.6 checks the key against it).
api=yes
api-key=${hashApiKey(apiKey)}
webserver=yes
webserver-address=127.0.0.1
webserver-port=${INIT_PORTS.pdnsApi}
webserver-allow-from=127.0.0.0/8
`;
}

/** Around the generated backends: a minimal HAProxy setup with the Runtime API the agent pushes to. */
export function initHaproxy(o: InitOptions, backends: string): string {
  const me = o.sites.find((s) => s.name === o.site)!;
  return `# HAProxy for multisite site ${o.site} (written by multisite init): merge into /etc/haproxy/haproxy.cfg.
global
    stats socket /run/haproxy/admin.sock mode 660 level admin

defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s

frontend www
    bind ${hp(me.ip, INIT_PORTS.lb)}
    default_backend web

${backends}`;
}
