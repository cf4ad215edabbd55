/**
 * stepwise's public API, grouped as the README presents it: the store, credit assignment, the
 * tokenizer and sampling, the graph builder, the policy, environments, tools, chat models and
 * `stepwise serve`, the single-agent loops, AgentFlow, training and the viewer. Internals stay in
 * their modules (bench/ imports them by path).
 */
// biome-ignore-all assist/source/organizeImports: exports are grouped as the README presents them, one block each

// --- The trajectory store (src/store) ---
export {
  type AdvantageRecord,
  type CheckFinding,
  type CheckpointInfo,
  type CheckReport,
  checkStore,
  exportJsonl,
  type GroupInfo,
  type GroupInput,
  type ImportOptions,
  type ImportSummary,
  type IterationInfo,
  type IterationInput,
  importRows,
  type MetricPoint,
  type OpenOptions,
  openStore,
  parseJsonl,
  parseJsonlFile,
  type ResumePoint,
  type RunInfo,
  type RunStatus,
  SCHEMA_VERSION as STORE_SCHEMA_VERSION,
  ServedLog,
  type ServedRolloutInfo,
  type ServedRolloutRow,
  type ServedStepInput,
  type ServedStepRow,
  type StepDetail,
  type StepInput,
  // The store's step row (typed-array tokens, extras apart); src/credit's StepRow is the estimators' input.
  type StoredStepRow,
  stepToJson,
  type ToolCallRecord,
  type TrainingRow,
  type TrajectoryInfo,
  type TrajectoryInput,
  type TrajectoryRef,
  type TrajectoryStore,
  type WriteOptions,
} from './store/index.ts';
// The store's backends (issue 17): SQLite by default, PostgreSQL for a postgres:// location.
export { isPostgresUrl, openSqliteStore, PgStore, SqliteStore, type StoreBackend } from './store/index.ts';

// --- Credit assignment (src/credit) ---
export {
  type Anchor,
  type BaseDiagnostics,
  CreditInputError,
  CreditLineError,
  type CreditResult,
  creditJsonl,
  type DetailColumns,
  type Estimator,
  type EstimatorName,
  estimatorNames,
  estimators,
  type FlowGrpoDetails,
  type FlowGrpoOptions,
  flowGrpo,
  flowGrpoOptionsSchema,
  type GigpoDetails,
  type GigpoDiagnostics,
  type GigpoOptions,
  gigpo,
  gigpoOptionsSchema,
  type GrpoDetails,
  type GrpoOptions,
  grpo,
  grpoOptionsSchema,
  type HgpoDetails,
  type HgpoDiagnostics,
  type HgpoOptions,
  hgpo,
  hgpoOptionsSchema,
  type IgpoDetails,
  type IgpoDiagnostics,
  type IgpoOptions,
  igpo,
  igpoOptionsSchema,
  type NormMode,
  type RlooDetails,
  type RlooOptions,
  rloo,
  rlooOptionsSchema,
  similarityRatio,
  type StepRow,
  stepRowSchema,
} from './credit/index.ts';

// --- Tokenizer, sampling, safetensors (src/policy) ---
export {
  SPECIAL_TOKENS,
  type SpecialToken,
  type TemplateMessage,
  Tokenizer,
  TokenizerTrainOptions,
} from './policy/tokenizer/tokenizer.ts';
export {
  type Sampled,
  SamplingOptions,
  StopStrings,
  sampleToken,
  samplingOptions,
} from './policy/runtime/sampling.ts';
export { Rng } from './util/random.ts';
export {
  decodeSafetensors,
  encodeSafetensors,
  loadSafetensors,
  type SafetensorsTensor,
  saveSafetensors,
} from './policy/checkpoint/safetensors.ts';

// --- The graph builder (src/policy/graph) ---
// The ONNX graph builder and its autodiff, as one namespace: graph.Graph, graph.matmul, graph.grad,
// graph.trainStep, ... (see src/policy/graph/README.md).
export * as graph from './policy/graph/index.ts';

