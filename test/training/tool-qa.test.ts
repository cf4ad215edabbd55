// End to end on the tool-QA families: IGPO on search QA (SFT then one RL iteration; its values
// re-scored token by token), GiGPO with similarity grouping from the same SFT checkpoint, GRPO on
// code/math (a real Python sandbox), and the config checks.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { Policy } from '../../src/policy/policy.ts';
import { openStore } from '../../src/store/index.ts';
import { parseTrainConfig, type TrainConfigInput } from '../../src/training/config.ts';
import { goldAnswer, toolQaFamily } from '../../src/training/families/tool-qa.ts';
import { type TrainResult, train } from '../../src/training/trainer.ts';

const dir = mkdtempSync(join(tmpdir(), 'stepwise-toolqa-'));
const quiet = { log: () => {} };

/** A small model with the family's 512-token context; two-hop questions at most (the family's default). */
const base = {
  env: 'search',
  loop: { maxSteps: 4, maxTokens: 24 },
  policy: { model: { width: 64, layers: 2, heads: 2, contextLength: 512 }, tokenizerTasks: 20 },
  groupSize: 3,
  tasksPerIteration: 2,
  iterations: 1,
  ppo: { miniBatchSize: 8, learningRate: 3e-4 },
  eval: { every: 1, tasks: 3 },
} satisfies TrainConfigInput;

const METRICS = ['success_rate', 'invalid_rate', 'mean_return', 'kl', 'entropy', 'loss', 'grad_norm'];

function checkStore(db: string, estimator: string) {
  const store = openStore(db, { readonly: true });
  try {
    expect(store.check().findings.filter((f) => f.severity === 'error')).toEqual([]);
    expect(store.run('train')!.status).toBe('finished');
    expect(store.iterations('train').map((i) => i.trajectories)).toEqual([
      base.tasksPerIteration * base.groupSize,
    ]);
    for (const name of METRICS) {
      const series = store.metricSeries('train', name);
      expect(series, name).toHaveLength(1);
      expect(Number.isFinite(series[0]!.value), `${name} = ${series[0]!.value}`).toBe(true);
    }
    // The family's own figures are evaluated as fractions.
    for (const name of ['eval/valid-unseen/f1', 'after/valid-seen/exact_match']) {
      const [p] = store.metricSeries('train', name);
      expect(p!.value, name).toBeGreaterThanOrEqual(0);
      expect(p!.value, name).toBeLessThanOrEqual(1);
    }
    const rows = store.trainingRows('train', 0, estimator);
    expect(rows.length).toBeGreaterThan(0);
    for (const r of rows) expect(Number.isFinite(r.advantage)).toBe(true);
  } finally {
    store.close();
  }
}

let igpo: TrainResult;
const igpoDb = join(dir, 'igpo.db');

beforeAll(async () => {
  igpo = await train(
    {
      ...base,
      estimator: 'igpo',
      sft: { tasks: 24, validTasks: 4, maxSteps: 20, batchSize: 16, learningRate: 3e-3, evalEvery: 10 },
      db: igpoDb,
    },
    quiet,
  );
});

