/**
 * Constrained decoding to a list of choices (src/policy/runtime/choices.ts): the span between the
 * tags is always one of the options, token for token as the tokenizer encodes it in context; the
 * log-probs recorded are the model's own; greedy picks the best allowed token.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { HouseholdEnv } from '../../src/envs/household/env.ts';
import { HouseholdGenerator } from '../../src/envs/household/generator.ts';
import { ChoiceConstraint, maskLogits } from '../../src/policy/runtime/choices.ts';
import { ContinuousBatch } from '../../src/policy/runtime/continuous-batch.ts';
import { Tokenizer } from '../../src/policy/tokenizer/tokenizer.ts';
import { parseTrainConfig } from '../../src/training/config.ts';
import { domainTexts, domainTokenizer, tinyPolicy } from '../agents/loops-helpers.ts';

/** Admissible command lists along a few household trajectories (first states and a step in). */
function admissibleLists(): string[][] {
  const generator = new HouseholdGenerator({ receptacles: 4, objects: 1 });
  const env = new HouseholdEnv({ receptacles: 4, objects: 1 });
  const lists: string[][] = [];
  for (let seed = 0; seed < 8; seed++) {
    env.resetSync(seed, generator.generate('train', seed));
    lists.push(env.admissibleActions());
    env.stepSync(env.admissibleActions()[0]!);
    lists.push(env.admissibleActions());
  }
  return lists;
}

const ACTION = { open: '<action>', close: '</action>' };
const policies: ReturnType<typeof tinyPolicy>[] = [];
afterAll(async () => {
  for (const p of policies) await p.dispose();
});

describe('ChoiceConstraint', () => {
  it("an option's own encoding is its encoding inside a whole reply (attached and separate spaces)", () => {
    const separate = Tokenizer.train(domainTexts(10), { vocabSize: 600, spaces: 'separate' });
    for (const tok of [domainTokenizer(), separate]) {
      for (const list of admissibleLists()) {
        for (const command of list) {
          const head = tok.encode(`<think>I should ${command}.</think><action>`);
          const whole = tok.encode(`<think>I should ${command}.</think><action>${command}</action>`);
          expect(whole.slice(0, head.length)).toEqual(head);
          expect(whole.slice(head.length)).toEqual(tok.encode(`${command}</action>`));
        }
      }
    }
  });

  it('walks the trie: free before the tag, only option tokens inside, free after the close', () => {
    const tok = domainTokenizer();
    const options = ['go to cabinet 1', 'go to cabinet 2', 'open drawer 1'];
    const c = new ChoiceConstraint({ ...ACTION, options }, tok);
    for (const id of tok.encode('<think>hm</think>')) {
      c.push(id);
      expect(c.allowed()).toBeUndefined();
    }
    for (const id of tok.encode('<action>')) {
      expect(c.allowed()).toBeUndefined();
      c.push(id);
    }
    const first = new Set(options.map((o) => tok.encode(`${o}</action>`)[0]!));
    expect([...c.allowed()!]).toEqual([...first].sort((a, b) => a - b));
    for (const id of tok.encode('go to cabinet 2</action>')) {
      expect(c.allowed()).toContain(id);
      c.push(id);
    }
    expect(c.allowed()).toBeUndefined();
    expect(() => {
      const d = new ChoiceConstraint({ ...ACTION, options }, tok).prime(tok.encode('x<action>'));
      d.push(tok.encode('zzz')[0]!);
    }).toThrow(/not one of the allowed continuations/);
  });

  it('refuses tags and options whose standalone encoding could differ in context', () => {
    const tok = domainTokenizer();
    expect(
      () => new ChoiceConstraint({ open: 'action', close: '</action>', options: ['look'] }, tok),
    ).toThrow(/must end with a symbol/);
    expect(() => new ChoiceConstraint({ ...ACTION, options: [' look'] }, tok)).toThrow(
      /must start with a letter or digit/,
    );
  });

  it('maskLogits keeps the allowed logits and -Infinity elsewhere', () => {
    const m = maskLogits(Float32Array.of(1, 2, 3, 4), Uint32Array.of(1, 3));
    expect([...m]).toEqual([Number.NEGATIVE_INFINITY, 2, Number.NEGATIVE_INFINITY, 4]);
  });
});

