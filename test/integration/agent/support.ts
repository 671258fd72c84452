import { freePort } from '../../../src/lab/ports.js';
import { startWebServer, type WebServer } from '../../../src/lab/haproxy.js';

export { createKeywordDatabase as createDatabase } from '../../../src/lab/haproxy.js';

export async function startWebPool(count: number, database: string): Promise<WebServer[]> {
  const servers: WebServer[] = [];
  for (let i = 0; i < count; i++)
    servers.push(await startWebServer({ host: '127.0.0.1', port: await freePort('127.0.0.1'), database }));
  return servers;
}

/** Polls until `check` holds; resolves with the elapsed ms since `since` (performance.now()). */
export async function until(
  what: string,
  check: () => Promise<boolean> | boolean,
  since: number,
  timeoutMs = 10_000,
  everyMs = 5,
): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  let last: unknown;
  while (performance.now() < deadline) {
    try {
      if (await check()) return performance.now() - since;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
}
