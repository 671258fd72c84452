import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { httpGet, startPartitionLab, type LabSite, type PartitionLab } from './partitions.js';

const exec = promisify(execFile);

/**
 * The partitions part of `make demo`: two sites, each HAProxy (generated config) + two web servers
 * + agent + backend + PowerDNS. Shows each partition served at its active site from either side,
 * a failure transfer when a's pool dies, and the manual failback.
 */
export async function runPartitionsDemo(say: (s: string) => void): Promise<void> {
  let lab: PartitionLab | undefined;
  try {
    lab = await startPartitionLab({ hosts: ['127.0.0.4', '127.0.0.5'] });
    const [a, b] = [lab.site('a'), lab.site('b')];
    say(
      '\nmultisite demo, partitions: p1 is active at a, p2 at b (mirror image); two HAProxies with the generated config.\n',
    );
    for (const s of lab.sites)
      say(
        `site ${s.name}: HAProxy on ${s.lb.host}:${s.lb.port}, PowerDNS on ${s.dns.host}:${s.dns.port}, web servers ${s.web.map((w) => `${w.host}:${w.port}`).join(', ')}`,
      );
    await show(
      lab,
      'both sites up: each partition is served at its active site, whichever load balancer gets the request',
    );
    const t0 = performance.now();
    for (const w of a.web) await w.kill();
    await waitServed(b, 'p1.example.com', 'b');
    say(`\n(a's web servers killed; b serves p1 after ${(performance.now() - t0).toFixed(0)} ms)`);
    await show(lab, "a's pool is dead: p1 moved to b (failure transfer, new epoch), p2 unaffected");
    for (const w of a.web) await w.revive();
    await new Promise((r) => setTimeout(r, 1500));
    await show(lab, 'a is back: p1 stays at b until an operator fails it back (failback: manual)');
    const out = await exec(process.execPath, [
      new URL('../cli/main.js', import.meta.url).pathname,
      'partition',
      'failback',
      'p1',
      '--config',
      a.configFile,
    ]).catch((e: { stdout?: string; stderr?: string }) => ({ stdout: `${e.stdout ?? ''}${e.stderr ?? ''}` }));
    say(`\n$ multisite partition failback p1 --config a.yaml\n${out.stdout.trim()}`);
    await waitServed(b, 'p1.example.com', 'a');
    // PowerDNS's cache is flushed for the name as ownership moves; wait for the flush to land.
    for (const s of lab.sites) await waitDnsFirst(s, 'p1.example.com', a.host);
    await show(lab, 'after failback: p1 at a again');
  } finally {
    await lab?.stop();
  }
}

async function waitServed(s: LabSite, host: string, site: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if ((await httpGet(s.lb.host, s.lb.port, '/', host)).servedBy?.startsWith(`${site}/`)) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`demo: ${host} at site ${s.name} was not served by site ${site} within 15 s`);
}

async function waitDnsFirst(s: LabSite, name: string, first: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const { stdout } = await exec('dig', ['+short', '+norec', `@${s.dns.host}`, '-p', String(s.dns.port), name, 'A']);
    if (stdout.trim().split('\n')[0] === first) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`demo: site ${s.name}'s DNS did not put ${first} first for ${name} within 10 s`);
}

async function show(lab: PartitionLab, title: string): Promise<void> {
  process.stdout.write(`== ${title}\n`);
  for (const s of lab.sites) {
    for (const part of ['p1', 'p2']) {
      const r = await httpGet(s.lb.host, s.lb.port, '/', `${part}.example.com`);
      const o = s.backend.partitions?.manager?.get(part);
      const { stdout } = await exec('dig', [
        '+short',
        '+norec',
        `@${s.dns.host}`,
        '-p',
        String(s.dns.port),
        `${part}.example.com`,
        'A',
      ]);
      process.stdout.write(
        `   curl -H 'Host: ${part}.example.com' ${s.lb.host}:${s.lb.port}  (site ${s.name})  →  ${r.status} X-Served-By: ${r.servedBy ?? '-'}   [${part} active at ${o?.active}, epoch ${o?.epoch}; DNS ${stdout.trim().split('\n').join(', ')}]\n`,
      );
    }
  }
}
