import { afterEach, describe, expect, it } from 'vitest';
import {
  NoSuchBackendError,
  NoSuchServerError,
  parseCsv,
  PermissionDeniedError,
  RuntimeApiError,
  RuntimeClient,
  RuntimeParseError,
  RuntimeTimeoutError,
  RuntimeUnavailableError,
  splitCsvLine,
  UnknownCommandError,
} from '../../../src/haproxy/index.js';
import { fakeHaproxy, statCsv } from './fake-haproxy.js';

const SERVERS_STATE = `1
# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port
2 web 1 w1 127.0.0.11 2 0 100 100 12 6 3 4 6 22 0 0 - 8080 - 0 0 - 127.0.0.1 5555
2 web 2 w2 127.0.0.12 0 8 0 100 3 6 3 0 6 22 0 0 - 8080 - 0 0 - 127.0.0.1 5555
2 web 3 w3 127.0.0.13 2 1 100 100 3 6 3 4 6 22 0 0 - 8080 - 0 0 - 127.0.0.1 5555

`;

describe('Runtime API client', () => {
  let close: (() => Promise<void>) | undefined;
  afterEach(async () => {
    await close?.();
    close = undefined;
  });

  async function client(answer: (c: string) => string | null, timeoutMs = 500) {
    const fake = await fakeHaproxy(answer);
    close = fake.close;
    return { c: new RuntimeClient(fake.socket, { timeoutMs }), commands: fake.commands };
  }

  it('parses show stat by its header names, whatever the column order', async () => {
    const { c, commands } = await client(() =>
      statCsv([
        { sv: 'w1', status: 'UP', weight: 100, agt: 'via agent : up' },
        { sv: 'w2', status: 'DOWN', weight: 100, agt: "via agent : down (keyword 'db1', not found)" },
      ]),
    );
    const rows = await c.showStat({ proxy: 'web', serversOnly: true });
    expect(commands).toEqual(['show stat web 4 -1']);
    expect(rows.map((r) => [r.proxy, r.name, r.type, r.status, r.weight, r.lastAgent])).toEqual([
      ['web', 'w1', 'server', 'UP', 100, 'via agent : up'],
      ['web', 'w2', 'server', 'DOWN', 100, "via agent : down (keyword 'db1', not found)"],
    ]);
    // Same rows with the columns shuffled: same result.
    const text = statCsv([{ sv: 'w1', status: 'UP', weight: 100 }]);
    const [header, line] = text.split('\n');
    const names = splitCsvLine(header!.slice(2));
    const values = splitCsvLine(line!);
    const order = names.map((_, i) => i).reverse();
    const shuffled = `# ${order.map((i) => names[i]).join(',')}\n${order.map((i) => values[i]).join(',')}\n`;
    expect(parseCsv(shuffled)[0]).toEqual(parseCsv(text)[0]);
  });

  it('splits quoted CSV fields with commas and doubled quotes', () => {
    expect(splitCsvLine('a,"b,c","say ""hi""",,d,')).toEqual(['a', 'b,c', 'say "hi"', '', 'd', '']);
  });

  it('parses show servers state into operational and admin states', async () => {
    const { c, commands } = await client(() => SERVERS_STATE);
    const s = await c.showServersState('web');
    expect(commands).toEqual(['show servers state web']);
    expect(s.map((x) => [x.server, x.operational, x.maint, x.drain, x.weight, x.initialWeight])).toEqual([
      ['w1', 'running', false, false, 100, 100],
      ['w2', 'stopped', false, true, 0, 100],
      ['w3', 'running', true, false, 100, 100],
    ]);
  });

  it('sets state and weight, reads weight, and throws typed errors naming the command', async () => {
    const { c, commands } = await client((cmd) => {
      if (cmd === 'set server web/w1 state drain' || cmd === 'set server web/w1 weight 50%') return '\n';
      if (cmd === 'get weight web/w1') return '50 (initial 100)\n\n';
      if (cmd.startsWith('set server web/')) return 'No such server.\n\n';
      if (cmd.startsWith('set server')) return 'No such backend.\n\n';
      if (cmd === 'show servers state zz') return "Can't find backend.\n\n";
      return 'Unknown command, but maybe one of the following ones is a better match:\n  help\n\n';
    });
    await c.setServerState('web', 'w1', 'drain');
    await c.setServerWeight('web', 'w1', '50%');
    expect(await c.getWeight('web', 'w1')).toEqual({ current: 50, initial: 100 });
    const err = await c.setServerState('web', 'zz', 'maint').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NoSuchServerError);
    expect(err).toMatchObject({ command: 'set server web/zz state maint', reply: 'No such server.' });
    expect((err as Error).message).toBe(`haproxy ${c.socket}: 'set server web/zz state maint': No such server.`);
    await expect(c.setServerState('zz', 'w1', 'ready')).rejects.toBeInstanceOf(NoSuchBackendError);
    await expect(c.showServersState('zz')).rejects.toBeInstanceOf(RuntimeParseError);
    await expect(c.transport.execute('frobnicate')).rejects.toBeInstanceOf(UnknownCommandError);
    expect(commands).toContain('set server web/w1 weight 50%');
    // Names that would extend the command line are refused before anything is sent.
    expect(() => c.setServerState('web', 'w1; shutdown sessions', 'ready')).toThrow(TypeError);
    await expect(c.transport.send('show stat\nshutdown frontend x')).rejects.toBeInstanceOf(RuntimeApiError);
  });

  it('maps permission errors, timeouts and a missing socket', async () => {
    const { c } = await client((cmd) => (cmd.startsWith('set') ? 'Permission denied\n\n' : null), 100);
    await expect(c.setServerState('web', 'w1', 'ready')).rejects.toBeInstanceOf(PermissionDeniedError);
    const t = await c.showStat().catch((e: unknown) => e);
    expect(t).toBeInstanceOf(RuntimeTimeoutError);
    expect(t).toMatchObject({ command: 'show stat', timeoutMs: 100 });
    const missing = new RuntimeClient('/nonexistent/haproxy.sock');
    await expect(missing.showStat()).rejects.toMatchObject({
      name: 'RuntimeUnavailableError',
      code: 'ENOENT',
      command: 'show stat',
    });
    await expect(missing.showStat()).rejects.toBeInstanceOf(RuntimeUnavailableError);
  });
});
