/**
 * A moment as an operator reads it on a terminal: local wall-clock time and how long ago,
 * e.g. `2026-12-05 14:20:03 (2 min ago)`. The date is left out when it is today.
 */
export function localTime(ms: number, now = Date.now()): string {
  const d = new Date(ms);
  const two = (n: number) => String(n).padStart(2, '0');
  const date = `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())}`;
  const today = new Date(now);
  const sameDay =
    d.getFullYear() === today.getFullYear() && d.getMonth() === today.getMonth() && d.getDate() === today.getDate();
  const clock = `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
  return `${sameDay ? '' : `${date} `}${clock} (${ago(now - ms)})`;
}

/** A duration in the largest unit that keeps it short: `4.2 s ago`, `3 min ago`, `2 h ago`, `5 d ago`. */
export function ago(ms: number): string {
  if (ms < 0) return 'in the future';
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s ago`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)} min ago`;
  if (ms < 86_400_000) return `${Math.floor(ms / 3_600_000)} h ago`;
  return `${Math.floor(ms / 86_400_000)} d ago`;
}
