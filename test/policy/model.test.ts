// Whole-model tests: gradient check, memorization, KV cache vs recomputation, the non-finite
// guard and input errors. Small configs keep the whole file to a few seconds.
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { Graph, grad } from '../../src/policy/graph/index.ts';
import { LORA_TARGETS, type ModelConfig, modelConfig } from '../../src/policy/model/config.ts';
import { paramInputs, scoreTokens } from '../../src/policy/model/graphs.ts';
import { LossConfig, lossTerms } from '../../src/policy/model/loss.ts';
import { initParams, paramSpecs } from '../../src/policy/model/params.ts';
import { ModelRunner, type TokenRow } from '../../src/policy/runtime/runner.ts';
import { parseDevice } from '../../src/policy/runtime/session.ts';

const micro = (extra: Partial<ModelConfig> = {}) =>
  modelConfig({ vocabSize: 16, width: 8, layers: 2, heads: 2, contextLength: 8, ...extra });

/**
 * Everything an imported Llama/Qwen model may use at once: grouped-query attention, a head size
 * that is not width / heads, SwiGLU, q/k/v biases, q/k norms, an untied head, Llama 3 RoPE scaling.
 */
const hfFeatures = {
  norm: 'rmsnorm',
  positions: 'rope',
  heads: 4,
  kvHeads: 2,
  headSize: 6,
  activation: 'swiglu',
  mlpWidth: 12,
  qkvBias: true,
  qkNorm: true,
  untiedHead: true,
  ropeTheta: 500,
  ropeScaling: { factor: 4, lowFreqFactor: 1, highFreqFactor: 4, originalContextLength: 4 },
  normEps: 1e-6,
} as const;

/** The same with LoRA adapters on every target (the gradient then also reaches A and B). */
const withLora = { ...hfFeatures, lora: { rank: 2, alpha: 3, targets: [...LORA_TARGETS], dropout: 0 } };

/** A deterministic pseudo-random stream for test data (not the model's generators). */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

