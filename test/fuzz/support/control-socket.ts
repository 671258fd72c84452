import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ControlServer } from '../../../src/pdns-backend/control.js';
import { SiteStateTable } from '../../../src/site-health/state-table.js';
import type { Logger } from '../../../src/shared/log.js';
import { UnixClient } from './remote-backend.js';

export const SITES = ['paris', 'tokyo'];
/** The reply to the probe `{"cmd":"status"}` is recognised by its shape, whatever was drained. */
export const PROBE = '{"cmd":"status"}';

const silent = { info() {}, warn() {}, error() {}, debug() {} } as unknown as Logger;

/** The backend's real ControlServer on a real unix socket in a temporary directory. */
export async function startControl(): Promise<{ path: string; open(): Promise<UnixClient>; stop(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'ms-ctl-'));
  const path = join(dir, 'control.sock');
  const table = new SiteStateTable(SITES);
  const server = new ControlServer(path, {
    site: SITES[0]!,
    table,
    // Asynchronous like the real one (it asks the peers): replies must still come one per request, in order.
    drainEverywhere: async () => {
      await new Promise((r) => setImmediate(r));
      return [{ site: SITES[1]!, ok: true, changed: false }];
    },
    saveDrains() {},
    logger: silent,
    explain: (name) => (name === 'www.example.' ? { answer: ['192.0.2.1'] } : undefined),
  });
  await server.start();
  return {
    path,
    open: () => UnixClient.open(path),
    async stop() {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Every reply is `{ok: true, ...}` or `{ok: false, error: "<non-empty text>"}`. */
export function checkReply(reply: string, request: string): { ok: boolean; error?: string; sites?: unknown } {
  const parsed = JSON.parse(reply) as { ok: boolean; error?: string };
  const what = `reply ${reply.slice(0, 200)} to ${request.slice(0, 200)}`;
  if (parsed.ok === true) return parsed;
  if (parsed.ok !== false || typeof parsed.error !== 'string' || parsed.error === '')
    throw new Error(`not {ok,error}: ${what}`);
  return parsed;
}

export function isStatusReply(reply: string): boolean {
  const r = JSON.parse(reply) as { ok?: unknown; sites?: unknown };
  return r.ok === true && Array.isArray(r.sites) && r.sites.length === SITES.length;
}
