import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A unix socket that answers Runtime API commands from a table, like HAProxy's non-interactive CLI. */
export async function fakeHaproxy(
  answer: (command: string) => string | null,
): Promise<{ socket: string; commands: string[]; close(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'ms-fake-haproxy-'));
  const socket = join(dir, 'haproxy.sock');
  const commands: string[] = [];
  const server: Server = createServer((s) => {
    let buf = '';
    s.on('data', (d) => {
      buf += d.toString();
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      const cmd = buf.slice(0, nl);
      commands.push(cmd);
      const reply = answer(cmd);
      if (reply !== null) s.end(reply); // null: never answer (timeouts)
    });
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(socket, () => r()));
  return {
    socket,
    commands,
    close: async () => {
      await new Promise((r) => server.close(r));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A `show stat` CSV as HAProxy 2.6 prints it (abridged columns, trailing commas). */
export function statCsv(rows: { sv: string; status: string; weight: number; agt?: string }[], backend = 'web'): string {
  const header =
    '# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,last_chk,last_agt,agent_status,';
  const line = (r: { sv: string; status: string; weight: number; agt?: string }) =>
    `${backend},${r.sv},0,0,0,0,,0,0,0,,0,,0,0,0,0,${r.status},${r.weight},1,0,0,0,5,0,,1,2,1,,0,,2,0,,0,L7OK,200,1,0,"${r.agt ?? ''}",${r.agt ? `"${r.agt.replaceAll('"', '""')}"` : ''},L7OK,`;
  return `${header}\n${rows.map(line).join('\n')}\n\n`;
}