describe('whole-model gradient (float64, central differences)', () => {
  for (const variant of [{}, { norm: 'rmsnorm', positions: 'rope' }, hfFeatures, withLora] as const) {
    it(`matches finite differences within 1e-4 (${JSON.stringify(variant)})`, async () => {
      const c = micro(variant);
      const cfg = LossConfig.parse({ klCoef: 0.1, entropyCoef: 0.05 });
      const B = 2;
      const T = 5;
      const rand = lcg(3);
      const ids = Array.from({ length: B * T }, () => Math.floor(rand() * c.vocabSize));
      const targets = Array.from({ length: B * T }, () => Math.floor(rand() * c.vocabSize));

      // Graph: float64 RL loss (every term on) and its gradient for every parameter.
      const g = new Graph('gradcheck');
      const idsT = g.input('ids', 'int64', ['batch', 'seq']);
      const targetsT = g.input('targets', 'int64', ['batch', 'seq']);
      const per = (n: string) => g.input(n, 'float64', ['batch', 'seq']);
      const [mask, advantages, oldLogprobs, refLogprobs] = ['mask', 'advantages', 'old', 'ref'].map(per);
      const params = paramInputs(g, c, 'float64');
      const scores = scoreTokens(c, params, idsT, targetsT);
      const terms = lossTerms(
        {
          logprobs: scores.logprobs,
          entropy: scores.entropy,
          mask: mask!,
          advantages,
          oldLogprobs,
          refLogprobs,
        },
        cfg,
      );
      const specs = paramSpecs(c);
      const grads = grad(
        terms.loss,
        specs.map((s) => params.get(s.name)!),
      );
      g.output('loss', terms.loss);
      g.output('logprobs', scores.logprobs);
      for (const [i, s] of specs.entries()) g.output(`grad.${s.name}`, grads[i]!);
      const session = await ort.InferenceSession.create(g.toOnnx());

      const init = initParams(c, 5);
      // Larger weights than the init so every path carries a gradient well above rounding.
      const values = new Map(
        specs.map((s) => [s.name, Float64Array.from(init.get(s.name)!, (v) => v * 10 + 0.1)]),
      );
      const i64 = (a: number[]) => new ort.Tensor('int64', BigInt64Array.from(a.map(BigInt)), [B, T]);
      const f64 = (a: ArrayLike<number>) => new ort.Tensor('float64', Float64Array.from(a), [B, T]);
      const fixed: Record<string, ort.Tensor> = {
        ids: i64(ids),
        targets: i64(targets),
        mask: f64([0, 1, 1, 1, 1, 0, 0, 1, 1, 1]),
        advantages: f64(Array.from({ length: B * T }, () => rand() * 2 - 1)),
      };
      const run = async (old: Float64Array, ref: Float64Array) => {
        const feeds: Record<string, ort.Tensor> = { ...fixed, old: f64(old), ref: f64(ref) };
        for (const s of specs) feeds[s.name] = new ort.Tensor('float64', values.get(s.name)!, s.shape);
        return session.run(feeds);
      };
      // Behaviour and reference log-probs near the current ones: ratios inside the clip range,
      // so the loss is smooth around the point (kinks are checked per term in model-loss.test.ts).
      const first = await run(new Float64Array(B * T), new Float64Array(B * T));
      const lp = first.logprobs!.data as Float64Array;
      const old = lp.map((x) => x + (rand() - 0.5) * 0.2);
      const ref = lp.map((x) => x + (rand() - 0.5) * 0.5);
      const base = await run(old, ref);
      const h = 1e-6;
      let checked = 0;
      for (const s of specs) {
        const w = values.get(s.name)!;
        const analytic = base[`grad.${s.name}`]!.data as Float64Array;
        for (let k = 0; k < 2; k++) {
          const i = Math.floor(rand() * w.length);
          const keep = w[i]!;
          w[i] = keep + h;
          const up = ((await run(old, ref)).loss!.data as Float64Array)[0]!;
          w[i] = keep - h;
          const down = ((await run(old, ref)).loss!.data as Float64Array)[0]!;
          w[i] = keep;
          const numeric = (up - down) / (2 * h);
          // Relative error, floored at 1e-5: central differences of a loss near 1 carry ~1e-10 of
          // rounding noise, which is no test of a gradient much smaller than that floor.
          const err =
            Math.abs(numeric - analytic[i]!) / Math.max(1e-5, Math.abs(numeric) + Math.abs(analytic[i]!));
          expect(err, `${s.name}[${i}]: numeric ${numeric} vs analytic ${analytic[i]}`).toBeLessThan(1e-4);
          checked++;
        }
      }
      expect(checked).toBe(specs.length * 2);
    });
  }
});

