import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';

/**
 * Ports handed out come from below the kernel's ephemeral range (32768-60999 by default): a port
 * the kernel picked for `listen(0)` is also a candidate for the local end of any outgoing
 * connection, so between our check and the real bind another test's (or another suite's) client
 * socket could take it (EADDRINUSE, seen with two `make test` side by side and 1,100 clients).
 */
const LOW = 10_000;
const HIGH = 32_767;
const handedOut = new Set<number>();

/**
 * A port free for both TCP and UDP on `host` (PowerDNS binds both on its port), never one this
 * process handed out before. Picked at random below the ephemeral range (see LOW/HIGH).
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = LOW + Math.floor(Math.random() * (HIGH - LOW + 1));
    if (handedOut.has(port)) continue;
    if ((await tcpFree(port, host)) && (await udpFree(port, host))) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`no free TCP+UDP port on ${host} in ${LOW}-${HIGH}`);
}

function tcpFree(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, host, () => srv.close(() => resolve(true)));
  });
}

function udpFree(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createSocket(host.includes(':') ? 'udp6' : 'udp4');
    s.once('error', () => resolve(false));
    s.bind(port, host, () => s.close(() => resolve(true)));
  });
}

/**
 * Polls `check` until it returns true or the deadline passes (readiness, never a blind sleep).
 * The deadline only matters when the condition never holds, so it is generous: a loaded machine
 * must not fail a wait that would have succeeded. An error from `check` counts as "not yet".
 */
export async function waitFor(
  what: string,
  check: () => Promise<boolean> | boolean,
  timeoutMs = 30_000,
  everyMs = 20,
): Promise<void> {
  await waitForValue(what, check, (ok) => ok, timeoutMs, everyMs);
}

/**
 * Polls `read` until `ok(value)` holds; resolves with that value and how long it took (for logs
 * and benchmarks, never for a test's verdict). Throws after `timeoutMs`, naming what was awaited
 * and the last value (or error) seen.
 */
export async function waitForValue<T>(
  what: string,
  read: () => Promise<T> | T,
  ok: (value: T) => boolean,
  timeoutMs = 30_000,
  everyMs = 20,
): Promise<{ value: T; ms: number }> {
  const t0 = performance.now();
  let last: { value: T } | { error: unknown } | undefined;
  for (;;) {
    try {
      const value = await read();
      if (ok(value)) return { value, ms: performance.now() - t0 };
      last = { value };
    } catch (error) {
      last = { error };
    }
    if (performance.now() - t0 > timeoutMs) break;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  const seen =
    last && 'error' in last
      ? `: ${(last.error as Error).message}`
      : last && last.value !== false
        ? `; last: ${JSON.stringify(last.value)}`
        : '';
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${seen}`);
}