// --- The policy (src/policy) ---
export { type Checkpoint, loadCheckpoint, saveCheckpoint } from './policy/checkpoint/checkpoint.ts';
export {
  type ModelConfig,
  modelConfig,
  type PresetName,
  parameterCount,
  presets,
} from './policy/model/config.ts';
export { LossAgg, LossConfig } from './policy/model/loss.ts';
export { type Params, paramSpecs } from './policy/model/params.ts';
export { Policy, type PolicyInit, type Prompt } from './policy/policy.ts';
export { GenerateOptions, type Generation } from './policy/runtime/generate.ts';
export type { TokenBatch, TokenRow, UpdateMetrics } from './policy/runtime/runner.ts';
export { CUDA_INSTALL_HINT, Device } from './policy/runtime/session.ts';
// Hugging Face model folders (issue 15): import, tokenizer and chat template, LoRA adapters, merge.
export { type HfModel, isHfFolder, loadHfModel, saveHfModel } from './policy/hf/folder.ts';
export {
  type AdapterConfig,
  type AdapterConfigInput,
  AdaptersConfig,
} from './policy/hf/adapters.ts';
export { baseConfig, mergeAdapters } from './policy/hf/lora.ts';
export { HfTokenizer } from './policy/hf/tokenizer.ts';
export { LORA_TARGETS, LoraConfig } from './policy/model/config.ts';
export type { PolicyTokenizer } from './policy/tokenizer/tokenizer.ts';

// --- Environments (src/envs) ---
export * from './envs/index.ts';
// The BM25 index core lives in src/tools/search (shared with the web_search tool); envs owns it.
export {
  type SearchDocument,
  type SearchHit,
  SearchIndex,
  SearchIndexOptions,
  type SerializedSearchIndex,
} from './tools/search/index.ts';

// --- Tools (src/tools) ---
export {
  BUILTIN_DOCUMENTS,
  builtinSearchIndex,
  CodeInput,
  type CreateToolOptions,
  closeSharedPythonPool,
  createTool,
  DEFAULT_LIMITS,
  defineTool,
  detectProtection,
  errorResult,
  finishResult,
  formatHits,
  fromLangChainTool,
  HttpSearchProviderOptions,
  httpSearchProvider,
  indexProvider,
  type JavaScriptOptions,
  JavaScriptTool,
  javascriptTool,
  type OpenAIFunctionTool,
  type OpenAIToolCallLike,
  observationText,
  openAITools,
  type ParsedToolCall,
  type Protection,
  type ProtectionLevel,
  PythonPool,
  PythonPoolOptions,
  PythonTool,
  type PythonToolOptions,
  parseOpenAIToolCalls,
  parseTextToolCalls,
  parseToolCalls,
  pythonTool,
  runToolCalls,
  type SearchProvider,
  sharedPythonPool,
  TOOL_NAMES,
  type ToolCall,
  type ToolCallError,
  type ToolCallOutcome,
  ToolFailure,
  type ToolName,
  ToolPolicy,
  type ToolPolicyInput,
  ToolRunner,
  type ToolRunnerOptions,
  type ToolSpec,
  toLangChainTool,
  toolMessages,
  truncate,
  WebSearchInput,
  type WebSearchOptions,
  webSearchTool,
} from './tools/index.ts';
export type { AuditRecord, Tool, ToolContext, ToolErrorKind, ToolLimits, ToolResult } from './tools/types.ts';

