/** The sub-commands. Each module exports `run(args): Promise<exit code>` and is imported on use. */
export interface CommandModule {
  run(args: string[]): Promise<number>;
}
export interface CommandEntry {
  summary: string;
  usage: string;
  /** One command line that works, shown by `multisite NAME --help`. */
  example: string;
  load(): Promise<CommandModule>;
}

export const commands: Record<string, CommandEntry> = {
  run: {
    summary:
      'run every part the config file configures in one process (backend; agent if agent:, replicator if replication:)',
    usage: '--config FILE [--log-level LEVEL]',
    example: 'multisite run --config /etc/multisite/site-a.yaml',
    load: () => import('./run.js'),
  },
  init: {
    summary:
      'write a commented starting config for one site (defaults from the sites list), its keys, and the pdns.conf and HAProxy lines it needs',
    usage: '--site NAME --sites NAME=IP,NAME=IP[,...] [--zone ZONE] [--out DIR] [--force]',
    example: 'multisite init --site a --sites a=192.0.2.1,b=198.51.100.1 --out /etc/multisite',
    load: () => import('./init.js'),
  },
  backend: {
    summary: 'run the PowerDNS remote backend (unix socket and HTTP connectors)',
    usage: '--config FILE [--socket PATH] [--log-level LEVEL]',
    example: 'multisite backend --config /etc/multisite/site-a.yaml',
    load: () => import('./backend.js'),
  },
  'dnsdist-config': {
    summary:
      'print the dnsdist.conf for the dnsdist: section (a packet cache per client subnet in front of PowerDNS, flushed by the backend)',
    usage: '--config FILE [--out FILE]',
    example: 'multisite dnsdist-config --config /etc/multisite/site-a.yaml --out /etc/dnsdist/dnsdist.conf',
    load: () => import('./dnsdist-config.js'),
  },
  'check-config': {
    summary: 'validate a config file without starting anything',
    usage: 'FILE',
    example: 'multisite check-config /etc/multisite/site-a.yaml',
    load: () => import('./check-config.js'),
  },
  site: {
    summary:
      "drain or undrain a site in this site's answers (--everywhere: at every site, over the signed peer channel), or show site states",
    usage: 'drain|undrain SITE [--everywhere] | status [--json]  [--config FILE | --control PATH]',
    example: 'multisite site drain b --everywhere --config /etc/multisite/site-a.yaml',
    load: () => import('./site.js'),
  },
  agent: {
    summary: 'run the HAProxy agent-check service, or drain/undrain a web server in it',
    usage:
      '--config FILE [--log-level LEVEL] | drain|undrain SERVER [--config FILE | --control PATH] | status [--config FILE | --control PATH] [--json]',
    example: 'multisite agent drain web1 --config /etc/multisite/site-a.yaml',
    load: () => import('./agent.js'),
  },
  demo: {
    summary: 'start a two-site cluster on loopback and show failover',
    usage: '[--keep]',
    example: 'multisite demo --keep',
    load: () => import('./demo.js'),
  },
  migrate: {
    summary: 'install (or --uninstall) replication in a database: change table, conflict log, capture triggers',
    usage:
      '--db URL --site NAME --tables t1,t2 [--password-file F] [--capture auto|native|plpgsql] [--uninstall] | --config FILE [--capture MODE] [--uninstall]',
    example: 'multisite migrate --config /etc/multisite/site-a.yaml',
    load: () => import('./migrate.js'),
  },
  replicate: {
    summary: "run this site's replicator (multi-master, per-column conflicts, exactly-once apply)",
    usage: '--config FILE [--once] [--log-level LEVEL]',
    example: 'multisite replicate --config /etc/multisite/site-a.yaml',
    load: () => import('./replicate.js'),
  },
  'haproxy-config': {
    summary:
      "print the HAProxy configuration of a site's load balancer (partitions: forwarding, backups, agent checks; without partitions: the agent's servers as backends with agent-check)",
    usage: '--config FILE [--site NAME] [--out FILE]',
    example: 'multisite haproxy-config --config /etc/multisite/site-a.yaml --out /etc/haproxy/multisite.cfg',
    load: () => import('./haproxy-config.js'),
  },
  partition: {
    summary:
      'partition ownership: failback P to its configured active site, status, migrate (owner-wins epoch trigger)',
    usage: 'failback P --config FILE | status --config FILE [--json] | migrate --config FILE [--uninstall]',
    example: 'multisite partition status --config /etc/multisite/site-a.yaml',
    load: () => import('./partition.js'),
  },
  explain: {
    summary:
      'show what a balanced name answers for a client and why (site states, load, response time, probes, policy steps)',
    usage: 'NAME [--client IP[/BITS]] [--config FILE | --control PATH] [--json]',
    example: 'multisite explain www.example.com --client 203.0.113.7 --config /etc/multisite/site-a.yaml',
    load: () => import('./explain.js'),
  },
  status: {
    summary:
      'show cluster state: every site (state, since, why, last heartbeat), replication lag per peer, recent conflicts',
    usage: '--config FILE [--json]',
    example: 'multisite status --config /etc/multisite/site-a.yaml',
    load: () => import('./status.js'),
  },
};
