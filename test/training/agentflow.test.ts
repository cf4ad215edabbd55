// AgentFlow training end to end on search and code/math: SFT on every role from gold replays, then
// Flow-GRPO on the planner, with every module on the local policy, and with the frozen modules on
// a real `stepwise serve` reached through the openai client while the planner trains locally.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AGENTFLOW_ROLES } from '../../src/agents/agentflow/index.ts';
import { Policy } from '../../src/policy/policy.ts';
import { PolicyServer } from '../../src/serve/index.ts';
import { openStore } from '../../src/store/index.ts';
import type { StepDetail } from '../../src/store/types.ts';
import { parseTrainConfig, type TrainConfigInput } from '../../src/training/config.ts';
import { agentflowFamily } from '../../src/training/families/agentflow.ts';
import { domainTokenizer, sftSamples } from '../../src/training/sft.ts';
import { type TrainResult, train } from '../../src/training/trainer.ts';

const dir = mkdtempSync(join(tmpdir(), 'stepwise-agentflow-train-'));
const lines: string[] = [];
const hooks = { log: (line: string) => lines.push(line) };

/** Mixed search and code/math tasks, short replies and two turns: a tiny model keeps up. */
const base = {
  env: 'search',
  agent: 'agentflow',
  estimator: 'flow-grpo',
  agentOptions: { envs: ['search', 'codemath'], maxTurns: 3 },
  policy: { model: { width: 64, layers: 2, heads: 2, contextLength: 512 }, tokenizerTasks: 20 },
  groupSize: 2,
  tasksPerIteration: 2,
  iterations: 1,
  ppo: { miniBatchSize: 8, learningRate: 3e-4 },
  eval: { every: 1, tasks: 2 },
} satisfies TrainConfigInput;

let local: TrainResult;

beforeAll(async () => {
  local = await train(
    {
      ...base,
      sft: { tasks: 8, validTasks: 2, maxSteps: 10, batchSize: 8, learningRate: 3e-3, evalEvery: 5 },
      db: join(dir, 'local.db'),
    },
    hooks,
  );
}, 120_000);

/** Every stored step of a run's iteration, with its advantages. */
function storedSteps(db: string, iteration: number): { won: boolean; steps: StepDetail[] }[] {
  const store = openStore(db, { readonly: true });
  try {
    return store.groups('train', iteration).flatMap((g) =>
      g.trajectories.map((t) => ({
        won: t.won,
        steps: store.trajectory({
          runId: 'train',
          iteration,
          groupId: g.groupId,
          trajectoryId: t.trajectoryId,
        }),
      })),
    );
  } finally {
    store.close();
  }
}

/** Only planner steps carry an advantage: Flow-GRPO's, whose detail is the trajectory's outcome. */
function expectPlannerOnlyCredit(db: string): StepDetail[] {
  const trajectories = storedSteps(db, 0);
  expect(trajectories.length).toBe(base.tasksPerIteration * base.groupSize);
  const planner: StepDetail[] = [];
  for (const t of trajectories) {
    for (const s of t.steps) {
      if (s.role !== 'planner') {
        expect(s.advantages, `${s.role} step ${s.stepIndex}`).toEqual([]);
        continue;
      }
      planner.push(s);
      expect(s.advantages).toHaveLength(1);
      const [a] = s.advantages;
      expect(a!.estimator).toBe('flow-grpo');
      expect(Number.isFinite(a!.value)).toBe(true);
      expect((a!.details as { outcome: number }).outcome).toBe(t.won ? 1 : 0);
    }
  }
  expect(planner.length).toBeGreaterThanOrEqual(trajectories.length);
  return planner;
}

