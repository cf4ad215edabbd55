/**
 * Shared by the loops and record tests: a tokenizer fitted to the envs' text and a tiny untrained
 * policy on it, so prompts are short enough for the tiny preset's context.
 */

import { expect } from 'vitest';
import { codeMathSystemPrompt } from '../../src/agents/prompts/codemath.ts';
import { householdPrompt } from '../../src/agents/prompts/household.ts';
import { searchSystemPrompt } from '../../src/agents/prompts/search.ts';
import type { ChatMessage, ChatModel, ChatOptions, ChatResult } from '../../src/agents/types.ts';
import { createExpert, HouseholdEnv, HouseholdGenerator, Policy, Tokenizer } from '../../src/index.ts';

/** Household prompts along expert trajectories, plus the other loops' system prompts. */
export function domainTexts(tasks = 40): string[] {
  const texts = [searchSystemPrompt(4), codeMathSystemPrompt(4), '<think> </think> <action> </action>'];
  const generator = new HouseholdGenerator();
  const expert = createExpert('household');
  const env = new HouseholdEnv();
  for (let seed = 0; seed < tasks; seed++) {
    const task = generator.generate('train', seed);
    let observation = env.resetSync(seed, task);
    const history: { observation: string; action: string }[] = [];
    for (const action of expert.demonstrate(task).actions.slice(0, 6)) {
      const [prompt] = householdPrompt({
        task: task.payload.goalText,
        stepCount: history.length,
        history: history.slice(-2),
        observation,
        admissible: env.admissibleActions(),
      });
      texts.push(prompt!.content, `<think>I should ${action}.</think><action>${action}</action>`);
      history.push({ observation, action });
      observation = env.stepSync(action).observation;
    }
  }
  return texts;
}

/**
 * The growing conversation's promise: each step's prompt token ids are the previous step's prompt
 * and response ids, exactly, followed by what the turn appended.
 */
export function expectPromptsGrow(
  steps: readonly { promptTokens: number[]; responseTokens: number[] }[],
): void {
  for (let i = 1; i < steps.length; i++) {
    const before = steps[i - 1]!;
    const prefix = [...before.promptTokens, ...before.responseTokens];
    expect(steps[i]!.promptTokens.slice(0, prefix.length)).toEqual(prefix);
    expect(steps[i]!.promptTokens.length).toBeGreaterThan(prefix.length);
  }
}

let cached: Tokenizer | undefined;
export function domainTokenizer(): Tokenizer {
  cached ??= Tokenizer.train(domainTexts(), { vocabSize: 1024 });
  return cached;
}

export function tinyPolicy(seed = 0): Policy {
  return Policy.create({ model: 'tiny', tokenizer: domainTokenizer(), seed });
}

/**
 * A ChatModel that plays given responses, for the loop behaviour that an untrained policy cannot
 * show on demand (winning, a malformed reply at a chosen step, a tool call). The loop under test
 * is real; only the model's decisions are scripted.
 */
export class ScriptedModel implements ChatModel {
  readonly name = 'scripted';
  readonly calls: { messages: ChatMessage[]; options: ChatOptions }[] = [];
  constructor(
    private readonly script: (
      messages: readonly ChatMessage[],
      call: number,
    ) => string | Partial<ChatResult> | Promise<string | Partial<ChatResult>>,
  ) {}

  async chat(messages: readonly ChatMessage[], options: ChatOptions = {}): Promise<ChatResult> {
    this.calls.push({ messages: messages.map((m) => ({ ...m })), options });
    const out = await this.script(messages, this.calls.length - 1);
    const r = typeof out === 'string' ? { text: out } : out;
    return { text: r.text ?? '', finishReason: r.finishReason ?? 'stop', ...r };
  }
}

/** Replies in order, then keeps repeating the last one. */
export function replies(...texts: (string | Partial<ChatResult>)[]): ScriptedModel {
  return new ScriptedModel((_, call) => texts[Math.min(call, texts.length - 1)]!);
}
