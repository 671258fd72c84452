import fc from 'fast-check';

/**
 * Property tests run from a fixed seed, so `make test` (and CI) gives the same verdict on the
 * same code: a counterexample found once is found again. FC_SEED=N picks another seed,
 * FC_SEED=random explores (fast-check prints the seed of any failure: replay it with FC_SEED).
 */
const seed = process.env.FC_SEED;
if (seed !== 'random') fc.configureGlobal({ seed: seed === undefined ? 20_261_124 : Number(seed) });
