// LoRA on an imported model: a step moves only the adapters (SFT and the RL loss, dropout on and
// off), adapters are saved in PEFT's names and layouts and load back, `stepwise merge` writes a
// full HF folder whose logits equal the adapted model's (checked by numpy too), and a LoRA
// checkpoint resumes with its optimizer state. Gradients of A and B against finite differences
// are in model.test.ts.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { mergeCheckpoint } from '../../src/cli/commands/merge.ts';
import { loadSafetensors } from '../../src/policy/checkpoint/safetensors.ts';
import { LORA_TARGETS } from '../../src/policy/model/config.ts';
import { paramSpecs } from '../../src/policy/model/params.ts';
import { Policy } from '../../src/policy/policy.ts';
import { openStore } from '../../src/store/index.ts';
import { parseTrainConfig } from '../../src/training/config.ts';
import { train } from '../../src/training/trainer.ts';
import { referenceLogits, writeHfModel } from './hf-fixtures.ts';

const root = mkdtempSync(path.join(tmpdir(), 'stepwise-lora-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const tokens = [5, 200, 17, 90, 3, 250, 41, 7, 128, 66];
const sft = [{ tokens, mask: tokens.map((_, t) => (t > 2 ? 1 : 0)) }];
const rl = [
  {
    tokens,
    mask: tokens.map((_, t) => (t > 2 ? 1 : 0)),
    advantages: tokens.map(() => 1),
    oldLogprobs: tokens.map(() => -5),
    refLogprobs: tokens.map(() => -5),
  },
];
const lora = { rank: 4, alpha: 8, targets: [...LORA_TARGETS], dropout: 0 };

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

const copy = (p: Map<string, Float32Array>) => new Map([...p].map(([k, v]) => [k, Float32Array.from(v)]));

describe('LoRA on a Hugging Face model', () => {
  it('a step changes only adapter tensors (SFT, RL, dropout); the base has no optimizer state', async () => {
    const dir = path.join(root, 'base-qwen3');
    await writeHfModel(dir, { family: 'qwen3', dtype: 'BF16', sharded: false });
    for (const [kind, batch, dropout] of [
      ['sft', sft, 0],
      ['rl', rl, 0],
      ['sft', sft, 0.3],
    ] as const) {
      const policy = await Policy.load(dir, { lora: { ...lora, dropout } });
      const specs = paramSpecs(policy.config);
      const before = copy(policy.runner.getParams());
      // B starts at zero: the adapted model is the base model.
      const plain = await Policy.load(dir);
      expect(
        maxAbsDiff((await policy.runner.logits([tokens])).data, (await plain.runner.logits([tokens])).data),
      ).toBe(0);
      await plain.dispose();
      for (let i = 0; i < 2; i++) {
        const m = await policy.update(batch, { kind, learningRate: 1e-2 });
        expect(m.skipped).toBe(false);
      }
      const after = policy.runner.getParams();
      for (const s of specs) {
        const moved = maxAbsDiff(before.get(s.name)!, after.get(s.name)!);
        if (s.frozen) expect(moved, `${kind} ${s.name}`).toBe(0);
        else expect(moved, `${kind} ${s.name}`).toBeGreaterThan(0);
      }
      const opt = policy.runner.getOptimizerState()!;
      expect([...opt.m.keys()].every((k) => k.includes('.lora.'))).toBe(true);
      expect(opt.m.size).toBe(specs.filter((s) => !s.frozen).length);
      await policy.dispose();
    }
  });

  it('saves PEFT adapters, loads them back, resumes, and merges into a full folder with equal logits', async () => {
    const dir = path.join(root, 'base-llama');
    await writeHfModel(dir, { family: 'llama', dtype: 'F16', sharded: true });
    const policy = await Policy.load(dir, { lora, seed: 3 });
    for (let i = 0; i < 3; i++) await policy.update(sft, { kind: 'sft', learningRate: 1e-2 });
    const adapted = (await policy.runner.logits([tokens])).data;
    const saved = path.join(root, 'lora-ckpt');
    await policy.save(saved);

    // PEFT's files: its config fields and tensor names, A [r, in] and B [out, r].
    const cfg = JSON.parse(readFileSync(path.join(saved, 'adapter_config.json'), 'utf8'));
    expect(cfg).toMatchObject({ peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: [...LORA_TARGETS] });
    const adapters = (await loadSafetensors(path.join(saved, 'adapter_model.safetensors'))).tensors;
    expect(adapters['base_model.model.model.layers.1.self_attn.k_proj.lora_A.weight']!.shape).toEqual([
      4, 24,
    ]);
    expect(adapters['base_model.model.model.layers.1.self_attn.k_proj.lora_B.weight']!.shape).toEqual([
      12, 4,
    ]);
    expect(adapters['base_model.model.model.layers.0.mlp.down_proj.lora_A.weight']!.shape).toEqual([4, 40]);
    expect(Object.keys(adapters).length).toBe(2 * 2 * LORA_TARGETS.length);
    // The frozen base is written as it was stored (F16), losslessly.
    const base = (await loadSafetensors(path.join(saved, 'model.safetensors'))).tensors;
    expect(base['model.embed_tokens.weight']!.dtype).toBe('F16');

    // Loaded back: the same adapted logits, and training resumes where it stopped.
    const again = await Policy.load(saved);
    expect(again.config.lora?.rank).toBe(4);
    expect(maxAbsDiff((await again.runner.logits([tokens])).data, adapted)).toBeLessThan(1e-5);
    expect(again.runner.step).toBe(3);
    const a = await policy.update(sft, { kind: 'sft', learningRate: 1e-2 });
    const b = await again.update(sft, { kind: 'sft', learningRate: 1e-2 });
    expect(Math.abs(a.loss - b.loss)).toBeLessThan(1e-5);
    await again.dispose();
    await policy.dispose();

    // Merged: a plain HF folder (no adapter files) with the adapted model's logits, and numpy's
    // forward of that folder agrees: the merge wrote the original tensor names and layouts.
    const merged = path.join(root, 'merged');
    await mergeCheckpoint({ checkpoint: saved, out: merged });
    const plain = await Policy.load(merged);
    expect(plain.config.lora).toBeUndefined();
    const mergedLogits = (await plain.runner.logits([tokens])).data;
    const fromSaved = await Policy.load(saved);
    const savedLogits = (await fromSaved.runner.logits([tokens])).data;
    expect(maxAbsDiff(mergedLogits, savedLogits)).toBeLessThan(1e-4);
    const ref = referenceLogits([{ dir: merged, ids: [tokens] }]);
    expect(maxAbsDiff(mergedLogits, ref[0]![0]!.flat())).toBeLessThan(2e-4);
    // Not vacuous: the adapters did change the model.
    const baseOnly = await Policy.load(dir);
    expect(maxAbsDiff((await baseOnly.runner.logits([tokens])).data, mergedLogits)).toBeGreaterThan(1e-3);
    await Promise.all([plain.dispose(), fromSaved.dispose(), baseOnly.dispose()]);
  });

  it('bad LoRA requests fail with the field named', async () => {
    const dir = path.join(root, 'base-bad');
    await writeHfModel(dir, { family: 'qwen2', dtype: 'F32', sharded: false });
    await expect(Policy.load(dir, { lora: { targets: ['lm_head' as never] } })).rejects.toThrow(/targets/);
    await expect(Policy.load(dir, { lora: { rank: 0 } })).rejects.toThrow(/rank/);
    await expect(mergeCheckpoint({ checkpoint: dir, out: path.join(root, 'x') })).rejects.toThrow(
      /has no LoRA adapters/,
    );
  });
});

describe('training an imported model with LoRA end to end', () => {
  it('train() with policy.checkpoint = an HF folder and policy.lora: RL on household, PEFT checkpoints, frozen base', async () => {
    const hf = path.join(root, 'train-base');
    await writeHfModel(hf, { family: 'qwen2', dtype: 'BF16', sharded: false, maxPositions: 2048 });
    const db = path.join(root, 'train.db');
    const result = await train(
      {
        envOptions: { receptacles: 4, objects: 1, taskTypes: ['pick_and_place_simple'], maxSteps: 4 },
        loop: { history: 1, maxSteps: 2, maxTokens: 8 },
        policy: { checkpoint: hf, lora: { rank: 2, alpha: 4 } },
        sft: { enabled: false },
        estimator: 'grpo',
        groupSize: 2,
        tasksPerIteration: 1,
        iterations: 1,
        ppo: { miniBatchSize: 4, learningRate: 1e-2 },
        eval: { every: 1, tasks: 1 },
        db,
      },
      { log: () => {} },
    );
    expect(result.referenceCheckpoint).toBe(hf);
    const store = openStore(db, { readonly: true });
    try {
      expect(store.run('train')!.status).toBe('finished');
      const [ckpt] = store.checkpoints('train');
      expect(readFileSync(path.join(ckpt!.path, 'adapter_config.json'), 'utf8')).toContain('"r": 2');
      // The base in the checkpoint is the imported base, bit for bit (frozen, stored as BF16).
      const a = (await loadSafetensors(path.join(hf, 'model.safetensors'))).tensors;
      const b = (await loadSafetensors(path.join(ckpt!.path, 'model.safetensors'))).tensors;
      for (const name of Object.keys(a))
        expect(Buffer.from(b[name]!.data.buffer).equals(Buffer.from(a[name]!.data.buffer)), name).toBe(true);
    } finally {
      store.close();
    }
  }, 120_000);

  it('policy.lora without a checkpoint is refused naming the field', () => {
    expect(() => parseTrainConfig({ policy: { lora: { rank: 4 } } })).toThrow(/policy.lora/);
  });
});
