/**
 * Agent 'served' end to end: an OpenAI-SDK agent (unchanged except for its base URL and headers)
 * trained by GiGPO on search QA through the family's recording endpoint, and a run trained on
 * rollouts a `--record` server stored. Checks that the stored steps are token for token what the
 * agent was served, that the agent's rollouts after an update see the updated policy (hot swap),
 * and that recorded rollouts are trained once each.
 */
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { beforeAll, describe, expect, it } from 'vitest';
import { Policy } from '../../src/policy/policy.ts';
import { PolicyServer } from '../../src/serve/server.ts';
import { openStore, ServedLog } from '../../src/store/index.ts';
import { openAITools } from '../../src/tools/adapters/openai.ts';
import type { TrainConfigInput } from '../../src/training/config.ts';
import type { ServedAgent } from '../../src/training/families/served.ts';
import { type TrainResult, train } from '../../src/training/trainer.ts';

const dir = mkdtempSync(join(tmpdir(), 'stepwise-served-'));
const quiet = { log: () => {} };

const base = {
  env: 'search',
  agent: 'served',
  estimator: 'gigpo',
  loop: { maxTokens: 12 },
  policy: { model: { width: 64, layers: 2, heads: 2, contextLength: 512 }, tokenizerTasks: 20 },
  sft: { tasks: 8, validTasks: 2, maxSteps: 4, batchSize: 8, learningRate: 3e-3, evalEvery: 10 },
  groupSize: 3,
  tasksPerIteration: 2,
  iterations: 2,
  ppo: { miniBatchSize: 8, learningRate: 1e-3 },
  eval: { every: 0, tasks: 2 },
} satisfies TrainConfigInput;

type Served = {
  stepwise: { prompt_token_ids: number[]; completion_token_ids: number[]; reencoded_messages: number };
};

/** What the agent saw: every served completion by rollout, and a greedy probe per rollout by iteration. */
const seen = new Map<
  string,
  { prompt: number[]; completion: number[]; logprobs: number[]; reencoded: number }[]
>();
const probes = new Map<number, number[][]>();
let iteration = -1;
const PROBE = [{ role: 'user' as const, content: 'Who founded the town?' }];

/** Two turns: ask (with the env's tools offered), then send the reply back and ask for the answer. */
const agent: ServedAgent = async (run) => {
  const client = new OpenAI({
    baseURL: run.baseURL,
    apiKey: run.apiKey,
    defaultHeaders: run.headers,
    maxRetries: 0,
  });
  if (iteration >= 0) {
    // A request outside the rollout (no rollout header): what the endpoint serves right now.
    const probe = await new OpenAI({
      baseURL: run.baseURL,
      apiKey: run.apiKey,
      maxRetries: 0,
    }).chat.completions.create({
      model: run.model,
      messages: PROBE,
      temperature: 0,
      max_tokens: 4,
      logprobs: true,
    });
    const list = probes.get(iteration) ?? [];
    list.push(probe.choices[0]!.logprobs!.content!.map((c) => c.logprob));
    probes.set(iteration, list);
  }
  const messages: OpenAI.ChatCompletionMessageParam[] = [
    { role: 'system', content: 'Answer the question. You may search.' },
    { role: 'user', content: run.prompt },
  ];
  let answer = '';
  let tokens = 0;
  for (let turn = 0; turn < 2; turn++) {
    const r = await client.chat.completions.create({
      model: run.model,
      messages,
      tools: openAITools(run.tools),
      logprobs: true,
    });
    const choice = r.choices[0]!;
    const ids = (choice as unknown as Served).stepwise;
    seen.set(run.rollout, [
      ...(seen.get(run.rollout) ?? []),
      {
        prompt: ids.prompt_token_ids,
        completion: ids.completion_token_ids,
        logprobs: choice.logprobs!.content!.map((c) => c.logprob),
        reencoded: ids.reencoded_messages,
      },
    ]);
    tokens += ids.completion_token_ids.length;
    answer = choice.message.content ?? '';
    // The reply goes back as the SDK hands it over, then the next user turn.
    messages.push(choice.message as OpenAI.ChatCompletionMessageParam);
    for (const call of choice.message.tool_calls ?? []) {
      messages.push({ role: 'tool', tool_call_id: call.id, content: 'no results' });
    }
    if (turn === 0) messages.push({ role: 'user', content: 'Now the answer, please.' });
  }
  const judged = await run.judge(answer);
  // Shaped so that a group's rewards differ even while the policy answers nothing right.
  return { ...judged, reward: judged.reward + tokens / 100 };
};

