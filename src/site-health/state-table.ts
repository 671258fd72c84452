import { EventEmitter } from 'node:events';

/** Who says a site is up or down: the local HAProxy pools, peer heartbeats, ... */
export type HealthSource = string;

export interface SourceHealth {
  up: boolean;
  reason: string;
  since: number;
}

export interface SiteState {
  site: string;
  usable: boolean;
  drained: boolean;
  /** Why the site is (not) usable, for `multisite site status` and logs. */
  reason: string;
  since: number;
  health: Record<HealthSource, SourceHealth>;
}

export interface StateChange {
  /** Sites whose usability changed. */
  sites: string[];
  version: number;
}

/**
 * The in-memory table the backend answers from. A site is usable while it is not drained and
 * no health source reports it down; a site nobody reported on yet counts as up. Every change of
 * usability bumps `version` (answers are cached per version) and emits 'change'.
 */
export class SiteStateTable extends EventEmitter<{ change: [StateChange] }> {
  private readonly states = new Map<string, SiteState>();
  private usableNow = new Set<string>();
  version = 0;

  constructor(
    readonly sites: readonly string[],
    private readonly clock: () => number = Date.now,
  ) {
    super();
    const now = clock();
    for (const site of sites) {
      this.states.set(site, { site, usable: true, drained: false, reason: 'no reports yet', since: now, health: {} });
      this.usableNow.add(site);
    }
  }

  /** O(1): the hot path of every lookup. */
  isUsable(site: string): boolean {
    return this.usableNow.has(site);
  }

  setHealth(site: string, source: HealthSource, up: boolean, reason: string): void {
    const state = this.require(site);
    const prev = state.health[source];
    if (prev && prev.up === up && prev.reason === reason) return;
    state.health[source] = { up, reason, since: prev && prev.up === up ? prev.since : this.clock() };
    this.recompute([site]);
  }

  setDrained(site: string, drained: boolean): boolean {
    const state = this.require(site);
    if (state.drained === drained) return false;
    state.drained = drained;
    this.recompute([site]);
    return true;
  }

  drainedSites(): string[] {
    return [...this.states.values()].filter((s) => s.drained).map((s) => s.site);
  }

  get(site: string): SiteState | undefined {
    return this.states.get(site);
  }

  snapshot(): SiteState[] {
    return this.sites.map((s) => structuredClone(this.require(s)));
  }

  private recompute(candidates: string[]): void {
    const changed: string[] = [];
    for (const site of candidates) {
      const state = this.require(site);
      const down = Object.entries(state.health).filter(([, h]) => !h.up);
      const usable = !state.drained && down.length === 0;
      state.reason = state.drained
        ? 'drained by an operator'
        : down.length > 0
          ? down.map(([src, h]) => `${src}: ${h.reason}`).join('; ')
          : 'up';
      if (usable !== state.usable) {
        state.usable = usable;
        state.since = this.clock();
        if (usable) this.usableNow.add(site);
        else this.usableNow.delete(site);
        changed.push(site);
      }
    }
    if (changed.length > 0) {
      this.version++;
      this.emit('change', { sites: changed, version: this.version });
    }
  }

  private require(site: string): SiteState {
    const state = this.states.get(site);
    if (!state) throw new UnknownSiteError(site, this.sites);
    return state;
  }
}

export class UnknownSiteError extends Error {
  override name = 'UnknownSiteError';
  constructor(
    readonly site: string,
    known: readonly string[],
  ) {
    super(`unknown site '${site}' (known: ${known.join(', ')})`);
  }
}
