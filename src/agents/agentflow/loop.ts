/**
 * The AgentFlow loop (Li et al., "In-the-Flow Agentic System Optimization", arXiv:2510.05592):
 * query analysis, then up to `maxTurns` turns of planner -> executor -> tool -> memory -> verifier,
 * then the generator's `<answer>`. Each module has its own ChatModel, so the planner can be the
 * policy being trained while the others run on a frozen copy or a hosted model.
 *
 * Nothing a model writes can crash the loop: an unparsable plan, an unknown tool, a bad tool call
 * or arguments that fail the tool's schema become a memory record that says so, and the turn goes
 * on to the verifier. A ChatModel that throws ends the turns (the generator still answers).
 */
import { openAITools, parseOpenAIToolCalls, parseTextToolCalls } from '../../tools/adapters/openai.ts';
import { describeZodError, observationText } from '../../tools/define.ts';
import { ToolRunner } from '../../tools/policy.ts';
import type { AuditRecord, Tool } from '../../tools/types.ts';
import { deadlineSignal, untilAborted } from '../../util/deadline.ts';
import { callSeed } from '../../util/random.ts';
import { isContextOverflow } from '../loops/shared.ts';
import type { ChatMessage, ChatModel, ChatOptions, ChatResult } from '../types.ts';
import {
  AgentFlowConfig,
  type AgentFlowConfigInput,
  type AgentFlowRole,
  type ModuleSampling,
} from './config.ts';
import { Memory, type MemoryRecord } from './memory.ts';
import {
  analyzerMessages,
  executorMessages,
  generatorMessages,
  type Plan,
  parseAnswer,
  parsePlan,
  parseVerdict,
  plannerMessages,
  type Verdict,
  verifierMessages,
} from './prompts.ts';

export interface AgentFlowModules {
  planner: ChatModel;
  executor: ChatModel;
  verifier: ChatModel;
  generator: ChatModel;
  /** The query analysis; the planner's model by default (as in AgentFlow, where the planner analyses). */
  analyzer?: ChatModel;
}

/** One module call, as made: the prompt messages and the reply with its tokens and log-probs. */
export interface AgentFlowStep {
  role: AgentFlowRole;
  /** 0 for the analysis, 1..N for the turns, the last turn + 1 for the generator. */
  turn: number;
  /** The ChatModel's name. */
  model: string;
  messages: ChatMessage[];
  response: ChatResult;
  /** The reply had the form its module asks for (a plan with a tool, a tool call, a verdict, an answer). */
  valid: boolean;
  /** Why the reply was not usable, when it was not. */
  error?: string;
  /** Executor steps: the audit record of the tool call that ran (absent when none could run). */
  toolCalls?: AuditRecord[];
}

/**
 * Why the turns ended: the verifier said STOP, `maxTurns`, `timeLimitMs`, a prompt outgrew a
 * model's context, or a ChatModel failed otherwise (see `errors`).
 */
export type StopReason = 'verifier_stop' | 'turn_limit' | 'time_limit' | 'context_limit' | 'model_error';

export interface AgentFlowResult {
  query: string;
  analysis: string;
  steps: AgentFlowStep[];
  memory: MemoryRecord[];
  /** Turns started (a turn cut by the time limit counts). */
  turns: number;
  stopReason: StopReason;
  /** The generator's answer, or undefined when its reply had no `<answer>` tags (or it failed). */
  answer: string | undefined;
  /** Errors thrown by ChatModels ("planner (policy:tiny): ..."), in order. */
  errors: string[];
  durationMs: number;
}

export interface AgentFlowOptions {
  /** The tools the planner may choose from: a ToolRunner (its policy and audit apply) or plain tools. */
  tools: ToolRunner | Tool[];
  config?: AgentFlowConfigInput;
  /** Seeds the calls of this trajectory (call k gets `callSeed(seed, k)`) unless a module fixes its own. */
  seed?: number;
  /** Aborts the trajectory (the generator still answers from what the memory holds). */
  signal?: AbortSignal;
}