describe('train step on the masked positions only (select)', () => {
  it("gives the full layout's loss, metrics and gradients (float64, relative 1e-12)", async () => {
    const c = micro(hfFeatures);
    const cfg = LossConfig.parse({ klCoef: 0.1, entropyCoef: 0.05 });
    const B = 2;
    const T = 5;
    const rand = lcg(11);
    const ids = Array.from({ length: B * T }, () => Math.floor(rand() * c.vocabSize));
    const targets = Array.from({ length: B * T }, () => Math.floor(rand() * c.vocabSize));
    // Row 0 has four masked positions, row 1 three: row 1's fourth selected entry is padding
    // (position 0, mask 0), as packBatch lays it out.
    const mask = [0, 1, 1, 1, 1, 0, 0, 1, 1, 1];
    const picked = [
      [1, 2, 3, 4],
      [2, 3, 4],
    ];
    const K = 4;
    const per = {
      advantages: Array.from({ length: B * T }, () => rand() * 2 - 1),
      old: Array.from({ length: B * T }, () => -1 - rand()),
      ref: Array.from({ length: B * T }, () => -1 - rand()),
    };

    const g = new Graph('select-check');
    const params = paramInputs(g, c, 'float64');
    const specs = paramSpecs(c);
    const build = (prefix: string, seq: string, select?: boolean) => {
      const idsT = g.input(`${prefix}ids`, 'int64', ['batch', 'seq']);
      const targetsT = g.input(`${prefix}targets`, 'int64', ['batch', seq]);
      const selectT = select ? g.input(`${prefix}select`, 'int64', ['batch', seq]) : undefined;
      const input = (n: string) => g.input(`${prefix}${n}`, 'float64', ['batch', seq]);
      const scores = scoreTokens(c, params, idsT, targetsT, false, selectT);
      const terms = lossTerms(
        {
          logprobs: scores.logprobs,
          entropy: scores.entropy,
          mask: input('mask'),
          advantages: input('advantages'),
          oldLogprobs: input('old'),
          refLogprobs: input('ref'),
        },
        cfg,
      );
      const grads = grad(
        terms.loss,
        specs.map((s) => params.get(s.name)!),
      );
      for (const k of ['loss', 'kl', 'entropy', 'clipFraction'] as const) g.output(`${prefix}${k}`, terms[k]);
      for (const [i, s] of specs.entries()) g.output(`${prefix}grad.${s.name}`, grads[i]!);
    };
    build('full.', 'seq');
    build('sel.', 'sel', true);
    const session = await ort.InferenceSession.create(g.toOnnx());

    const i64 = (a: number[], n: number) =>
      new ort.Tensor('int64', BigInt64Array.from(a.map(BigInt)), [B, n]);
    const f64 = (a: number[], n: number) => new ort.Tensor('float64', Float64Array.from(a), [B, n]);
    const gatherSel = (a: number[], pad: number) =>
      picked.flatMap((row, b) =>
        Array.from({ length: K }, (_, j) => (j < row.length ? a[b * T + row[j]!]! : pad)),
      );
    const feeds: Record<string, ort.Tensor> = {
      'full.ids': i64(ids, T),
      'full.targets': i64(targets, T),
      'full.mask': f64(mask, T),
      'full.advantages': f64(per.advantages, T),
      'full.old': f64(per.old, T),
      'full.ref': f64(per.ref, T),
      'sel.ids': i64(ids, T),
      'sel.select': i64(
        picked.flatMap((row, b) => Array.from({ length: K }, (_, j) => b * T + (row[j] ?? 0))),
        K,
      ),
      'sel.targets': i64(gatherSel(targets, 0), K),
      'sel.mask': f64(gatherSel(mask, 0), K),
      'sel.advantages': f64(gatherSel(per.advantages, 0), K),
      'sel.old': f64(gatherSel(per.old, 0), K),
      'sel.ref': f64(gatherSel(per.ref, 0), K),
    };
    const init = initParams(c, 5);
    for (const s of specs)
      feeds[s.name] = new ort.Tensor(
        'float64',
        Float64Array.from(init.get(s.name)!, (v) => v * 10),
        s.shape,
      );
    const out = await session.run(feeds);
    const close = (a: number, b: number, what: string) =>
      expect(
        Math.abs(a - b) / Math.max(1e-30, Math.abs(a) + Math.abs(b)),
        `${what}: ${a} vs ${b}`,
      ).toBeLessThan(1e-12);
    for (const k of ['loss', 'kl', 'entropy', 'clipFraction']) {
      close((out[`full.${k}`]!.data as Float64Array)[0]!, (out[`sel.${k}`]!.data as Float64Array)[0]!, k);
    }
    expect((out['full.loss']!.data as Float64Array)[0]).not.toBe(0);
    for (const s of specs) {
      const full = out[`full.grad.${s.name}`]!.data as Float64Array;
      const sel = out[`sel.grad.${s.name}`]!.data as Float64Array;
      const scale = full.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      expect(scale, `${s.name} has a gradient`).toBeGreaterThan(0);
      full.forEach((v, i) => {
        expect(Math.abs(v - sel[i]!) / scale, `grad ${s.name}[${i}]`).toBeLessThan(1e-12);
      });
    }
  });
});

