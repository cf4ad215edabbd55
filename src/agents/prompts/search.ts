/**
 * The search QA agent's prompt (IGPO's, after Search-R1): system text and the growing conversation of
 * the tool loop.
 */
import type { ChatMessage } from '../types.ts';

/**
 * The search QA prompt, as the IGPO reference (after Search-R1) prompts its agent: reason, then
 * either search (`<search>query</search>`, or a `web_search` tool call when the model calls tools)
 * or answer (`<answer>...</answer>`). Results come back to the model after each search. The wording is ours.
 */
export function searchSystemPrompt(maxTurns: number): string {
  return [
    'Answer the question by searching a document collection.',
    'Each time you get new information, reason about it inside <think> </think> first.',
    'If you are missing a fact, search for it with <search> query </search>; the results come back to you.',
    'Once you know the answer, give it inside <answer> </answer> with no explanation, for example <answer> Paris </answer>.',
    `You have at most ${maxTurns} turns (searches and the answer together).`,
  ].join('\n');
}

export function searchPrompt(question: string, maxTurns: number): ChatMessage[] {
  return [
    { role: 'system', content: searchSystemPrompt(maxTurns) },
    { role: 'user', content: `Question: ${question}` },
  ];
}
