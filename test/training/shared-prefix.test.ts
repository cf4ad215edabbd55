/**
 * Shared prompt prefixes (issue 13): on real windowed rollouts of the household default (tiny,
 * untrained), training and scoring each group-step's common prefix once gives the whole rows' loss,
 * gradients and log-probs.
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { Policy } from '../../src/index.ts';
import { parseTrainConfig } from '../../src/training/config.ts';
import { makeFamily } from '../../src/training/families/index.ts';
import { HOUSEHOLD_DEFAULT } from '../../src/training/presets.ts';
import { sftRow, sftRows, sftSamples } from '../../src/training/sft.ts';
import { miniBatches, tokenRows } from '../../src/training/update.ts';
import { Rng } from '../../src/util/random.ts';
import { tinyPolicy } from '../agents/loops-helpers.ts';
import {
  gradientError,
  householdRollouts,
  ONE_STEP_RL_LOSS,
  trainSteps,
  weightCopies,
} from './update-fixtures.ts';

const policies: Policy[] = [];
afterAll(async () => {
  for (const p of policies) await p.dispose();
});

const windowedRollouts = (policy: Policy) =>
  householdRollouts(policy, { promptFormat: 'windowed', groupSize: 4, seed: 9 });

describe('shared-prefix update', () => {
  it("trains each group-step's common prompt prefix once, with the whole rows' loss, gradients and reference log-probs", async () => {
    const policy = tinyPolicy(21);
    policies.push(policy);
    const steps = trainSteps(await windowedRollouts(policy));
    const options = { pack: true, rolloutLogprobs: true, klCoef: 0.01 };
    const shared = await tokenRows(policy, policy, steps, { ...options, sharedPrefix: 16 });
    const whole = await tokenRows(policy, policy, steps, options);
    expect(shared.rows).toHaveLength(steps.length);
    expect(whole.rows.every((r) => r.prefix === undefined)).toBe(true);

    // Step 0 shares the whole prompt but its last token, later steps the opening lines: prefixes of
    // several lengths, each cut before the row's first loss token.
    const lengths = new Set(shared.rows.map((r) => r.prefix?.length ?? 0));
    expect(lengths.size).toBeGreaterThan(2);
    shared.rows.forEach((r, i) => {
      const w = whole.rows[i]!;
      const cut = r.prefix?.length ?? 0;
      expect([...(r.prefix ?? []), ...r.tokens]).toEqual(w.tokens);
      expect(r.mask[0]).toBe(0);
      if (cut > 0) expect(cut).toBeGreaterThanOrEqual(16);
    });
    const tokensOf = (rows: { tokens: number[]; prefix?: readonly number[]; unit: number }[]) => {
      const prefixes = new Map(rows.map((r) => [r.unit, r.prefix?.length ?? 0]));
      return (
        rows.reduce((a, r) => a + r.tokens.length, 0) + [...prefixes.values()].reduce((a, b) => a + b, 0)
      );
    };
    expect(tokensOf(shared.rows)).toBeLessThan(0.8 * tokensOf(whole.rows));

    // Reference log-probs scored with the prefix layout are the whole rows' (masked tokens).
    let worst = 0;
    shared.rows.forEach((r, i) => {
      const cut = r.prefix?.length ?? 0;
      r.mask.forEach((m, t) => {
        if (m) worst = Math.max(worst, Math.abs(r.refLogprobs![t]! - whole.rows[i]!.refLogprobs![t + cut]!));
      });
    });
    expect(worst).toBeLessThan(1e-5);

    // One optimizer step each on fresh copies of the same weights, all rows in one batch (rows
    // with and without a prefix, prefixes of different lengths). The first AdamW moment is
    // (1 - beta1) x the gradient, so comparing moments compares gradients.
    const loss = ONE_STEP_RL_LOSS;
    const copies = weightCopies(policy, 21);
    policies.push(...copies);
    // The same reference log-probs on both sides (scoring noise would otherwise enter the KL term).
    const a = await copies[0]!.update(
      shared.rows.map((r, i) => ({
        ...r,
        refLogprobs: whole.rows[i]!.refLogprobs!.slice(r.prefix?.length ?? 0),
      })),
      loss,
    );
    const b = await copies[1]!.update(whole.rows, loss);
    expect(a.tokens).toBe(b.tokens);
    for (const k of ['loss', 'kl', 'entropy', 'gradNorm'] as const) {
      expect(Math.abs(a[k] - b[k])).toBeLessThanOrEqual(1e-5 * Math.max(Math.abs(b[k]), 1e-3));
    }
    expect(gradientError(copies[0]!, copies[1]!)).toBeLessThan(1e-5);
    expect(a.gradNorm).toBeGreaterThan(0);

    // Mini-batches keep a group-step's rows together and the row path's optimizer-step count.
    const batches = miniBatches(shared.rows, 4, new Rng('mb'));
    expect(batches).toHaveLength(Math.ceil(steps.length / 4));
    const home = new Map<number, number>();
    batches.forEach((batch, n) => {
      for (const r of batch) {
        expect(home.get(r.unit) ?? n).toBe(n);
        home.set(r.unit, n);
      }
    });
    expect(batches.flat()).toHaveLength(steps.length);
  });

  it("SFT: a batch's common prompt opening trained once gives the whole rows' loss and gradients", async () => {
    const policy = tinyPolicy(23);
    policies.push(policy);
    const family = await makeFamily(parseTrainConfig(HOUSEHOLD_DEFAULT), {});
    const demos = await family.demonstrations([0, 1, 2].map((k) => family.task('train', 500 + k)));
    const samples = sftSamples(demos, policy.tokenizer, policy.config.contextLength).slice(0, 12);
    expect(samples.length).toBe(12);
    const shared = sftRows(samples, 16);
    const whole = samples.map(sftRow);
    // Every household prompt opens with the same instruction: one prefix for the whole batch.
    const cut = shared[0]!.prefix?.length ?? 0;
    expect(cut).toBeGreaterThanOrEqual(16);
    shared.forEach((r, i) => {
      expect(r.prefix).toBe(shared[0]!.prefix);
      expect([...r.prefix!, ...r.tokens]).toEqual(whole[i]!.tokens);
      expect(r.mask[0]).toBe(0);
    });
    // Below the threshold, or off, the rows stay whole.
    expect(sftRows(samples, cut + 1).every((r) => r.prefix === undefined)).toBe(true);
    expect(sftRows(samples, 0).every((r) => r.prefix === undefined)).toBe(true);

    const copies = weightCopies(policy, 23);
    policies.push(...copies);
    const loss = { kind: 'sft' as const, learningRate: 1e-9, maxGradNorm: 1e9 };
    const a = await copies[0]!.update(shared, loss);
    const b = await copies[1]!.update(whole, loss);
    expect(a.tokens).toBe(b.tokens);
    expect(Math.abs(a.loss - b.loss)).toBeLessThanOrEqual(1e-5 * Math.abs(b.loss));
    expect(gradientError(copies[0]!, copies[1]!)).toBeLessThan(1e-5);
    expect(b.gradNorm).toBeGreaterThan(0);
  });

  it('refuses a row whose prefix and tokens pass the context length, or whose first token carries the loss', async () => {
    const policy = tinyPolicy(22);
    policies.push(policy);
    const n = policy.config.contextLength;
    const row = { tokens: [1, 2, 3], mask: [0, 1, 1], prefix: new Array<number>(n - 1).fill(1) };
    await expect(policy.update([row], { kind: 'sft' })).rejects.toThrow(/with its prefix has .* tokens/);
    const early = { tokens: [1, 2, 3], mask: [1, 1, 1], prefix: [4, 5] };
    await expect(policy.update([early], { kind: 'sft' })).rejects.toThrow(
      /batch row 0 continues a prefix and flags its first token/,
    );
  });
});

describe('the KL to the reference without a KL term', () => {
  it("klCoef 0 skips the reference pass but measures the loss's KL estimator on a share of the units", async () => {
    const policy = tinyPolicy(23);
    const other = tinyPolicy(24); // another untrained policy: a reference it differs from
    policies.push(policy, other);
    const steps = trainSteps(await windowedRollouts(policy));
    const base = { pack: true, rolloutLogprobs: true, sharedPrefix: 16 };
    const full = await tokenRows(policy, other, steps, { ...base, klCoef: 0.01 });
    expect(full.referenceKl).toBeUndefined();
    // The estimator on every unit, from the full pass: exp(d) - d - 1, d = ref - behaviour, token mean.
    const klOf = (rows: typeof full.rows) => {
      let sum = 0;
      let n = 0;
      for (const r of rows)
        r.mask.forEach((m, t) => {
          if (!m) return;
          const d = r.refLogprobs![t]! - r.oldLogprobs![t]!;
          sum += Math.min(10, Math.exp(d) - d - 1);
          n++;
        });
      return sum / n;
    };
    const all = await tokenRows(policy, other, steps, { ...base, klCoef: 0, referenceSample: 1 });
    expect(all.referenceKl).toBeCloseTo(klOf(full.rows), 5);
    expect(all.referenceKl!).toBeGreaterThan(0.01);
    // The loss then reads no reference: its reference log-probs are the behaviour ones.
    expect(all.rows.every((r) => r.refLogprobs === r.oldLogprobs)).toBe(true);
    // A quarter of the units: every fourth unit's tokens only.
    const quarter = await tokenRows(policy, other, steps, { ...base, klCoef: 0, referenceSample: 0.25 });
    expect(quarter.referenceKl).toBeCloseTo(klOf(full.rows.filter((r) => r.unit % 4 === 0)), 5);
    // Against itself the policy has not moved.
    const self = await tokenRows(policy, policy, steps, { ...base, klCoef: 0 });
    expect(self.referenceKl!).toBeLessThan(1e-6);
  });
});

describe("the loss at the rollout's temperature (ppo.logprobs 'sampled')", () => {
  it("re-scores behaviour and reference log-probs at that temperature instead of taking the rollout's", async () => {
    const policy = tinyPolicy(25);
    const other = tinyPolicy(26);
    policies.push(policy, other);
    const steps = trainSteps(await windowedRollouts(policy));
    const base = { pack: true, rolloutLogprobs: true, sharedPrefix: 16, klCoef: 0.01 };
    const own = await tokenRows(policy, other, steps, base);
    expect(own.rolloutLogprobs).toBe(true);
    const hot = await tokenRows(policy, other, steps, { ...base, temperature: 0.5 });
    expect(hot.rolloutLogprobs).toBe(false);
    // Each row's response tokens, scored whole (no shared prefix) at 0.5 by the scorer.
    const whole = async (p: Policy, r: (typeof hot.rows)[number]) => {
      const tokens = [...(r.prefix ?? []), ...r.tokens];
      const { logprobs } = await p.runner.score([tokens], undefined, undefined, 0.5);
      return Array.from(logprobs[0]!.subarray(r.prefix?.length ?? 0));
    };
    let compared = 0;
    for (const r of hot.rows.slice(0, 6)) {
      const [old, ref] = [await whole(policy, r), await whole(other, r)];
      r.mask.forEach((m, t) => {
        if (!m) return;
        expect(r.oldLogprobs![t]).toBeCloseTo(old[t]!, 4);
        expect(r.refLogprobs![t]).toBeCloseTo(ref[t]!, 4);
        compared++;
      });
    }
    expect(compared).toBeGreaterThan(20);
    // Sharper than the model's own distribution: the sampled tokens' log-probs differ.
    const differ = own.rows[0]!.oldLogprobs!.some(
      (lp, t) => Math.abs(lp - hot.rows[0]!.oldLogprobs![t]!) > 1e-3,
    );
    expect(differ).toBe(true);
    // A stale rollout (an older policy's) carries log-probs at temperature 1 only: refused at 0.5.
    const stale = steps.map((s, i) => (i === 0 ? { ...s, stale: true } : s));
    await expect(tokenRows(policy, other, stale, { ...base, temperature: 0.5 })).rejects.toThrow(
      /cannot train stale rollouts .* use ppo.logprobs 'model'/,
    );
    expect((await tokenRows(policy, other, stale, base)).rows.length).toBe(own.rows.length);
  });
});
