// GiGPO on batches worked out by hand from ALGORITHMS.md.
import { describe, expect, it } from 'vitest';
import { gigpo, grpo } from '../../src/credit/index.ts';
import { expectClose as close, eps, row } from './helpers.ts';

// Group g, two trajectories that start on the same anchor X:
//   a: anchors X, Y; rewards 0, 1 -> episodeReturn 1; with gamma 0.5: R = [0 + 0.5 * 1, 1] = [0.5, 1]
//   b: anchors X, Z; rewards 0, 0 -> episodeReturn 0; R = [0, 0]
const rows = [
  row('g', 'a', 0, 'X', 0),
  row('g', 'a', 1, 'Y', 1),
  row('g', 'b', 0, 'X', 0),
  row('g', 'b', 1, 'Z', 0),
];

describe('gigpo', () => {
  it('A = A_E + A_S with mean_std_norm (default), std_s', () => {
    // A_E: scores [1, 1, 0, 0]: mean .5, std_s = sqrt(4 * .25 / 3) = sqrt(1/3) -> +-.5 / (sqrt(1/3) + eps)
    const e = 0.5 / (Math.sqrt(1 / 3) + eps);
    // A_S: step group X = {a0: R .5, b0: R 0}: mean .25, std_s = sqrt((.0625 + .0625) / 1) = sqrt(.125)
    //      -> +-.25 / (sqrt(.125) + eps); Y and Z are alone -> 0
    const s = 0.25 / (Math.sqrt(0.125) + eps);
    const out = gigpo(rows, { gamma: 0.5 });
    close(out.details.episode, [e, e, -e, -e]);
    close(out.details.step, [s, 0, -s, 0]);
    close(out.advantages, [e + s, e, -e - s, -e]);
    expect(Array.from(out.details.stepGroupSize)).toEqual([2, 1, 2, 1]);
    expect(out.details.stepGroup[0]).toBe(out.details.stepGroup[2]);
    expect(out.diagnostics.nonTrivialStepShare).toBe(0.5);
    expect(out.diagnostics.stepGroups).toBe(3);
  });

  it("mode 'mean_norm' and step weight", () => {
    // A_E = [.5, .5, -.5, -.5]; A_S = [.25, 0, -.25, 0]
    close(gigpo(rows, { gamma: 0.5, mode: 'mean_norm' }).advantages, [0.75, 0.5, -0.75, -0.5]);
    // w = 2: [.5 + .5, .5, -.5 - .5, -.5]
    close(gigpo(rows, { gamma: 0.5, mode: 'mean_norm', stepWeight: 2 }).advantages, [1, 0.5, -1, -0.5]);
  });

  it('default gamma 0.95', () => {
    // R(a0) = 0 + 0.95 * 1 = 0.95; step group X = {.95, 0}: mean_norm -> +-.475
    close(gigpo(rows, { mode: 'mean_norm' }).details.step, [0.475, 0, -0.475, 0]);
  });

  it('penalty: subtracted from R_t and S of the invalid row only, after discounting', () => {
    // a0 invalid: R(a0) = 0.5 - 0.1 = 0.4 (a1 keeps 1); S(a0) = 1 - 0.1 = 0.9
    // b1 invalid: R(b1) = 0 - 0.1 = -0.1, and R(b0) stays 0 + 0.5 * 0 = 0 (not propagated)
    const bad = rows.map((r, i) => (i === 0 || i === 3 ? { ...r, valid: false } : r));
    // mean_norm. scores [.9, 1, 0, -.1]: mean 1.8 / 4 = .45 -> A_E = [.45, .55, -.45, -.55]
    // step group X = {a0 .4, b0 0}: mean .2 -> A_S = [.2, 0, -.2, 0]
    const out = gigpo(bad, { gamma: 0.5, mode: 'mean_norm' });
    close(out.details.return, [0.4, 1, 0, -0.1]);
    close(out.advantages, [0.65, 0.55, -0.65, -0.55]);
    // no penalty: as the valid batch
    close(gigpo(bad, { gamma: 0.5, mode: 'mean_norm', penalty: false }).advantages, [0.75, 0.5, -0.75, -0.5]);
  });

  it('structured anchors group by deep equality, never with text', () => {
    const s = [
      row('g', 'a', 0, { room: 'kitchen', see: ['apple', 'mug'] }, 1),
      row('g', 'b', 0, { see: ['apple', 'mug'], room: 'kitchen' }, 0),
      row('g', 'c', 0, { room: 'kitchen', see: ['mug', 'apple'] }, 0),
      row('g', 'd', 0, '{"room":"kitchen","see":["apple","mug"]}', 0),
    ];
    // a and b are equal (key order does not matter); c's list order differs; d is text
    expect(Array.from(gigpo(s).details.stepGroupSize)).toEqual([2, 2, 1, 1]);
  });

  it('anchors only group inside their own group', () => {
    const two = [row('g1', 'a', 0, 'X', 1), row('g2', 'a', 0, 'X', 0)];
    expect(Array.from(gigpo(two).details.stepGroupSize)).toEqual([1, 1]);
  });

  describe('similarity step groups', () => {
    // r1 = 'abcdefghij', r2 = 'abcdefghXj', r3 = 'abcdefgYXj' (10 characters each)
    // ratio(r2, r1): blocks 'abcdefgh' + 'j' = 9 -> 2 * 9 / 20 = 0.9
    // ratio(r3, r1): 'abcdefg' + 'j' = 8 -> 0.8;  ratio(r3, r2): 'abcdefg' + 'Xj' = 9 -> 0.9
    // one-step trajectories with rewards 1, 0, 5 -> mean_norm A_E = [1 - 2, 0 - 2, 5 - 2] = [-1, -2, 3]
    const r1 = row('g', 't1', 0, 'abcdefghij', 1);
    const r2 = row('g', 't2', 0, 'abcdefghXj', 0);
    const r3 = row('g', 't3', 0, 'abcdefgYXj', 5);

    it('a row joins the first cluster whose representative (first member) is similar enough', () => {
      // threshold .9: r2 joins r1 (0.9 >= 0.9); r3 vs representative r1 is 0.8 -> a new cluster,
      // although r3 is 0.9 to r2. A_S over {r1: 1, r2: 0}: mean .5 -> [.5, -.5]; r3 alone: 0
      const out = gigpo([r1, r2, r3], { similarity: 0.9, mode: 'mean_norm' });
      expect(Array.from(out.details.stepGroupSize)).toEqual([2, 2, 1]);
      close(out.advantages, [-0.5, -2.5, 3]);
    });

    it('is greedy in row order (the documented exception to order invariance)', () => {
      // r2 first: r1 (0.9) and r3 (0.9) both join it. A_S over {1, 0, 5} (mean 2) = A_E
      const out = gigpo([r2, r1, r3], { similarity: 0.9, mode: 'mean_norm' });
      expect(Array.from(out.details.stepGroupSize)).toEqual([3, 3, 3]);
      // rows in this order: r2, r1, r3 -> A = 2 * A_E
      close(out.advantages, [-4, -2, 6]);
    });

    it('a threshold above the ratio keeps rows apart; exact mode groups nothing here', () => {
      expect(Array.from(gigpo([r1, r2, r3], { similarity: 0.95 }).details.stepGroupSize)).toEqual([1, 1, 1]);
      expect(Array.from(gigpo([r1, r2, r3]).details.stepGroupSize)).toEqual([1, 1, 1]);
    });

    it('uses the exact ratio at the threshold (>=)', () => {
      // 'You see a mug 1.' vs 'You see a mug 2.': 15 of 16 characters match -> 2 * 15 / 32 = 0.9375
      const pair = [row('g', 'a', 0, 'You see a mug 1.', 1), row('g', 'b', 0, 'You see a mug 2.', 0)];
      expect(Array.from(gigpo(pair, { similarity: 0.9375 }).details.stepGroupSize)).toEqual([2, 2]);
      expect(Array.from(gigpo(pair, { similarity: 0.9376 }).details.stepGroupSize)).toEqual([1, 1]);
    });

    it('needs text anchors', () => {
      expect(() => gigpo([row('g', 'a', 0, { x: 1 }, 0)], { similarity: 0.9 })).toThrow(
        /row 0: field 'anchor'/,
      );
    });
  });

  it('singleton step groups add nothing: all-distinct anchors give GRPO', () => {
    const distinct = rows.map((r, i) => ({ ...r, anchor: `s${i}` }));
    close(gigpo(distinct).advantages, Array.from(grpo(distinct).advantages));
  });
});
