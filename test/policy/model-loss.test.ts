// The policy loss against values worked by hand from ALGORITHMS.md "The policy loss".
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { Graph } from '../../src/policy/graph/index.ts';
import { LossConfig, lossTerms } from '../../src/policy/model/loss.ts';

interface Case {
  lp: number[][];
  old?: number[][];
  ref?: number[][];
  adv?: number[][];
  mask: number[][];
  entropy?: number[][];
}

/** Run the loss graph (float64) on per-token values; returns loss, kl, entropy, clipFraction. */
async function runLoss(c: Case, cfg: Partial<LossConfig>): Promise<Record<string, number>> {
  const config = LossConfig.parse(cfg);
  const B = c.lp.length;
  const T = c.lp[0]!.length;
  const g = new Graph('loss');
  const input = (name: string) => g.input(name, 'float64', ['batch', 'seq']);
  const t = {
    logprobs: input('lp'),
    oldLogprobs: input('old'),
    refLogprobs: input('ref'),
    advantages: input('adv'),
    mask: input('mask'),
    entropy: input('tokenEntropy'),
  };
  const out = lossTerms(t, config);
  for (const [k, v] of Object.entries(out)) g.output(k, v);
  const s = await ort.InferenceSession.create(g.toOnnx());
  const zeros = c.lp.map((r) => r.map(() => 0));
  const feed = (rows: number[][] | undefined) =>
    new ort.Tensor('float64', Float64Array.from((rows ?? zeros).flat()), [B, T]);
  const r = await s.run({
    lp: feed(c.lp),
    old: feed(c.old ?? c.lp),
    ref: feed(c.ref ?? c.lp),
    adv: feed(c.adv),
    mask: feed(c.mask),
    tokenEntropy: feed(c.entropy),
  });
  return Object.fromEntries(Object.entries(r).map(([k, v]) => [k, Number((v.data as Float64Array)[0])]));
}

const ln = Math.log;
const noExtras = { klCoef: 0, entropyCoef: 0 };

describe('policy loss (hand-worked values)', () => {
  it('clips the ratio on both sides and applies the dual clip', async () => {
    // Five tokens; ratio = exp(lp - old) is set per token by old = lp - ln(ratio).
    const ratios = [1.5, 0.5, 0.5, 5, 1];
    const adv = [1, 1, -1, -1, 2];
    const lp = [-1, -2, -0.5, -3, -1.2];
    const old = lp.map((x, i) => x - ln(ratios[i]!));
    const r = await runLoss({ lp: [lp], old: [old], adv: [adv], mask: [[1, 1, 1, 1, 1]] }, noExtras);
    // Per token, by hand (clip range [0.8, 1.2], clipC = 3):
    //  A=1,  r=1.5: max(-1.5, -1.2) = -1.2   (clipped above)
    //  A=1,  r=0.5: max(-0.5, -0.8) = -0.5
    //  A=-1, r=0.5: max(0.5, 0.8) = 0.8      (clipped below); dual min(0.8, 3) = 0.8
    //  A=-1, r=5:   max(5, 1.2) = 5;           dual min(5, 3) = 3
    //  A=2,  r=1:   -2
    expect(r.loss).toBeCloseTo((-1.2 - 0.5 + 0.8 + 3 - 2) / 5, 10);
    expect(r.clipFraction).toBeCloseTo(2 / 5, 10);
  });

  it('uses clipLow and clipHigh separately and clipC as the dual bound', async () => {
    const lp = [-1, -1, -1];
    const ratios = [2, 0.1, 10];
    const old = lp.map((x, i) => x - ln(ratios[i]!));
    const r = await runLoss(
      { lp: [lp], old: [old], adv: [[1, -1, -2]], mask: [[1, 1, 1]] },
      { ...noExtras, clipLow: 0.1, clipHigh: 0.28, clipC: 2 },
    );
    //  A=1,  r=2:   max(-2, -1.28) = -1.28
    //  A=-1, r=0.1: max(0.1, 0.9) = 0.9; dual min(0.9, 2) = 0.9
    //  A=-2, r=10:  max(20, 2.56) = 20;  dual min(20, 4) = 4
    expect(r.loss).toBeCloseTo((-1.28 + 0.9 + 4) / 3, 10);
  });

  it('adds the k3 KL to the reference, clamped at 10, and subtracts the entropy bonus', async () => {
    const lp = [-1, -1, -1, -1];
    const d = [ln(2), -1, 0, 3]; // d = lp_ref - lp
    const ref = lp.map((x, i) => x + d[i]!);
    const entropy = [2, 1, 0.5, 0.5];
    const r = await runLoss(
      { lp: [lp], ref: [ref], adv: [[0, 0, 0, 0]], mask: [[1, 1, 1, 1]], entropy: [entropy] },
      { klCoef: 0.5, entropyCoef: 0.1 },
    );
    // kl = e^d - d - 1: 2 - ln2 - 1, e^-1, 0, min(e^3 - 4, 10) = 10
    const kl = [1 - ln(2), Math.exp(-1), 0, 10];
    const meanKl = kl.reduce((a, b) => a + b) / 4;
    expect(r.kl).toBeCloseTo(meanKl, 10);
    expect(r.entropy).toBeCloseTo(1, 10);
    expect(r.loss).toBeCloseTo(0.5 * meanKl - 0.1 * 1, 10);
  });

  describe('aggregation modes', () => {
    // ratio 1 and A > 0 make each token's loss -A. Row 2 has no masked token (padding row).
    const c: Case = {
      lp: [
        [-1, -1, -1],
        [-1, -1, -1],
        [-1, -1, -1],
      ],
      adv: [
        [1, 2, 3],
        [4, 5, 6],
        [7, 8, 9],
      ],
      mask: [
        [0, 1, 1],
        [1, 1, 1],
        [0, 0, 0],
      ],
    };
    it('token-mean: mean over all masked tokens', async () => {
      const r = await runLoss(c, { ...noExtras, lossAgg: 'token-mean' });
      expect(r.loss).toBeCloseTo((-2 - 3 - 4 - 5 - 6) / 5, 10);
    });
    it('seq-mean-token-sum: mean over rows with tokens of each row sum', async () => {
      const r = await runLoss(c, { ...noExtras, lossAgg: 'seq-mean-token-sum' });
      expect(r.loss).toBeCloseTo((-5 + -15) / 2, 10);
    });
    it('seq-mean-token-mean: mean over rows with tokens of each row mean', async () => {
      const r = await runLoss(c, { ...noExtras, lossAgg: 'seq-mean-token-mean' });
      expect(r.loss).toBeCloseTo((-2.5 + -5) / 2, 10);
    });
  });

  it('SFT is the masked cross-entropy', async () => {
    const r = await runLoss({ lp: [[-0.5, -2, -4]], mask: [[0, 1, 1]] }, { kind: 'sft' });
    expect(r.loss).toBeCloseTo(3, 10);
  });

  it('an all-zero mask gives a zero loss, not NaN', async () => {
    const r = await runLoss({ lp: [[-1, -2]], adv: [[1, 1]], mask: [[0, 0]] }, {});
    expect(r.loss === 0).toBe(true);
  });
});
