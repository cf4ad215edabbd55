import { z } from 'zod';
import type { Tool } from '../../tools/types.ts';
import { webSearchTool } from '../../tools/web-search.ts';
import { parseAction } from '../actions.ts';
import { type Env, SPLITS, type StepResult } from '../types.ts';
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
export class SearchEnv implements Env<SearchTask> {
  readonly name = 'search';
  readonly instructions = SEARCH_INSTRUCTIONS;
  readonly config: SearchEnvConfig;
  readonly source: QASource;
  private tool: Tool | undefined;
  private current: SearchTask | undefined;
  private turns = 0;
  private finished = false;
  private lastObservation = '';

  /**
   * `source`: questions and corpus (default: a generated encyclopedia from `config.encyclopedia`;
   * share one source between envs so the index is built once). `search`: the tool searches go
   * to, with input `{ query }` (default: the `web_search` tool over the source's index, top `topK`).
   */
  constructor(
    config: Partial<z.input<typeof SearchEnvConfig>> = {},
    deps: { source?: QASource; search?: Tool } = {},
  ) {
    this.config = SearchEnvConfig.parse(config);
    this.source = deps.source ?? new EncyclopediaQA(this.config.encyclopedia);
    this.tool = deps.search;
  }

  get task(): SearchTask | undefined {
    return this.current;
  }

  get anchor(): string {
    return this.lastObservation;
  }

  async reset(seed: number, task?: SearchTask): Promise<string> {
    const t = task ?? this.source.generate(this.config.split, seed);
    if (t.env !== this.name)
      throw new Error(`SearchEnv.reset: task ${t.id} is for env "${t.env}", not search`);
    this.current = t;
    this.turns = 0;
    this.finished = false;
    this.lastObservation = renderSearchTask(t);
    return this.lastObservation;
  }

  async step(action: string): Promise<StepResult> {
    if (!this.current) throw new Error('SearchEnv.step: call reset() before step()');
    if (this.finished)
      throw new Error(
        `SearchEnv.step: trajectory of task ${this.current.id} is finished; call reset() first`,
      );
    this.turns++;
    const outOfTurns = this.turns >= this.config.maxTurns;
    const parsed = parseAction(action, ['search', 'answer']);
    let result: StepResult;
    if (parsed?.tag === 'answer') {
      const em = exactMatch(parsed.body, this.current.payload.answers);
      const f1 = wordF1(parsed.body, this.current.payload.answers);
      result = {
        observation: `Your answer: ${parsed.body}`,
        reward: this.config.reward === 'em' ? em : f1,
        done: true,
        info: { won: em === 1, valid: true, em, f1 },
      };
    } else if (parsed?.tag === 'search' && parsed.body !== '') {
      result = {
        observation: await this.search(parsed.body),
        reward: 0,
        done: outOfTurns,
        info: { won: false, valid: true },
      };
    } else {
      result = {
        observation: `Invalid action. ${SEARCH_INSTRUCTIONS}`,
        reward: 0,
        done: outOfTurns,
        info: { won: false, valid: false },
      };
    }
    this.finished = result.done;
    this.lastObservation = result.observation;
    return result;
  }

  private async search(query: string): Promise<string> {
    // The same web_search tool agents call outside training, so observations read the same.
    this.tool ??= webSearchTool({ index: this.source.index(), defaultK: this.config.topK });
    const r = await this.tool.execute({ query });
    return r.ok ? r.output : `Search failed: ${r.error ?? r.errorKind ?? 'unknown error'}`;
  }
}
