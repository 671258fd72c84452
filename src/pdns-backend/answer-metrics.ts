import { Gauge, type Registry } from 'prom-client';
import type { Orderings } from './orderings.js';

/**
 * `multisite_backend_answer_includes{name,site}`: 1 when the site is in the name's answer now, 0
 * when it is left out (dead, drained, or the fallback answers without it). Read at scrape time
 * from the live orderings, never on the failover path: a change of 10,000 names costs nothing
 * here until Prometheus asks. Client-dependent names show the answer for a client the policy knows
 * nothing about (what the site answers by default); `multisite explain NAME --client IP` gives a
 * particular client's. `multisite_backend_answer_position` is the site's place in that answer
 * (1 = first, 0 = absent), so a dashboard can tell "served" from "served first".
 */
export function registerAnswerMetrics(registry: Registry, orderings: Orderings): void {
  const gauge = (name: string, help: string, value: (at: number) => number): void => {
    new Gauge({
      name,
      help,
      labelNames: ['name', 'site'],
      registers: [registry],
      collect() {
        // Reset first: a name or site that went away must not keep its last value.
        this.reset();
        for (const [balanced, sites] of currentAnswers(orderings))
          for (const site of orderings.table.sites) this.set({ name: balanced, site }, value(sites.indexOf(site) + 1));
      },
    });
  };
  gauge(
    'multisite_backend_answer_includes',
    "1 when the site is in the balanced name's answer now, 0 when the answer leaves it out",
    (at) => (at > 0 ? 1 : 0),
  );
  gauge(
    'multisite_backend_answer_position',
    "The site's place in the balanced name's answer now (1 = first; 0 = not in it)",
    (at) => at,
  );
}

/** Every balanced name's answer as the local site gives it to a client it knows nothing about. */
export function currentAnswers(orderings: Orderings): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const b of orderings.names) {
    const shared = b.dependence === 'none' || b.dependence === 'metrics';
    const d = shared ? orderings.sharedDecision(b) : orderings.explain(b).decision;
    out.set(b.name, d.sites);
  }
  return out;
}
