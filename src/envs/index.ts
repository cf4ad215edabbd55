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

export {
  CODEMATH_INSTRUCTIONS,
  CodeMathEnv,
  CodeMathEnvConfig,
  isCorrect as isCodeMathAnswerCorrect,
} from './codemath/env.ts';
export { CodeMathExpert, expertProgram } from './codemath/expert.ts';
export {
  CodeMathConfig,
  CodeMathGenerator,
  type CodeMathTask,
  type MathProblem,
  PROBLEM_KINDS,
  type ProblemKind,
  type ProblemParams,
  renderCodeMathTask,
} from './codemath/generator.ts';
export { normalizeDigits, normalizeNumber } from './codemath/numbers.ts';
export { type HouseholdTaskType, TASK_TYPES as HOUSEHOLD_TASK_TYPES } from './household/catalog.ts';
export { HOUSEHOLD_INSTRUCTIONS, HOUSEHOLD_WIN_REWARD, HouseholdEnv } from './household/env.ts';
export { HouseholdExpert } from './household/expert.ts';
export {
  HouseholdConfig,
  HouseholdGenerator,
  type HouseholdTask,
  renderHouseholdTask,
} from './household/generator.ts';
export type { HouseholdGoal, HouseholdWorld } from './household/world.ts';
export { readJsonl, readTasks, TaskSchema, writeTasks } from './jsonl.ts';
export { EnvPool } from './pool.ts';
export { type Encyclopedia, EncyclopediaConfig, generateEncyclopedia } from './search/corpus.ts';
export { SEARCH_INSTRUCTIONS, SearchEnv, SearchEnvConfig } from './search/env.ts';
export { SearchExpert } from './search/expert.ts';
export {
  EncyclopediaQA,
  type QASource,
  QUESTION_KINDS,
  type QuestionKind,
  renderSearchTask,
  type SearchQuestion,
  type SearchTask,
} from './search/generator.ts';
export { exactMatch, normalizeAnswer, wordF1 } from './search/metrics.ts';
export { UserDocument, UserQA, UserQuestion } from './search/user.ts';
export {
  checkKind,
  type Demonstration,
  type Env,
  type Expert,
  SPLITS,
  type Split,
  type StepInfo,
  type StepResult,
  type Task,
  type TaskGenerator,
} from './types.ts';
