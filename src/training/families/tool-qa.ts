/**
 * The tool-QA families: the search QA loop (IGPO's agent) and the code/math loop, both the
 * multi-turn tool loop of agents/loops/tool-loop.ts. Demonstrations replay the expert's replies
 * through that same loop (a scripted ChatModel), so every SFT prompt is the one a rollout builds at
 * that turn, tool results included. With IGPO, each turn's value is the current policy's mean
 * log-prob of the gold answer after the turn's exact prompt tokens and the answer tag.
 *
 * Defaults chosen so a search conversation fits the tiny policy's 512-token context (the loop
 * stops with context_limit otherwise): questions of at most two hops (`kinds`), two results per
 * search (`topK`) cut to 120 characters (`snippetChars`). With the family's tokenizer (1024 words
 * trained on the encyclopedia), a two-hop expert conversation is about 300 tokens at its answer turn.
 */
import { z } from 'zod';
import { ScriptedChatModel } from '../../agents/agentflow/scripted.ts';
import { PolicyChatModel } from '../../agents/chat/policy-chat-model.ts';
import { type AgentEnv, agentEnvMaker, rollout, runnerTool } from '../../agents/loops/rollout.ts';
import { codeMathSystemPrompt } from '../../agents/prompts/codemath.ts';
import { searchSystemPrompt } from '../../agents/prompts/search.ts';
import type { AgentStep, Trajectory } from '../../agents/record.ts';
import type { StepRow } from '../../credit/types.ts';
import { parseAction } from '../../envs/actions.ts';
import { CodeMathEnv, CodeMathEnvConfig } from '../../envs/codemath/env.ts';
import { CodeMathGenerator, type CodeMathTask, renderCodeMathTask } from '../../envs/codemath/generator.ts';
import { createExpert } from '../../envs/index.ts';
import { SearchEnvConfig } from '../../envs/search/env.ts';
import { EncyclopediaQA, QUESTION_KINDS, type SearchTask } from '../../envs/search/generator.ts';
import { exactMatch, wordF1 } from '../../envs/search/metrics.ts';
import type { Env, Split, Task } from '../../envs/types.ts';
import type { Policy } from '../../policy/policy.ts';
import { ToolRunner } from '../../tools/policy.ts';
import { PythonPool } from '../../tools/python/pool.ts';
import { PythonTool } from '../../tools/python/tool.ts';
import { SearchIndex } from '../../tools/search/index.ts';
import { webSearchTool } from '../../tools/web-search.ts';
import { parseConfigSection, type TrainConfig, TrainConfigError } from '../config.ts';
import { creditRows, type Demonstrated, type FamilyHooks, type TaskFamily } from '../family.ts';

/** The search family's `envOptions`: the env's config with defaults that fit a 512-token context. */
export const SearchFamilyOptions = SearchEnvConfig.extend({
  topK: z.number().int().min(1).max(50).default(2),
  /** Longest result snippet, in characters (the search index's `snippetChars`). */
  snippetChars: z.number().int().min(40).default(120),
  /** Question kinds drawn, in turn by task seed (hops: single-hop 1, bridge and comparison 2, three-hop 3). */
  kinds: z.array(z.enum(QUESTION_KINDS)).min(1).default(['single-hop', 'bridge']),
}).strict();
export type SearchFamilyOptions = z.output<typeof SearchFamilyOptions>;

/** The code/math family's `envOptions`: the env's config (digits, kinds, maxTurns...). */
export const CodeMathFamilyOptions = CodeMathEnvConfig.strict();

/** What the answer turn starts with: IGPO scores the gold answer after it. */
export const ANSWER_PREFIX = '<answer>';

/** Probes per scoring batch. */
const SCORE_CHUNK = 32;

/** The gold answer of a task (the text IGPO's values score): search's canonical answer, code/math's. */
export function goldAnswer(task: Task): string {
  if (task.env === 'search') return (task as SearchTask).payload.answers[0]!;
  if (task.env === 'codemath') return (task as CodeMathTask).payload.answer;
  throw new Error(`goldAnswer: task ${task.id} is for env "${task.env}"; expected search or codemath`);
}

/** The answer a trajectory gave (its last step's `<answer>` body), or undefined. */
export function givenAnswer(t: Trajectory): string | undefined {
  const last = t.steps.at(-1);
  if (!last?.action || !last.valid) return undefined;
  const parsed = parseAction(last.action, ['answer']);
  return parsed?.tag === 'answer' ? parsed.body : undefined;
}

/**
 * Search: word-set F1 and exact match of the answer, each the best over the accepted answers (the
 * env's scorer); no answer scores 0. Code/math: the env's exact check, both figures.
 */
