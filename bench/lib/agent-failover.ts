import { createSocket } from 'node:dgram';
import * as packet from 'dns-packet';

/** One UDP A query; resolves with the answer's addresses in order ([] on timeout). */
export function aRecords(host: string, port: number, name: string, timeoutMs = 200): Promise<string[]> {
  const id = Math.floor(Math.random() * 0xffff);
  return new Promise((resolve) => {
    const sock = createSocket('udp4');
    const timer = setTimeout(() => {
      sock.close();
      resolve([]);
    }, timeoutMs);
    sock.on('message', (msg) => {
      let res: packet.Packet;
      try {
        res = packet.decode(msg);
      } catch {
        return; // not a DNS message we can read: wait for the timeout (it counts as no answer)
      }
      if (res.id !== id) return;
      clearTimeout(timer);
      sock.close();
      resolve((res.answers ?? []).filter((a) => a.type === 'A').map((a) => String((a as { data: unknown }).data)));
    });
    sock.send(
      packet.encode({
        type: 'query',
        id,
        flags: packet.RECURSION_DESIRED,
        questions: [{ type: 'A', name, class: 'IN' }],
      }),
      port,
      host,
    );
  });
}

/** Polls `check` every `everyMs` until true; resolves with performance.now() at that moment. */
export async function when(
  what: string,
  check: () => Promise<boolean> | boolean,
  timeoutMs = 15_000,
  everyMs = 2,
): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (await check()) return performance.now();
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out waiting for ${what}`);
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
