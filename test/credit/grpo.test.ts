// GRPO, RLOO and Flow-GRPO on batches worked out by hand from ALGORITHMS.md.
import { describe, expect, it } from 'vitest';
import { flowGrpo, grpo, rloo } from '../../src/credit/index.ts';
import { expectClose as close, eps, row } from './helpers.ts';

// Group g: trajectory a has 3 steps with rewards 0, 0, 1 (episodeReturn 1); b has 1 step, 0.
const uneven = [
  row('g', 'a', 0, 'x', 0),
  row('g', 'a', 1, 'y', 0),
  row('g', 'a', 2, 'z', 1),
  row('g', 'b', 0, 'x', 0),
];

describe('grpo', () => {
  it("statistics 'steps' (default): mean and std_s over every row's score", () => {
    // scores [1, 1, 1, 0]: mean 0.75; squared deviations 3 * 0.0625 + 0.5625 = 0.75;
    // std_s = sqrt(0.75 / 3) = 0.5; A = 0.25 / (0.5 + eps) on a's rows, -0.75 / (0.5 + eps) on b's.
    const a = 0.25 / (0.5 + eps);
    close(grpo(uneven).advantages, [a, a, a, -0.75 / (0.5 + eps)]);
  });

  it("statistics 'trajectories': each trajectory's episodeReturn once", () => {
    // returns [1, 0]: mean 0.5, std_s = sqrt((0.25 + 0.25) / 1) = sqrt(0.5)
    const a = 0.5 / (Math.sqrt(0.5) + eps);
    close(grpo(uneven, { statistics: 'trajectories' }).advantages, [a, a, a, -a]);
  });

  it("mode 'mean_norm': x - mean", () => {
    // scores [1, 1, 1, 0], mean 0.75
    close(grpo(uneven, { mode: 'mean_norm' }).advantages, [0.25, 0.25, 0.25, -0.75]);
  });

  it('invalid-action penalty: an invalid row scores episodeReturn - 0.1', () => {
    const rows = uneven.map((r, i) => (i === 1 ? { ...r, valid: false } : r));
    // scores [1, 0.9, 1, 0]: mean 2.9 / 4 = 0.725; deviations .275, .175, .275, -.725;
    // squares .075625 + .030625 + .075625 + .525625 = 0.7075; std_s = sqrt(0.7075 / 3)
    const sd = Math.sqrt(0.7075 / 3) + eps;
    close(grpo(rows).advantages, [0.275 / sd, 0.175 / sd, 0.275 / sd, -0.725 / sd]);
    // penaltyCoef 0.5: scores [1, .5, 1, 0], mean_norm, mean 0.625
    close(grpo(rows, { penaltyCoef: 0.5, mode: 'mean_norm' }).advantages, [0.375, -0.125, 0.375, -0.625]);
    // no penalty: as without the invalid row
    close(grpo(rows, { penalty: false, mode: 'mean_norm' }).advantages, [0.25, 0.25, 0.25, -0.75]);
    // 'trajectories' statistics use the unpenalized returns [1, 0] (mean .5, std_s sqrt(.5))
    // and normalize each row's own (penalized) score: (0.9 - 0.5) / (sqrt(.5) + eps)
    const t = Math.sqrt(0.5) + eps;
    close(grpo(rows, { statistics: 'trajectories' }).advantages, [0.5 / t, 0.4 / t, 0.5 / t, -0.5 / t]);
  });

  it('a group with a single value gets mean 0 and std 1', () => {
    // one row, episodeReturn 3: (3 - 0) / (1 + eps)
    close(grpo([row('solo', 'a', 0, 'x', 3)]).advantages, [3 / (1 + eps)]);
    close(grpo([row('solo', 'a', 0, 'x', 3)], { mode: 'mean_norm' }).advantages, [3]);
  });

  it('uses a given episodeReturn instead of the sum of rewards', () => {
    const rows = [row('g', 'a', 0, 'x', 0, true, { episodeReturn: 4 }), row('g', 'b', 0, 'x', 0)];
    // scores [4, 0], mean_norm: mean 2
    close(grpo(rows, { mode: 'mean_norm' }).advantages, [2, -2]);
  });

  it('rejects unknown options and out-of-range values, naming them', () => {
    expect(() => grpo(uneven, { gamma: 0.5 } as never)).toThrow(/gamma/);
    expect(() => grpo(uneven, { mode: 'zscore' } as never)).toThrow(/mode/);
  });
});

describe('rloo', () => {
  // three one-step trajectories with returns 1, 0, 0.5
  const rows = [row('g', 'a', 0, 'x', 1), row('g', 'b', 0, 'x', 0), row('g', 'c', 0, 'x', 0.5)];

  it('subtracts the mean return of the other trajectories', () => {
    // a: 1 - (0 + .5)/2 = .75; b: 0 - (1 + .5)/2 = -.75; c: .5 - (1 + 0)/2 = 0
    close(rloo(rows).advantages, [0.75, -0.75, 0]);
  });

  it('penalizes invalid rows and keeps the score of a lone trajectory', () => {
    // a invalid: score 0.9, baseline still 0.25 -> 0.65
    close(rloo([{ ...rows[0], valid: false }, rows[1], rows[2]]).advantages, [0.65, -0.75, 0]);
    // a group of one: no baseline, the score itself
    close(rloo([row('solo', 'a', 0, 'x', 2)]).advantages, [2]);
  });
});

describe('flow-grpo', () => {
  // a: 3 planner turns, outcome 1 (given on its last turn only); b: 1 turn, outcome 0
  const rows = [
    row('q', 'a', 0, 'plan', 0),
    row('q', 'a', 1, 'plan', 0),
    row('q', 'a', 2, 'plan', 0, true, { outcomeReward: 1 }),
    row('q', 'b', 0, 'plan', 0, true, { outcomeReward: 0 }),
  ];

  it("normalizeOver 'turns' (default): pooled samples, std_s", () => {
    // [1, 1, 1, 0]: mean 0.75, std_s 0.5 (as in GRPO above)
    const a = 0.25 / (0.5 + eps);
    close(flowGrpo(rows).advantages, [a, a, a, -0.75 / (0.5 + eps)]);
  });

  it("normalizeOver 'trajectories': the G trajectory rewards", () => {
    // [1, 0]: mean 0.5, std_s sqrt(0.5)
    const a = 0.5 / (Math.sqrt(0.5) + eps);
    close(flowGrpo(rows, { normalizeOver: 'trajectories' }).advantages, [a, a, a, -a]);
  });

  it('ignores env rewards and validity (no discounting, no penalty)', () => {
    const noisy = rows.map((r) => ({ ...r, envReward: 5, valid: false }));
    close(flowGrpo(noisy).advantages, Array.from(flowGrpo(rows).advantages));
  });

  it('a question with a single sample gets mean 0 and std 1', () => {
    close(flowGrpo([row('q', 'a', 0, 'p', 0, true, { outcomeReward: 1 })]).advantages, [1 / (1 + eps)]);
  });

  it('needs one outcome per trajectory', () => {
    expect(() => flowGrpo([row('q', 'a', 0, 'p', 0)])).toThrow(/row 0: field 'outcomeReward': missing/);
    expect(() =>
      flowGrpo([
        row('q', 'a', 0, 'p', 0, true, { outcomeReward: 1 }),
        row('q', 'a', 1, 'p', 0, true, { outcomeReward: 0 }),
      ]),
    ).toThrow(/row 1: field 'outcomeReward': 0 differs from 1/);
  });
});