let result: TrainResult;
const db = join(dir, 'agent.db');

beforeAll(async () => {
  result = await train(
    { ...base, db },
    {
      ...quiet,
      servedAgent: agent,
      onProgress: (e) => {
        // Probes only in an iteration's rollouts (not in the evaluations after its update).
        if (e.type === 'start' && e.phase === 'rollout') iteration = e.iteration!;
        if (e.type === 'start' && e.phase === 'update') iteration = -1;
      },
    },
  );
}, 600_000);

describe("agent 'served' with an OpenAI-SDK agent", () => {
  it('stores every step token for token as the agent was served it, with GiGPO advantages', () => {
    expect(result.iterationsRun).toBe(2);
    const store = openStore(db, { readonly: true });
    try {
      expect(store.check().findings.filter((f) => f.severity === 'error')).toEqual([]);
      for (const it of [0, 1]) {
        const groups = store.groups('train', it);
        expect(groups).toHaveLength(base.tasksPerIteration);
        for (const g of groups) {
          expect(g.trajectories).toHaveLength(base.groupSize);
          for (const t of g.trajectories) {
            const steps = store.trajectory({
              runId: 'train',
              iteration: it,
              groupId: g.groupId,
              trajectoryId: t.trajectoryId,
            });
            expect(steps).toHaveLength(2);
            const rollout = steps[0]!.extras.rollout as string;
            const served = seen.get(rollout)!;
            expect(served).toHaveLength(2);
            steps.forEach((s, k) => {
              expect([...s.promptTokens]).toEqual(served[k]!.prompt);
              expect([...s.responseTokens]).toEqual(served[k]!.completion);
              expect([...s.responseLogprobs]).toEqual(served[k]!.logprobs.map(Math.fround));
              expect(s.extras.reencoded).toBe(0);
              expect(s.advantages.map((a) => a.estimator)).toEqual(['gigpo']);
            });
            // The second prompt continues the first exchange with the sampled ids themselves.
            const first = served[0]!;
            expect(served[1]!.prompt.slice(0, first.prompt.length + first.completion.length)).toEqual([
              ...first.prompt,
              ...first.completion,
            ]);
          }
        }
      }
    } finally {
      store.close();
    }
  });

  it("swaps the served policy after each update: the agent's next rollouts get other answers", () => {
    const [a, b] = [probes.get(0)!, probes.get(1)!];
    expect(a.length).toBe(base.tasksPerIteration * base.groupSize);
    expect(b.length).toBe(base.tasksPerIteration * base.groupSize);
    // Within an iteration the policy is fixed (up to the float rounding of batched rows: probes
    // share decode batches with rollouts); across the update it changed by far more.
    const gap = (x: number[], y: number[]) => Math.max(...x.map((v, k) => Math.abs(v - y[k]!)));
    for (const p of a) expect(gap(p, a[0]!)).toBeLessThan(1e-5);
    for (const p of b) expect(gap(p, b[0]!)).toBeLessThan(1e-5);
    expect(gap(b[0]!, a[0]!)).toBeGreaterThan(1e-3);
  });
});

