/**
 * How many cases a fuzz property runs. `make test` uses the default (fixed seed, quick);
 * `make fuzz` sets FUZZ_RUNS higher and FC_SEED=random to explore (a failure prints its seed).
 * `max` bounds a property whose every case is slow (a network round trip and a wait).
 */
export function fuzzRuns(defaultRuns: number, max = Infinity): number {
  const env = process.env.FUZZ_RUNS;
  const n = env === undefined ? NaN : Number(env);
  return Math.min(Number.isInteger(n) && n > 0 ? n : defaultRuns, max);
}

/**
 * A property's time budget: its default in `make test`; with FUZZ_RUNS set (make fuzz), one hour,
 * since 20,000 network round trips outlast any fixed budget on a loaded machine (the heartbeat
 * property timed out at 600 s while every case passed).
 */
export function fuzzTimeoutMs(defaultMs = 600_000): number {
  return process.env.FUZZ_RUNS === undefined ? defaultMs : 3_600_000;
}
