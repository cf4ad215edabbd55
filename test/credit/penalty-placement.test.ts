/**
 * The invalid-action penalty's placement: the references' 'in-return' rule against stepwise's
 * 'after-normalization', on exactly the case issue 14 measured (a group where nobody succeeded and
 * the penalty is the only variation) and on a group with both outcomes.
 */
import { describe, expect, it } from 'vitest';
import { gigpo, grpo, hgpo, rloo, type StepRow } from '../../src/credit/index.ts';
import { expectClose as close, row } from './helpers.ts';

/**
 * An all-lost household group: 4 trajectories, no reward anywhere; some steps are no-ops or
 * malformed (valid: false). Anchors repeat across trajectories, so step groups and HGPO's levels
 * are non-trivial.
 */
const allLost: StepRow[] = [
  row('g', 'a', 0, 'room', 0),
  row('g', 'a', 1, 'at cabinet 1', 0),
  row('g', 'a', 2, 'Nothing happens.', 0, false),
  row('g', 'b', 0, 'room', 0),
  row('g', 'b', 1, 'at cabinet 1', 0, false),
  row('g', 'b', 2, 'at cabinet 1', 0),
  row('g', 'c', 0, 'room', 0),
  row('g', 'c', 1, 'at shelf 1', 0),
  row('g', 'd', 0, 'room', 0, false),
  row('g', 'd', 1, 'room', 0),
];

/** A group with both outcomes: a wins (reward 10 on its last step), b and c lose, with invalid steps. */
const mixed: StepRow[] = [
  row('m', 'a', 0, 'room', 0),
  row('m', 'a', 1, 'at cabinet 1', 0, false),
  row('m', 'a', 2, 'at cabinet 1', 10),
  row('m', 'b', 0, 'room', 0),
  row('m', 'b', 1, 'at shelf 1', 0),
  row('m', 'c', 0, 'room', 0, false),
  row('m', 'c', 1, 'room', 0),
];

const estimators = {
  grpo: (rows: StepRow[], o: object) => grpo(rows, o).advantages,
  'grpo trajectories': (rows: StepRow[], o: object) =>
    grpo(rows, { statistics: 'trajectories', ...o }).advantages,
  gigpo: (rows: StepRow[], o: object) => gigpo(rows, o).advantages,
  'gigpo mean_norm': (rows: StepRow[], o: object) => gigpo(rows, { mode: 'mean_norm', ...o }).advantages,
  'hgpo H=1': (rows: StepRow[], o: object) => hgpo(rows, { history: 1, ...o }).advantages,
  'hgpo H=2 base group': (rows: StepRow[], o: object) => hgpo(rows, { baseGroup: true, ...o }).advantages,
  rloo: (rows: StepRow[], o: object) => rloo(rows, o).advantages,
};

const AFTER = { penaltyPlacement: 'after-normalization' } as const;

describe('invalid-action penalty placement', () => {
  it("the references' rule (default) turns failing valid steps positive in an all-lost group", () => {
    // The flaw the option fixes: after normalization the valid rows sit above the penalized mean.
    for (const name of ['grpo', 'gigpo', 'hgpo H=2 base group'] as const) {
      const a = estimators[name](allLost, {});
      const validPositive = allLost.filter((r, i) => r.valid && a[i]! > 1e-9).length;
      expect(validPositive, name).toBeGreaterThan(0);
    }
  });

  for (const [name, run] of Object.entries(estimators)) {
    it(`${name}: after normalization, an all-lost group gives valid steps 0 and invalid ones -coef`, () => {
      for (const coef of [0.1, 0.5]) {
        const a = run(allLost, { ...AFTER, penaltyCoef: coef });
        close(
          a,
          allLost.map((r) => (r.valid ? 0 : -coef)),
        );
      }
    });
  }

  for (const [name, run] of Object.entries(estimators)) {
    it(`${name}: after normalization keeps the outcome's signal and moves only invalid rows`, () => {
      const noPenalty = run(mixed, { penalty: false });
      const after = run(mixed, AFTER);
      close(
        after,
        mixed.map((r, i) => noPenalty[i]! - (r.valid ? 0 : 0.1)),
      );
      // Without invalid rows the placements agree.
      const clean = mixed.map((r) => ({ ...r, valid: true }));
      close(run(clean, AFTER), Array.from(run(clean, {})));
    });
  }

  it('penalty off ignores the placement', () => {
    close(
      grpo(allLost, { ...AFTER, penalty: false }).advantages,
      Array.from(grpo(allLost, { penalty: false }).advantages),
    );
  });

  it('rejects an unknown placement, naming the choices', () => {
    expect(() => grpo(allLost, { penaltyPlacement: 'later' as never })).toThrow(
      /in-return.*after-normalization/,
    );
  });
});
