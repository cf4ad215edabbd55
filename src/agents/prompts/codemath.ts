/** The code/math agent's prompt: system text and the growing conversation of the tool loop. */
import type { ChatMessage } from '../types.ts';

/**
 * The code/math prompt: compute with Python (`<code>...</code>`, or a `python` tool call when the
 * model calls tools), read what it prints, then answer in `<answer>...</answer>`.
 */
export function codeMathSystemPrompt(maxTurns: number): string {
  return [
    'Solve the problem exactly. Compute with Python: write a program inside <code> </code> that prints what you need; you will see its output.',
    'Variables persist between your programs.',
    'When you have the result, reply with the final answer inside <answer> </answer>, for example <answer> 42 </answer>.',
    `You have at most ${maxTurns} turns (programs and the answer together).`,
  ].join('\n');
}

export function codeMathPrompt(problem: string, maxTurns: number): ChatMessage[] {
  return [
    { role: 'system', content: codeMathSystemPrompt(maxTurns) },
    { role: 'user', content: `Problem: ${problem}` },
  ];
}
