import { type ControlRequestObject, controlSocketRequest, describe, JsonLineServer } from '../shared/control-socket.js';
import type { Logger } from '../shared/log.js';
import type { SiteStateTable } from '../site-health/index.js';
import type { DrainResult } from './drain-everywhere.js';

export type ControlRequest =
  | { cmd: 'status' }
  | { cmd: 'drain' | 'undrain'; site: string; everywhere?: boolean }
  | { cmd: 'explain'; name: string; client?: string };
export type ControlResponse = { ok: true; [k: string]: unknown } | { ok: false; error: string; [k: string]: unknown };

export interface ControlDeps {
  /** This site's name. */
  site: string;
  table: SiteStateTable;
  /** Persists drains; called after each change. */
  saveDrains(drained: string[]): void;
  logger: Logger;
  /** `multisite explain NAME --client IP`: the answer and why (undefined: not a balanced name). */
  explain?(name: string, client?: string): object | undefined;
  /** `drain SITE --everywhere`: asks every peer site to drain it too (there when peers are configured). */
  drainEverywhere?(site: string, drained: boolean): Promise<DrainResult[]>;
}

/** Drains or undrains a site here, persists and logs it; true when it changed something. */
export function drainSite(deps: ControlDeps, site: string, drained: boolean, by: string): boolean {
  const changed = deps.table.setDrained(site, drained);
  if (changed) {
    deps.saveDrains(deps.table.drainedSites());
    deps.logger.info({ site, by }, `site ${drained ? 'drained' : 'undrained'} by ${by}`);
  }
  return changed;
}

/** The backend's local control socket (mode 0600): one JSON request per line, one JSON reply. */
export class ControlServer {
  private readonly server: JsonLineServer;

  constructor(
    readonly path: string,
    private readonly deps: ControlDeps,
  ) {
    this.server = new JsonLineServer(path, (req) => this.execute(req));
  }

  start(): Promise<void> {
    return this.server.start();
  }

  /** One request (JsonLineServer already checked it is an object with a string `cmd`). */
  execute(raw: ControlRequestObject): ControlResponse | Promise<ControlResponse> {
    const req = raw as ControlRequest;
    const { table } = this.deps;
    try {
      if ((req.cmd === 'drain' || req.cmd === 'undrain') && (typeof req.site !== 'string' || req.site === ''))
        return { ok: false, error: `${req.cmd} needs "site", a non-empty string, not ${describe(req.site)}` };
      if (req.cmd === 'status') return { ok: true, sites: table.snapshot() };
      if (req.cmd === 'drain' || req.cmd === 'undrain') {
        if (req.everywhere === true) return this.everywhere(req.site, req.cmd === 'drain');
        const changed = drainSite(this.deps, req.site, req.cmd === 'drain', 'operator');
        return { ok: true, site: req.site, drained: req.cmd === 'drain', changed };
      }
      if (req.cmd === 'explain' && this.deps.explain) {
        if (typeof req.name !== 'string' || (req.client !== undefined && typeof req.client !== 'string'))
          return { ok: false, error: 'explain needs "name" (and optional "client") strings' };
        const e = this.deps.explain(req.name, req.client);
        return e ? { ok: true, explain: e } : { ok: false, error: `'${req.name}' is not a balanced name` };
      }
      return {
        ok: false,
        error: `unknown command '${(req as { cmd?: unknown }).cmd}' (status, drain, undrain, explain)`,
      };
    } catch (err) {
      return { ok: false, error: (err as Error).message };
    }
  }

  /** Here first, then every peer; ok only when every site took it (each one's outcome is listed). */
  private async everywhere(site: string, drained: boolean): Promise<ControlResponse> {
    if (!this.deps.drainEverywhere)
      return { ok: false, error: '--everywhere needs peers: configured (the peers key signs the request)' };
    const here = drainSite(this.deps, site, drained, 'operator');
    const results: DrainResult[] = [
      { site: this.deps.site, ok: true, changed: here },
      ...(await this.deps.drainEverywhere(site, drained)),
    ];
    const failed = results.filter((r) => !r.ok);
    if (failed.length === 0) return { ok: true, site, drained, results };
    return { ok: false, error: `not taken by ${failed.map((r) => r.site).join(', ')}`, results };
  }

  stop(): Promise<void> {
    return this.server.stop();
  }
}

/** Sends one request to a running backend's control socket. */
export function controlRequest(path: string, req: ControlRequest, timeoutMs = 3000): Promise<ControlResponse> {
  return controlSocketRequest<ControlResponse>(path, req, 'backend', timeoutMs);
}
