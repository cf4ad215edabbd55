/**
 * The search QA loop (IGPO's agent): a growing conversation where each turn the model either
 * searches (`<search>query</search>`, or a `web_search` tool call) or answers
 * (`<answer>...</answer>`). The env runs the search and scores the answer; results come back as
 * tool messages answering the tool calls, or as user messages after a `<search>` tag (OpenAI's API
 * takes tool messages only as answers to calls, so a tag's result cannot be one). A response with neither is passed to the env, which marks it invalid and counts
 * the turn. The trajectory ends at the answer, at the turn limit (the env's or the loop's,
 * whichever is smaller) or at the time limit.
 */
import { z } from 'zod';
import type { SearchTask } from '../../envs/search/generator.ts';
import type { Env } from '../../envs/types.ts';
import { searchPrompt } from '../prompts/search.ts';
import type { Trajectory } from '../record.ts';
import type { ChatModel } from '../types.ts';
import { type Episode, LoopOptions, parseOptions } from './shared.ts';
import { runToolLoop } from './tool-loop.ts';

export const SearchLoopOptions = LoopOptions.extend({
  /** Turns (searches, invalid responses and the answer) before the trajectory ends unanswered. */
  maxTurns: z.number().int().min(1).default(4),
  /**
   * Offer the tools of `episode.tools` to the model as OpenAI tool definitions (a hosted model
   * calls them natively; the local policy sees them in its system prompt). Tool calls in a
   * response are followed whether or not they were offered.
   */
  toolCalling: z.boolean().default(false),
});
export type SearchLoopOptions = z.output<typeof SearchLoopOptions>;

export async function runSearch(
  env: Env<SearchTask>,
  model: ChatModel,
  episode: Episode<SearchTask>,
  options: z.input<typeof SearchLoopOptions> = {},
): Promise<Trajectory> {
  const opts = parseOptions(SearchLoopOptions, options, 'search');
  return runToolLoop(env, model, episode, {
    opts,
    tags: { search: 'search' },
    toolTags: { web_search: { tag: 'search', field: 'query' } },
    prompt: (question) => searchPrompt(question, opts.maxTurns),
  });
}
