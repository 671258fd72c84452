/** The clock and timers a runner uses: real ones in the daemon, a virtual clock in unit tests. */
export interface Timers {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realTimers: Timers = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

/**
 * Epoch ms with microsecond digits, for stage times that are compared with another process's wall
 * clock (HAProxy's log timestamps): the monotonic clock (never steps back between two stages),
 * anchored at the wall clock when the process started. A step of the system clock after the start
 * (not NTP's slewing, which both follow) shifts it against the wall clock until a restart.
 */
export const sharedWallClock = (): number => performance.timeOrigin + performance.now();