describe('search QA training', () => {
  it('igpo: SFT then RL writes a complete store whose advantages carry values and gains', () => {
    expect(igpo.sft!.curve.at(-1)!.validLoss).toBeLessThan(igpo.sft!.curve[0]!.validLoss);
    checkStore(igpoDb, 'igpo');
    const store = openStore(igpoDb, { readonly: true });
    try {
      let steps = 0;
      for (const g of store.groups('train', 0)) {
        for (const t of g.trajectories) {
          const trajectory = store.trajectory({
            runId: 'train',
            iteration: 0,
            groupId: g.groupId,
            trajectoryId: t.trajectoryId,
          });
          for (const s of trajectory) {
            const d = s.advantages[0]!.details as Record<string, number | null>;
            expect(s.advantages[0]!.estimator).toBe('igpo');
            expect(Number.isFinite(d.value)).toBe(true);
            expect(d.value).toBeLessThanOrEqual(0);
            expect(s.extras.valueBefore).toBeCloseTo(d.value!, 9);
            expect('gain' in d).toBe(true);
            steps++;
          }
          // The last turn's reward: the answer's F1, the format penalty, or 0 without an answer.
          const last = trajectory.at(-1)!;
          const reward = (last.advantages[0]!.details as Record<string, number>).reward;
          if (!last.valid) expect(reward).toBe(-2);
          else if (last.extras.answered === true) expect(reward).toBe(last.extras.outcomeReward);
          else expect(reward).toBe(0);
        }
      }
      expect(steps).toBeGreaterThan(0);
    } finally {
      store.close();
    }
  });

  it("igpo: a turn's value is the SFT policy's mean log-prob of the gold answer after its prompt and <answer>", async () => {
    const store = openStore(igpoDb, { readonly: true });
    const policy = await Policy.load(igpo.referenceCheckpoint);
    try {
      const family = toolQaFamily(parseTrainConfig({ ...base, estimator: 'igpo', db: igpoDb }));
      const g = store.groups('train', 0)[0]!;
      const steps = store.trajectory({ runId: 'train', iteration: 0, groupId: g.groupId, trajectoryId: '0' });
      const gold = goldAnswer(family.task(g.split as 'train', g.seed));
      const tok = policy.tokenizer;
      const prefix = tok.encode('<answer>');
      const answer = tok.encode(gold);
      // The prefix and the answer tokenize apart, as the loop reads them.
      expect(tok.encode(`<answer>${gold}`)).toEqual([...prefix, ...answer]);
      for (const s of steps) {
        const [lp] = await policy.scoreBatch([
          { prompt: [...s.promptTokens, ...prefix], continuation: answer },
        ]);
        const mean = lp!.reduce((a, b) => a + b, 0) / lp!.length;
        const stored = (s.advantages[0]!.details as Record<string, number>).value!;
        expect(stored).toBeCloseTo(mean, 4);
      }
    } finally {
      store.close();
      await policy.dispose();
    }
  });

  it('gigpo with similarity grouping: a short run from the SFT checkpoint', async () => {
    const db = join(dir, 'gigpo.db');
    await train(
      {
        ...base,
        estimator: 'gigpo',
        estimatorOptions: { similarity: 0.9 },
        policy: { checkpoint: igpo.referenceCheckpoint },
        sft: { enabled: false },
        db,
      },
      quiet,
    );
    checkStore(db, 'gigpo');
  });

  it('grpo: a short run from the SFT checkpoint', async () => {
    const db = join(dir, 'grpo.db');
    await train(
      {
        ...base,
        estimator: 'grpo',
        policy: { checkpoint: igpo.referenceCheckpoint },
        sft: { enabled: false },
        db,
      },
      quiet,
    );
    checkStore(db, 'grpo');
  });
});

describe('code/math training', () => {
  it('grpo: SFT then RL through the Python sandbox', async () => {
    const db = join(dir, 'codemath.db');
    const result = await train(
      {
        ...base,
        env: 'codemath',
        envOptions: { kinds: ['product', 'sum'], digits: 3 },
        estimator: 'grpo',
        loop: { maxSteps: 3, maxTokens: 32 },
        groupSize: 2,
        tasksPerIteration: 1,
        eval: { every: 0, tasks: 1 },
        sft: { tasks: 6, validTasks: 2, maxSteps: 10, batchSize: 8, learningRate: 3e-3, evalEvery: 5 },
        db,
      },
      quiet,
    );
    expect(result.sft!.steps).toBeGreaterThan(0);
    const store = openStore(db, { readonly: true });
    try {
      expect(store.check().findings.filter((f) => f.severity === 'error')).toEqual([]);
      expect(store.iterations('train').map((i) => i.trajectories)).toEqual([2]);
      for (const name of METRICS) {
        const [p] = store.metricSeries('train', name);
        expect(Number.isFinite(p!.value), name).toBe(true);
      }
      expect(store.metricNames('train')).toContain('after/valid-unseen/exact_match');
    } finally {
      store.close();
    }
  });
});

describe('tool-QA config', () => {
  it("'igpo' on the household world is rejected naming the field", async () => {
    const db = join(dir, 'bad.db');
    await expect(train({ estimator: 'igpo', env: 'household', db }, quiet)).rejects.toThrow(/'estimator'/);
  });

  it('an unknown search option is rejected naming it', () => {
    expect(() => toolQaFamily(parseTrainConfig({ ...base, envOptions: { topk: 3 } }))).toThrow(
      /'envOptions.topk'/,
    );
    expect(() => toolQaFamily(parseTrainConfig({ ...base, envOptions: { kinds: ['four-hop'] } }))).toThrow(
      /'envOptions.kinds.0'/,
    );
  });

  it('an expert trace longer than the loop allows is refused before training', async () => {
    const family = toolQaFamily(
      parseTrainConfig({ ...base, loop: { maxSteps: 2 }, envOptions: { kinds: ['three-hop'] } }),
    );
    await expect(family.demonstrations([family.task('train', 0)])).rejects.toThrow(/'loop.maxSteps'/);
  });
});
