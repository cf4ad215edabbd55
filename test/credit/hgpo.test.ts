// HGPO on batches worked out by hand from ALGORITHMS.md.
import { describe, expect, it } from 'vitest';
import { hgpo } from '../../src/credit/index.ts';
import { expectClose as close, eps, row } from './helpers.ts';

// One group, three trajectories of three steps, gamma 0.5:
//   t1: anchors A, B, C; rewards 0, 0, 1 -> R = [.25, .5, 1]
//   t2: anchors A, B, C; rewards 0, 0, 0 -> R = [0, 0, 0]
//   t3: anchors D, B, C; rewards 0, 0, 1 -> R = [.25, .5, 1]
const rows = [
  row('g', 't1', 0, 'A', 0),
  row('g', 't1', 1, 'B', 0),
  row('g', 't1', 2, 'C', 1),
  row('g', 't2', 0, 'A', 0),
  row('g', 't2', 1, 'B', 0),
  row('g', 't2', 2, 'C', 0),
  row('g', 't3', 0, 'D', 0),
  row('g', 't3', 1, 'B', 0),
  row('g', 't3', 2, 'C', 1),
];

// Level groups (std_p) and their items:
//   step 0, k=1: (A) = {t1 .25, t2 0}: mean .125, std_p .125 -> +-.125 / (.125 + eps); (D) = {t3}: dropped
const s0 = 0.125 / (0.125 + eps);
//   step 1, k=1: (B) = {.5, 0, .5}: mean 1/3, var_p = (1/36 + 4/36 + 1/36) / 3 = 1/18
const b1 = 1 / 6 / (Math.sqrt(1 / 18) + eps); // t1, t3
const b2 = -(1 / 3) / (Math.sqrt(1 / 18) + eps); // t2
//   step 1, k=2: (A,B) = {t1 .5, t2 0}: mean .25, std_p .25; (D,B) = {t3}: dropped
const ab = 0.25 / (0.25 + eps);
//   step 2, k=1: (C) and k=2: (B,C) = {1, 0, 1}: mean 2/3, var_p = (1/9 + 4/9 + 1/9) / 3 = 2/9
const c1 = 1 / 3 / (Math.sqrt(2 / 9) + eps); // t1, t3
const c2 = -(2 / 3) / (Math.sqrt(2 / 9) + eps); // t2
//   step 2, k=3: (A,B,C) = {t1 1, t2 0}: mean .5, std_p .5; (D,B,C) = {t3}: dropped
const abc = 0.5 / (0.5 + eps);

