/**
 * The SFT options that make it scale: the learning-rate schedule, fresh demonstrations per batch,
 * checkpoint selection, DAgger aggregation; and the household lock-step rollouts they use (the
 * same trajectories as the household loop).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { PolicyChatModel } from '../../src/agents/chat/policy-chat-model.ts';
import { runHousehold } from '../../src/agents/loops/household.ts';
import { agentEnvMaker } from '../../src/agents/loops/rollout.ts';
import { householdPrompt } from '../../src/agents/prompts/household.ts';
import { HouseholdEnv } from '../../src/envs/household/env.ts';
import { HouseholdExpert } from '../../src/envs/household/expert.ts';
import { HouseholdGenerator, type HouseholdTask } from '../../src/envs/household/generator.ts';
import type { Split, Task } from '../../src/envs/types.ts';
import { Policy } from '../../src/policy/policy.ts';
import { parseTrainConfig, SftConfig } from '../../src/training/config.ts';
import { evalMetrics, evaluate } from '../../src/training/evaluate.ts';
import {
  expertReply,
  householdDagger,
  householdDemonstrations,
  householdFamily,
} from '../../src/training/families/household.ts';
import type { Demonstrated } from '../../src/training/family.ts';
import {
  actionAccuracy,
  evaluateHousehold,
  expertAction,
  householdLockstep,
} from '../../src/training/household-batch.ts';
import {
  demonstrationStream,
  learningRateAt,
  runSft,
  type SftSample,
  sftSamples,
} from '../../src/training/sft.ts';
import { wilson } from '../../src/training/stats.ts';
import { tinyPolicy } from '../agents/loops-helpers.ts';
import { doorTask, doorTokenizer, TINY_MODEL } from './helpers.ts';

const policies: Policy[] = [];
afterAll(async () => {
  await Promise.all(policies.map((p) => p.dispose()));
});

describe('learningRateAt', () => {
  const base = { learningRate: 1, warmupSteps: 10, decayTo: 0.1, maxSteps: 110 };
  it('warms up linearly, then keeps, or decays by cosine or linearly to decayTo at maxSteps', () => {
    const cos = { ...base, decay: 'cosine' as const };
    expect(learningRateAt(0, cos)).toBeCloseTo(0.1, 12);
    expect(learningRateAt(9, cos)).toBeCloseTo(1, 12);
    expect(learningRateAt(10, cos)).toBeCloseTo(1, 12);
    // Halfway through the decay the cosine is at the middle of [decayTo, 1].
    expect(learningRateAt(60, cos)).toBeCloseTo(0.55, 12);
    expect(learningRateAt(110, cos)).toBeCloseTo(0.1, 12);
    const lin = { ...base, decay: 'linear' as const };
    expect(learningRateAt(35, lin)).toBeCloseTo(0.1 + 0.9 * 0.75, 12);
    expect(learningRateAt(500, { ...base, decay: 'constant' as const })).toBe(1);
    // The config's defaults keep the old constant rate.
    const d = SftConfig.parse({});
    expect([0, 150, 299].map((s) => learningRateAt(s, d))).toEqual([
      d.learningRate,
      d.learningRate,
      d.learningRate,
    ]);
  });
});

describe('demonstrationStream', () => {
  it('draws new tasks for every batch, never repeating a decision', async () => {
    const tokenizer = doorTokenizer();
    const asked: number[] = [];
    const family = {
      task: (split: Split, seed: number) => doorTask(split, seed) as Task,
      demonstrations: async (tasks: readonly Task[]): Promise<Demonstrated[]> =>
        tasks.map((t) => {
          asked.push(t.seed);
          return {
            messages: [{ role: 'user', content: `task ${t.seed}` }],
            reply: expertReply('open red door'),
          };
        }),
    };
    const stream = demonstrationStream(family, tokenizer, 256, { firstSeed: 500, tasksPerDraw: 4 });
    const seen = new Set<string>();
    for (let i = 0; i < 5; i++) {
      for (const s of await stream.next(3)) seen.add(tokenizer.decode(s.prompt));
    }
    expect(seen.size).toBe(15);
    expect(asked).toEqual(Array.from({ length: asked.length }, (_, k) => 500 + k));
  });
});

describe('runSft with selection and DAgger', () => {
  it('keeps the best checkpoint by the selection figure and mixes DAgger samples into later batches', async () => {
    const tokenizer = doorTokenizer();
    const policy = Policy.create({ model: TINY_MODEL, tokenizer, seed: 3 });
    policies.push(policy);
    const demos: Demonstrated[] = [0, 1, 2, 3].map((seed) => ({
      messages: householdPrompt({
        task: 'find the prize.',
        stepCount: 0,
        history: [],
        observation: `hall ${seed}`,
        admissible: ['open red door', 'open blue door'],
      }),
      reply: expertReply(seed % 2 ? 'open red door' : 'open blue door'),
    }));
    const samples = sftSamples(demos, tokenizer, 256);
    const initial = new Map([...policy.runner.getParams()].map(([k, v]) => [k, v.slice()]));
    const rounds: number[] = [];
    const config = SftConfig.parse({
      batchSize: 4,
      maxSteps: 6,
      evalEvery: 2,
      targetLoss: 1e-9,
      warmupSteps: 2,
      decay: 'cosine',
      dagger: { every: 2, share: 0.5 },
    });
    let calls = 0;
    const result = await runSft(policy, samples, samples, config, {
      // Best at step 0: the run must end with the initial weights.
      select: async () => 10 - calls++,
      dagger: async (_p, round) => {
        rounds.push(round);
        return samples.slice(0, 1) as SftSample[];
      },
    });
    expect(result.steps).toBe(6);
    expect(result.selection!.map((s) => s.step)).toEqual([0, 2, 4, 6]);
    expect(result.selected).toEqual({ step: 0, value: 10 });
    expect(rounds).toEqual([1, 2]); // after steps 2 and 4; none after the last
    expect(result.daggerSamples).toBe(2);
    expect(result.cpuSeconds).toBeGreaterThan(0);
    for (const [k, v] of policy.runner.getParams())
      expect(Array.from(v), k).toEqual(Array.from(initial.get(k)!));
    // Without selection the trained weights stay.
    const trained = await runSft(policy, samples, samples, {
      ...config,
      dagger: { ...config.dagger, every: 0 },
    });
    expect(trained.selected).toBeUndefined();
    expect(policy.runner.getParams().get('finalNorm.gain')).not.toEqual(initial.get('finalNorm.gain'));
  });
});

describe('runSft with lengthGroups', () => {
  it('trains each pool of lengthGroups batches sorted by length, every drawn sample once', async () => {
    const tokenizer = doorTokenizer();
    const policy = Policy.create({ model: TINY_MODEL, tokenizer, seed: 4 });
    policies.push(policy);
    // Twelve samples whose prompts are 1..12 repeats long, so their token counts all differ.
    const demos: Demonstrated[] = Array.from({ length: 12 }, (_, k) => ({
      messages: [{ role: 'user', content: `open ${'red door '.repeat(k + 1)}` }],
      reply: expertReply('open red door'),
    }));
    const samples = sftSamples(demos, tokenizer, 256);
    const sizes = samples.map((s) => s.prompt.length + s.response.length);
    expect(new Set(sizes).size).toBe(12);
    const trained: number[][] = [];
    const update = policy.update.bind(policy);
    policy.update = (rows, options) => {
      trained.push(rows.map((r) => (r.prefix?.length ?? 0) + r.tokens.length));
      return update(rows, options);
    };
    const config = SftConfig.parse({ batchSize: 3, maxSteps: 8, targetLoss: 1e-9, lengthGroups: 4 });
    await runSft(policy, samples, samples, config, { seed: 1 });
    expect(trained).toHaveLength(8);
    // Two pools of four batches: within a pool the batches cut the sorted sizes into runs of three,
    // in a shuffled order, and together they are every sample once.
    for (const pool of [trained.slice(0, 4), trained.slice(4)]) {
      const ranges = pool.map((b) => [Math.min(...b), Math.max(...b)] as const);
      const sorted = [...ranges].sort((x, y) => x[0] - y[0]);
      for (let i = 1; i < sorted.length; i++) expect(sorted[i]![0]).toBeGreaterThan(sorted[i - 1]![1]);
      expect(pool.flat().sort((x, y) => x - y)).toEqual([...sizes].sort((x, y) => x - y));
    }
    expect(trained.slice(0, 4).map((b) => Math.min(...b))).not.toEqual(
      [...trained.slice(0, 4).map((b) => Math.min(...b))].sort((x, y) => x - y),
    );
  });
});

describe('runSft samplesSeen', () => {
  it('counts the fresh samples of trained batches, not those of a pool the step budget cut off', async () => {
    const tokenizer = doorTokenizer();
    const policy = Policy.create({ model: TINY_MODEL, tokenizer, seed: 5 });
    policies.push(policy);
    let n = 0;
    const stream = {
      next: async (k: number) => {
        const demos: Demonstrated[] = Array.from({ length: k }, () => ({
          messages: [{ role: 'user', content: `open ${'red door '.repeat((n++ % 7) + 1)}` }],
          reply: expertReply('open red door'),
        }));
        return sftSamples(demos, tokenizer, 256);
      },
    };
    const valid = await stream.next(2);
    n = 0;
    // Pools of 4 batches of 3: 5 steps draw two pools (24 samples) and train 15 of them.
    const config = SftConfig.parse({
      batchSize: 3,
      maxSteps: 5,
      targetLoss: 1e-9,
      lengthGroups: 4,
      fresh: true,
    });
    const result = await runSft(policy, stream, valid, config, { seed: 2 });
    expect(n).toBe(24);
    expect(result.samplesSeen).toBe(15);
  });
});

describe('household lock step', () => {
  const generator = new HouseholdGenerator();
  const tasks = [0, 1, 2].map((s) => generator.generate('train', s));

  it('gives the household loop greedy trajectories, prompt for prompt, and labels each state with the expert', async () => {
    const policy = tinyPolicy(5);
    policies.push(policy);
    const opts = { promptFormat: 'growing' as const, history: 1, maxSteps: 3, maxTokens: 16 };
    const runs = await householdLockstep(policy, tasks, { ...opts, label: true, batch: 2 });
    for (const [i, task] of tasks.entries()) {
      const t = await runHousehold(
        new HouseholdEnv() as never,
        new PolicyChatModel(policy, { temperature: 0 }),
        {
          task,
          seed: task.seed,
        },
        { history: 1, maxSteps: 3, sampling: { temperature: 0, maxTokens: 16 } },
      );
      const run = runs[i]!;
      expect(run.steps).toBe(t.steps.length);
      expect(run.actions).toEqual(t.steps.map((s) => s.action));
      expect(run.won).toBe(t.won);
      expect(run.invalid).toBe(t.steps.filter((s) => !s.valid).length);
      expect(run.labelled.map((d) => policy.tokenizer.decode(policy.encodePrompt(d.messages)))).toEqual(
        t.steps.map((s) => s.promptText),
      );
    }
    // The labels are the exploring expert's commands: at the start, its first demonstrated one.
    const explorer = new HouseholdExpert({ explore: true });
    for (const [i, task] of tasks.entries()) {
      expect(runs[i]!.labelled[0]!.reply).toBe(expertReply(explorer.demonstrate(task).actions[0]!));
    }
    const e = await evaluateHousehold(policy, tasks, opts);
    expect(e).toMatchObject({ tasks: 3, successes: 0, outcomes: [0, 0, 0] });
    expect(e.ci95[1]).toBeGreaterThan(0.5);
  });

  it("the trainer's evaluation of household runs in lock step and equals the loop's greedy rollouts", async () => {
    const policy = tinyPolicy(11);
    policies.push(policy);
    const config = parseTrainConfig({ loop: { history: 1, maxSteps: 3, maxTokens: 16 }, db: ':memory:' });
    const batched = householdFamily(config);
    // A caller's env maker takes the generic path: every task through the household loop.
    const generic = householdFamily(config, { makeEnv: agentEnvMaker({ household: config.envOptions }) });
    expect(batched.evaluate).toBeDefined();
    expect(generic.evaluate).toBeUndefined();
    const fast = await evaluate(policy, batched, 'valid-unseen', 4);
    const slow = await evaluate(policy, generic, 'valid-unseen', 4);
    expect(fast.tasks).toBe(4);
    expect(fast.outcomes).toEqual(slow.outcomes);
    expect(fast.invalidRate).toBeCloseTo(slow.invalidRate, 12);
    expect(fast.success).toBe(slow.success);
    expect(Object.fromEntries(Object.entries(fast.byType).map(([k, v]) => [k, v.tasks]))).toEqual(
      Object.fromEntries(Object.entries(slow.byType).map(([k, v]) => [k, v.tasks])),
    );
    // The stored metrics carry the rate's Wilson interval.
    const m = evalMetrics('before', fast);
    expect(m['before/valid-unseen/tasks']).toBe(4);
    expect(m['before/valid-unseen/success_low']).toBe(0);
    expect(m['before/valid-unseen/success_high']).toBeCloseTo(wilson(Math.round(fast.success * 4), 4)[1], 12);
  });

  it('DAgger rounds label the states the policy visits on new train tasks, as SFT samples', async () => {
    const policy = tinyPolicy(7);
    policies.push(policy);
    const drawn: number[] = [];
    const collect = householdDagger(
      {
        envOptions: {},
        loop: {
          promptFormat: 'growing',
          history: 1,
          maxSteps: 2,
          maxTokens: 8,
          temperature: 1,
          actions: 'free',
        },
        sft: { dagger: { tasks: 2, temperature: 0 } },
      },
      (split, seed) => {
        drawn.push(seed);
        return generator.generate(split, seed);
      },
      { firstSeed: 100 },
    );
    const samples = await collect(policy, 1);
    expect(drawn).toEqual([102, 103]);
    // An untrained policy's replies are malformed: it stays at the start, 2 decisions per task,
    // each labelled with the expert's first command.
    expect(samples).toHaveLength(4);
    const explorer = new HouseholdExpert({ explore: true });
    const first = [102, 103].map(
      (seed) => explorer.demonstrate(generator.generate('train', seed)).actions[0]!,
    );
    const replies = samples.map((s) => policy.tokenizer.decode(s.response.slice(0, -1)));
    expect(replies).toEqual([first[0], first[0], first[1], first[1]].map(expertReply));
  });

  it('action accuracy compares the greedy reply with the expert command, decision by decision', async () => {
    const policy = tinyPolicy(6);
    policies.push(policy);
    const demos = await householdDemonstrations(
      new HouseholdEnv() as never,
      new HouseholdExpert({ explore: true }),
      tasks as HouseholdTask[],
      1,
      'growing',
    );
    const acc = await actionAccuracy(policy, demos, { maxTokens: 16, batch: 8 });
    expect(acc.decisions).toBe(demos.length);
    // An untrained policy names none of the expert's commands.
    expect(acc.correct).toBe(0);
    await expect(actionAccuracy(policy, [], { maxTokens: 4 })).rejects.toThrow(/no expert decisions/);
  });
});

describe('DAgger labels', () => {
  it('leave unlabelled a state the expert has no command for (the object put down unheated on the goal)', async () => {
    const generator = new HouseholdGenerator({
      receptacles: 4,
      objects: 1,
      taskTypes: ['pick_heat_then_place_in_recep'],
    });
    const task = generator.generate('train', 0);
    const env = new HouseholdEnv({ receptacles: 4, objects: 1 });
    await env.reset(task.seed, task);
    // Follow the expert until it holds such an object, then put it on the goal receptacle unheated;
    // again, until none is left anywhere else.
    const { goal, receptacles } = env.view();
    const target = receptacles.find((r) => r.kind === goal.target)!;
    let rounds = 0;
    for (; rounds < 6 && expertAction(env) !== undefined; rounds++) {
      for (let k = 0; k < 20 && !env.view().holding; k++) await env.step(expertAction(env)!);
      expect(env.view().holding?.kind).toBe(goal.object);
      await env.step(`go to ${target.name}`);
      if (!env.view().receptacles.find((r) => r.name === target.name)!.open)
        await env.step(`open ${target.name}`);
      const put = env.admissibleActions().find((x) => x.startsWith('move '))!;
      expect((await env.step(put)).info.valid).toBe(true);
    }
    expect(rounds).toBeGreaterThan(0);
    // Only the unheated object on the goal is left: no plan leads on from here, so no label.
    expect(expertAction(env)).toBeUndefined();
  });
});
