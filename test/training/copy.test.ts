// Copying on the tool-QA families (issue 14): the held-out greedy reply accuracy that selects the
// search SFT checkpoint, measured on a policy that learned two decisions by heart (1) and on one
// that never trained (0), and the trainer wiring it into a search SFT with fresh questions.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { searchPrompt } from '../../src/agents/prompts/search.ts';
import { Policy } from '../../src/policy/policy.ts';
import { Tokenizer } from '../../src/policy/tokenizer/tokenizer.ts';
import { SftConfig } from '../../src/training/config.ts';
import { actionKind, replyAccuracy, sameAction } from '../../src/training/families/tool-qa.ts';
import type { Demonstrated } from '../../src/training/family.ts';
import { runSft, sftSamples } from '../../src/training/sft.ts';
import { train } from '../../src/training/trainer.ts';

const policies: Policy[] = [];
afterAll(async () => {
  for (const p of policies) await p.dispose();
});

describe('sameAction', () => {
  it('compares the action tag and its trimmed body, nothing else', () => {
    expect(
      sameAction('<search> Velora Guild founded </search>', '<search>Velora Guild founded</search>'),
    ).toBe(true);
    expect(sameAction('<think>x</think><answer>1875</answer>', '<answer>1875</answer>')).toBe(true);
    expect(sameAction('<answer>1876</answer>', '<answer>1875</answer>')).toBe(false);
    expect(sameAction('<search>1875</search>', '<answer>1875</answer>')).toBe(false);
    expect(sameAction('1875', '<answer>1875</answer>')).toBe(false);
    expect(actionKind({ messages: [], reply: '<answer>x</answer>' })).toBe('answer');
  });
});

describe('replyAccuracy', () => {
  const demos: Demonstrated[] = [
    {
      messages: searchPrompt('Who founded Velora Guild?', 3),
      reply: '<search>Velora Guild founded</search>',
    },
    { messages: searchPrompt('Where is Brarmoor?', 3), reply: '<answer>Roustasland</answer>' },
  ];
  const tokenizer = Tokenizer.train(
    demos.flatMap((d) => [...d.messages.map((m) => m.content), d.reply]),
    { vocabSize: 400, spaces: 'separate' },
  );
  const model = { width: 32, layers: 1, heads: 2, contextLength: 256 };
  const options = { maxTokens: 16, kind: actionKind, same: sameAction };

  it('is 1 on decisions the policy learned by heart and 0 for an untrained one, by kind', async () => {
    const fresh = Policy.create({ model, tokenizer, seed: 1 });
    const learned = Policy.create({ model, tokenizer, seed: 1 });
    policies.push(fresh, learned);
    const samples = sftSamples(demos, tokenizer, 256);
    await runSft(
      learned,
      samples,
      samples,
      SftConfig.parse({ batchSize: 2, maxSteps: 150, learningRate: 1e-2, targetLoss: 1e-3, evalEvery: 25 }),
    );
    const after = await replyAccuracy(learned, demos, { ...options, batch: 1 });
    expect(after).toEqual({
      decisions: 2,
      accuracy: 1,
      byKind: { search: { decisions: 1, correct: 1 }, answer: { decisions: 1, correct: 1 } },
    });
    const before = await replyAccuracy(fresh, demos, options);
    expect(before.accuracy).toBe(0);
    expect(before.byKind.search).toEqual({ decisions: 1, correct: 0 });
    await expect(replyAccuracy(fresh, [], options)).rejects.toThrow(/no expert decisions/);
  });
});

describe('search SFT with fresh questions and selection on held-out reply accuracy', () => {
  it('streams new questions, selects on valid-seen reply accuracy, and keeps separate spaces', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'stepwise-copy-'));
    const result = await train(
      {
        env: 'search',
        envOptions: { topK: 1, snippetChars: 80, kinds: ['single-hop'] },
        loop: { maxSteps: 3, maxTokens: 16 },
        policy: {
          model: { width: 32, layers: 1, heads: 2, contextLength: 512 },
          vocabSize: 400,
          spaces: 'separate',
          tokenizerTasks: 10,
        },
        sft: {
          tasks: 8,
          validTasks: 2,
          batchSize: 4,
          maxSteps: 4,
          evalEvery: 2,
          warmupSteps: 1,
          decay: 'cosine',
          fresh: true,
          selectTasks: 3,
        },
        iterations: 0,
        eval: { every: 0, tasks: 2 },
        db: join(dir, 'runs.db'),
      },
      { log: () => {} },
    );
    const sft = result.sft!;
    expect(sft.selection!.map((s) => s.step)).toEqual([0, 2, 4]);
    for (const s of sft.selection!) expect(s.value).toBeGreaterThanOrEqual(0);
    // 4 steps of 4 new samples each (the fixed tasks only train the tokenizer)
    expect(sft.samplesSeen).toBe(16);
    const saved = await Tokenizer.load(join(result.referenceCheckpoint, 'tokenizer.json'));
    expect(saved.spaces).toBe('separate');
    // per-task figures, for pairing
    expect(result.before['valid-unseen'].taskScores?.f1).toHaveLength(2);
  });
});

describe('AgentFlow SFT with selection on held-out reply accuracy', () => {
  it('measures every role of valid-seen gold replays at each evaluation', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'stepwise-copy-flow-'));
    const result = await train(
      {
        env: 'search',
        agent: 'agentflow',
        estimator: 'flow-grpo',
        agentOptions: { maxTurns: 2, envOptions: { search: { kinds: ['single-hop'] } } },
        policy: {
          model: { width: 32, layers: 1, heads: 2, contextLength: 512 },
          vocabSize: 400,
          spaces: 'separate',
          tokenizerTasks: 5,
        },
        sft: { tasks: 2, validTasks: 1, batchSize: 4, maxSteps: 2, evalEvery: 2, selectTasks: 1 },
        iterations: 0,
        eval: { every: 0, tasks: 1 },
        db: join(dir, 'runs.db'),
      },
      { log: () => {} },
    );
    expect(result.sft!.selection!.map((s) => s.step)).toEqual([0, 2]);
    // an untrained width-32 policy reproduces no gold reply exactly
    expect(result.sft!.selection![0]!.value).toBe(0);
  }, 300_000);
});