describe('hgpo', () => {
  it('defaults H = 2, alpha = 1 (w_k = k + 1: 2, 3, 4), mean_std_norm with std_p', () => {
    const out = hgpo(rows, { gamma: 0.5 });
    close(out.advantages, [
      (2 * s0) / (2 + eps), // t1 step 0: k=1 only
      (2 * b1 + 3 * ab) / (5 + eps), // t1 step 1: k=1, 2
      (2 * c1 + 3 * c1 + 4 * abc) / (9 + eps), // t1 step 2: k=1, 2, 3
      (2 * -s0) / (2 + eps),
      (2 * b2 + 3 * -ab) / (5 + eps),
      (2 * c2 + 3 * c2 + 4 * -abc) / (9 + eps),
      0, // t3 step 0: its only group is a singleton -> no item -> 0
      (2 * b1) / (2 + eps), // t3 step 1: (D,B) dropped
      (2 * c1 + 3 * c1) / (5 + eps), // t3 step 2: (D,B,C) dropped
    ]);
    // the items behind it
    const no = Number.NaN;
    close(out.details.level[3], [no, no, abc, no, no, -abc, no, no, no]);
    expect(Array.from(out.details.levelGroupSize[3])).toEqual([0, 0, 2, 0, 0, 2, 0, 0, 1]);
    expect(Array.from(out.details.levelGroupSize[1])).toEqual([2, 3, 3, 2, 3, 3, 1, 3, 3]);
    // coverage: k=1: 8 of 9 rows; k=2: (A,B) 2 + (B,C) 3 = 5 of 9; k=3: 2 of 9
    close(out.diagnostics.levelCoverage.slice(1), [8 / 9, 5 / 9, 2 / 9]);
    expect(out.diagnostics.noItemShare).toBeCloseTo(1 / 9, 12);
  });

  it('history H bounds the levels', () => {
    // H = 0: level 1 only (GiGPO's step groups)
    const h0 = hgpo(rows, { gamma: 0.5, history: 0 }).advantages;
    close([h0[1], h0[2]], [(2 * b1) / (2 + eps), (2 * c1) / (2 + eps)]);
    // H = 1: levels 1 and 2
    const h1 = hgpo(rows, { gamma: 0.5, history: 1 }).advantages;
    close([h1[2], h1[5]], [(2 * c1 + 3 * c1) / (5 + eps), (2 * c2 + 3 * c2) / (5 + eps)]);
  });

  it('alpha sets the level weights (k + 1)^alpha', () => {
    // alpha 0: all weights 1; alpha 2: 4, 9, 16
    const a0 = hgpo(rows, { gamma: 0.5, alpha: 0 }).advantages;
    close([a0[1], a0[2]], [(b1 + ab) / (2 + eps), (c1 + c1 + abc) / (3 + eps)]);
    const a2 = hgpo(rows, { gamma: 0.5, alpha: 2 }).advantages;
    close([a2[2]], [(4 * c1 + 9 * c1 + 16 * abc) / (29 + eps)]);
  });

  it("mode 'mean_norm': items are R - mean", () => {
    // t1 step 2: k=1, 2: 1 - 2/3 = 1/3; k=3: 1 - .5 = .5 -> (2/3 + 1 + 2) / 9
    const out = hgpo(rows, { gamma: 0.5, mode: 'mean_norm' }).advantages;
    close([out[2]], [(2 / 3 + 3 / 3 + 4 * 0.5) / (9 + eps)]);
  });

  it('drops items exactly equal to 0 (they do not dilute the others)', () => {
    // step 1 returns: p1 .5, p2 0, q 1 (last steps, rewards as given); anchors p1, p2: P, X; q: Q, X
    const z = [
      row('g', 'p1', 0, 'P', 0),
      row('g', 'p1', 1, 'X', 0.5),
      row('g', 'p2', 0, 'P', 0),
      row('g', 'p2', 1, 'X', 0),
      row('g', 'q', 0, 'Q', 0),
      row('g', 'q', 1, 'X', 1),
    ];
    // p1 step 1: k=1 (X) = {.5, 0, 1}: mean .5 -> a_1 = 0 exactly, dropped;
    // k=2 (P,X) = {.5, 0}: mean .25, std_p .25 -> a_2 = .25 / (.25 + eps); A = 3 a_2 / (3 + eps)
    const a2 = 0.25 / (0.25 + eps);
    close([hgpo(z).advantages[1]], [(3 * a2) / (3 + eps)]);
  });

  it('baseGroup adds the GiGPO episode advantage as a k = 0 item of weight 1', () => {
    // two one-step trajectories on the same anchor, rewards 1 and 0:
    // A_E: scores [1, 0], mean .5, std_s sqrt(.5) -> +-.5 / (sqrt(.5) + eps)
    // k=1: {1, 0}: std_p .5 -> +-.5 / (.5 + eps); A = (A_E + 2 a_1) / (3 + eps)
    const pair = [row('g', 'a', 0, 'X', 1), row('g', 'b', 0, 'X', 0)];
    const e = 0.5 / (Math.sqrt(0.5) + eps);
    const a1 = 0.5 / (0.5 + eps);
    close(hgpo(pair, { baseGroup: true }).advantages, [(e + 2 * a1) / (3 + eps), (-e - 2 * a1) / (3 + eps)]);
    close(hgpo(pair).advantages, [(2 * a1) / (2 + eps), (-2 * a1) / (2 + eps)]);
  });

  it("combine 'episode-plus' is A_E plus the weighted mean of the step-level items", () => {
    // the pair above: A = A_E + 2 a_1 / (2 + eps), not a mean with A_E
    const pair = [row('g', 'a', 0, 'X', 1), row('g', 'b', 0, 'X', 0)];
    const e = 0.5 / (Math.sqrt(0.5) + eps);
    const a1 = 0.5 / (0.5 + eps);
    const plus = hgpo(pair, { combine: 'episode-plus' });
    close(plus.advantages, [e + (2 * a1) / (2 + eps), -e - (2 * a1) / (2 + eps)]);
    expect(plus.details.levelWeight[0]).toBe(1);
    // the hand-worked batch: t1 step 1 has items b1 (k=1, weight 2) and ab (k=2, weight 3)
    // A_E: scores 1 (t1, t3) and 0 (t2) on three rows each: mean 2/3, std_s .5
    const won = 1 / 3 / (0.5 + eps);
    const out = hgpo(rows, { combine: 'episode-plus', gamma: 0.5 });
    close([out.advantages[1]], [won + (2 * b1 + 3 * ab) / (5 + eps)]);
    // t3 step 0 is alone at every level: A_E only
    close([out.advantages[6]], [won]);
    // at history 0 it is GiGPO's A_E + A_S but for A_S's std_p (GiGPO: std_s)
    const flat = [row('g', 'a', 0, 'X', 1), row('g', 'b', 0, 'X', 0), row('g', 'c', 0, 'X', 0)];
    const h0 = hgpo(flat, { combine: 'episode-plus', history: 0 });
    // A_E: mean 1/3, std_s sqrt(1/3); a_1: the same deviations over std_p sqrt(2/9)
    const [stdS, stdP] = [Math.sqrt(1 / 3), Math.sqrt(2 / 9)];
    const plus1 = (d: number) => d / (stdS + eps) + (2 * (d / (stdP + eps))) / (2 + eps);
    close(h0.advantages, [plus1(2 / 3), plus1(-1 / 3), plus1(-1 / 3)]);
  });

  it('singleton groups add nothing: all-distinct anchors give 0 (or the base item alone)', () => {
    const distinct = rows.map((r, i) => ({ ...r, anchor: `s${i}` }));
    close(hgpo(distinct).advantages, new Array(9).fill(0));
    // with the base group: the only item is A_E, weight 1 -> A_E / (1 + eps)
    const out = hgpo(distinct, { baseGroup: true });
    close(
      out.advantages,
      Array.from(out.details.level[0], (e) => e / (1 + eps)),
    );
  });
});
