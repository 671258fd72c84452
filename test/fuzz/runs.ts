/**
 * How many cases a fuzz property runs. `make test` uses the default (fixed seed, quick);
 * `make fuzz` sets FUZZ_RUNS higher and FC_SEED=random to explore (a failure prints its seed).
 */
export function fuzzRuns(defaultRuns: number): number {
  const env = process.env.FUZZ_RUNS;
  const n = env === undefined ? NaN : Number(env);
  return Number.isInteger(n) && n > 0 ? n : defaultRuns;
}