function describeError(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Runs one AgentFlow trajectory on `query`. Never throws for what models or tools do. */
export async function runAgentFlow(
  query: string,
  modules: AgentFlowModules,
  options: AgentFlowOptions,
): Promise<AgentFlowResult> {
  const config = AgentFlowConfig.parse(options.config ?? {});
  const runner = options.tools instanceof ToolRunner ? options.tools : new ToolRunner(options.tools);
  const tools = runner.allowedTools;
  const started = performance.now();
  const memory = new Memory(config.memoryChars);
  const steps: AgentFlowStep[] = [];
  const errors: string[] = [];
  let calls = 0;

  const chatOptions = (sampling: ModuleSampling, signal: AbortSignal, extra: Partial<ChatOptions> = {}) => {
    const k = calls++;
    const seed = sampling.seed ?? (options.seed === undefined ? undefined : callSeed(options.seed, k));
    const o: ChatOptions = {
      temperature: sampling.temperature,
      maxTokens: sampling.maxTokens,
      signal,
      ...extra,
    };
    if (sampling.topP !== undefined) o.topP = sampling.topP;
    if (seed !== undefined) o.seed = seed;
    return o;
  };

  /** One module call, recorded as a step (valid until its reply fails to parse). Throws what the model throws. */
  const ask = async (
    role: AgentFlowRole,
    turn: number,
    model: ChatModel,
    messages: ChatMessage[],
    signal: AbortSignal,
    extra?: Partial<ChatOptions>,
  ): Promise<AgentFlowStep> => {
    const response = await untilAborted(
      model.chat(messages, chatOptions(config.sampling[role], signal, extra)),
      signal,
    );
    const step: AgentFlowStep = { role, turn, model: model.name, messages, response, valid: true };
    steps.push(step);
    return step;
  };

  const limit = deadlineSignal(config.timeLimitMs, options.signal);
  let analysis = '';
  let turns = 0;
  let stopReason: StopReason = 'turn_limit';
  try {
    const analyzer = modules.analyzer ?? modules.planner;
    analysis = (
      await ask('analyzer', 0, analyzer, analyzerMessages(query, tools), limit.signal)
    ).response.text.trim();
    for (let turn = 1; turn <= config.maxTurns; turn++) {
      turns = turn;
      // Planner: which tool, to what end, with what context.
      const planStep = await ask(
        'planner',
        turn,
        modules.planner,
        plannerMessages(query, analysis, tools, memory.render(), turn, config.maxTurns),
        limit.signal,
      );
      const parsed = parsePlan(planStep.response.text);
      if (!parsed.ok) {
        planStep.valid = false;
        planStep.error = parsed.error;
        memory.add({
          turn,
          tool: '',
          subGoal: '',
          command: '(none)',
          result: parsed.error,
          truncated: false,
          ok: false,
        });
      } else {
        const tool = tools.find((t) => t.name === parsed.plan.tool);
        if (!tool) {
          const error = `tool not found: "${parsed.plan.tool}" (available: ${tools.map((t) => t.name).join(', ') || 'none'})`;
          planStep.valid = false;
          planStep.error = error;
          memory.add({
            turn,
            tool: parsed.plan.tool,
            subGoal: parsed.plan.subGoal,
            command: '(none)',
            result: error,
            truncated: false,
            ok: false,
          });
        } else {
          memory.add(await execute(turn, parsed.plan, tool, limit.signal));
        }
      }
      if (limit.signal.aborted) throw limit.signal.reason;
      // Verifier: is the memory enough?
      const verifyStep = await ask(
        'verifier',
        turn,
        modules.verifier,
        verifierMessages(query, analysis, memory.render()),
        limit.signal,
      );
      const verdict: Verdict | undefined = parseVerdict(verifyStep.response.text);
      if (verdict === undefined) {
        verifyStep.valid = false;
        verifyStep.error =
          'could not parse the verdict: expected <verdict>STOP</verdict> or <verdict>CONTINUE</verdict>';
      }
      if (verdict === 'STOP') {
        stopReason = 'verifier_stop';
        break;
      }
    }
  } catch (err) {
    if (limit.signal.aborted) stopReason = 'time_limit';
    else {
      stopReason = isContextOverflow(err) ? 'context_limit' : 'model_error';
      errors.push(describeError(err));
    }
  } finally {
    limit.clear();
  }

  // Generator: the final answer from the memory, under its own time limit.
  let answer: string | undefined;
  const final = deadlineSignal(config.generatorTimeMs);
  try {
    const step = await ask(
      'generator',
      turns + 1,
      modules.generator,
      generatorMessages(query, memory.render()),
      final.signal,
    );
    answer = parseAnswer(step.response.text);
    if (answer === undefined) {
      step.valid = false;
      step.error = 'could not parse the answer: expected <answer>...</answer>';
    }
  } catch (err) {
    errors.push(`generator (${modules.generator.name}): ${describeError(err)}`);
  } finally {
    final.clear();
  }

  return {
    query,
    analysis,
    steps,
    memory: memory.records,
    turns,
    stopReason,
    answer,
    errors,
    durationMs: performance.now() - started,
  };

  /** Executor: the plan as a tool call, checked against the tool's schema, then run in its sandbox. */
  async function execute(turn: number, plan: Plan, tool: Tool, signal: AbortSignal): Promise<MemoryRecord> {
    const base = { turn, tool: plan.tool, subGoal: plan.subGoal };
    const extra = config.nativeToolCalls ? { tools: openAITools([tool]) } : {};
    const step = await ask(
      'executor',
      turn,
      modules.executor,
      executorMessages(query, tool, plan.subGoal, plan.context),
      signal,
      extra,
    );
    const fail = (command: string, error: string): MemoryRecord => {
      step.valid = false;
      step.error = error;
      return { ...base, command, result: error, truncated: false, ok: false };
    };
    const native = step.response.toolCalls?.[0];
    const call = native
      ? parseOpenAIToolCalls([
          { id: native.id, function: { name: native.name, arguments: native.arguments || '{}' } },
        ])[0]
      : parseTextToolCalls(step.response.text)[0];
    if (!call) {
      return fail(
        '(none)',
        'could not parse the tool call: expected <tool_call>{"name": ..., "arguments": {...}}</tool_call>',
      );
    }
    if (!call.ok) return fail('(none)', `could not parse the tool call: ${call.message}`);
    const command = `${call.name}(${call.arguments})`;
    if (call.name !== tool.name) {
      return fail(command, `tool call names "${call.name}" but the planner chose "${tool.name}"`);
    }
    const checked = tool.schema.safeParse(call.input);
    if (!checked.success)
      return fail(command, `invalid arguments: ${describeZodError(tool.name, checked.error)}`);
    const auditBefore = runner.audit.length;
    const result = await runner.call(tool.name, call.input, { signal });
    step.toolCalls = runner.audit.slice(auditBefore);
    return { ...base, command, result: observationText(result), truncated: result.truncated, ok: result.ok };
  }
}
