/**
 * A tiny untrained policy for the chat tests (fast: tiny preset, a small vocabulary).
 */

import { templateMessages } from '../../src/agents/chat/template.ts';
import { Policy } from '../../src/policy/policy.ts';
import { Tokenizer } from '../../src/policy/tokenizer/tokenizer.ts';

export function tinyPolicy(seed = 0): Policy {
  const text = [
    'You are in the middle of a room. Look quickly around you.',
    'go to countertop 1. take apple 1 from countertop 1. put apple 1 in/on fridge 1.',
    '<think>I should search.</think><search>capital of France</search><answer>Paris</answer>',
    '<tool_call>{"name": "python", "arguments": {"code": "print(1 + 1)"}}</tool_call>',
  ];
  const tokenizer = Tokenizer.train(Array(20).fill(text).flat(), { vocabSize: 400 });
  return Policy.create({ model: 'tiny', tokenizer, seed });
}

export const PYTHON_TOOL = {
  type: 'function' as const,
  function: {
    name: 'python',
    description: 'Run Python code and return what it prints.',
    parameters: { type: 'object', properties: { code: { type: 'string' } }, required: ['code'] },
  },
};
export const TOOL_REPLY = '<tool_call>{"name": "python", "arguments": {"code": "print(1 + 1)"}}</tool_call>';

/**
 * A tiny policy fine-tuned (SFT, a few dozen steps, about a second) to answer 'compute' with a
 * python tool call when offered the python tool (also after a forced call opening), so tool-call
 * paths see a real model's output.
 */
export async function toolCallingPolicy(): Promise<Policy> {
  const policy = tinyPolicy(1);
  const tok = policy.tokenizer;
  const prompt = tok.applyChatTemplate(
    templateMessages([{ role: 'user', content: 'compute' }], [PYTHON_TOOL]),
    { addGenerationPrompt: true },
  );
  const reply = [...tok.encode(TOOL_REPLY), tok.endId];
  const row = { tokens: [...prompt, ...reply], mask: [...prompt.map(() => 0), ...reply.map(() => 1)] };
  // The same call after the opening a named tool_choice puts in the prompt (see src/serve).
  const opening = [...prompt, ...tok.encode('<tool_call>{"name": "python", "arguments": ')];
  const rest = [...tok.encode('{"code": "print(1 + 1)"}}</tool_call>'), tok.endId];
  const forced = { tokens: [...opening, ...rest], mask: [...opening.map(() => 0), ...rest.map(() => 1)] };
  for (let i = 0; i < 50; i++) await policy.update([row, forced], { kind: 'sft', learningRate: 3e-3 });
  return policy;
}
