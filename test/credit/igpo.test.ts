// IGPO on batches worked out by hand from ALGORITHMS.md.
import { describe, expect, it } from 'vitest';
import { igpo } from '../../src/credit/index.ts';
import { expectClose as close, eps, row } from './helpers.ts';

const turn = (t: string, s: number, p: number, extra = {}) =>
  row('q', t, s, 'question', 0, true, { valueBefore: Math.log(p), ...extra });

// t1: three turns, probabilities of the answer before each: .2, .5, .9; answers with F1 1.
//     prob_diff gains: IG_0 = .5 - .2 = .3, IG_1 = .9 - .5 = .4
// t2: two turns, .2, .1; answers with F1 0. IG_0 = .1 - .2 = -.1
const rows = [
  turn('t1', 0, 0.2),
  turn('t1', 1, 0.5),
  turn('t1', 2, 0.9, { answered: true, outcomeReward: 1 }),
  turn('t2', 0, 0.2),
  turn('t2', 1, 0.1, { answered: true, outcomeReward: 0 }),
];

// Separate pools, std_p, sigma = sqrt(var + 1e-8):
//   outcomes [1, 0]: mean .5, var .25 -> +-.5 / (sqrt(.25 + 1e-8) + eps)
const o = 0.5 / (Math.sqrt(0.25 + 1e-8) + eps);
//   gains [.3, .4, -.1]: mean .2; deviations .1, .2, -.3; var (.01 + .04 + .09) / 3 = .14 / 3
const sg = Math.sqrt(0.14 / 3 + 1e-8) + eps;

describe('igpo', () => {
  it("defaults: prob_diff gains, 'separate' pools, gamma 1", () => {
    const out = igpo(rows);
    close(out.details.gain, [0.3, 0.4, Number.NaN, -0.1, Number.NaN]);
    close(out.details.normalizedReward, [0.1 / sg, 0.2 / sg, o, -0.3 / sg, -o]);
    // Adv_t = rhat_t + Adv_{t+1}, backwards
    close(out.advantages, [0.1 / sg + 0.2 / sg + o, 0.2 / sg + o, o, -0.3 / sg - o, -o]);
  });

  it('gamma discounts the backward sum', () => {
    // gamma .5: t1: Adv_2 = o, Adv_1 = .2/sg + .5 o, Adv_0 = .1/sg + .5 Adv_1
    const adv1 = 0.2 / sg + 0.5 * o;
    close(igpo(rows, { gamma: 0.5 }).advantages, [0.1 / sg + 0.5 * adv1, adv1, o, -0.3 / sg - 0.5 * o, -o]);
  });

  it("infoGain 'log_prob_diff': v_{t+1} - v_t", () => {
    // gains ln(.5/.2) = ln 2.5, ln(.9/.5) = ln 1.8, ln(.1/.2) = -ln 2
    const g = [Math.log(2.5), Math.log(1.8), -Math.log(2)];
    const mean = (g[0] + g[1] + g[2]) / 3;
    const v = ((g[0] - mean) ** 2 + (g[1] - mean) ** 2 + (g[2] - mean) ** 2) / 3;
    const s = Math.sqrt(v + 1e-8) + eps;
    const out = igpo(rows, { infoGain: 'log_prob_diff' });
    close(out.details.normalizedReward, [(g[0] - mean) / s, (g[1] - mean) / s, o, (g[2] - mean) / s, -o]);
  });

  it("norm 'joint': one pool for outcomes and gains", () => {
    // [.3, .4, 1, -.1, 0]: mean 1.6 / 5 = .32; deviations -.02, .08, .68, -.42, -.32;
    // squares .0004 + .0064 + .4624 + .1764 + .1024 = .748; var = .748 / 5 = .1496
    const s = Math.sqrt(0.1496 + 1e-8) + eps;
    const out = igpo(rows, { norm: 'joint' });
    close(out.details.normalizedReward, [-0.02 / s, 0.08 / s, 0.68 / s, -0.42 / s, -0.32 / s]);
  });

  it('a trajectory without an answer drops its gains and earns outcome 0', () => {
    // t3 hits the turn limit: turns .2, .6, no answered flag.
    const noAnswer = [...rows.slice(0, 3), turn('t3', 0, 0.2), turn('t3', 1, 0.6)];
    // outcomes [1, 0]: +-o; gains only t1's [.3, .4]: mean .35, var .0025 -> +-.05 / (sqrt(.0025 + 1e-8) + eps)
    const s = Math.sqrt(0.0025 + 1e-8) + eps;
    const out = igpo(noAnswer);
    close(out.details.normalizedReward, [-0.05 / s, 0.05 / s, o, 0, -o]);
    close(out.advantages.subarray(3), [-o, -o]);
    expect(Number.isNaN(out.details.gain[3])).toBe(true);
    expect(out.diagnostics.noAnswerTrajectories).toBe(1);
  });

  it('format penalty: a malformed final response gets -2 (option)', () => {
    const bad = rows.map((r, i) => (i === 4 ? { ...r, valid: false } : r));
    // outcomes [1, -2]: mean -.5, var 2.25 -> +-1.5 / (sqrt(2.25 + 1e-8) + eps)
    const p = 1.5 / (Math.sqrt(2.25 + 1e-8) + eps);
    const n = igpo(bad).details.normalizedReward;
    close([n[2], n[4]], [p, -p]);
    expect(igpo(bad).diagnostics.formatPenalties).toBe(1);
    // penaltyCoef 1: outcomes [1, -1]: mean 0, var 1
    const q = 1 / (Math.sqrt(1 + 1e-8) + eps);
    close([igpo(bad, { penaltyCoef: 1 }).details.normalizedReward[4]], [-q]);
    // penalty off: the given F1 (0) is used, as in the valid batch
    close([igpo(bad, { penalty: false }).details.normalizedReward[4]], [-o]);
  });

  it('a pool of one gets sigma 1 (and so rhat 0)', () => {
    // one trajectory: outcome pool {1}, gain pool {.3}: both (x - x) / (1 + eps) = 0
    const one = [turn('t', 0, 0.2), turn('t', 1, 0.5, { answered: true, outcomeReward: 1 })];
    close(igpo(one).advantages, [0, 0]);
  });

  it('names the missing field', () => {
    expect(() => igpo([row('q', 't', 0, 'x', 0)])).toThrow(/row 0: field 'valueBefore'/);
    expect(() => igpo([turn('t', 0, 0.5, { answered: true })])).toThrow(/row 0: field 'outcomeReward'/);
    expect(() => igpo([turn('t', 0, 0.5, { answered: true, outcomeReward: 1 }), turn('t', 1, 0.5)])).toThrow(
      /row 0: field 'answered'/,
    );
  });
});
