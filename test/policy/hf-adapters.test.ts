// Named adapters on one Hugging Face base (an adapter per role): each adapter computes what a
// model with that adapter merged into the base computes; training one adapter leaves the frozen
// ones and the base bit-identical; the base's tensors are held once; a checkpoint (the base once,
// a PEFT folder per adapter) loads back with each adapter's weights, optimizer state and step;
// `stepwise serve` serves the base and every adapter under its own model name.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mergeCheckpoint } from '../../src/cli/commands/merge.ts';
import { loadSafetensors } from '../../src/policy/checkpoint/safetensors.ts';
import { modelConfigFromHf } from '../../src/policy/hf/config.ts';
import { baseConfig, initAdapters, mergeAdapters, saveAdapters } from '../../src/policy/hf/lora.ts';
import type { ModelConfig } from '../../src/policy/model/config.ts';
import { paramSpecs } from '../../src/policy/model/params.ts';
import { Policy } from '../../src/policy/policy.ts';
import { PolicyServer } from '../../src/serve/server.ts';
import { Rng } from '../../src/util/random.ts';
import { writeHfModel } from './hf-fixtures.ts';

const root = mkdtempSync(path.join(tmpdir(), 'stepwise-adapters-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const baseDir = path.join(root, 'base');
const lora = { rank: 4, alpha: 8, targets: ['q_proj', 'v_proj', 'o_proj', 'down_proj'] as const };
const tokens = [5, 200, 17, 90, 3, 250, 41, 7, 128, 66];
const rl = [
  {
    tokens,
    mask: tokens.map((_, t) => (t > 2 ? 1 : 0)),
    advantages: tokens.map(() => 1),
    oldLogprobs: tokens.map(() => -5),
    refLogprobs: tokens.map(() => -5),
  },
];

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
const copy = (p: Map<string, Float32Array>) => new Map([...p].map(([k, v]) => [k, Float32Array.from(v)]));

/** A PEFT adapter folder with random A and B (B non-zero, so the adapter changes the model). */
async function randomAdapter(dir: string, config: ModelConfig, seed: number): Promise<void> {
  const rng = new Rng(seed);
  const params = initAdapters(config, seed);
  for (const [k, v] of params)
    if (k.endsWith('.B')) for (let i = 0; i < v.length; i++) v[i] = 0.3 * rng.normal();
  mkdirSync(dir, { recursive: true });
  await saveAdapters(dir, config, params);
}

/** The model with `p`'s adapter folded into the base weights, as a plain policy. */
function merged(p: Policy): Policy {
  return Policy.fromParts(p.tokenizer, baseConfig(p.config), mergeAdapters(p.config, p.runner.getParams()));
}

const roles = {
  planner: { ...lora, targets: [...lora.targets], trainable: true },
  executor: { ...lora, targets: [...lora.targets], trainable: false, from: path.join(root, 'peft-executor') },
  // Rank and targets left out: the folder's.
  verifier: { trainable: false, from: path.join(root, 'peft-verifier') },
};

beforeAll(async () => {
  const raw = await writeHfModel(baseDir, { family: 'qwen3', dtype: 'BF16', sharded: false });
  const config: ModelConfig = {
    ...modelConfigFromHf(raw),
    lora: { ...lora, targets: [...lora.targets], dropout: 0 },
  };
  await randomAdapter(roles.executor.from, config, 11);
  await randomAdapter(roles.verifier.from, config, 12);
});

describe('named adapters on one base', () => {
  it('each adapter equals its merged-weights model; they differ; the base tensors are shared', async () => {
    const base = await Policy.load(baseDir, { adapters: roles });
    expect(base.adapterNames).toEqual(['planner', 'executor', 'verifier']);
    const logits = new Map<string, Float32Array>();
    for (const name of ['executor', 'verifier']) {
      const p = base.adapter(name);
      const got = (await p.runner.logits([tokens])).data;
      const ref = merged(p);
      const want = (await ref.runner.logits([tokens])).data;
      await ref.dispose();
      expect(maxAbsDiff(got, want), name).toBeLessThan(1e-4);
      logits.set(name, Float32Array.from(got));
    }
    const plain = (await base.runner.logits([tokens])).data;
    // A fresh adapter (B = 0) is the base model exactly.
    expect(maxAbsDiff((await base.adapter('planner').runner.logits([tokens])).data, plain)).toBe(0);
    expect(maxAbsDiff(logits.get('executor')!, logits.get('verifier')!)).toBeGreaterThan(1e-2);
    expect(maxAbsDiff(logits.get('executor')!, plain)).toBeGreaterThan(1e-2);
    // One base in memory: every adapter's runner wraps the base's own arrays.
    const shared = base.runner.getParams();
    for (const name of base.adapterNames) {
      const own = base.adapter(name).runner.getParams();
      for (const s of paramSpecs(base.config))
        expect(own.get(s.name), `${name} ${s.name}`).toBe(shared.get(s.name));
    }
    expect(() => base.adapter('generator')).toThrow(
      /no adapter 'generator'; this base has 'planner', 'executor', 'verifier'/,
    );
    await base.dispose();
  });

  it('training the planner leaves the frozen adapters and the base bit-identical', async () => {
    const planner = await Policy.load(baseDir, { adapters: roles, adapter: 'planner' });
    const before = new Map(
      ['executor', 'verifier'].map((n) => [n, copy(planner.adapter(n).runner.getParams())] as const),
    );
    const baseBefore = copy(planner.base.runner.getParams());
    const executorLogits = Float32Array.from(
      (await planner.adapter('executor').runner.logits([tokens])).data,
    );
    const plannerBefore = copy(planner.runner.getParams());
    for (let i = 0; i < 3; i++)
      expect((await planner.update(rl, { kind: 'rl', learningRate: 1e-2 })).skipped).toBe(false);
    for (const [name, params] of before) {
      const now = planner.adapter(name).runner.getParams();
      for (const [k, v] of params) expect(maxAbsDiff(v, now.get(k)!), `${name} ${k}`).toBe(0);
      expect(planner.adapter(name).runner.getOptimizerState()).toBeUndefined();
    }
    for (const [k, v] of baseBefore)
      expect(maxAbsDiff(v, planner.base.runner.getParams().get(k)!), k).toBe(0);
    expect(maxAbsDiff((await planner.adapter('executor').runner.logits([tokens])).data, executorLogits)).toBe(
      0,
    );
    // The planner did move (its adapters only), and now differs from the base.
    let moved = 0;
    for (const s of paramSpecs(planner.config)) {
      const d = maxAbsDiff(plannerBefore.get(s.name)!, planner.runner.getParams().get(s.name)!);
      if (s.frozen) expect(d, s.name).toBe(0);
      else moved = Math.max(moved, d);
    }
    expect(moved).toBeGreaterThan(0);
    // After the update, the planner (its adapter fed to the shared sessions) still equals its merge.
    const ref = merged(planner);
    expect(
      maxAbsDiff((await planner.runner.logits([tokens])).data, (await ref.runner.logits([tokens])).data),
    ).toBeLessThan(1e-4);
    await ref.dispose();
    await expect(planner.adapter('executor').update(rl, { kind: 'rl' })).rejects.toThrow(
      /adapter 'executor' is frozen/,
    );
    await expect(planner.base.update(rl, { kind: 'rl' })).rejects.toThrow(/base of named adapters is frozen/);
    await planner.dispose();
  });

  it('a checkpoint holds the base once and a PEFT folder per adapter, and loads back exactly', async () => {
    const planner = await Policy.load(baseDir, { adapters: roles, adapter: 'planner' });
    for (let i = 0; i < 2; i++) await planner.update(rl, { kind: 'rl', learningRate: 1e-2 });
    const dir = path.join(root, 'ckpt');
    await planner.save(dir);
    // The base in its stored dtype, once; no adapter files at the top (that is a single LoRA's place).
    expect(existsSync(path.join(dir, 'model.safetensors'))).toBe(true);
    expect(existsSync(path.join(dir, 'adapter_config.json'))).toBe(false);
    const baseFile = await loadSafetensors(path.join(dir, 'model.safetensors'));
    expect(Object.values(baseFile.tensors).every((t) => t.dtype === 'BF16')).toBe(true);
    for (const name of ['planner', 'executor', 'verifier']) {
      const peft = JSON.parse(readFileSync(path.join(dir, name, 'adapter_config.json'), 'utf8'));
      expect(peft).toMatchObject({ peft_type: 'LORA', r: 4, lora_alpha: 8 });
      expect(existsSync(path.join(dir, name, 'optimizer.safetensors'))).toBe(name === 'planner');
    }
    // Loaded without options: the stored adapters, trainable as saved.
    const back = await Policy.load(dir, { adapter: 'planner' });
    expect(back.adapterNames).toEqual(['planner', 'executor', 'verifier']);
    expect(back.adapter('executor').frozen).toBe(true);
    expect(back.frozen).toBe(false);
    expect(back.runner.step).toBe(planner.runner.step);
    for (const name of back.adapterNames) {
      const want = planner.adapter(name).runner.getParams();
      const got = back.adapter(name).runner.getParams();
      for (const [k, v] of want) expect(maxAbsDiff(v, got.get(k)!), `${name} ${k}`).toBe(0);
    }
    const opt = planner.runner.getOptimizerState()!;
    const optBack = back.runner.getOptimizerState()!;
    for (const [k, v] of opt.m) expect(maxAbsDiff(v, optBack.m.get(k)!), k).toBe(0);
    // A run resuming with its config: each adapter from the checkpoint's own folder (not fresh,
    // not its `from`), with its state; a config that changes an adapter's shape is refused.
    const resumed = await Policy.load(dir, { adapters: roles, adapter: 'planner' });
    for (const [k, v] of planner.runner.getParams())
      expect(maxAbsDiff(v, resumed.runner.getParams().get(k)!), k).toBe(0);
    expect(resumed.runner.step).toBe(planner.runner.step);
    await resumed.dispose();
    await expect(
      Policy.load(dir, { adapters: { ...roles, planner: { ...roles.planner, rank: 2 } } }),
    ).rejects.toThrow(
      /adapter 'planner': .* has rank 4 on q_proj, v_proj, o_proj, down_proj; the config asks for rank 2/,
    );
    // The same next step from both: the resumed planner continues exactly.
    const a = await planner.update(rl, { kind: 'rl', learningRate: 1e-2 });
    const b = await back.update(rl, { kind: 'rl', learningRate: 1e-2 });
    expect(b.loss).toBe(a.loss);
    // A reference copy of the planner on the same base, frozen, from its PEFT folder.
    const reference = await back.frozenAdapterFrom(path.join(dir, 'planner'), 'the reference');
    expect(
      maxAbsDiff(
        (await reference.runner.logits([tokens])).data,
        (await planner.adapter('planner').runner.logits([tokens])).data,
      ),
    ).toBeGreaterThan(0);
    await expect(reference.update(rl, { kind: 'rl' })).rejects.toThrow(/the reference is frozen/);
    // stepwise merge --adapter: one role folded into a full folder, computing what that adapter does.
    await expect(mergeCheckpoint({ checkpoint: dir, out: path.join(root, 'm0') })).rejects.toThrow(
      /an adapter per role \(planner, executor, verifier\); choose one with --adapter/,
    );
    const out = path.join(root, 'merged-executor');
    await mergeCheckpoint({ checkpoint: dir, out, adapter: 'executor' });
    const mergedExecutor = await Policy.load(out);
    expect(
      maxAbsDiff(
        (await mergedExecutor.runner.logits([tokens])).data,
        (await back.adapter('executor').runner.logits([tokens])).data,
      ),
    ).toBeLessThan(1e-4);
    await mergedExecutor.dispose();
    await planner.dispose();
    await back.dispose();
  });

  it('stepwise serve serves the base and each adapter under its own name', async () => {
    const base = await Policy.load(baseDir, { adapters: roles });
    const server = new PolicyServer(base, { port: 0, modelId: 'qwen3-tiny' });
    const url = await server.listen();
    try {
      const client = new OpenAI({ baseURL: url, apiKey: 'unused' });
      const listed = (await client.models.list()).data.map((m) => m.id);
      expect(listed).toEqual(['qwen3-tiny', 'planner', 'executor', 'verifier']);
      const messages = [{ role: 'user' as const, content: 'hello there' }];
      const texts = new Map<string, string>();
      for (const model of listed) {
        const r = await client.chat.completions.create({ model, messages, max_tokens: 12, temperature: 0 });
        texts.set(model, r.choices[0]!.message.content ?? '');
        // What the adapter itself generates, greedy, from the same prompt.
        const policy = model === 'qwen3-tiny' ? base : base.adapter(model);
        const [own] = await policy.generate([messages], { maxNewTokens: 12, temperature: 0 });
        expect(texts.get(model), model).toBe(own!.text);
      }
      expect(texts.get('executor')).not.toBe(texts.get('verifier'));
      const missing = client.chat.completions.create({ model: 'generator', messages, max_tokens: 4 });
      await expect(missing).rejects.toMatchObject({ status: 404, code: 'model_not_found' });
      await expect(missing).rejects.toThrow(
        /'generator' does not exist; this server serves 'qwen3-tiny', 'planner', 'executor', 'verifier'/,
      );
    } finally {
      await server.close();
      await base.dispose();
    }
  });
});
