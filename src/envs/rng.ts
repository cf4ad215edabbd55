/**
 * Old import path of the seeded generator, kept only for `training/trainer.ts` (split on another
 * branch); the generator and the hash live in `src/util/random.ts`. Delete once nothing imports it.
 */
export { hashSeed as hashString, Rng } from '../util/random.ts';