// --- Chat models and `stepwise serve` (src/agents, src/serve) ---
export type {
  ChatMessage,
  ChatModel,
  ChatOptions,
  ChatResult,
  ChatRole,
  ChatToolCall,
  ChatToolDefinition,
} from './agents/types.ts';
export * from './agents/chat/index.ts';
export * from './serve/index.ts';
// --- Single-agent loops (src/agents) ---
export {
  type AgentEnv,
  agentEnvMaker,
  assistantMessage,
  CodeMathLoopOptions,
  type Episode,
  envAction,
  HouseholdLoopOptions,
  INVALID_ACTION_NOTE,
  isContextOverflow,
  LOOPS,
  type LoopName,
  LoopOptions,
  type LoopOptionsByEnv,
  LoopSampling,
  type RolloutOptions,
  rollout,
  runCodeMath,
  runHousehold,
  runLoop,
  runnerTool,
  runSearch,
  SearchLoopOptions,
} from './agents/loops/index.ts';
export {
  codeMathPrompt,
  codeMathSystemPrompt,
  type HouseholdDecision,
  type HouseholdPromptInput,
  type HouseholdState,
  type HouseholdTurn,
  householdConversation,
  householdMessages,
  householdPrompt,
  messageContent,
  PromptFormat,
  parseHouseholdResponse,
  renderMessages,
  searchPrompt,
  searchSystemPrompt,
} from './agents/prompts/index.ts';
export { type AgentStep, rolloutMetrics, type Trajectory, type TrajectoryOutcome } from './agents/record.ts';
export { groupTrajectories, recordIteration } from './training/record.ts';
// --- AgentFlow (src/agents/agentflow) ---
export {
  AGENTFLOW_ROLES,
  AgentFlowConfig,
  type AgentFlowConfigInput,
  type AgentFlowModules,
  type AgentFlowOptions,
  type AgentFlowResult,
  type AgentFlowRole,
  type AgentFlowRolloutOptions,
  type AgentFlowStep,
  type AgentFlowTrajectory,
  Memory as AgentFlowMemory,
  type MemoryRecord as AgentFlowMemoryRecord,
  type StopReason as AgentFlowStopReason,
  type GoldSample,
  type GoldTrace,
  type GoldTurn,
  goldModels,
  goldTrace,
  HOUSEHOLD_TOOL,
  HouseholdToolInput,
  type HouseholdWorldLog,
  householdRunner,
  householdTool,
  householdTrace,
  type Plan as AgentFlowPlan,
  parsePlan,
  parseVerdict,
  replayGold,
  rolloutAgentFlow,
  runAgentFlow,
  runAgentFlowEpisode,
  ScriptedChatModel,
  type Verdict,
} from './agents/agentflow/index.ts';

// --- Training (src/training) ---
export {
  PpoConfig,
  parseTrainConfig,
  ppoDefaults,
  SftConfig,
  TRAIN_ESTIMATORS,
  TrainConfig,
  TrainConfigError,
  type TrainConfigInput,
  type TrainEstimator,
} from './training/config.ts';
export { HOUSEHOLD_DEFAULT } from './training/presets.ts';
export {
  type ChartSeries,
  learningCurveSvg,
  lineChartSvg,
  resultTable,
  summaryJson,
} from './training/report.ts';
export { isMain, reportRun, runScenario } from './cli/scenario.ts';
export {
  creditRows,
  type Demonstrated,
  type FamilyHooks,
  type RolloutRequest,
  type TaskFamily,
} from './training/family.ts';
export {
  AGENTFLOW_ENVS,
  AgentFlowEndpoint,
  AgentFlowTrainOptions,
  type AgentFlowTrainOptionsInput,
  agentflowFamily,
  parseAgentFlowOptions,
} from './training/families/agentflow.ts';
export { expertReply, householdDemonstrations, householdFamily } from './training/families/household.ts';
export { makeFamily } from './training/families/index.ts';
export {
  type ServedAgent,
  type ServedAgentRun,
  ServedOptions,
  type ServedOutcome,
  servedFamily,
} from './training/families/served.ts';
export {
  ANSWER_PREFIX,
  answerValues,
  CodeMathFamilyOptions,
  givenAnswer,
  goldAnswer,
  igpoRows,
  SearchFamilyOptions,
  toolQaFamily,
  toolQaScores,
} from './training/families/tool-qa.ts';
export {
  domainTokenizer,
  runSft,
  type SftResult,
  type SftSample,
  replyLoss,
  sftSamples,
} from './training/sft.ts';
export {
  DivergenceError,
  type EvalResult,
  evaluate,
  type TrainHooks,
  type TrainResult,
  train,
} from './training/trainer.ts';
// --- The replay viewer (src/viewer) ---
export {
  type CreditView,
  type RunSummary,
  startViewer,
  type TokenDecoder,
  type Viewer,
  type ViewerOptions,
} from './viewer/index.ts';