describe("agent 'served' on recorded rollouts", () => {
  const recordedDb = join(dir, 'recorded.db');
  let checkpoint: string;

  beforeAll(async () => {
    checkpoint = result.referenceCheckpoint;
    // A recording server as `stepwise serve --record` runs it, and agents that post their rewards.
    const store = openStore(recordedDb);
    const policy = await Policy.load(checkpoint);
    const server = new PolicyServer(policy, { port: 0, modelId: 'rec' }, new ServedLog(store));
    const baseURL = await server.listen();
    try {
      for (const group of ['q1', 'q2', 'q3']) {
        for (const k of [0, 1]) {
          const rollout = `${group}-${k}`;
          const client = new OpenAI({
            baseURL,
            apiKey: 'x',
            maxRetries: 0,
            defaultHeaders: { 'x-stepwise-rollout': rollout, 'x-stepwise-group': group },
          });
          const r = await client.chat.completions.create({
            model: 'rec',
            messages: [{ role: 'user', content: `question ${group}` }],
            max_tokens: 6,
            seed: k,
          });
          const reward = await fetch(`${baseURL}/rewards`, {
            method: 'POST',
            body: JSON.stringify({ rollout, reward: k + r.choices[0]!.message.content!.length / 100 }),
          });
          expect(reward.status).toBe(200);
        }
      }
    } finally {
      await server.close();
      await policy.dispose();
      store.close();
    }
  }, 120_000);

  it('trains each rewarded rollout once, by its served keys, and says when none are left', async () => {
    const config = {
      ...base,
      agentOptions: { source: 'recorded' },
      estimator: 'grpo',
      policy: { checkpoint },
      sft: { enabled: false },
      db: recordedDb,
      iterations: 2,
    } satisfies TrainConfigInput;
    await train(config, quiet);
    const store = openStore(recordedDb, { readonly: true });
    try {
      // GRPO over two trajectories per group (statistics over the group's step rows, sample std):
      // (r - mean) / std_s = +-(d/2) / (d/sqrt(2)) = +-1/sqrt(2), the higher reward positive.
      for (const g of store.groups('train', 0)) {
        const [a, b] = g.trajectories.map((t) =>
          store.trajectory({
            runId: 'train',
            iteration: 0,
            groupId: g.groupId,
            trajectoryId: t.trajectoryId,
          }),
        );
        const sign = Math.sign(a![0]!.envReward - b![0]!.envReward);
        expect(a![0]!.advantages[0]!.value).toBeCloseTo(sign * Math.SQRT1_2, 5);
        expect(b![0]!.advantages[0]!.value).toBeCloseTo(-sign * Math.SQRT1_2, 5);
      }
      expect(store.groups('train', 0).map((g) => g.groupId)).toEqual(['q1', 'q2']);
      expect(store.groups('train', 1).map((g) => g.groupId)).toEqual(['q3']);
      expect(store.groups('train', 1)[0]!.trajectories.map((t) => t.trajectoryId)).toEqual(['q3-0', 'q3-1']);
    } finally {
      store.close();
    }
    await expect(
      train({ ...config, runId: 'train', iterations: 3 }, { ...quiet, resume: true }),
    ).rejects.toThrow(/no rewarded rollouts are left/);
  }, 600_000);
});

/**
 * How far apart two checkpoints' log-probs of a fixed reply to a fixed prompt are (the largest
 * per-token gap): 0 when an update changed nothing.
 */
async function logprobGap(before: string, after: string): Promise<number> {
  const [a, b] = await Promise.all([Policy.load(before), Policy.load(after)]);
  try {
    const prompt = [{ role: 'user' as const, content: 'Who founded the town?' }];
    const reply = a.tokenizer.encode('The town was founded by a person.');
    const [x, y] = await Promise.all([a.score(prompt, reply), b.score(prompt, reply)]);
    return Math.max(...x.map((v, k) => Math.abs(v - y[k]!)));
  } finally {
    await Promise.all([a.dispose(), b.dispose()]);
  }
}

