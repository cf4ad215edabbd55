/**
 * stepwise's environments: the ALFWorld-style household world, multi-hop search QA and code/math
 * problems, each with a task generator (train / valid-seen / valid-unseen), an expert and a text
 * renderer, plus the pool that steps many envs at once.
 */
import type { Tool } from '../tools/types.ts';
import { CodeMathEnv, type CodeMathEnvConfig } from './codemath/env.ts';
import { CodeMathExpert } from './codemath/expert.ts';
import { type CodeMathTask, renderCodeMathTask } from './codemath/generator.ts';
import { HouseholdEnv } from './household/env.ts';
import { HouseholdExpert } from './household/expert.ts';
import { type HouseholdConfig, type HouseholdTask, renderHouseholdTask } from './household/generator.ts';
import { SearchEnv, type SearchEnvConfig } from './search/env.ts';
import { SearchExpert } from './search/expert.ts';
import { type QASource, renderSearchTask, type SearchTask } from './search/generator.ts';
import type { Env, Expert, Task } from './types.ts';

export const ENV_NAMES = ['household', 'search', 'codemath'] as const;
export type EnvName = (typeof ENV_NAMES)[number];

export interface EnvOptions {
  household?: Partial<HouseholdConfig>;
  search?: Partial<SearchEnvConfig>;
  codemath?: Partial<CodeMathEnvConfig>;
  /** Tools and shared sources: the Python tool of a code/math env, a search source or tool. */
  deps?: { python?: Tool; search?: Tool; source?: QASource };
}

function checkName(name: string): EnvName {
  if (!(ENV_NAMES as readonly string[]).includes(name)) {
    throw new Error(`unknown env "${name}" (expected one of: ${ENV_NAMES.join(', ')})`);
  }
  return name as EnvName;
}

/** An env by name, with its config and tools. */
export function createEnv(name: string, options: EnvOptions = {}): Env {
  switch (checkName(name)) {
    case 'household':
      return new HouseholdEnv(options.household) as unknown as Env;
    case 'search':
      return new SearchEnv(options.search, {
        search: options.deps?.search,
        source: options.deps?.source,
      }) as unknown as Env;
    case 'codemath':
      return new CodeMathEnv(options.codemath, { python: options.deps?.python }) as unknown as Env;
  }
}

/** The expert of an env by name. */
export function createExpert(name: string): Expert {
  switch (checkName(name)) {
    case 'household':
      return new HouseholdExpert() as unknown as Expert;
    case 'search':
      return new SearchExpert() as unknown as Expert;
    case 'codemath':
      return new CodeMathExpert() as unknown as Expert;
  }
}

/** A task as prompt text: the opening observation a model sees (task statement included). */
export function renderTask(task: Task): string {
  switch (checkName(task.env)) {
    case 'household':
      return renderHouseholdTask(task as HouseholdTask);
    case 'search':
      return renderSearchTask(task as SearchTask);
    case 'codemath':
      return renderCodeMathTask(task as CodeMathTask);
  }
}

export { CODEMATH_INSTRUCTIONS } from './codemath/env.ts';
export { SEARCH_INSTRUCTIONS } from './search/env.ts';
