// Properties the issue names, over seeded random batches shaped like household rollouts.
import { describe, expect, it } from 'vitest';
import { estimators, gigpo, grpo, hgpo, type StepRow } from '../../src/credit/index.ts';
import { expectClose, randomBatch, row, shuffled } from './helpers.ts';

const names = Object.keys(estimators) as Array<keyof typeof estimators>;

/** Advantages keyed by row identity, so that batches in different orders can be compared. */
function byRow(rows: StepRow[], adv: Float64Array): Map<string, number> {
  return new Map(rows.map((r, i) => [`${r.groupId}/${r.trajectoryId}/${r.stepIndex}`, adv[i]]));
}

describe('credit properties', () => {
  for (const name of names) {
    it(`${name}: advantages do not depend on the order of trajectories or rows`, () => {
      for (const seed of [1, 2, 3]) {
        const rows = randomBatch(seed);
        const base = byRow(rows, estimators[name].run(rows).advantages);
        // trajectories in another order (rows of each kept together) ...
        const byTrajectory = new Map<string, StepRow[]>();
        for (const r of rows) {
          const k = `${r.groupId}/${r.trajectoryId}`;
          byTrajectory.set(k, [...(byTrajectory.get(k) ?? []), r]);
        }
        const reordered = shuffled([...byTrajectory.values()], seed + 100).flat();
        // ... and every row shuffled (step order comes from stepIndex)
        for (const other of [reordered, shuffled(rows, seed + 200)]) {
          const got = byRow(other, estimators[name].run(other).advantages);
          for (const [k, v] of base) expect(got.get(k), k).toBeCloseTo(v, 12);
        }
        // and something actually varies, so the comparison means something
        expect(new Set(base.values()).size).toBeGreaterThan(3);
      }
    });
  }

  it('singleton step groups add nothing (GiGPO = GRPO; HGPO = 0)', () => {
    const rows = randomBatch(7).map((r, i) => ({ ...r, anchor: `unique ${i}` }));
    const g = gigpo(rows);
    expectClose(g.advantages, Array.from(grpo(rows).advantages));
    expect(g.diagnostics.nonTrivialStepShare).toBe(0);
    expect(Array.from(hgpo(rows).advantages).every((a) => a === 0)).toBe(true);
  });

  it('a group whose outcomes are all equal gets zero episode advantage', () => {
    // every trajectory of group g0 wins (return 10, all valid); other groups vary
    const rows = randomBatch(11).map((r) => {
      if (r.groupId !== 'g0') return r;
      const last = r.outcomeReward !== undefined;
      return {
        ...r,
        envReward: last ? 10 : 0,
        valid: true,
        outcomeReward: 1,
        ...(last ? { answered: true } : {}),
      };
    });
    const inG0 = rows.map((r) => r.groupId === 'g0');
    const zeroOn = (a: ArrayLike<number>) => Array.from(a).filter((_, i) => inG0[i]);
    for (const a of [
      grpo(rows).advantages,
      gigpo(rows).details.episode,
      estimators.rloo.run(rows).advantages,
    ]) {
      expect(zeroOn(a).every((v) => v === 0)).toBe(true);
    }
    expect(zeroOn(estimators['flow-grpo'].run(rows).advantages).every((v) => v === 0)).toBe(true);
    // IGPO: equal outcomes normalize to 0 on the answer turns (the gains still vary)
    const ig = estimators.igpo.run(rows).details.reward as Float64Array;
    const normalized = estimators.igpo.run(rows).details.normalizedReward as Float64Array;
    const answers = rows.map((r, i) => inG0[i] && r.answered === true);
    expect(answers.filter(Boolean).length).toBe(5);
    for (let i = 0; i < rows.length; i++) if (answers[i]) expect([ig[i], normalized[i]]).toEqual([1, 0]);
    expect(grpo(rows).diagnostics.uniformGroups).toBe(1);
    // ... while the other groups are not all zero
    expect(Array.from(grpo(rows).advantages).some((v, i) => !inG0[i] && v !== 0)).toBe(true);
  });

  it('steps are ordered by stepIndex, not by input position; duplicates are refused', () => {
    const ordered = [row('g', 'a', 0, 'X', 0), row('g', 'a', 1, 'Y', 1), row('g', 'b', 0, 'X', 0)];
    const reversed = [ordered[1], ordered[0], ordered[2]];
    // R(a step 0) = 0.95 * 1 either way
    expect(gigpo(reversed, { mode: 'mean_norm' }).details.return[1]).toBeCloseTo(0.95, 12);
    expect(() => grpo([ordered[0], { ...ordered[1], stepIndex: 0 }])).toThrow(
      /row 1: field 'stepIndex': duplicate stepIndex 0/,
    );
  });

  it('an empty batch gives empty results', () => {
    for (const name of names) expect(estimators[name].run([]).advantages.length).toBe(0);
  });
});
