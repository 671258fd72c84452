import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';

/**
 * A port free for both TCP and UDP on `host` (PowerDNS binds both on its port). The kernel picks
 * the TCP port; the UDP bind confirms it. Retries a few times if UDP is taken.
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = createServer();
      srv.once('error', reject);
      srv.listen(0, host, () => {
        const p = (srv.address() as { port: number }).port;
        srv.close(() => resolve(p));
      });
    });
    const udpFree = await new Promise<boolean>((resolve) => {
      const s = createSocket('udp4');
      s.once('error', () => resolve(false));
      s.bind(port, host, () => s.close(() => resolve(true)));
    });
    if (udpFree) return port;
  }
  throw new Error(`no free TCP+UDP port on ${host}`);
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
