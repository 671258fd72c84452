import type { z } from 'zod';
import type { Config } from './schema.js';

type Ctx = z.RefinementCtx;

/** Policy parameters that must name configured sites, and the sections a policy needs. */
export function checkPolicies(cfg: Config, ctx: Ctx): void {
  const sites = new Set(cfg.sites.map((s) => s.name));
  const issue = (path: (string | number)[], message: string) => ctx.addIssue({ code: 'custom', path, message });
  cfg.balanced.forEach((b, i) => {
    const at = (...p: (string | number)[]) => ['balanced', i, ...p];
    const policy = b.policy ?? 'local-first';
    for (const site of Object.keys(b.weights ?? {}))
      if (!sites.has(site)) issue(at('weights', site), `unknown site '${site}'`);
    for (const [net, list] of Object.entries(b.topology ?? {})) {
      list.forEach((site, j) => {
        if (!sites.has(site)) issue(at('topology', net, j), `unknown site '${site}'`);
      });
    }
    if (policy === 'topology' && Object.keys(b.topology ?? {}).length === 0)
      issue(at('topology'), 'policy topology needs topology: { NETWORK/BITS: [SITE, ...] }');
    if (policy !== 'topology' && b.topology)
      issue(at('topology'), `topology is only used by policy topology (this name has ${policy})`);
    if (policy !== 'ratio' && b.weights)
      issue(at('weights'), `weights are only used by policy ratio (this name has ${policy})`);
    if (b.hysteresis && policy !== 'least-load' && policy !== 'fastest')
      issue(at('hysteresis'), `hysteresis is only used by least-load and fastest (this name has ${policy})`);
    if (b.closest && policy !== 'closest')
      issue(at('closest'), `closest is only used by policy closest (this name has ${policy})`);
    const d = b['decided-by'];
    if (d !== undefined) {
      if (!sites.has(d)) issue(at('decided-by'), `unknown site '${d}'`);
      else if (policy === 'round-robin' || policy === 'ratio')
        issue(at('decided-by'), `decided-by cannot be used with ${policy}: its order changes with every query`);
      else if (d !== cfg.site) {
        const peer = cfg.sites.find((s) => s.name === d) as { 'status-url'?: string[] } | undefined;
        if (!(cfg as { peers?: unknown }).peers)
          issue(at('decided-by'), 'decided-by needs peers: (its key authenticates the decision requests)');
        if (!peer?.['status-url']?.length)
          issue(
            at('decided-by'),
            `decided-by ${d} needs sites[${d}].status-url (its backend's metrics address, where /decide is served)`,
          );
      }
    }
  });
  if (cfg.probes && !cfg.balanced.some((b) => b.policy === 'closest'))
    issue(['probes'], 'probes are only used by names with policy closest');
}
