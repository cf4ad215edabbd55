// AgentFlow with an adapter per role on one Hugging Face base: a Flow-GRPO iteration updates the
// planner's adapter only; the executor's, verifier's and generator's (frozen, from PEFT folders)
// and the base come out of the run bit-identical, and the run's checkpoints hold the base once and
// a PEFT folder per role.
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSafetensors } from '../../src/policy/checkpoint/safetensors.ts';
import { modelConfigFromHf } from '../../src/policy/hf/config.ts';
import { initAdapters, saveAdapters } from '../../src/policy/hf/lora.ts';
import type { ModelConfig } from '../../src/policy/model/config.ts';
import { openStore } from '../../src/store/index.ts';
import { parseTrainConfig } from '../../src/training/config.ts';
import { train } from '../../src/training/trainer.ts';
import { Rng } from '../../src/util/random.ts';
import { writeHfModel } from '../policy/hf-fixtures.ts';

const root = mkdtempSync(path.join(tmpdir(), 'stepwise-af-adapters-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const hf = path.join(root, 'base');
const lora = { rank: 2, alpha: 4, targets: ['q_proj', 'v_proj'] as ('q_proj' | 'v_proj')[] };
const frozenRoles = ['executor', 'verifier', 'generator'] as const;
const from = (role: string) => path.join(root, `peft-${role}`);

beforeAll(async () => {
  const raw = await writeHfModel(hf, { family: 'qwen3', dtype: 'BF16', sharded: false, maxPositions: 4096 });
  const config: ModelConfig = { ...modelConfigFromHf(raw), lora: { ...lora, dropout: 0 } };
  for (const [i, role] of frozenRoles.entries()) {
    const params = initAdapters(config, i);
    const rng = new Rng(100 + i);
    for (const [k, v] of params)
      if (k.endsWith('.B')) for (let j = 0; j < v.length; j++) v[j] = 0.2 * rng.normal();
    mkdirSync(from(role), { recursive: true });
    await saveAdapters(from(role), config, params);
  }
});

async function tensors(file: string) {
  return (await loadSafetensors(file)).tensors;
}

describe('AgentFlow with an adapter per role', () => {
  it('Flow-GRPO moves the planner adapter only; frozen adapters and the base stay bit-identical', async () => {
    const db = path.join(root, 'af.db');
    const adapters = {
      planner: lora,
      ...Object.fromEntries(frozenRoles.map((r) => [r, { ...lora, trainable: false, from: from(r) }])),
    };
    const result = await train(
      {
        env: 'household',
        agent: 'agentflow',
        estimator: 'flow-grpo',
        envOptions: { receptacles: 4, objects: 1, taskTypes: ['pick_and_place_simple'] },
        agentOptions: {
          householdMaxTurns: 2,
          sampling: {
            analyzer: { maxTokens: 4 },
            planner: { maxTokens: 6 },
            executor: { maxTokens: 6 },
            verifier: { maxTokens: 4 },
            generator: { maxTokens: 4 },
          },
        },
        policy: { checkpoint: hf, adapters },
        sft: { enabled: false },
        groupSize: 2,
        tasksPerIteration: 1,
        iterations: 1,
        ppo: { miniBatchSize: 4, learningRate: 1e-2, klCoef: 0.01 },
        eval: { every: 1, tasks: 1 },
        db,
      },
      { log: () => {} },
    );
    const store = openStore(db, { readonly: true });
    let ckpt: string;
    try {
      expect(store.run('train')!.status).toBe('finished');
      ckpt = store.checkpoints('train')[0]!.path;
      const roles = new Set(
        store.groups('train', 0).flatMap((g) =>
          g.trajectories.flatMap((t) =>
            store
              .trajectory({
                runId: 'train',
                iteration: 0,
                groupId: g.groupId,
                trajectoryId: t.trajectoryId,
              })
              .map((s) => s.role),
          ),
        ),
      );
      expect(roles).toContain('planner');
      // A random planner's replies rarely parse, so the executor may never run; the verifier always does.
      expect(roles).toContain('verifier');
    } finally {
      store.close();
    }
    expect(result.lastCheckpoint).toBe(ckpt);
    // The base once, bit for bit the imported one; no single-LoRA files at the top.
    const a = await tensors(path.join(hf, 'model.safetensors'));
    const b = await tensors(path.join(ckpt, 'model.safetensors'));
    for (const name of Object.keys(a))
      expect(Buffer.from(b[name]!.data.buffer).equals(Buffer.from(a[name]!.data.buffer)), name).toBe(true);
    expect(existsSync(path.join(ckpt, 'adapter_config.json'))).toBe(false);
    // Frozen adapters: bit-identical to the folders they came from.
    for (const role of frozenRoles) {
      const want = await tensors(path.join(from(role), 'adapter_model.safetensors'));
      const got = await tensors(path.join(ckpt, role, 'adapter_model.safetensors'));
      expect(Object.keys(got).sort()).toEqual(Object.keys(want).sort());
      for (const name of Object.keys(want)) {
        expect(
          Buffer.from(got[name]!.data.buffer).equals(Buffer.from(want[name]!.data.buffer)),
          `${role} ${name}`,
        ).toBe(true);
      }
      expect(existsSync(path.join(ckpt, role, 'optimizer.safetensors'))).toBe(false);
    }
    // The planner started fresh (B = 0) and was trained: its B moved.
    const planner = await tensors(path.join(ckpt, 'planner', 'adapter_model.safetensors'));
    const moved = Object.entries(planner)
      .filter(([name]) => name.includes('lora_B'))
      .some(([, t]) =>
        new Float32Array(t.data.buffer, t.data.byteOffset, t.data.byteLength / 4).some((x) => x !== 0),
      );
    expect(moved).toBe(true);
    expect(existsSync(path.join(ckpt, 'planner', 'optimizer.safetensors'))).toBe(true);
  }, 300_000);

  it('SFT trains each trainable adapter on its own role and leaves a frozen one as it was', async () => {
    const db = path.join(root, 'sft.db');
    const result = await train(
      {
        env: 'household',
        agent: 'agentflow',
        estimator: 'flow-grpo',
        envOptions: { receptacles: 4, objects: 1, taskTypes: ['pick_and_place_simple'] },
        agentOptions: {
          householdMaxTurns: 12,
          sampling: { planner: { maxTokens: 4 }, executor: { maxTokens: 4 }, generator: { maxTokens: 4 } },
        },
        policy: {
          checkpoint: hf,
          adapters: {
            planner: lora,
            executor: lora,
            verifier: { ...lora, trainable: false, from: from('verifier') },
          },
        },
        sft: {
          tasks: 1,
          validTasks: 1,
          maxSteps: 2,
          batchSize: 2,
          evalEvery: 2,
          learningRate: 1e-2,
          selectTasks: 0,
        },
        iterations: 0,
        eval: { every: 1, tasks: 1 },
        db,
      },
      { log: () => {} },
    );
    const sft = result.referenceCheckpoint;
    const nonZeroB = async (role: string) =>
      Object.entries(await tensors(path.join(sft, role, 'adapter_model.safetensors')))
        .filter(([name]) => name.includes('lora_B'))
        .some(([, t]) =>
          new Float32Array(t.data.buffer, t.data.byteOffset, t.data.byteLength / 4).some((x) => x !== 0),
        );
    expect(await nonZeroB('planner')).toBe(true);
    expect(await nonZeroB('executor')).toBe(true);
    const want = await tensors(path.join(from('verifier'), 'adapter_model.safetensors'));
    const got = await tensors(path.join(sft, 'verifier', 'adapter_model.safetensors'));
    for (const name of Object.keys(want))
      expect(Buffer.from(got[name]!.data.buffer).equals(Buffer.from(want[name]!.data.buffer)), name).toBe(
        true,
      );
  }, 300_000);

  it('refuses adapters where they cannot apply, naming the field', () => {
    const policy = { checkpoint: hf, adapters: { planner: { rank: 2 } } };
    expect(() => parseTrainConfig({ policy })).toThrow(/policy.adapters.*agent 'agentflow'/);
    expect(() =>
      parseTrainConfig({
        agent: 'agentflow',
        estimator: 'flow-grpo',
        policy: { checkpoint: hf, adapters: { planner: { rank: 2, trainable: false } } },
      }),
    ).toThrow(/policy.adapters.planner.*trainable planner/);
    expect(() =>
      parseTrainConfig({
        agent: 'agentflow',
        policy: { checkpoint: hf, adapters: { 'bad/name': { rank: 2 } } },
      }),
    ).toThrow(/adapter name/);
  });
});
