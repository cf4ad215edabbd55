/**
 * `AgentFlowConfig` (zod): turns, time limits, memory size and each module's sampling; the module
 * roles.
 */
import { z } from 'zod';

/** The four modules of AgentFlow, plus the query analysis that opens a trajectory. */
export const AGENTFLOW_ROLES = ['analyzer', 'planner', 'executor', 'verifier', 'generator'] as const;
export type AgentFlowRole = (typeof AGENTFLOW_ROLES)[number];

/** Sampling of one module's calls (the ChatOptions a module passes on), with that module's defaults. */
function moduleSampling(temperature: number, maxTokens: number) {
  return z
    .object({
      /** 0 is greedy. */
      temperature: z.number().min(0).default(temperature),
      topP: z.number().gt(0).max(1).optional(),
      maxTokens: z.number().int().min(1).default(maxTokens),
      seed: z.number().int().optional(),
    })
    .prefault({});
}
export type ModuleSampling = z.output<ReturnType<typeof moduleSampling>>;

export const AgentFlowConfig = z.object({
  /** Turns (planner -> executor -> tool -> memory -> verifier) before the generator must answer. */
  maxTurns: z.number().int().min(1).default(4),
  /**
   * `maxTurns` on the household env, where a turn is one command in the world: the expert needs
   * 4 to 10 commands and an agent that explores needs more (search and code/math keep `maxTurns`).
   */
  householdMaxTurns: z.number().int().min(1).default(30),
  /** Wall-clock limit of the analysis and the turns, in ms; when it passes, the generator answers. */
  timeLimitMs: z.number().int().positive().default(120_000),
  /** Wall-clock limit of the generator's call, which runs even after `timeLimitMs` has passed. */
  generatorTimeMs: z.number().int().positive().default(60_000),
  /**
   * Characters of a tool result the memory keeps (longer results are cut and marked truncated).
   * Small by default: every later prompt repeats the memory, and a tiny policy has 512 tokens.
   */
  memoryChars: z.number().int().min(16).default(600),
  /**
   * Pass the chosen tool to the executor's ChatModel as a native tool definition (OpenAI function
   * calling). Off by default: the executor prompt already carries the schema and the
   * `<tool_call>` format, which every backend can answer in.
   */
  nativeToolCalls: z.boolean().default(false),
  /**
   * Sampling per module. The planner samples (it is the policy being trained); the others default
   * to greedy. Token caps keep a turn's prompts inside a small policy's context.
   */
  sampling: z
    .object({
      analyzer: moduleSampling(0, 96),
      planner: moduleSampling(1, 96),
      executor: moduleSampling(0, 128),
      verifier: moduleSampling(0, 32),
      generator: moduleSampling(0, 48),
    })
    .prefault({}),
});
export type AgentFlowConfig = z.output<typeof AgentFlowConfig>;
export type AgentFlowConfigInput = z.input<typeof AgentFlowConfig>;
