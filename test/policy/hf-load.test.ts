// Hugging Face folders as policies: each family (llama, qwen2, qwen3) x dtype (F32, F16, BF16)
// x single file / sharded, checked against a numpy forward written from transformers' equations
// (fixtures/hf_reference.py): full logits, teacher-forced log-probs, greedy decoding through the
// KV cache. Then save -> load round trips, training an imported model, and unsupported configs.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadSafetensors } from '../../src/policy/checkpoint/safetensors.ts';
import { Policy } from '../../src/policy/policy.ts';
import { type Family, logSoftmax, referenceLogits, VOCAB, writeHfModel } from './hf-fixtures.ts';

const root = mkdtempSync(path.join(tmpdir(), 'stepwise-hf-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const rows = [
  [5, 200, 17, 90, 3, 250, 41, 7, 128],
  [258, 12, 99],
];

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe('a Hugging Face folder loads and computes what transformers would', () => {
  const families: Family[] = ['llama', 'qwen2', 'qwen3'];
  for (const family of families) {
    it(`${family}: logits, log-probs and greedy decoding match numpy for F32/F16/BF16, single and sharded`, async () => {
      const cases = (['F32', 'F16', 'BF16'] as const).flatMap((dtype) =>
        [false, true].map((sharded) => ({
          dtype,
          sharded,
          dir: path.join(root, `${family}-${dtype}-${sharded}`),
        })),
      );
      for (const [i, c] of cases.entries()) {
        await writeHfModel(c.dir, { family, dtype: c.dtype, sharded: c.sharded, seed: 10 + i });
        if (c.sharded) expect(existsSync(path.join(c.dir, 'model.safetensors.index.json'))).toBe(true);
      }
      // Greedy continuations first (stepwise), so one numpy call scores them too.
      const policies = await Promise.all(cases.map((c) => Policy.load(c.dir)));
      const prompt = [4, 77, 130, 9];
      const greedy = await Promise.all(
        policies.map(
          async (p) => (await p.generate([prompt], { temperature: 0, maxNewTokens: 6, stopTokens: [] }))[0]!,
        ),
      );
      const ref = referenceLogits(
        cases.map((c, i) => ({ dir: c.dir, ids: [...rows, [...prompt, ...greedy[i]!.tokens]] })),
      );
      for (const [i, c] of cases.entries()) {
        const policy = policies[i]!;
        expect(policy.config.vocabSize).toBe(VOCAB);
        // Full logits of each row (the logits graph), against numpy's.
        for (const [r, row] of rows.entries()) {
          const { data } = await policy.runner.logits([row]);
          const expected = ref[i]![r]!.flat();
          const err = maxAbsDiff(data, expected);
          expect(err, `${family} ${c.dtype} sharded=${c.sharded} row ${r}`).toBeLessThan(2e-4);
          // Not vacuous: logits vary over the vocabulary by far more than the tolerance.
          expect(Math.max(...expected) - Math.min(...expected)).toBeGreaterThan(1);
        }
        // Teacher-forced log-probs (the score graph) against numpy's log-softmax.
        const scored = await policy.scoreBatch(
          rows.map((row) => ({ prompt: row.slice(0, 1), continuation: row.slice(1) })),
        );
        for (const [r, row] of rows.entries()) {
          const expected = row.slice(1).map((tok, t) => logSoftmax(ref[i]![r]![t]!)[tok]!);
          expect(maxAbsDiff(scored[r]!, expected)).toBeLessThan(2e-4);
        }
        // Greedy decoding with the KV cache picks numpy's argmax at every step, with its log-prob.
        const full = [...prompt, ...greedy[i]!.tokens];
        const logits = ref[i]![2]!;
        greedy[i]!.tokens.forEach((tok, k) => {
          const at = logits[prompt.length - 1 + k]!;
          const lp = logSoftmax(at);
          const best = lp.indexOf(Math.max(...lp));
          // A near-tie may break either way in float32; anything else must agree exactly.
          if (lp[best]! - lp[tok]! > 1e-4) expect(tok, `${family} ${c.dtype} step ${k}`).toBe(best);
          expect(Math.abs(greedy[i]!.logprobs[k]! - lp[tok]!)).toBeLessThan(2e-4);
        });
        expect(full.length).toBe(prompt.length + 6);
      }
      await Promise.all(policies.map((p) => p.dispose()));
    });
  }
});

describe('saving an imported model', () => {
  it('writes a Hugging Face folder again: same tensor names and shapes, same logits, tokenizer files kept', async () => {
    const src = path.join(root, 'save-src');
    await writeHfModel(src, { family: 'qwen2', dtype: 'BF16', sharded: true, seed: 3 });
    const policy = await Policy.load(src);
    const out = path.join(root, 'save-out');
    await policy.save(out);
    const before = await policy.runner.logits([rows[0]!]);
    const again = await Policy.load(out);
    const after = await again.runner.logits([rows[0]!]);
    expect(maxAbsDiff(before.data, after.data)).toBe(0);
    // Same names and shapes as the source (transformers' layout), now float32.
    const index = JSON.parse(readFileSync(path.join(src, 'model.safetensors.index.json'), 'utf8'));
    const saved = (await loadSafetensors(path.join(out, 'model.safetensors'))).tensors;
    expect(Object.keys(saved).sort()).toEqual(Object.keys(index.weight_map).sort());
    expect(saved['model.layers.0.self_attn.k_proj.bias']!.dtype).toBe('F32');
    const config = JSON.parse(readFileSync(path.join(out, 'config.json'), 'utf8'));
    expect(config.model_type).toBe('qwen2');
    expect(config.torch_dtype).toBe('float32');
    for (const f of ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json']) {
      expect(readFileSync(path.join(out, f), 'utf8')).toBe(readFileSync(path.join(src, f), 'utf8'));
    }
    // And numpy agrees with the saved folder too (it is a real HF folder, not a stepwise one).
    const ref = referenceLogits([{ dir: out, ids: [rows[0]!] }]);
    expect(maxAbsDiff(after.data, ref[0]![0]!.flat())).toBeLessThan(2e-4);
    await policy.dispose();
    await again.dispose();
  });

  it('full fine-tuning: an SFT step moves every weight, and the saved folder resumes with its optimizer state', async () => {
    const src = path.join(root, 'ft-src');
    await writeHfModel(src, { family: 'llama', dtype: 'F16', sharded: false, seed: 4 });
    const policy = await Policy.load(src);
    const batch = [{ tokens: rows[0]!, mask: rows[0]!.map((_, t) => (t > 2 ? 1 : 0)) }];
    const start = policy.runner.getParams();
    const first = await policy.update(batch, { kind: 'sft', learningRate: 1e-3 });
    const second = await policy.update(batch, { kind: 'sft', learningRate: 1e-3 });
    expect(second.loss).toBeLessThan(first.loss);
    // Full fine-tuning: every tensor moved (embedding rows of unused tokens aside).
    const moved = policy.runner.getParams();
    for (const [name, before] of start) {
      if (name === 'tokenEmbedding') continue;
      expect(maxAbsDiff(before, moved.get(name)!), name).toBeGreaterThan(0);
    }
    const out = path.join(root, 'ft-out');
    await policy.save(out);
    const resumed = await Policy.load(out);
    expect(resumed.runner.step).toBe(2);
    const a = await policy.update(batch, { kind: 'sft', learningRate: 1e-3 });
    const b = await resumed.update(batch, { kind: 'sft', learningRate: 1e-3 });
    expect(Math.abs(a.loss - b.loss)).toBeLessThan(1e-6);
    await policy.dispose();
    await resumed.dispose();
  });
});

describe('unsupported configs fail at load, naming the field and the value', () => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['model_type', { model_type: 'gpt2' }, /'model_type' is "gpt2"; stepwise supports llama, qwen2, qwen3/],
    ['hidden_act', { hidden_act: 'gelu' }, /'hidden_act' is "gelu"/],
    ['rope type', { rope_scaling: { rope_type: 'yarn', factor: 4 } }, /'rope_scaling.rope_type' is "yarn"/],
    ['sliding window', { use_sliding_window: true }, /'use_sliding_window' is true/],
    ['o_proj bias', { attention_bias: true }, /'attention_bias' is true/],
    [
      'kv heads',
      { num_key_value_heads: 3 },
      /'num_key_value_heads' is 3; .*divisor of num_attention_heads \(4\)/,
    ],
    ['a missing field', { hidden_size: undefined }, /hidden_size/],
  ];
  for (const [what, change, message] of cases) {
    it(what, async () => {
      const dir = path.join(root, `bad-${what.replaceAll(' ', '-')}`);
      const cfg = await writeHfModel(dir, { family: 'llama', dtype: 'F32', sharded: false });
      writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...cfg, ...change }));
      await expect(Policy.load(dir)).rejects.toThrow(message);
    });
  }

  it('a missing tensor is named with its expected shape', async () => {
    const dir = path.join(root, 'bad-tensor');
    await writeHfModel(dir, { family: 'qwen3', dtype: 'F32', sharded: false });
    const cfg = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8'));
    writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...cfg, model_type: 'qwen2' }));
    await expect(Policy.load(dir)).rejects.toThrow(
      /tensor 'model.layers.0.self_attn.q_proj.bias' is missing; expected shape \[32\]/,
    );
  });
});
