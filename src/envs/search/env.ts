/**
 * `SearchEnv`: multi-hop search QA over a source's corpus, with `web_search` as the tool and EM/F1
 * answers.
 */
import { z } from 'zod';
import type { Tool } from '../../tools/types.ts';
import { webSearchTool } from '../../tools/web-search.ts';
import { type AnswerScore, ToolAnswerEnv } from '../tool-env.ts';
import { SPLITS } from '../types.ts';
import { EncyclopediaConfig } from './corpus.ts';
import { EncyclopediaQA, type QASource, renderSearchTask, type SearchTask } from './generator.ts';
import { exactMatch, wordF1 } from './metrics.ts';

export const SearchEnvConfig = z.object({
  /** Split `reset(seed)` draws questions from when no task is given. */
  split: z.enum(SPLITS).default('train'),
  /** Results per search. */
  topK: z.number().int().min(1).max(50).default(3),
  /** Steps (searches, invalid actions and the answer) before the trajectory ends unanswered. */
  maxTurns: z.number().int().min(1).default(4),
  /** Which score is the reward; both are reported in `info` (`em`, `f1`). */
  reward: z.enum(['em', 'f1']).default('em'),
  /** The generated encyclopedia, when no source is given. */
  encyclopedia: EncyclopediaConfig.partial().default({}),
});
export type SearchEnvConfig = z.infer<typeof SearchEnvConfig>;

export const SEARCH_INSTRUCTIONS =
  'Search with <search>query</search> (the results are titles and snippets); ' +
  'when you know the answer, reply <answer>answer</answer>.';

/**
 * Multi-hop search QA. Actions: `<search>query</search>` or `<answer>text</answer>`. The anchor is
 * the question at reset, then each search's result text. Reward: exact match or word-set F1 of the
 * answer (option `reward`), on the answering step.
 */
export class SearchEnv extends ToolAnswerEnv<SearchTask> {
  readonly name = 'search';
  readonly instructions = SEARCH_INSTRUCTIONS;
  protected readonly toolTag = 'search';
  readonly config: SearchEnvConfig;
  readonly source: QASource;
  private tool: Tool | undefined;

  /**
   * `source`: questions and corpus (default: a generated encyclopedia from `config.encyclopedia`;
   * share one source between envs so the index is built once). `search`: the tool searches go
   * to, with input `{ query }` (default: the `web_search` tool over the source's index, top `topK`).
   */
  constructor(
    config: Partial<z.input<typeof SearchEnvConfig>> = {},
    deps: { source?: QASource; search?: Tool } = {},
  ) {
    super();
    this.config = SearchEnvConfig.parse(config);
    this.source = deps.source ?? new EncyclopediaQA(this.config.encyclopedia);
    this.tool = deps.search;
  }

  protected get maxTurns(): number {
    return this.config.maxTurns;
  }

  protected makeTask(seed: number): SearchTask {
    return this.source.generate(this.config.split, seed);
  }

  protected render(task: SearchTask): string {
    return renderSearchTask(task);
  }

  protected score(answer: string, task: SearchTask): AnswerScore {
    const em = exactMatch(answer, task.payload.answers);
    const f1 = wordF1(answer, task.payload.answers);
    return { reward: this.config.reward === 'em' ? em : f1, won: em === 1, info: { em, f1 } };
  }

  protected async runTool(query: string): Promise<string> {
    return this.search(query);
  }

  private async search(query: string): Promise<string> {
    // The same web_search tool agents call outside training, so observations read the same.
    this.tool ??= webSearchTool({ index: this.source.index(), defaultK: this.config.topK });
    const r = await this.tool.execute({ query });
    return r.ok ? r.output : `Search failed: ${r.error ?? r.errorKind ?? 'unknown error'}`;
  }
}