describe("agent 'served' with RLOO", () => {
  const rlooDb = join(dir, 'rloo.db');
  /** The reward each rollout's agent returned, by rollout id. */
  const rewards = new Map<string, number>();
  let rloo: TrainResult;

  /** Two turns through the endpoint; the reward depends on what was sampled, so a group's differ. */
  const rewarded: ServedAgent = async (run) => {
    const client = new OpenAI({
      baseURL: run.baseURL,
      apiKey: run.apiKey,
      defaultHeaders: run.headers,
      maxRetries: 0,
    });
    const messages: OpenAI.ChatCompletionMessageParam[] = [{ role: 'user', content: run.prompt }];
    let sum = 0;
    for (let turn = 0; turn < 2; turn++) {
      const r = await client.chat.completions.create({ model: run.model, messages });
      sum += (r.choices[0] as unknown as Served).stepwise.completion_token_ids.reduce((a, b) => a + b, 0);
      messages.push(r.choices[0]!.message as OpenAI.ChatCompletionMessageParam);
      messages.push({ role: 'user', content: 'And then?' });
    }
    const reward = (sum % 97) / 97;
    rewards.set(run.rollout, reward);
    return reward;
  };

  beforeAll(async () => {
    rloo = await train(
      {
        ...base,
        estimator: 'rloo',
        policy: { checkpoint: result.referenceCheckpoint },
        sft: { enabled: false },
        iterations: 1,
        db: rlooDb,
      } satisfies TrainConfigInput,
      { ...quiet, servedAgent: rewarded },
    );
  }, 600_000);

  it("gives every step its trajectory's reward minus the mean of the group's other rewards", () => {
    const store = openStore(rlooDb, { readonly: true });
    try {
      const groups = store.groups('train', 0);
      expect(groups).toHaveLength(base.tasksPerIteration);
      for (const g of groups) {
        expect(g.trajectories).toHaveLength(base.groupSize);
        const steps = g.trajectories.map((t) =>
          store.trajectory({
            runId: 'train',
            iteration: 0,
            groupId: g.groupId,
            trajectoryId: t.trajectoryId,
          }),
        );
        const r = steps.map((s) => rewards.get(s[0]!.extras.rollout as string)!);
        // A group whose rewards are all equal would make every advantage 0 and prove nothing.
        expect(new Set(r).size).toBeGreaterThan(1);
        steps.forEach((trajectory, i) => {
          const others = r.filter((_, j) => j !== i);
          const expected = r[i]! - others.reduce((a, b) => a + b, 0) / others.length;
          expect(trajectory).toHaveLength(2);
          for (const s of trajectory) {
            expect(s.advantages.map((a) => a.estimator)).toEqual(['rloo']);
            expect(s.advantages[0]!.value).toBeCloseTo(expected, 9);
          }
          // The reward sits on the last step (the trajectory's return).
          expect(trajectory.map((s) => s.envReward)).toEqual([0, r[i]]);
        });
      }
    } finally {
      store.close();
    }
  });

  it('changed the policy the run started from', async () => {
    expect(rloo.iterationsRun).toBe(1);
    expect(rloo.lastCheckpoint).not.toBe(rloo.referenceCheckpoint);
    expect(await logprobGap(rloo.referenceCheckpoint, rloo.lastCheckpoint)).toBeGreaterThan(1e-3);
  });
});