export function toolQaScores(t: Trajectory): Record<string, number> {
  if (t.task.env === 'search') {
    const answer = givenAnswer(t);
    const answers = (t.task as SearchTask).payload.answers;
    if (answer === undefined) return { f1: 0, exact_match: 0 };
    return { f1: wordF1(answer, answers), exact_match: exactMatch(answer, answers) };
  }
  const right = t.won ? 1 : 0;
  return { f1: right, exact_match: right };
}

/**
 * The prompt and answer tokens IGPO scores for one turn: the turn's exact prompt tokens, then the
 * answer prefix; the gold answer's tokens as the loop would read them after that prefix (encoded
 * together, so a merge across the tag boundary is kept when the tokenizer makes one).
 */
export function answerProbe(
  policy: Policy,
  promptTokens: readonly number[],
  gold: string,
): { prompt: number[]; continuation: number[] } {
  const tok = policy.tokenizer;
  const prefix = tok.encode(ANSWER_PREFIX);
  const joint = tok.encode(`${ANSWER_PREFIX}${gold}`);
  const samePrefix = prefix.every((id, i) => joint[i] === id) && joint.length > prefix.length;
  const answer = samePrefix ? joint.slice(prefix.length) : tok.encode(gold);
  let prompt = [...promptTokens, ...prefix];
  // A prompt near the context's end: keep its latest tokens (the last search result matters most).
  const room = policy.config.contextLength - answer.length;
  if (prompt.length > room) prompt = prompt.slice(prompt.length - room);
  return { prompt, continuation: answer };
}

/**
 * v_t of IGPO for every given step: the mean log-prob, under `policy`, of the gold answer's tokens
 * teacher-forced after the step's prompt tokens and the answer prefix.
 */
export async function answerValues(
  policy: Policy,
  steps: readonly { promptTokens: readonly number[]; gold: string }[],
): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < steps.length; i += SCORE_CHUNK) {
    const part = steps.slice(i, i + SCORE_CHUNK);
    const lps = await policy.scoreBatch(part.map((s) => answerProbe(policy, s.promptTokens, s.gold)));
    for (const lp of lps) out.push(lp.reduce((a, b) => a + b, 0) / Math.max(lp.length, 1));
  }
  return out;
}

/** Greedy replies against the expert's on the expert's own states, overall and by kind of decision. */
export interface ReplyAccuracy {
  decisions: number;
  /** Share of decisions whose greedy reply means what the expert's does (`same`). */
  accuracy: number;
  /** By kind (search: the action tag; AgentFlow: the role): decisions and correct ones. */
  byKind: Record<string, { decisions: number; correct: number }>;
}

/**
 * Greedy reply accuracy: each expert decision's prompt is generated from greedily, in batches of
 * prompts of similar length, and the reply compared with the expert's by `same`. Measured on
 * held-out tasks it is the figure that says whether the policy copies what it must (a query naming
 * the question's entity, an answer naming the result's value); the reply's loss hides that only a
 * few of its tokens carry the decision.
 */
export async function replyAccuracy(
  policy: Policy,
  demos: readonly Demonstrated[],
  options: {
    maxTokens: number;
    kind: (d: Demonstrated) => string;
    same: (got: string, want: string) => boolean;
    batch?: number;
  },
): Promise<ReplyAccuracy> {
  if (demos.length === 0) throw new Error('replyAccuracy: no expert decisions to compare with');
  const batch = options.batch ?? 64;
  const context = policy.config.contextLength;
  const items = demos
    .map((d) => ({ d, tokens: policy.encodePrompt(d.messages) }))
    .sort((a, b) => a.tokens.length - b.tokens.length);
  const byKind: ReplyAccuracy['byKind'] = {};
  let correct = 0;
  for (let i = 0; i < items.length; i += batch) {
    const part = items.slice(i, i + batch);
    const fits = part.filter((p) => p.tokens.length < context);
    const out =
      fits.length === 0
        ? []
        : await policy.generate(
            fits.map((p) => p.tokens),
            { temperature: 0, maxNewTokens: options.maxTokens },
          );
    const texts = new Map(fits.map((p, j) => [p, out[j]!.text ?? '']));
    for (const p of part) {
      const kind = options.kind(p.d);
      byKind[kind] ??= { decisions: 0, correct: 0 };
      const entry = byKind[kind];
      entry.decisions++;
      const text = texts.get(p);
      if (text !== undefined && options.same(text, p.d.reply)) {
        entry.correct++;
        correct++;
      }
    }
  }
  return { decisions: items.length, accuracy: correct / items.length, byKind };
}

/** The tool-QA action of a reply as `tag:body` (body trimmed), or undefined when it has none. */
const actionKey = (reply: string) => {
  const a = parseAction(reply, ['search', 'python', 'answer']);
  return a && `${a.tag}:${a.body}`;
};

