/**
 * Which names to give PowerDNS's cache flush so that every changed name is purged with the fewest
 * API calls. `PUT /api/v1/servers/localhost/cache/flush?domain=NAME` purges NAME *and everything
 * below it* (PowerDNS auth 4.7 pdns/ws-auth.cc apiServerCacheFlush: purgeAuthCaches(NAME + "$"),
 * the `$` suffix meaning "this name and its descendants"), so several changed names of one zone
 * are covered by one call for their longest common suffix, never above their zone's apex (a flush
 * of the parent would purge other zones' answers too).
 */

/** `WWW.Example.com` → `www.example.com.` (lower case, one trailing dot, no empty labels). */
function canonical(name: string): string {
  const lower = name.toLowerCase();
  if (lower.endsWith('.') && !lower.includes('..') && lower !== '.') return lower;
  const labels = lower.split('.').filter(Boolean);
  return labels.length === 0 ? '.' : `${labels.join('.')}.`;
}

/** `name` is `suffix` or below it (both canonical). No string is built: this runs once per changed name. */
function within(name: string, suffix: string): boolean {
  if (suffix === '.') return true;
  if (name.length === suffix.length) return name === suffix;
  return (
    name.length > suffix.length && name.endsWith(suffix) && name.charCodeAt(name.length - suffix.length - 1) === 46
  );
}

/** `a.b.example.com.` → `b.example.com.`; the root stays the root. */
function parentOf(name: string): string {
  const dot = name.indexOf('.');
  return dot < 0 || dot === name.length - 1 ? '.' : name.slice(dot + 1);
}

/**
 * One flush target per zone holding changed names: the longest common suffix of that zone's
 * changed names (the name itself when it is the only one); names outside every zone as they are.
 * Linear in the number of names, and cheap per name (10,000 names change together at a failover):
 * the zone is looked up once per parent name, and a name already under its zone's running common
 * suffix (all but the first few) costs one `endsWith`.
 */
export function flushTargets(names: Iterable<string>, zones: readonly string[] = []): string[] {
  // Most specific first: the first zone holding a name is its zone.
  const byLength = zones.map(canonical).sort((x, y) => y.length - x.length);
  const zoneOfParent = new Map<string, string | undefined>();
  const zoneOf = (name: string): string | undefined => {
    if (byLength.some((z) => z === name)) return name;
    const parent = parentOf(name);
    if (!zoneOfParent.has(parent))
      zoneOfParent.set(
        parent,
        byLength.find((z) => within(parent, z)),
      );
    return zoneOfParent.get(parent);
  };
  const common = new Map<string, string>();
  const loose = new Set<string>();
  for (const raw of names) {
    const name = canonical(raw);
    const zone = zoneOf(name);
    if (zone === undefined) {
      loose.add(name);
      continue;
    }
    let seen = common.get(zone);
    if (seen === undefined) {
      common.set(zone, name);
      continue;
    }
    if (within(name, seen)) continue;
    while (seen !== zone && !within(name, seen)) seen = parentOf(seen);
    common.set(zone, seen);
  }
  return [...common.values(), ...loose];
}