describe("agent 'served' with HGPO on recorded rollouts that carry anchors", () => {
  const hgpoDb = join(dir, 'hgpo.db');
  /** Rewards of the three rollouts of each group; rollout 2 takes the other branch. */
  const groupRewards: Record<string, number[]> = { h1: [1, 0, 0.5], h2: [0, 1, 0.25] };
  const branch = (k: number) => (k < 2 ? 'left' : 'right');
  let hgpo: TrainResult;

  beforeAll(async () => {
    const store = openStore(hgpoDb);
    const policy = await Policy.load(result.referenceCheckpoint);
    const server = new PolicyServer(policy, { port: 0, modelId: 'rec' }, new ServedLog(store));
    const baseURL = await server.listen();
    try {
      for (const [group, rs] of Object.entries(groupRewards)) {
        for (const [k, reward] of rs.entries()) {
          const rollout = `${group}-${k}`;
          const messages: OpenAI.ChatCompletionMessageParam[] = [{ role: 'user', content: 'Where now?' }];
          // Two decisions: both from the state 'start', then from the branch the rollout took.
          for (const anchor of ['start', branch(k)]) {
            const client = new OpenAI({
              baseURL,
              apiKey: 'x',
              maxRetries: 0,
              defaultHeaders: {
                'x-stepwise-rollout': rollout,
                'x-stepwise-group': group,
                'x-stepwise-anchor': anchor,
              },
            });
            const r = await client.chat.completions.create({
              model: 'rec',
              messages,
              max_tokens: 6,
              seed: k,
            });
            messages.push(r.choices[0]!.message as OpenAI.ChatCompletionMessageParam);
            messages.push({ role: 'user', content: `You went ${branch(k)}.` });
          }
          const posted = await fetch(`${baseURL}/rewards`, {
            method: 'POST',
            body: JSON.stringify({ rollout, reward, step_rewards: [0, reward] }),
          });
          expect(posted.status).toBe(200);
        }
      }
    } finally {
      await server.close();
      await policy.dispose();
      store.close();
    }
    hgpo = await train(
      {
        ...base,
        agentOptions: { source: 'recorded' },
        estimator: 'hgpo',
        // mean_norm and gamma 0.5 keep the expected advantages easy to work out by hand.
        estimatorOptions: { history: 1, mode: 'mean_norm', gamma: 0.5 },
        policy: { checkpoint: result.referenceCheckpoint },
        sft: { enabled: false },
        db: hgpoDb,
        iterations: 1,
      } satisfies TrainConfigInput,
      quiet,
    );
  }, 600_000);

  it('groups steps by their shared anchor histories and normalizes within each level', () => {
    // Step returns R: step 1 = r, step 0 = 0.5 r. Step 0: one level-1 group ('start', all three),
    // item R - mean(R), weight 2, so A = 0.5 r - mean(0.5 r) (an item of exactly 0 is dropped: A = 0).
    // Step 1: level 1 ('left') and level 2 ('start','left') both hold rollouts 0 and 1 only,
    // items r - mean of the two, weights 2 and 3, so A = that item; rollout 2 ('right') is alone
    // at both levels: no item, A = 0 (GRPO would give it r - mean instead).
    const eps = 1e-6;
    const store = openStore(hgpoDb, { readonly: true });
    try {
      const groups = store.groups('train', 0);
      expect(groups.map((g) => g.groupId).sort()).toEqual(['h1', 'h2']);
      for (const g of groups) {
        const r = groupRewards[g.groupId]!;
        const mean0 = (0.5 * (r[0]! + r[1]! + r[2]!)) / 3;
        const mean1 = (r[0]! + r[1]!) / 2;
        for (const [k, rk] of r.entries()) {
          const steps = store.trajectory({
            runId: 'train',
            iteration: 0,
            groupId: g.groupId,
            trajectoryId: `${g.groupId}-${k}`,
          });
          expect(steps.map((s) => s.anchor)).toEqual(['start', branch(k)]);
          const item0 = 0.5 * rk - mean0;
          const a0 = item0 === 0 ? 0 : (2 * item0) / (2 + eps);
          const a1 = k < 2 ? (5 * (rk - mean1)) / (5 + eps) : 0;
          expect(steps.map((s) => s.advantages[0]!.estimator)).toEqual(['hgpo', 'hgpo']);
          expect(steps[0]!.advantages[0]!.value).toBeCloseTo(a0, 9);
          expect(steps[1]!.advantages[0]!.value).toBeCloseTo(a1, 9);
        }
      }
    } finally {
      store.close();
    }
  });

  it('changed the policy the run started from', async () => {
    expect(hgpo.iterationsRun).toBe(1);
    expect(await logprobGap(hgpo.referenceCheckpoint, hgpo.lastCheckpoint)).toBeGreaterThan(1e-3);
  });
});

describe('estimators that cannot train served rollouts', () => {
  it("refuses IGPO (no gold answer in the agent's own format) and Flow-GRPO (AgentFlow only), writing nothing", async () => {
    const db = join(dir, 'refused.db');
    await expect(train({ ...base, estimator: 'igpo', db }, { ...quiet, servedAgent: agent })).rejects.toThrow(
      /estimator.*'igpo' cannot train agent 'served'.*use 'grpo', 'rloo', 'gigpo' or 'hgpo'/,
    );
    await expect(
      train({ ...base, estimator: 'flow-grpo', db }, { ...quiet, servedAgent: agent }),
    ).rejects.toThrow(/'flow-grpo' trains AgentFlow's planner; set agent: 'agentflow'/);
    expect(existsSync(db)).toBe(false);
  });
});
