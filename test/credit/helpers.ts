/**
 * Small builders for hand-worked batches and a seeded generator for property tests.
 */
import { expect } from 'vitest';
import type { Anchor, StepRow } from '../../src/credit/index.ts';
import { uniform } from '../../src/util/random.ts';

/** One step row; `extra` adds IGPO / Flow-GRPO fields. */
export function row(
  groupId: string,
  trajectoryId: string,
  stepIndex: number,
  anchor: Anchor,
  envReward: number,
  valid = true,
  extra: Partial<StepRow> = {},
): StepRow {
  return { groupId, trajectoryId, stepIndex, anchor, envReward, valid, ...extra };
}

/** ALGORITHMS.md's eps. */
export const eps = 1e-6;

/** Seeded uniform numbers (mulberry32, the envs' generator), so runs reproduce. */
export const rng = uniform;

/**
 * A random batch shaped like household rollouts: groups of G trajectories that revisit a few
 * anchors, sparse rewards at the end, some invalid steps, IGPO values and outcomes.
 */
export function randomBatch(seed: number, groups = 4, g = 5, maxSteps = 6): StepRow[] {
  const r = rng(seed);
  const rows: StepRow[] = [];
  for (let gi = 0; gi < groups; gi++) {
    for (let ti = 0; ti < g; ti++) {
      const steps = 1 + Math.floor(r() * maxSteps);
      const won = r() < 0.5;
      const answered = r() < 0.8;
      for (let s = 0; s < steps; s++) {
        const last = s === steps - 1;
        rows.push({
          groupId: `g${gi}`,
          trajectoryId: `t${ti}`,
          stepIndex: s,
          anchor: `room ${Math.floor(r() * 3)}`,
          envReward: last && won ? 10 : r() < 0.2 ? 1 : 0,
          valid: r() > 0.15,
          valueBefore: Math.log(0.05 + 0.9 * r()),
          ...(last ? { outcomeReward: won ? 1 : 0, ...(answered ? { answered: true } : {}) } : {}),
        });
      }
    }
  }
  return rows;
}

/** Shuffle a copy (Fisher-Yates with the seeded generator). */
export function shuffled<T>(items: readonly T[], seed: number): T[] {
  const r = rng(seed);
  const out = items.slice();
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** Element-wise toBeCloseTo (NaN expects NaN). */
export function expectClose(actual: ArrayLike<number>, expected: number[], digits = 12): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    if (Number.isNaN(expected[i])) expect(actual[i], `index ${i}`).toBeNaN();
    else expect(actual[i], `index ${i}`).toBeCloseTo(expected[i], digits);
  }
}
