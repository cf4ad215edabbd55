/**
 * The single-agent loops (household, search QA, code/math) and the rollout of many trajectories.
 */
export { CodeMathLoopOptions, runCodeMath } from './codemath.ts';
export { HouseholdLoopOptions, INVALID_ACTION_NOTE, runHousehold } from './household.ts';
export {
  type AgentEnv,
  agentEnvMaker,
  LOOPS,
  type LoopName,
  type LoopOptionsByEnv,
  type RolloutOptions,
  rollout,
  runLoop,
  runnerTool,
} from './rollout.ts';
export { runSearch, SearchLoopOptions } from './search.ts';
export { type Episode, isContextOverflow, LoopOptions, LoopSampling } from './shared.ts';
export { assistantMessage, envAction } from './tool-loop.ts';
