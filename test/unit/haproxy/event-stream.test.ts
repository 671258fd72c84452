import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { realTimers } from '../../../src/shared/timers.js';
import { EventStream, type HaproxyEvent } from '../../../src/haproxy/index.js';

const until = async (cond: () => boolean, what: string) => {
  for (let i = 0; i < 2000 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  if (!cond()) throw new Error(`timed out waiting for ${what}`);
};

/** A unix socket that speaks `show events RING -w -n` like HAProxy: the test writes lines or cuts. */
async function fakeRing(rings: string[]) {
  const dir = mkdtempSync(join(tmpdir(), 'ms-fake-ring-'));
  const socket = join(dir, 'haproxy.sock');
  const commands: string[] = [];
  const conns: Socket[] = [];
  const server: Server = createServer((s) => {
    s.on('error', () => {});
    s.once('data', (d) => {
      const cmd = d.toString().trim();
      commands.push(cmd);
      const ring = /^show events (\S+) -w -n$/.exec(cmd)?.[1];
      if (!ring || !rings.includes(ring)) return void s.end('No such event sink\n\n');
      conns.push(s);
    });
  });
  await new Promise<void>((r) => server.listen(socket, () => r()));
  return {
    socket,
    commands,
    conns,
    close: async () => {
      for (const c of conns) c.destroy();
      await new Promise((r) => server.close(r));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

let cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

describe('EventStream', () => {
  it('delivers events as written, and on a cut reconnects and calls onOpen again (the re-read)', async () => {
    const ring = await fakeRing(['multisite']);
    cleanup.push(ring.close);
    const events: HaproxyEvent[] = [];
    const closes: string[] = [];
    let opens = 0;
    const stream = new EventStream({
      socket: ring.socket,
      ring: 'multisite',
      timers: realTimers,
      minBackoffMs: 1,
      onOpen: () => opens++,
      onEvent: (e) => events.push(e),
      onClose: (w) => closes.push(w),
    });
    cleanup.push(() => stream.stop());
    stream.start();
    await until(() => ring.conns.length === 1 && opens === 1, 'the subscription');
    expect(ring.commands).toEqual(['show events multisite -w -n']);
    ring.conns[0]!.write('<129>1 2026-12-05T09:06:41.199046+00:00 - haproxy 1 - - Server web/w1 is DO');
    ring.conns[0]!.write('WN, reason: Agent reports down.\n');
    await until(() => events.length === 1, 'the event');
    expect(events[0]).toMatchObject({ type: 'server', backend: 'web', server: 'w1', kind: 'down' });
    ring.conns[0]!.end('\n');
    await until(() => opens === 2 && ring.conns.length === 2, 'the reconnect');
    expect(closes).toHaveLength(1);
    expect(stream.open).toBe(true);
  });

  it('says when HAProxy has no such ring, and keeps retrying with backoff until stopped', async () => {
    const ring = await fakeRing([]);
    cleanup.push(ring.close);
    const closes: string[] = [];
    const stream = new EventStream({
      socket: ring.socket,
      ring: 'nosuch',
      timers: realTimers,
      minBackoffMs: 1,
      maxBackoffMs: 4,
      onOpen: () => {},
      onEvent: () => {},
      onClose: (w) => closes.push(w),
    });
    stream.start();
    await until(() => closes.length >= 3, 'retries');
    stream.stop();
    expect(closes[0]).toBe("HAProxy has no ring 'nosuch' (add the ring section and log line of docs/agent.md)");
  });

  it('retries a socket that does not exist (HAProxy not started yet) and refuses a ring name that would extend the command', async () => {
    const closes: string[] = [];
    const stream = new EventStream({
      socket: '/nonexistent/haproxy.sock',
      ring: 'multisite',
      timers: realTimers,
      minBackoffMs: 1,
      onOpen: () => {},
      onEvent: () => {},
      onClose: (w) => closes.push(w),
    });
    stream.start();
    await until(() => closes.length >= 2, 'retries');
    stream.stop();
    expect(closes[0]).toBe('cannot follow /nonexistent/haproxy.sock: ENOENT');
    expect(
      () =>
        new EventStream({
          socket: 's',
          ring: 'a;b',
          timers: realTimers,
          onOpen: () => {},
          onEvent: () => {},
          onClose: () => {},
        }),
    ).toThrow(/not a valid HAProxy ring name/);
  });
});
