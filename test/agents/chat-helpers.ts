// A tiny untrained policy for the chat tests (fast: tiny preset, a small vocabulary).
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