describe('training', () => {
  it('memorizes a small corpus (SFT loss falls by 10x, greedy decode replays it)', async () => {
    const c = modelConfig({ vocabSize: 32, width: 32, layers: 2, heads: 4, contextLength: 16 });
    const r = new ModelRunner(c, initParams(c, 1));
    const corpus = [
      [1, 5, 9, 13, 17, 21, 25, 29],
      [2, 4, 8, 16, 30, 3, 6, 12],
    ];
    const rows: TokenRow[] = corpus.map((tokens) => ({ tokens, mask: tokens.map((_, i) => (i ? 1 : 0)) }));
    const cfg = LossConfig.parse({ kind: 'sft', learningRate: 1e-2, weightDecay: 0 });
    const first = await r.update(rows, cfg);
    let last = first;
    for (let i = 0; i < 60; i++) last = await r.update(rows, cfg);
    expect(first.skipped).toBe(false);
    expect(last.loss).toBeLessThan(first.loss / 10);
    expect(r.step).toBe(61);
    // The scoring graph agrees: every memorized token is now likely.
    const { logprobs } = await r.score(corpus);
    for (const row of logprobs) for (const lp of row.subarray(1)) expect(lp).toBeGreaterThan(-0.5);
  });

  it('inference after an update uses the new weights (baked sessions are rebuilt)', async () => {
    const c = micro();
    const r = new ModelRunner(c, initParams(c, 6));
    const rows = [[1, 2, 3, 4, 5]];
    const before = (await r.score(rows)).logprobs[0]!;
    await r.update(
      [{ tokens: rows[0]!, mask: [0, 1, 1, 1, 1] }],
      LossConfig.parse({ kind: 'sft', learningRate: 1e-2 }),
    );
    const after = (await r.score(rows)).logprobs[0]!;
    expect(after[4]).toBeGreaterThan(before[4]!);
    const fresh = new ModelRunner(c, r.getParams(), 'cpu', { bakeWeights: false });
    const want = (await fresh.score(rows)).logprobs[0]!;
    for (let t = 0; t < 5; t++) expect(after[t]).toBeCloseTo(want[t]!, 5);
  });

  it('scores and trains at a temperature: the log-probs and entropy of softmax(logits / T)', async () => {
    const c = micro();
    const r = new ModelRunner(c, initParams(c, 8));
    const rows = [
      [1, 2, 3, 4, 5, 6],
      [7, 8, 9, 10],
    ];
    const T = 0.5;
    const scored = await r.score(rows, undefined, undefined, T);
    // By hand from the full logits: log_softmax(z / T)[next] and -sum p log p at each position.
    const { data, seq } = await r.logits(rows);
    const V = c.vocabSize;
    rows.forEach((row, b) => {
      for (let t = 0; t + 1 < row.length; t++) {
        const z = Array.from(data.subarray((b * seq + t) * V, (b * seq + t + 1) * V), (x) => x / T);
        const top = Math.max(...z);
        const lse = top + Math.log(z.reduce((s, x) => s + Math.exp(x - top), 0));
        const entropy = -z.reduce((s, x) => s + Math.exp(x - lse) * (x - lse), 0);
        expect(scored.logprobs[b]![t + 1]).toBeCloseTo(z[row[t + 1]!]! - lse, 5);
        expect(scored.entropy[b]![t + 1]).toBeCloseTo(entropy, 5);
      }
    });
    // Not the model's own distribution: at T = 1 the same tokens score differently.
    const own = await r.score(rows);
    expect(Math.abs(own.logprobs[0]![3]! - scored.logprobs[0]![3]!)).toBeGreaterThan(1e-3);
    // The train step at T reads the same numbers: with old = ref = the scorer's at T the KL is 0
    // and the entropy metric is the scorer's token mean; at T = 1 it is not.
    const batch: TokenRow[] = rows.map((tokens, b) => ({
      tokens,
      mask: tokens.map((_, i) => (i ? 1 : 0)),
      advantages: tokens.map(() => 1),
      oldLogprobs: Array.from(scored.logprobs[b]!),
      refLogprobs: Array.from(scored.logprobs[b]!),
    }));
    const meanEntropy =
      scored.entropy.reduce((s, e) => s + e.subarray(1).reduce((a, x) => a + x, 0), 0) /
      rows.reduce((n, row) => n + row.length - 1, 0);
    const loss = { kind: 'rl' as const, learningRate: 1e-9, klCoef: 0.01 };
    const atT = await new ModelRunner(c, initParams(c, 8)).update(
      batch,
      LossConfig.parse({ ...loss, temperature: T }),
    );
    expect(atT.kl).toBeLessThan(1e-9);
    expect(atT.entropy).toBeCloseTo(meanEntropy, 5);
    const atOne = await new ModelRunner(c, initParams(c, 8)).update(batch, LossConfig.parse(loss));
    expect(atOne.kl).toBeGreaterThan(1e-4);
    await expect(r.score(rows, undefined, undefined, 0)).rejects.toThrow(
      /temperature 0; expected a number above 0/,
    );
  });

  it('scores only the wanted tokens when asked, the same log-probs as scoring everything (0 elsewhere)', async () => {
    const c = micro();
    const r = new ModelRunner(c, initParams(c, 7));
    const rows = [
      [1, 2, 3, 4, 5, 6],
      [7, 8, 9],
      [3, 1, 4, 1],
    ];
    const wanted = [
      [0, 0, 0, 1, 1, 1],
      [0, 1, 0],
      [0, 0, 0, 0],
    ];
    const full = await r.score(rows);
    const some = await r.score(rows, wanted);
    rows.forEach((row, b) => {
      for (let t = 0; t < row.length; t++) {
        for (const k of ['logprobs', 'entropy'] as const) {
          const want = wanted[b]![t] ? full[k][b]![t]! : 0;
          expect(some[k][b]![t], `${k} row ${b} token ${t}`).toBeCloseTo(want, 5);
        }
      }
    });
    expect(full.logprobs[0]![4]).toBeLessThan(-0.1);
    await expect(r.score(rows, [[1]])).rejects.toThrow(/1 flag arrays for 3 rows/);
    await expect(r.score(rows, [[1], [0, 1, 0], [0, 0, 0, 0]])).rejects.toThrow(
      /row 0's flags have 1 entries; expected 6/,
    );
  });

  it('skips the update on a non-finite loss and leaves the parameters untouched', async () => {
    const c = micro();
    const r = new ModelRunner(c, initParams(c, 2));
    const before = new Map([...r.getParams()].map(([k, v]) => [k, Float32Array.from(v)]));
    const tokens = [1, 2, 3, 4];
    const row: TokenRow = {
      tokens,
      mask: [0, 1, 1, 1],
      advantages: [0, 1, Number.NaN, 1],
      oldLogprobs: [0, -2, -2, -2],
      refLogprobs: [0, -2, -2, -2],
    };
    const m = await r.update([row], LossConfig.parse({}));
    expect(m.skipped).toBe(true);
    expect(r.step).toBe(0);
    const changed = [...r.getParams()]
      .filter(([k, v]) => v.some((x, i) => x !== before.get(k)![i]))
      .map(([k]) => k);
    expect(changed).toEqual([]);
    // A finite batch afterwards updates normally.
    const ok = await r.update([{ ...row, advantages: [0, 1, 1, 1] }], LossConfig.parse({}));
    expect(ok.skipped).toBe(false);
    expect(r.step).toBe(1);
    expect(Array.from(r.getParams().get('layers.0.qkv')!)).not.toEqual(
      Array.from(before.get('layers.0.qkv')!),
    );
  });
});

