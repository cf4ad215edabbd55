/**
 * Gold AgentFlow traces: what each module should reply on a task, made from the env's expert
 * demonstration (the search expert's one query per hop, the code/math expert's program), in the
 * formats the loop's parsers read. They are the SFT data that lets all four roles work offline
 * on a small model; `goldModels` replays one through the real loop.
 */
import type { CodeMathTask } from '../../envs/codemath/generator.ts';
import type { HouseholdTask } from '../../envs/household/generator.ts';
import type { SearchTask } from '../../envs/search/generator.ts';
import type { Demonstration, Task } from '../../envs/types.ts';
import { householdTrace } from './household.ts';
import type { AgentFlowModules } from './loop.ts';
import { ScriptedChatModel } from './scripted.ts';

/** One turn's gold replies. */
export interface GoldTurn {
  planner: string;
  executor: string;
  verifier: string;
}

export interface GoldTrace {
  taskId: string;
  query: string;
  /** The analyzer's reply. */
  analysis: string;
  turns: GoldTurn[];
  /** The generator's reply (`<answer>...</answer>`). */
  generator: string;
  /** The answer inside it. */
  answer: string;
}

/** A demonstration's tool steps: `<search>q</search>` and `<python>code</python>` actions, then `<answer>`. */
interface ToolStep {
  tool: 'web_search' | 'python';
  arguments: { query: string } | { code: string };
}

function readDemonstration(task: Task, demo: Demonstration): { steps: ToolStep[]; answer: string } {
  const steps: ToolStep[] = [];
  let answer: string | undefined;
  for (const action of demo.actions) {
    const m = /^<(search|python|answer)>([\s\S]*)<\/\1>$/.exec(action.trim());
    if (!m)
      throw new Error(`gold trace of ${task.id}: cannot read the expert action ${JSON.stringify(action)}`);
    const body = m[2]!.trim();
    if (m[1] === 'search') steps.push({ tool: 'web_search', arguments: { query: body } });
    else if (m[1] === 'python') steps.push({ tool: 'python', arguments: { code: body } });
    else answer = body;
  }
  if (answer === undefined)
    throw new Error(`gold trace of ${task.id}: the demonstration has no <answer> action`);
  return { steps, answer };
}

const plannerReply = (subGoal: string, tool: string, context: string) =>
  `<sub_goal>${subGoal}</sub_goal><tool>${tool}</tool><context>${context}</context>`;

const executorReply = (step: ToolStep) =>
  `<tool_call>${JSON.stringify({ name: step.tool, arguments: step.arguments })}</tool_call>`;

const verdict = (reason: string, stop: boolean) =>
  `${reason} <verdict>${stop ? 'STOP' : 'CONTINUE'}</verdict>`;

function searchTrace(task: SearchTask, demo: Demonstration): GoldTrace {
  const { steps, answer } = readDemonstration(task, demo);
  const n = steps.length;
  const evidence = task.payload.evidence;
  const turns = steps.map((step, k): GoldTurn => {
    const query = (step.arguments as { query: string }).query;
    const found = evidence?.[k] !== undefined ? `The search found ${evidence[k]}.` : 'The search is done.';
    const last = k === n - 1;
    return {
      planner: plannerReply(
        n > 1 ? `Find fact ${k + 1} of ${n}: ${query}` : `Find: ${query}`,
        'web_search',
        `search for "${query}"`,
      ),
      executor: executorReply(step),
      verifier: verdict(last ? `${found} That answers the query.` : `${found} More facts are needed.`, last),
    };
  });
  return {
    taskId: task.id,
    query: task.payload.question,
    analysis:
      n > 1
        ? `The query needs ${n} facts, each found from the one before; web_search finds each fact.`
        : 'The query needs one fact; web_search finds it.',
    turns,
    generator: `<answer>${answer}</answer>`,
    answer,
  };
}

function codeMathTrace(task: CodeMathTask, demo: Demonstration): GoldTrace {
  const { steps, answer } = readDemonstration(task, demo);
  const turns = steps.map(
    (step, k): GoldTurn => ({
      planner: plannerReply(
        'Compute the exact answer with a program that prints it',
        'python',
        'the numbers of the query',
      ),
      executor: executorReply(step),
      verifier: verdict(
        k === steps.length - 1 ? 'The program printed the result.' : 'More computation is needed.',
        k === steps.length - 1,
      ),
    }),
  );
  return {
    taskId: task.id,
    query: task.payload.question,
    analysis: 'The query needs an exact computation; python computes it and prints the result.',
    turns,
    generator: `<answer>${answer}</answer>`,
    answer,
  };
}

/**
 * The gold trace of a household, search or code/math task, from its expert's demonstration (`demo`, as
 * `createExpert(task.env).demonstrate(task)` gives it).
 */
export function goldTrace(task: Task, demo: Demonstration): GoldTrace {
  switch (task.env) {
    case 'search':
      return searchTrace(task as SearchTask, demo);
    case 'codemath':
      return codeMathTrace(task as CodeMathTask, demo);
    case 'household':
      return householdTrace(task as HouseholdTask, demo);
    default:
      throw new Error(
        `goldTrace: no AgentFlow gold traces for env "${task.env}" (expected household, search or codemath)`,
      );
  }
}

/** Scripted ChatModels that give the trace's replies in order: replaying them runs the real loop. */
export function goldModels(trace: GoldTrace): Required<AgentFlowModules> {
  return {
    analyzer: new ScriptedChatModel('analyzer', [trace.analysis]),
    planner: new ScriptedChatModel(
      'planner',
      trace.turns.map((t) => t.planner),
    ),
    executor: new ScriptedChatModel(
      'executor',
      trace.turns.map((t) => t.executor),
    ),
    verifier: new ScriptedChatModel(
      'verifier',
      trace.turns.map((t) => t.verifier),
    ),
    generator: new ScriptedChatModel('generator', [trace.generator]),
  };
}
