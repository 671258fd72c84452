/**
 * Sets `key` as the newest entry of an insertion-ordered Map and drops the oldest entries beyond
 * `max`: a bounded cache where the entry written last is the last to go.
 */
export function setNewest<K, V>(map: Map<K, V>, key: K, value: V, max: number): void {
  map.delete(key);
  map.set(key, value);
  if (map.size > max) map.delete(map.keys().next().value as K);
}