describe('KV cache', () => {
  for (const variant of [{}, { norm: 'rmsnorm', positions: 'rope' }, hfFeatures] as const) {
    it(`decoding with the cache gives the logits of full recomputation (${JSON.stringify(variant)})`, async () => {
      const c = modelConfig({ vocabSize: 40, width: 32, layers: 2, heads: 4, contextLength: 24, ...variant });
      const r = new ModelRunner(c, initParams(c, 4)); // inference weights baked in (the default)
      const reference = new ModelRunner(c, initParams(c, 4), 'cpu', { bakeWeights: false });
      // Prompts of different lengths: the short one is left-padded in the batch.
      const prompts = [
        [3, 9, 27, 1, 5, 7],
        [11, 2, 30],
      ];
      // Capacity beyond what is used: the empty slots must be masked out.
      let { logits, cache } = await r.prefill(prompts, 16);
      const seqs = prompts.map((p) => [...p]);
      let maxErr = 0;
      for (let step = 0; step < 6; step++) {
        for (let b = 0; b < seqs.length; b++) {
          const full = await reference.logits([seqs[b]!]);
          const V = c.vocabSize;
          const ref = full.data.subarray((full.seq - 1) * V, full.seq * V);
          for (let v = 0; v < V; v++) maxErr = Math.max(maxErr, Math.abs(ref[v]! - logits[b]![v]!));
        }
        const next = seqs.map((s, b) => (s.length * 7 + b) % c.vocabSize);
        for (const [b, t] of next.entries()) seqs[b]!.push(t);
        logits = await r.decode(next, cache);
      }
      expect(maxErr).toBeLessThan(1e-4);
      // Not vacuous: the logits do vary between steps and rows.
      expect(Math.abs(logits[0]![0]! - logits[1]![0]!)).toBeGreaterThan(1e-6);
    });
  }
});