describe('generation with choices', () => {
  const lists = admissibleLists();

  it("every sampled span is an option; log-probs are the model's own (as scored)", async () => {
    const policy = tinyPolicy(3);
    policies.push(policy);
    const tok = policy.tokenizer;
    const prompts = lists.map((list) =>
      tok.encode(`Choose one of ${list.join(', ')}.<think>ok</think><action>`),
    );
    const outs = await policy.generate(prompts, {
      temperature: 1,
      maxNewTokens: 24,
      stop: ['</action>'],
      seed: 11,
      rows: lists.map((options) => ({ choices: { ...ACTION, options } })),
    });
    const scored = await policy.scoreBatch(
      outs.map((o, i) => ({ prompt: prompts[i]!, continuation: o.tokens })),
    );
    outs.forEach((o, i) => {
      expect(lists[i]).toContain(o.text);
      expect(o.finishReason).toBe('stop');
      o.logprobs.forEach((lp, t) => {
        expect(lp).toBeCloseTo(scored[i]![t]!, 5);
      });
    });
    // Unconstrained, the same untrained policy writes no command at all.
    const free = await policy.generate(prompts, {
      temperature: 1,
      maxNewTokens: 24,
      stop: ['</action>'],
      seed: 11,
    });
    expect(free.filter((o, i) => lists[i]!.includes(o.text ?? '')).length).toBeLessThan(lists.length / 2);
  });

  it('greedy takes the best allowed token at each step', async () => {
    const policy = tinyPolicy(4);
    policies.push(policy);
    const tok = policy.tokenizer;
    for (const options of lists.slice(0, 4)) {
      const prompt = tok.encode(`Choose.<think>ok</think><action>`);
      const [out] = await policy.generate([prompt], {
        temperature: 0,
        maxNewTokens: 24,
        rows: [{ choices: { ...ACTION, options } }],
      });
      const c = new ChoiceConstraint({ ...ACTION, options }, tok).prime(prompt);
      const sofar: number[] = [];
      for (const token of out!.tokens) {
        const allowed = c.allowed();
        if (!allowed) break;
        const lps = await policy.scoreBatch(
          [...allowed].map((id) => ({ prompt: [...prompt, ...sofar], continuation: [id] })),
        );
        const best = [...allowed][lps.map((l) => l[0]!).reduce((b, v, k, all) => (v > all[b]! ? k : b), 0)];
        expect(token).toBe(best);
        c.push(token);
        sofar.push(token);
      }
    }
  });

  it('a batch without an encoding tokenizer refuses choices, naming them', async () => {
    const policy = tinyPolicy(5);
    policies.push(policy);
    const batch = new ContinuousBatch(policy.runner, {
      maxBatch: 2,
      detokenizer: { tokenBytes: (id) => policy.tokenizer.tokenBytes(id) },
    });
    await expect(
      batch.submit({
        prompt: policy.tokenizer.encode('x'),
        sampling: { temperature: 1, topK: 0, topP: 1 },
        maxNewTokens: 4,
        stop: [],
        stopTokens: [],
        seed: 0,
        topLogprobs: 0,
        choices: { ...ACTION, options: ['look'] },
      }),
    ).rejects.toThrow(/choices need a tokenizer that encodes/);
  });
});

describe("loop.actions 'admissible'", () => {
  it('is the household ReAct loop only', () => {
    expect(parseTrainConfig({ env: 'household', loop: { actions: 'admissible' } }).loop.actions).toBe(
      'admissible',
    );
    expect(() => parseTrainConfig({ env: 'search', loop: { actions: 'admissible' } })).toThrow(
      /field 'loop.actions'.*env 'household', agent 'react'/,
    );
  });
});
