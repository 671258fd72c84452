/**
 * The full per-site stack of the failover benches, as an operator deploys it: a web server, HAProxy
 * with the agent-check server line of docs/agent.md, `multisite agent` (and `multisite backend`
 * via `daemon`), plus PowerDNS LUA records on the same web servers for the same run.
 */
import { writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseConfig } from '../../src/config/index.js';
import { realTimers } from '../../src/shared/timers.js';
import { EventStream } from '../../src/haproxy/index.js';
import { startHaproxy, startWebServer, type Haproxy, type WebServer } from '../../src/lab/haproxy.js';
import { startPdns, type Pdns } from '../../src/lab/pdns.js';
import { freePort } from '../../src/lab/ports.js';
import { startProcess } from '../../src/lab/processes.js';

const CLI = join(dirname(fileURLToPath(import.meta.url)), '../../dist/cli/main.js');
export type Cleanup = (() => Promise<unknown> | unknown)[];

/**
 * A multisite daemon as operators run it (`node dist/cli/main.js agent|backend --config FILE`);
 * `on(msg, fn)` gets each of its JSON log lines with that message and the line's time as
 * performance.now() (pino's `time` is the wall clock at the moment of logging; the daemons log to stderr).
 */
export function daemon(command: string, config: string) {
  const proc = startProcess(process.execPath, [CLI, command, '--config', config]);
  const handlers = new Map<string, (line: Record<string, unknown>, at: number) => void>();
  let rest = '';
  proc.child.stderr!.on('data', (d: Buffer) => {
    const lines = (rest + d.toString()).split('\n');
    rest = lines.pop()!;
    for (const l of lines) {
      if (!l.startsWith('{')) continue;
      const j = JSON.parse(l) as Record<string, unknown>;
      handlers.get(j.msg as string)?.(
        j,
        (typeof j.time === 'string' ? Date.parse(j.time) : (j.time as number)) - performance.timeOrigin,
      );
    }
  });
  return { proc, on: (msg: string, fn: (line: Record<string, unknown>, at: number) => void) => handlers.set(msg, fn) };
}

/** A port free on both web addresses (the LUA record checks one port on each). */
export async function commonPort(a: string, b: string): Promise<number> {
  for (;;) {
    const p = await freePort(a);
    try {
      const s = await startWebServer({ host: b, port: p, database: 'unused' });
      await s.kill();
      return p;
    } catch {
      /* taken on b: another */
    }
  }
}

/** Times (performance.now()) of each up/down transition one signal saw. */
export type Seen = { down: number[]; up: number[] };

export interface SiteLb {
  web: WebServer;
  haproxy: Haproxy;
  /** The agent's verdicts (its reply changing). */
  verdicts: Seen;
  /** HAProxy's own state changes of the server (its ring). */
  ring: Seen;
  /** The agent's current reply ('' before the first). */
  reply(): string;
  /** Whether this agent pushes verdicts to HAProxy's Runtime API (issue 13's agent stage). */
  pushes: boolean;
}

/**
 * One site's pool: a web server on `host:port`, HAProxy (server web/w1, the line of docs/agent.md),
 * `multisite agent` at its defaults checking it, and HAProxy's ring followed for its state changes.
 * Files go under `dir` prefixed by `name`; everything started is pushed on `cleanup`.
 */
export async function startSiteLb(dir: string, name: string, host: string, port: number, cleanup: Cleanup) {
  const web = await startWebServer({ host, port, database: 'unused' });
  cleanup.push(() => web.kill().catch(() => {}));
  const agentPort = await freePort('127.0.0.1');
  const haproxy = await startHaproxy({
    body: `backend web\n    server w1 ${host}:${port} weight 100 check inter 2s fastinter 100ms downinter 100ms agent-check agent-addr 127.0.0.1 agent-port ${agentPort} agent-send "web/w1\\n" agent-inter 500ms\n`,
  });
  cleanup.push(() => haproxy.stop());
  const agentYaml = (push: boolean) => `site: ${name}
sites: [{ name: a }, { name: b }]
agent:
  listen: 127.0.0.1:${agentPort}
  control: ${dir}/${name}-agent.sock
  state-file: ${dir}/${name}-agent-state.json
${push ? `  haproxy: { runtime-api: [${haproxy.socket}] }\n` : ''}  servers:
    - name: web/w1
      address: ${host}:${port}
      checks:
        message: { path: /health }
`;
  const file = join(dir, `${name}-agent.yaml`);
  let pushes = true;
  try {
    parseConfig(agentYaml(true), file);
  } catch {
    pushes = false; // an agent without the Runtime API push (before issue 13's agent stages)
  }
  writeFileSync(file, agentYaml(pushes));
  const agent = daemon('agent', file);
  cleanup.push(() => agent.proc.stop());
  const verdicts: Seen = { down: [], up: [] };
  let reply = '';
  agent.on('agent reply changed', (l, at) => {
    reply = String(l.reply);
    if (reply.startsWith('down')) verdicts.down.push(at);
    else if (reply.startsWith('up')) verdicts.up.push(at);
  });
  const ring: Seen = { down: [], up: [] };
  const follow = new EventStream({
    socket: haproxy.socket,
    ring: 'multisite',
    timers: realTimers,
    onOpen: () => {},
    onClose: () => {},
    onEvent: (ev) => {
      if (ev.type === 'server' && ev.server === 'w1' && (ev.kind === 'down' || ev.kind === 'up'))
        ring[ev.kind].push(performance.now());
    },
  });
  follow.start();
  cleanup.push(() => follow.stop());
  return { web, haproxy, verdicts, ring, reply: () => reply, pushes } satisfies SiteLb;
}

/**
 * PowerDNS LUA records (`lua-health-checks-interval=1`, bind backend) on `host`: `www.lua.test`
 * is `ifportup(port, hosts, options)`.
 */
export async function startLua(
  dir: string,
  host: string,
  port: number,
  hosts: string[],
  options: string,
  cleanup: Cleanup,
): Promise<Pdns> {
  const zoneFile = join(dir, 'lua.test.zone');
  const list = hosts.map((h) => `'${h}'`).join(', ');
  writeFileSync(
    zoneFile,
    `$ORIGIN lua.test.\n@ 3600 IN SOA ns1 hostmaster 1 3600 600 86400 60\n@ NS ns1\nns1 A 192.0.2.53\nwww 5 IN LUA A "ifportup(${port}, {${list}}, {${options}})"\n`,
  );
  const lua = await startPdns({
    host,
    backend: { kind: 'bind', zones: [{ name: 'lua.test', file: zoneFile }] },
    probeName: 'lua.test.',
    settings: { 'enable-lua-records': 'yes', 'lua-health-checks-interval': 1 },
  });
  cleanup.push(() => lua.stop());
  return lua;
}

/** Runs every cleanup step, newest first, logging (not throwing) failures. */
export async function runCleanup(cleanup: Cleanup): Promise<void> {
  for (const c of cleanup.reverse()) await Promise.resolve(c()).catch((err: unknown) => console.error(err));
}