describe('bad input fails with a clear message', () => {
  const c = micro();
  const r = new ModelRunner(c, initParams(c, 0));
  it('token id out of range', async () => {
    await expect(r.score([[1, 2, 16]])).rejects.toThrow(
      /token id 16 at position 2 is out of range; expected an integer in \[0, 15\]/,
    );
  });
  it('sequence over the context length', async () => {
    await expect(r.prefill([[1, 2, 3, 4, 5, 6, 7, 8, 9]])).rejects.toThrow(
      /9 tokens, more than the context length 8/,
    );
  });
  it('per-token arrays that do not match the tokens', async () => {
    await expect(
      r.update([{ tokens: [1, 2, 3], mask: [0, 1] }], LossConfig.parse({ kind: 'sft' })),
    ).rejects.toThrow(/'mask' has 2 entries; expected 3/);
    await expect(r.update([{ tokens: [1, 2, 3], mask: [0, 1, 1] }], LossConfig.parse({}))).rejects.toThrow(
      /has no 'advantages'; the 'rl' loss needs it/,
    );
  });
  it('parameters of the wrong shape', () => {
    const params = initParams(c, 0);
    params.set('layers.0.qkv', new Float32Array(3));
    expect(() => new ModelRunner(c, params)).toThrow(/'layers.0.qkv' has 3 values; expected shape \[8, 24\]/);
  });
  it('unknown device', () => {
    expect(() => parseDevice('tpu')).toThrow(/unknown device 'tpu'; expected one of: cpu, cuda/);
  });
});

