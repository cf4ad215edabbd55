// The policy loss against values worked by hand from ALGORITHMS.md "The policy loss".
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { Graph, grad } from '../../src/policy/graph/index.ts';
import { LossConfig, lossTerms } from '../../src/policy/model/loss.ts';

interface Case {
  lp: number[][];
  old?: number[][];
  ref?: number[][];
  adv?: number[][];
  mask: number[][];
  entropy?: number[][];
}

/**
 * Run the loss graph (float64) on per-token values; returns loss, kl, entropy, clipFraction and
 * dLoss/dlp, the gradient of the loss with respect to each token's new log-prob (row-major).
 */
async function runLoss(
  c: Case,
  cfg: Partial<LossConfig>,
): Promise<Record<'loss' | 'kl' | 'entropy' | 'clipFraction', number> & { dlp: number[] }> {
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
  g.output('dlp', grad(out.loss, [t.logprobs])[0]!);
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
  const first = (k: string) => Number((r[k]!.data as Float64Array)[0]);
  return {
    loss: first('loss'),
    kl: first('kl'),
    entropy: first('entropy'),
    clipFraction: first('clipFraction'),
    dlp: Array.from(r.dlp!.data as Float64Array),
  };
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

  // Each bound alone, with an asymmetric range (Flow-GRPO's is), so that swapping clipLow and
  // clipHigh changes the loss, the clip fraction and the gradient. Range [1 - 0.1, 1 + 0.3].
  const asymmetric = { ...noExtras, clipLow: 0.1, clipHigh: 0.3, clipC: 3 };
  /** old = lp - ln(ratio), so that exp(lp - old) is the given ratio. */
  const withRatios = (lp: number[], ratios: number[]) => lp.map((x, i) => x - ln(ratios[i]!));

  it('clipHigh alone bounds the ratio of A > 0 tokens from above; their gradient is zero beyond it', async () => {
    const ratios = [1.05, 1.2, 1.5, 0.5];
    const lp = [-1, -1.5, -2, -0.5];
    const r = await runLoss(
      { lp: [lp], old: [withRatios(lp, ratios)], adv: [[1, 1, 1, 1]], mask: [[1, 1, 1, 1]] },
      asymmetric,
    );
    // A = 1, per token max(-r, -clip(r, 0.9, 1.3)):
    //  r=1.05: -1.05;  r=1.2: -1.2 (inside 1 + clipHigh, though past 1 + clipLow);
    //  r=1.5: -1.3 (clipped);  r=0.5: -0.5 (below 1 - clipLow, which never binds for A > 0)
    expect(r.loss).toBeCloseTo((-1.05 - 1.2 - 1.3 - 0.5) / 4, 10);
    expect(r.clipFraction).toBeCloseTo(1 / 4, 10);
    // d/dlp of -A * exp(lp - old) is -A * ratio (over 4 tokens); nothing flows through the clip.
    const want = [-1.05 / 4, -1.2 / 4, 0, -0.5 / 4];
    for (const [i, g] of r.dlp.entries()) expect(g, `token ${i}`).toBeCloseTo(want[i]!, 10);
  });

  it('clipLow alone bounds the ratio of A < 0 tokens from below; their gradient is zero beyond it', async () => {
    const ratios = [0.95, 0.8, 0.5, 1.5];
    const lp = [-1, -1.5, -2, -0.5];
    const r = await runLoss(
      { lp: [lp], old: [withRatios(lp, ratios)], adv: [[-1, -1, -1, -1]], mask: [[1, 1, 1, 1]] },
      asymmetric,
    );
    // A = -1, per token max(r, clip(r, 0.9, 1.3)), then min(., clipC = 3):
    //  r=0.95: 0.95;  r=0.8: 0.9 (clipped, though inside 1 - clipHigh);  r=0.5: 0.9 (clipped);
    //  r=1.5: 1.5 (above 1 + clipHigh, which never binds for A < 0; under the dual bound 3)
    expect(r.loss).toBeCloseTo((0.95 + 0.9 + 0.9 + 1.5) / 4, 10);
    expect(r.clipFraction).toBeCloseTo(2 / 4, 10);
    const want = [0.95 / 4, 0, 0, 1.5 / 4];
    for (const [i, g] of r.dlp.entries()) expect(g, `token ${i}`).toBeCloseTo(want[i]!, 10);
  });

  it('the dual clip caps A < 0 losses at -A * clipC, with a zero gradient there, and leaves A > 0 alone', async () => {
    const ratios = [2, 5, 0.1];
    const lp = [-1, -1, -1];
    const r = await runLoss(
      { lp: [lp], old: [withRatios(lp, ratios)], adv: [[-2, -2, 1]], mask: [[1, 1, 1]] },
      asymmetric,
    );
    //  A=-2, r=2:   max(4, 2.6) = 4;   min(4, 6) = 4 (under the dual bound)
    //  A=-2, r=5:   max(10, 2.6) = 10; min(10, 6) = 6 (dual-clipped)
    //  A=1,  r=0.1: max(-0.1, -0.9) = -0.1 (no dual bound for A > 0: min(-0.1, -3) would be -3)
    expect(r.loss).toBeCloseTo((4 + 6 - 0.1) / 3, 10);
    // PPO's clip fraction counts the ratio clip only: here the clipped term never won.
    expect(r.clipFraction).toBe(0);
    const want = [4 / 3, 0, -0.1 / 3];
    for (const [i, g] of r.dlp.entries()) expect(g, `token ${i}`).toBeCloseTo(want[i]!, 10);
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
