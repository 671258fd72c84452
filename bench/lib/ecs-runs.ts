import { join } from 'node:path';
import { startDnsdist } from '../../src/lab/dnsdist.js';
import { startPdns, type Pdns } from '../../src/lab/pdns.js';
import { writeEcsQueries } from './ecs-compare.js';

/**
 * Client-dependent names (topology, closest) asked with ECS from many networks, caches at their
 * defaults: PowerDNS LUA records doing the same job; ours as PowerDNS ships (consistent-backends=yes:
 * 2 round trips per query), as multisite configures it (consistent-backends=no: 1), and with dnsdist
 * in front (its packet cache keyed on the ECS subnet; and with every query a miss there). The
 * reference is PowerDNS+bind with its caches on, asked the mixed queries of run (a), at the start
 * and the end of the same run.
 */
export interface EcsRunInputs {
  dir: string;
  nets: string[];
  zone: string;
  luaZone: string;
  mixed: string;
  backendSock: string;
  dnsperf(
    target: Pick<Pdns, 'host' | 'port'>,
    queries: string,
    binary?: boolean,
  ): Promise<{ qps: number; avgMs: number; lost: number }>;
}

export const MULTISITE_PDNS = { 'consistent-backends': 'no' };

export async function ecsRuns(i: EcsRunInputs): Promise<Record<string, string | number>[]> {
  const rows: Record<string, string | number>[] = [];
  const run = async (
    label: string,
    kind: 'bind' | 'lua' | 'remote',
    qname: string,
    opts: { settings?: Record<string, string>; dnsdist?: 'cache' | 'miss'; queries?: string } = {},
  ) => {
    const file = opts.queries ?? writeEcsQueries(join(i.dir, `ecs-${qname}.bin`), [qname], i.nets, 20_000);
    const pdns = await startPdns({
      host: '127.0.0.9',
      backend:
        kind === 'remote'
          ? { kind: 'remote', connection: `unix:path=${i.backendSock}` }
          : { kind: 'bind', zones: [{ name: 'bench.example', file: kind === 'lua' ? i.luaZone : i.zone }] },
      settings: {
        'edns-subnet-processing': 'yes',
        'enable-lua-records': kind === 'lua' ? 'yes' : 'no',
        'distributor-threads': 3,
        loglevel: 3,
        ...opts.settings,
      },
      probeName: 'bench.example.',
    });
    // 'miss': the name listed as never cached, so every query takes dnsdist's miss path to PowerDNS.
    const dd = opts.dnsdist
      ? await startDnsdist({
          host: '127.0.0.10',
          pdns,
          probeName: 'bench.example.',
          uncachedNames: opts.dnsdist === 'miss' ? [`${qname}.`] : [],
        })
      : undefined;
    try {
      const r = await i.dnsperf(dd ?? pdns, file, !opts.queries);
      rows.push({
        run: label,
        name: qname,
        networks: opts.queries ? 0 : i.nets.length,
        qps: Math.round(r.qps),
        'avg ms': +r.avgMs.toFixed(3),
        lost: r.lost,
      });
      process.stdout.write(`${label} ${qname}: ${Math.round(r.qps)} qps\n`);
    } finally {
      await dd?.stop();
      await pdns.stop();
    }
  };
  await run('PowerDNS+bind, caches on (reference)', 'bind', 'mixed', { queries: i.mixed });
  for (const [policy, qname, lua] of [
    ['topology', 'topo.bench.example', 'LUA view+ifportup (bind backend)'],
    ['closest', 'near.bench.example', 'LUA pickclosest (bind backend)'],
  ] as const) {
    await run(lua, 'lua', qname);
    await run(`multisite ${policy}, consistent-backends=yes (PowerDNS default)`, 'remote', qname);
    await run(`multisite ${policy}, consistent-backends=no`, 'remote', qname, { settings: MULTISITE_PDNS });
    await run(`multisite ${policy}, consistent-backends=no, distributor-threads=6`, 'remote', qname, {
      settings: { ...MULTISITE_PDNS, 'distributor-threads': '6' },
    });
    await run(`multisite ${policy}, dnsdist in front`, 'remote', qname, { settings: MULTISITE_PDNS, dnsdist: 'cache' });
    await run(`multisite ${policy}, dnsdist in front, every query a miss`, 'remote', qname, {
      settings: MULTISITE_PDNS,
      dnsdist: 'miss',
    });
  }
  // Asked again at the end: on a shared machine one sample can land in a busy moment. The ratios
  // use the higher of the two, so they never flatter ours.
  await run('PowerDNS+bind, caches on (reference, again)', 'bind', 'mixed', { queries: i.mixed });
  const ref = Math.max(...rows.filter((r) => r.name === 'mixed').map((r) => Number(r.qps)));
  for (const r of rows) {
    const lua = rows.find((x) => x.name === r.name && String(x.run).startsWith('LUA'));
    r['× bind cached'] = +(Number(r.qps) / ref).toFixed(2);
    r['× LUA'] = lua ? +(Number(r.qps) / Number(lua.qps)).toFixed(2) : '';
  }
  return rows;
}