describe('shared prompt prefixes', () => {
  for (const variant of [{}, hfFeatures] as const) {
    it(`rows that continue shared prefixes get the whole rows' log-probs, loss and gradients (${JSON.stringify(variant)})`, async () => {
      const c = modelConfig({ vocabSize: 40, width: 32, layers: 2, heads: 4, contextLength: 24, ...variant });
      const rnd = lcg(5);
      const draw = (n: number) => Array.from({ length: n }, () => 1 + Math.floor(rnd() * 39));
      // Prefixes of different lengths (padded and masked in the batch), shared by several rows, and
      // a row without one.
      const prefixes = [draw(9), draw(4), draw(6)];
      const owner = [0, 0, 1, 1, 1, 2, -1];
      const whole: TokenRow[] = owner.map((p) => {
        const tokens = [...(prefixes[p] ?? []), ...draw(4 + Math.floor(rnd() * 8))];
        const mask = tokens.map((_, t) => (t >= tokens.length - 3 ? 1 : 0));
        return {
          tokens,
          mask,
          advantages: mask.map(() => rnd() - 0.5),
          oldLogprobs: mask.map(() => -3 - rnd()),
          refLogprobs: mask.map(() => -3 - rnd()),
        };
      });
      const split: TokenRow[] = whole.map((r, i) => {
        const cut = prefixes[owner[i]!]?.length ?? 0;
        return {
          ...(cut > 0 ? { prefix: r.tokens.slice(0, cut) } : {}),
          tokens: r.tokens.slice(cut),
          mask: r.mask.slice(cut),
          advantages: r.advantages!.slice(cut),
          oldLogprobs: r.oldLogprobs!.slice(cut),
          refLogprobs: r.refLogprobs!.slice(cut),
        };
      });
      const runners = [0, 1].map(() => new ModelRunner(c, initParams(c, 6)));
      const a = await runners[0]!.score(
        whole.map((r) => r.tokens),
        whole.map((r) => r.mask),
      );
      const b = await runners[1]!.score(
        split.map((r) => r.tokens),
        split.map((r) => r.mask),
        split.map((r) => r.prefix),
      );
      let worst = 0;
      split.forEach((r, i) => {
        const cut = r.prefix?.length ?? 0;
        r.mask.forEach((m, t) => {
          if (m) worst = Math.max(worst, Math.abs(b.logprobs[i]![t]! - a.logprobs[i]![t + cut]!));
        });
      });
      expect(worst).toBeLessThan(1e-5);

      const loss = LossConfig.parse({ learningRate: 1e-9, maxGradNorm: 1e9, klCoef: 0.1, entropyCoef: 0.01 });
      const ma = await runners[0]!.update(whole, loss);
      const mb = await runners[1]!.update(split, loss);
      for (const k of ['loss', 'kl', 'entropy', 'gradNorm'] as const)
        expect(Math.abs(ma[k] - mb[k])).toBeLessThanOrEqual(1e-5 * Math.max(Math.abs(ma[k]), 1e-3));
      expect(ma.gradNorm).toBeGreaterThan(0);
      const ga = runners[0]!.getOptimizerState()!.m;
      const gb = runners[1]!.getOptimizerState()!.m;
      for (const [name, g] of ga) {
        const h = gb.get(name)!;
        let diff = 0;
        let norm = 0;
        for (let i = 0; i < g.length; i++) {
          diff += (g[i]! - h[i]!) ** 2;
          norm += g[i]! ** 2;
        }
        expect(Math.sqrt(diff / Math.max(norm, 1e-30)), name).toBeLessThan(1e-5);
      }
    });
  }

  it("a short row behind a long prefix, padded past the context, keeps the whole rows' log-probs", async () => {
    // The batch pads every suffix to the longest (20 tokens), so the prefixed row's padding runs to
    // position 16 + 19 = 35, past the 24 learned positions: it must be masked, not looked up.
    const c = modelConfig({ vocabSize: 40, width: 32, layers: 2, heads: 4, contextLength: 24 });
    const rnd = lcg(8);
    const draw = (n: number) => Array.from({ length: n }, () => 1 + Math.floor(rnd() * 39));
    const prefix = draw(16);
    const short = draw(3);
    const long = draw(20);
    const runner = new ModelRunner(c, initParams(c, 2));
    const whole = await runner.score(
      [[...prefix, ...short], long],
      [Array.from({ length: 19 }, (_, t) => (t >= 16 ? 1 : 0)), long.map(() => 1)],
    );
    const split = await runner.score(
      [short, long],
      [short.map((_, t) => (t >= 1 ? 1 : 0)), long.map(() => 1)],
      [prefix, undefined],
    );
    for (let t = 1; t < short.length; t++)
      expect(Math.abs(split.logprobs[0]![t]! - whole.logprobs[0]![16 + t]!)).toBeLessThan(1e-5);
    for (let t = 1; t < long.length; t++)
      expect(Math.abs(split.logprobs[1]![t]! - whole.logprobs[1]![t]!)).toBeLessThan(1e-5);
    await runner.dispose();
  });
});