describe('AgentFlow training (Flow-GRPO on the planner)', () => {
  it('SFT then Flow-GRPO writes a complete store with finite metrics', () => {
    expect(local.sft!.steps).toBe(10);
    expect(local.sft!.curve.at(-1)!.validLoss).toBeLessThan(local.sft!.curve[0]!.validLoss);
    // The SFT line reports how many samples of each role fit the context.
    expect(lines.find((l) => l.startsWith('sft: ') && l.includes('kept per role'))).toMatch(
      /planner \d+\/\d+.*executor \d+\/\d+/,
    );
    const store = openStore(join(dir, 'local.db'), { readonly: true });
    try {
      expect(store.check().findings.filter((f) => f.severity === 'error')).toEqual([]);
      expect(store.run('train')!.status).toBe('finished');
      for (const name of ['success_rate', 'kl', 'entropy', 'loss', 'grad_norm', 'advantage_abs_mean']) {
        const series = store.metricSeries('train', name);
        expect(series, name).toHaveLength(1);
        expect(Number.isFinite(series[0]!.value), `${name} = ${series[0]!.value}`).toBe(true);
      }
      // Evaluations carry the family's scores: accuracy everywhere, F1 on the search tasks.
      for (const name of ['eval/valid-unseen/accuracy', 'eval/valid-unseen/f1', 'before/valid-seen/accuracy'])
        expect(store.metricSeries('train', name), name).toHaveLength(1);
      expect(store.checkpoints('train').map((c) => c.iteration)).toEqual([0]);
    } finally {
      store.close();
    }
    // Both envs were evaluated (task ids alternate by seed).
    const kinds = Object.keys(local.after['valid-unseen'].byType);
    expect(kinds.length).toBe(2);
  });

  it('stores advantages on planner steps only, each with its trajectory outcome', () => {
    const planner = expectPlannerOnlyCredit(join(dir, 'local.db'));
    for (const s of planner) expect(s.responseTokens.length).toBeGreaterThan(0);
    // The other modules ran on the same local policy (so their steps have tokens) but are not trained.
    const others = storedSteps(join(dir, 'local.db'), 0).flatMap((t) =>
      t.steps.filter((s) => s.role !== 'planner'),
    );
    expect(others.length).toBeGreaterThan(0);
    for (const s of others) expect(s.responseTokens.length, s.role).toBeGreaterThan(0);
  });

  it('demonstrates every role on both envs, most of each role inside 512 tokens', async () => {
    const config = parseTrainConfig({ ...base, db: join(dir, 'unused.db') });
    const family = agentflowFamily(config, {});
    try {
      const tasks = Array.from({ length: 8 }, (_, seed) => family.task('train', 100 + seed));
      expect(new Set(tasks.map((t) => t.env))).toEqual(new Set(['search', 'codemath']));
      const demos = await family.demonstrations(tasks);
      expect(new Set(demos.map((d) => d.role))).toEqual(new Set(AGENTFLOW_ROLES));
      // The gold replies are what the loop parses: one tool call per executor sample, one verdict per verifier.
      for (const d of demos.filter((x) => x.role === 'executor')) expect(d.reply).toMatch(/^<tool_call>/);
      for (const d of demos.filter((x) => x.role === 'generator'))
        expect(d.reply).toMatch(/^<answer>.+<\/answer>$/);
      const tokenizer = await domainTokenizer({ vocabSize: 1024, tokenizerTasks: 20, demos });
      for (const role of AGENTFLOW_ROLES) {
        const all = demos.filter((d) => d.role === role);
        const kept = sftSamples(all, tokenizer, 512);
        expect(kept.length / all.length, role).toBeGreaterThanOrEqual(0.9);
      }
    } finally {
      await family.close?.();
    }
  });

  it("code/math replays share reused interpreters, yet each memory holds its own program's output", async () => {
    const config = parseTrainConfig({
      ...base,
      agentOptions: {
        envs: ['codemath'],
        maxTurns: 2,
        replayConcurrency: 2,
        envOptions: { codemath: { kinds: ['product'], digits: 2 } },
      },
      db: join(dir, 'unused.db'),
    });
    const family = agentflowFamily(config, {});
    try {
      const tasks = Array.from({ length: 6 }, (_, seed) => family.task('train', 200 + seed));
      // twice: the second batch runs in interpreters that already ran the first one's programs
      for (const batch of [tasks.slice(0, 3), tasks.slice(3)]) {
        const generators = (await family.demonstrations(batch)).filter((d) => d.role === 'generator');
        expect(generators.length).toBe(3);
        generators.forEach((d, k) => {
          const answer = (batch[k]!.payload as { answer: string }).answer;
          expect(d.messages.at(-1)!.content).toContain(`result: ${answer}\n`);
          expect(d.reply).toBe(`<answer>${answer}</answer>`);
        });
      }
    } finally {
      await family.close?.();
    }
  });

  it('rejects a bad agentOptions field by name', async () => {
    await expect(
      train(
        {
          ...base,
          agentOptions: { endpoint: { baseURL: 'not a url', model: 'm' } },
          db: join(dir, 'bad.db'),
        },
        hooks,
      ),
    ).rejects.toThrow(/'agentOptions\.endpoint\.baseURL'/);
    await expect(
      train({ ...base, agentOptions: { maxTurn: 3 }, db: join(dir, 'bad.db') }, hooks),
    ).rejects.toThrow(/'agentOptions\.maxTurn'/);
    // Each env's options are checked by that env's schema, under the name they were given.
    await expect(
      train(
        {
          ...base,
          agentOptions: { ...base.agentOptions, envOptions: { codemath: { digits: 1 } } },
          db: join(dir, 'bad.db'),
        },
        hooks,
      ),
    ).rejects.toThrow(/'agentOptions\.envOptions\.codemath\.digits'/);
    await expect(train({ ...base, envOptions: { topK: 0 }, db: join(dir, 'bad.db') }, hooks)).rejects.toThrow(
      /'envOptions\.topK'/,
    );
  });
});