/** Search and code/math: the reply names the same action (tag and trimmed body) as the expert's. */
export const sameAction = (got: string, want: string): boolean => {
  const g = actionKey(got);
  return g !== undefined && g === actionKey(want);
};

/** A decision's kind for `replyAccuracy`: the expert's action tag (search, python, answer). */
export const actionKind = (d: Demonstrated): string =>
  parseAction(d.reply, ['search', 'python', 'answer'])?.tag ?? 'other';

/** Steps whose response is trained (the trainer's rule: a response with tokens). */
const trainable = (s: AgentStep) => s.responseTokens.length > 0;

/**
 * IGPO's rows: every turn's `valueBefore` (also kept in the step's extras for the viewer),
 * `answered` on the answer turn with its `outcomeReward` (search: the env's F1; code/math: the
 * reward, 1 right or 0). A malformed last response keeps `valid: false` (IGPO's format penalty).
 */
export async function igpoRows(trajectories: readonly Trajectory[], policy: Policy): Promise<StepRow[]> {
  const steps = trajectories.flatMap((t) =>
    t.steps.filter(trainable).map((s) => ({ t, s, promptTokens: s.promptTokens, gold: goldAnswer(t.task) })),
  );
  for (const { t, s } of steps) {
    if (s.promptTokens.length === 0) {
      throw new Error(
        `IGPO needs the prompt tokens of every turn; step ${s.stepIndex} of ${t.groupId}/${t.trajectoryId} has none`,
      );
    }
  }
  const values = await answerValues(policy, steps);
  steps.forEach(({ s }, i) => {
    s.extras.valueBefore = values[i]!;
  });
  // Same steps, same order as `steps`.
  return creditRows(trajectories, trainable).map((row, i) => {
    const { s } = steps[i]!;
    const answered = s.extras.answered === true;
    const outcome = typeof s.extras.outcomeReward === 'number' ? s.extras.outcomeReward : s.envReward;
    return {
      ...row,
      valueBefore: values[i]!,
      ...(answered ? { answered: true, outcomeReward: outcome } : {}),
    };
  });
}

/** The search or code/math family (agent 'react'). */
export function toolQaFamily(config: TrainConfig, hooks: FamilyHooks = {}): TaskFamily {
  if (config.env === 'search') return searchFamily(config, hooks);
  if (config.env === 'codemath') return codeMathFamily(config, hooks);
  throw new TrainConfigError('env', `'${config.env}' has no tool-QA family; expected 'search' or 'codemath'`);
}

/** The loop's turn limit: the smaller of `loop.maxSteps` and the env's (the prompt states it). */
const maxTurns = (config: TrainConfig, envMaxTurns: number) => Math.min(config.loop.maxSteps, envMaxTurns);

interface ToolQaParts {
  env: 'search' | 'codemath';
  /** The env's own turn limit (the loop's is the smaller of it and `loop.maxSteps`). */
  envMaxTurns: number;
  task: (split: Split, seed: number) => Task;
  makeEnv: (name: string) => AgentEnv;
  tokenizerText: () => Promise<string[]>;
  /** Trajectories replayed at once for demonstrations (each holds an env, and a Python interpreter). */
  demoConcurrency: number;
  close?: () => Promise<void>;
}

function searchFamily(config: TrainConfig, hooks: FamilyHooks): TaskFamily {
  const opts = parseConfigSection(SearchFamilyOptions, config.envOptions, 'envOptions');
  const { snippetChars, kinds, ...envConfig } = opts;
  let source: EncyclopediaQA | undefined;
  const qa = () => {
    source ??= new EncyclopediaQA(envConfig.encyclopedia);
    return source;
  };
  let maker: ((name: string) => AgentEnv) | undefined;
  const makeEnv =
    hooks.makeEnv ??
    ((name: string) => {
      if (!maker) {
        const index = SearchIndex.build(qa().encyclopedia.documents, { snippetChars });
        const search = webSearchTool({ index, defaultK: envConfig.topK });
        maker = agentEnvMaker({ search: envConfig, deps: { source: qa(), search } });
      }
      return maker(name);
    });
  return familyFromParts(config, hooks, {
    env: 'search',
    envMaxTurns: envConfig.maxTurns,
    task: hooks.tasks ?? ((split, seed) => qa().generate(split, seed, kinds[seed % kinds.length])),
    makeEnv,
    demoConcurrency: 16,
    tokenizerText: async () => {
      // Train-split documents only: a name of an evaluated entity then splits into pieces the policy
      // has learned to copy, instead of being one token whose embedding no training step touched.
      const train = qa().encyclopedia.splits.train;
      const names = new Set(
        [train.regions, train.towns, train.people, train.organizations, train.works, train.distractors]
          .flat()
          .map((e) => e.name),
      );
      const texts = [searchSystemPrompt(maxTurns(config, envConfig.maxTurns))];
      for (const d of qa().encyclopedia.documents)
        if (names.has(d.title)) texts.push(`${d.title}\n${d.text}`);
      return texts;
    },
  });
}