describe('AgentFlow training with the frozen modules on a served endpoint', () => {
  let server: PolicyServer;
  let served: Policy;
  const model = 'frozen-sft';
  let result: TrainResult;
  const db = join(dir, 'served.db');

  beforeAll(async () => {
    // The SFT checkpoint behind a real `stepwise serve`; the planner trains from it locally.
    served = await Policy.load(local.referenceCheckpoint);
    server = new PolicyServer(served, { port: 0, modelId: model });
    const baseURL = await server.listen();
    result = await train(
      {
        ...base,
        agentOptions: { ...base.agentOptions, endpoint: { baseURL, model, apiKey: 'unused' } },
        policy: { checkpoint: local.referenceCheckpoint },
        sft: { enabled: false },
        db,
      },
      hooks,
    );
  }, 120_000);

  afterAll(async () => {
    await server?.close();
    await served?.dispose();
  });

  it('the planner runs on the local policy, every other module on the server', () => {
    expect(result.iterationsRun).toBe(1);
    const trajectories = storedSteps(db, 0);
    let remote = 0;
    for (const t of trajectories) {
      for (const s of t.steps) {
        // The store keeps no model name: the local planner's steps have token ids and log-probs,
        // the endpoint's replies are text only (frozen modules ask for no log-probs).
        if (s.role === 'planner') expect(s.responseTokens.length).toBeGreaterThan(0);
        else {
          expect(s.responseTokens, `${s.role} step ${s.stepIndex}`).toHaveLength(0);
          expect(s.responseText.length).toBeGreaterThan(0);
          remote++;
        }
      }
    }
    expect(remote).toBeGreaterThan(0);
    // Rollouts and the four evaluations all reached the server.
    expect(server.model.batcher.stats.rows).toBeGreaterThan(remote);
  });

  it('Flow-GRPO credits the local planner steps only', () => {
    expectPlannerOnlyCredit(db);
    const store = openStore(db, { readonly: true });
    expect(store.check().findings.filter((f) => f.severity === 'error')).toEqual([]);
    store.close();
  });
});