function codeMathFamily(config: TrainConfig, hooks: FamilyHooks): TaskFamily {
  const envConfig = parseConfigSection(CodeMathFamilyOptions, config.envOptions, 'envOptions');
  const generator = new CodeMathGenerator(envConfig);
  // The family's own interpreters, so that closing the family stops them (and nobody else's).
  let pool: PythonPool | undefined;
  const makeEnv =
    hooks.makeEnv ??
    ((name: string): AgentEnv => {
      if (name !== 'codemath') throw new Error(`the codemath family has no env "${name}"`);
      pool ??= new PythonPool({ announce: false });
      const tools = new ToolRunner([new PythonTool({ pool })]);
      const env = new CodeMathEnv(envConfig, { python: runnerTool(tools, 'python') });
      return { env: env as unknown as Env, tools };
    });
  return familyFromParts(config, hooks, {
    env: 'codemath',
    envMaxTurns: envConfig.maxTurns,
    task: hooks.tasks ?? ((split, seed) => generator.generate(split, seed)),
    makeEnv,
    demoConcurrency: 2,
    tokenizerText: async () => {
      const expert = createExpert('codemath');
      const texts = [codeMathSystemPrompt(maxTurns(config, envConfig.maxTurns))];
      for (let seed = 0; seed < config.policy.tokenizerTasks; seed++) {
        const task = generator.generate('train', seed);
        texts.push(renderCodeMathTask(task), ...expert.demonstrate(task).actions);
      }
      return texts;
    },
    close: async () => {
      await pool?.close();
      pool = undefined;
    },
  });
}

/** The family both envs share, from the parts that differ (env, tools, prompts, demonstrations). */
function familyFromParts(config: TrainConfig, hooks: FamilyHooks, parts: ToolQaParts): TaskFamily {
  const expert = hooks.expert ?? createExpert(parts.env);
  const turns = maxTurns(config, parts.envMaxTurns);
  const loops = (temperature: number, seed: number) => ({
    [parts.env]: { maxTurns: turns, sampling: { temperature, maxTokens: config.loop.maxTokens, seed } },
  });

  /** The expert's replies replayed through the real loop: the prompts are the rollouts' own. */
  const replay = async (task: Task): Promise<Demonstrated[]> => {
    const replies = expert.demonstrate(task).actions;
    if (replies.length > turns) {
      throw new TrainConfigError(
        'loop.maxSteps',
        `the expert needs ${replies.length} turns on ${task.id} but the loop allows ${turns} ` +
          `(the smaller of loop.maxSteps and envOptions.maxTurns); raise both or ask easier questions`,
      );
    }
    const [t] = await rollout({
      model: new ScriptedChatModel('expert', replies),
      tasks: [task],
      makeEnv: parts.makeEnv,
      loops: loops(0, 0),
    });
    return t!.steps.map((s) => ({ messages: s.messages, reply: s.responseText }));
  };

  const demonstrations = async (tasks: readonly Task[]) => {
    const out: Demonstrated[] = [];
    for (let i = 0; i < tasks.length; i += parts.demoConcurrency) {
      const chunk = await Promise.all(tasks.slice(i, i + parts.demoConcurrency).map(replay));
      out.push(...chunk.flat());
    }
    return out;
  };

  return {
    task: parts.task,
    demonstrations,
    async sftExtras() {
      if (config.sft.selectTasks === 0) return {};
      // valid-seen seeds of their own: neither SFT's validation nor the evaluations see them
      const held = await demonstrations(
        Array.from({ length: config.sft.selectTasks }, (_, k) => parts.task('valid-seen', 1_100_000 + k)),
      );
      const options = { maxTokens: config.loop.maxTokens, same: sameAction, kind: actionKind };
      return { select: async (policy) => (await replyAccuracy(policy, held, options)).accuracy };
    },
    rollout: (policy, request) =>
      rollout({
        model: new PolicyChatModel(policy, { name: 'policy', temperature: request.temperature }),
        tasks: request.tasks,
        groupSize: request.groupSize,
        samples: request.samples,
        makeEnv: parts.makeEnv,
        loops: loops(request.temperature, request.seed),
        onTrajectory: request.onTrajectory,
      }),
    ...(config.estimator === 'igpo' ? { creditRows: igpoRows } : {}),
    scores: toolQaScores,
    tokenizerText: parts.tokenizerText,
    close: parts.close,
    makeEnv: parts.makeEnv,
  };
}
