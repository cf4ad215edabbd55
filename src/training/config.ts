/**
 * The trainer's configuration: one zod schema with defaults, checked before any work starts.
 * Defaults that depend on the estimator (KL and entropy coefficients, clip range, loss
 * aggregation) follow ALGORITHMS.md and are filled in by `parseTrainConfig`.
 */
import { z } from 'zod';
import { ActionChoice, PromptFormat } from '../agents/prompts/household.ts';
import { estimators } from '../credit/estimators.ts';
import { penaltyPlacementSchema } from '../credit/types.ts';
import { ENV_NAMES } from '../envs/index.ts';
import { SPLITS } from '../envs/types.ts';
import { AdaptersConfig } from '../policy/hf/adapters.ts';
import { LoraConfig, presets } from '../policy/model/config.ts';
import { LossAgg } from '../policy/model/loss.ts';
import { PolicyDtype } from '../policy/runtime/dtype.ts';
import { isPostgresUrl } from '../store/postgres/store.ts';
import { parseOrThrow } from '../util/zod.ts';

/** The estimators the trainer runs (IGPO needs a known answer; Flow-GRPO the AgentFlow agent). */
export const TRAIN_ESTIMATORS = ['grpo', 'gigpo', 'hgpo', 'rloo', 'igpo', 'flow-grpo'] as const;

/**
 * The agent being trained: the env's single-agent ReAct loop, AgentFlow's planner, or the user's own
 * agent through a recording endpoint ('served', see families/served.ts).
 */
export const TRAIN_AGENTS = ['react', 'agentflow', 'served'] as const;
export type TrainEstimator = (typeof TRAIN_ESTIMATORS)[number];

/** The PPO settings; unset ones take the estimator's defaults (see `ppoDefaults`). */
export const PpoConfig = z.strictObject({
  /** Passes over an iteration's token rows (ALGORITHMS.md: one). */
  epochs: z.number().int().min(1).default(1),
  /**
   * Agent steps per optimizer step: an iteration's steps make ceil(steps / miniBatchSize)
   * mini-batches, cut by token count (a trajectory trained as one sequence counts all its steps).
   */
  miniBatchSize: z.number().int().min(1).default(16),
  /**
   * Where the behaviour log-probs come from: 'rollout' takes the ones the tokens were sampled with
   * when the weights have not changed since (re-scoring otherwise); 'rescore' always runs the
   * policy over the rows again (the former path, kept for comparison).
   */
  behaviourLogprobs: z.enum(['rollout', 'rescore']).default('rollout'),
  /**
   * Which distribution the loss's log-probs are of: 'model' (the model's own, temperature 1) or
   * 'sampled' (the one the rollout drew from: logits / loop.temperature, as verl's actor scores
   * them). Under 'sampled' at a temperature other than 1 the behaviour log-probs are re-scored
   * (the rollout records the model's own).
   */
  logprobs: z.enum(['model', 'sampled']).default('model'),
  /**
   * Shortest shared prompt prefix trained once per mini-batch: the step rows of a group at one
   * step share their common prefix when it is at least this many tokens (issue 13); 0: off. Below
   * 32 tokens the one pass saved no longer pays for the layout (bench/train-step.ts: a 16-token
   * prefix shared by 8 rows gave 0.97 [0.90, 1.08] of the whole rows' update CPU, 32 gave 0.87).
   */
  sharedPrefix: z.number().int().min(0).default(32),
  /**
   * Leave out of the update the rows whose advantage is exactly 0 (every step of a trajectory
   * trained as one sequence): a group where every trajectory scored alike gives the policy
   * gradient nothing, and its rows only add the entropy bonus and the KL term (none without
   * `klCoef`). Off by default, as the references train every row; DAPO's dynamic sampling drops
   * such groups for the same reason. Mini-batches are counted from the rows left.
   */
  skipZeroAdvantage: z.boolean().default(false),
  learningRate: z.number().positive().default(1e-4),
  clipLow: z.number().min(0).optional(),
  clipHigh: z.number().min(0).optional(),
  clipC: z.number().min(1).default(3),
  klCoef: z.number().min(0).optional(),
  entropyCoef: z.number().min(0).optional(),
  lossAgg: LossAgg.optional(),
  maxGradNorm: z.number().positive().default(1),
  /** A run whose mean KL to the reference passes this stops (diverging); its last good checkpoint stays. */
  maxKl: z.number().positive().default(1),
  /**
   * With `klCoef: 0` the loss needs no reference log-probs, so the reference pass is skipped; this
   * share of an iteration's units (a group's rows at one step, or a row) is still scored by the
   * reference to measure the policy's KL to it: the iteration's `kl` and `maxKl`'s guard.
   */
  referenceSample: z.number().gt(0).max(1).default(0.25),
});

/** SFT warm-start: behaviour cloning on expert demonstrations (see sft.ts). */
export const SftConfig = z.strictObject({
  /** Off: start RL from `policy.checkpoint` as it is (it is the reference too). */
  enabled: z.boolean().default(true),
  /** Train-split tasks whose expert demonstrations are cloned. */
  tasks: z.number().int().min(1).default(200),
  /** Valid-seen tasks whose demonstrations measure the validation loss. */
  validTasks: z.number().int().min(1).default(20),
  batchSize: z.number().int().min(1).default(16),
  learningRate: z.number().positive().default(1e-3),
  /** Step budget. */
  maxSteps: z.number().int().min(1).default(300),
  /** Stop once the validation loss (mean CE per response token) is at or below this. */
  targetLoss: z.number().positive().default(0.05),
  /** Optimizer steps between validation losses. */
  evalEvery: z.number().int().min(1).default(25),
  /** Steps of linear warm-up from 0 to `learningRate`. */
  warmupSteps: z.number().int().min(0).default(0),
  /** After warm-up: keep `learningRate`, or decay it (cosine or linear) to `decayTo` x it at `maxSteps`. */
  decay: z.enum(['constant', 'cosine', 'linear']).default('constant'),
  decayTo: z.number().min(0).max(1).default(0.1),
  /** Draw every batch from new train-split tasks' demonstrations instead of repeating `tasks`. */
  fresh: z.boolean().default(false),
  /**
   * Shortest common prompt opening of a batch that is trained once for all its rows (the same
   * layout as `ppo.sharedPrefix`; exact, a sum of fewer tokens); 0: off.
   */
  sharedPrefix: z.number().int().min(0).default(32),
  /**
   * Batches of similar length: draw this many batches' samples at once, sort them by token count,
   * cut them into batches and train those in a shuffled order, so a batch pads to a near length
   * (HF Trainer's `group_by_length`). 1: every batch as drawn.
   */
  lengthGroups: z.number().int().min(1).default(1),
  /**
   * Keep the checkpoint with the best greedy action accuracy on held-out expert decisions
   * (`selectTasks` valid-seen tasks), measured every `evalEvery` steps; 0 = keep the last.
   */
  selectTasks: z.number().int().min(0).default(0),
  /**
   * DAgger: every `every` steps (0 = off) roll the current policy on `tasks` new train tasks,
   * label each state it visits with the exploring expert, and add them to an aggregate that
   * fills `share` of every later batch.
   */
  dagger: z
    .strictObject({
      every: z.number().int().min(0).default(0),
      tasks: z.number().int().min(1).default(32),
      share: z.number().min(0).max(1).default(0.5),
      /** Sampling temperature of the DAgger rollouts (0: greedy, the states evaluation visits). */
      temperature: z.number().min(0).default(0),
    })
    .default({ every: 0, tasks: 32, share: 0.5, temperature: 0 }),
});

export const TrainConfig = z.strictObject({
  env: z.enum(ENV_NAMES).default('household'),
  /** The env's own options (household: receptacles, objects, taskTypes, maxSteps...). */
  envOptions: z.record(z.string(), z.unknown()).default({}),
  /** The agent: the env's ReAct loop ('react') or AgentFlow, whose planner is trained ('agentflow'). */
  agent: z.enum(TRAIN_AGENTS).default('react'),
  /** Options of the agent (AgentFlow: its config, e.g. maxTurns, and the endpoints of frozen modules). */
  agentOptions: z.record(z.string(), z.unknown()).default({}),
  /** Split the RL tasks are drawn from. */
  split: z.enum(SPLITS).default('train'),
  /** The agent loop's options. */
  loop: z
    .strictObject({
      /**
       * The household prompt's layout: 'growing' (the whole conversation; each prompt extends the
       * last, so generation reuses the previous turn's keys and values and a trajectory trains as
       * one sequence) or 'windowed' (the references' last `history` steps, one training row per step).
       * Default: 'growing' when a whole trajectory fits the model's context (see `growingFits`).
       */
      promptFormat: PromptFormat.optional(),
      /** H: earlier (observation, action) pairs in the 'windowed' household prompt. */
      history: z.number().int().min(0).default(2),
      maxSteps: z.number().int().min(1).default(20),
      /** Response length cap, in tokens. */
      maxTokens: z.number().int().min(1).default(48),
      /**
       * Sampling temperature of the rollouts. The loss scores tokens at temperature 1 whatever this
       * is (the behaviour log-probs too, so the first mini-batch's ratio is exactly 1): with
       * group-normalised advantages, which sum to about zero over a state's samples, the policy
       * gradient at temperature 1 and at T differ mainly by the factor 1/T, which the optimizer's
       * normalisation absorbs (docs/ARCHITECTURE.md, "Rollout temperature").
       */
      temperature: z.number().min(0).default(1),
      /**
       * How the household command is written: 'free' text, or 'admissible': decoded as one of the
       * admissible commands (constrained decoding; rollouts, evaluations and DAgger alike), so no
       * step is a no-op the env cannot execute. Household only.
       */
      actions: ActionChoice.default('free'),
    })
    .default({ history: 2, maxSteps: 20, maxTokens: 48, temperature: 1, actions: 'free' }),
  policy: z
    .strictObject({
      /** Size of a fresh policy (its tokenizer is trained on the envs' text). */
      preset: z.enum(Object.keys(presets) as [keyof typeof presets]).default('tiny'),
      /** A checkpoint folder to start from instead (SFT is skipped unless `sft.enabled` says otherwise). */
      checkpoint: z.string().min(1).optional(),
      /**
       * Compute precision of rollouts, scoring and updates: 'float32', 'float16' or 'bfloat16'
       * (half precision is for CUDA; on CPU float16 runs, bfloat16 falls back to float32 with one
       * message). Weights and AdamW moments stay float32 (mixed precision); see docs/ARCHITECTURE.md.
       */
      dtype: PolicyDtype.default('float32'),
      /**
       * With a Hugging Face `checkpoint`: train LoRA adapters ({ rank, alpha, targets, dropout })
       * on the frozen base instead of every weight; checkpoints hold PEFT adapter files.
       */
      lora: LoraConfig.optional(),
      /**
       * With a Hugging Face `checkpoint` and agent 'agentflow': an adapter per role on one frozen
       * base, e.g. `{ planner: { rank: 16, alpha: 32 }, executor: { trainable: false, from:
       * 'adapters/executor' } }` (each as `lora`, plus `trainable` (default true) and `from`, a PEFT
       * adapter folder to start from). SFT trains each trainable adapter on its role's
       * demonstrations, RL the planner's; roles without an adapter run on the base (the analyzer on
       * the planner's unless it has one). Checkpoints: the base once, a PEFT folder per adapter.
       */
      adapters: AdaptersConfig.optional(),
      /** Explicit model sizes instead of the preset (tests use a smaller one). */
      model: z
        .strictObject({
          width: z.number().int().min(8),
          layers: z.number().int().min(1),
          heads: z.number().int().min(1),
          contextLength: z.number().int().min(2),
          mlpRatio: z.number().int().min(1).default(4),
          /** 'learned' position embeddings (the presets') or 'rope' (relative: no table, any length). */
          positions: z.enum(['learned', 'rope']).default('learned'),
        })
        .optional(),
      /** Tokenizer vocabulary for a fresh policy. */
      vocabSize: z.number().int().min(300).default(1024),
      /** Env tasks per env in the tokenizer's training text. */
      tokenizerTasks: z.number().int().min(1).default(100),
      /**
       * A fresh tokenizer's spaces: part of the next word ('attached') or tokens of their own
       * ('separate': a name is the same tokens in a question and after a tag, so it can be copied).
       */
      spaces: z.enum(['attached', 'separate']).default('attached'),
      /**
       * A fresh tokenizer's superword merges, learned after its `vocabSize` across the words of a
       * line (the prompt's fixed wording becomes a few tokens; see TokenizerTrainOptions); 0: none.
       */
      superwords: z.number().int().min(0).default(0),
    })
    .default({
      preset: 'tiny',
      dtype: 'float32',
      vocabSize: 1024,
      tokenizerTasks: 100,
      spaces: 'attached',
      superwords: 0,
    }),
  device: z.enum(['cpu', 'cuda']).default('cpu'),
  estimator: z.enum(TRAIN_ESTIMATORS).default('gigpo'),
  /** Options of the estimator (its own schema checks them; unknown keys are refused). */
  estimatorOptions: z.record(z.string(), z.unknown()).default({}),
  /**
   * Where the invalid-action penalty goes for the estimators that have one (grpo, gigpo, hgpo,
   * rloo): 'after-normalization' (the trainer's default, a deliberate deviation from the
   * references, see docs/ARCHITECTURE.md: failing valid steps of an all-lost group get 0, not a
   * positive advantage) or the references' 'in-return'. `estimatorOptions.penaltyPlacement`, when
   * given, wins; `parseTrainConfig` puts the result into `estimatorOptions`.
   */
  penaltyPlacement: penaltyPlacementSchema.default('after-normalization'),
  /** G: rollouts per task, from the same seed. */
  groupSize: z.number().int().min(1).default(8),
  tasksPerIteration: z.number().int().min(1).default(4),
  /** RL iterations; 0 stops after SFT and the "before" evaluation (the checkpoint is `<checkpointDir>/sft`). */
  iterations: z.number().int().min(0).default(10),
  /**
   * Stop after the iteration in which the run's environment steps (all rollouts, dropped groups
   * included) reach this, even before `iterations`: methods compared at an equal step budget.
   */
  envStepBudget: z.number().int().min(1).optional(),
  ppo: PpoConfig.default(PpoConfig.parse({})),
  /**
   * The run's result is the mean of the policy's weights after each iteration from `from` on
   * (Polyak averaging of the iterates; src/training/average.ts), not the last iterate: the
   * evaluation after the run and the result checkpoint (`<checkpointDir>/average`) use it, the
   * rollouts and updates the iterate. Off unless set.
   */
  weightAverage: z.strictObject({ from: z.number().int().min(0) }).optional(),
  /** Drop groups whose trajectories all ended alike and roll more tasks, up to `retries` times. */
  dynamicSampling: z
    .strictObject({ enabled: z.boolean().default(false), retries: z.number().int().min(0).default(2) })
    .default({ enabled: false, retries: 2 }),
  eval: z
    .strictObject({
      /** Evaluate every k iterations (and after the last); 0 = only before and after. */
      every: z.number().int().min(0).default(5),
      split: z.enum(SPLITS).default('valid-unseen'),
      /** Tasks per evaluation split (greedy, one rollout each). */
      tasks: z.number().int().min(1).default(24),
    })
    .default({ every: 5, split: 'valid-unseen', tasks: 24 }),
  sft: SftConfig.default(SftConfig.parse({})),
  /** Seed of weights, task draws and sampling. */
  seed: z.number().int().min(0).default(0),
  /** The trajectory store (SQLite file). */
  db: z.string().min(1).default('runs/train.db'),
  runId: z.string().min(1).default('train'),
  /** Checkpoint folder; default: `<db without .db>-checkpoints/<runId>` beside the store. */
  checkpointDir: z.string().min(1).optional(),
});
export type TrainConfigInput = z.input<typeof TrainConfig>;

/** The parsed config with every estimator-dependent default filled in. */
export type TrainConfig = Omit<z.output<typeof TrainConfig>, 'loop'> & {
  loop: z.output<typeof TrainConfig>['loop'] & { promptFormat: PromptFormat };
  ppo: Required<z.output<typeof PpoConfig>>;
  checkpointDir: string;
};

/** ALGORITHMS.md's loss defaults per estimator ("The policy loss"). */
export function ppoDefaults(estimator: string): {
  clipLow: number;
  clipHigh: number;
  klCoef: number;
  entropyCoef: number;
  lossAgg: LossAgg;
} {
  switch (estimator) {
    case 'igpo':
      return {
        clipLow: 0.2,
        clipHigh: 0.2,
        klCoef: 0.001,
        entropyCoef: 0.001,
        lossAgg: 'seq-mean-token-sum',
      };
    case 'flow-grpo':
      return { clipLow: 0.2, clipHigh: 0.3, klCoef: 0.001, entropyCoef: 0, lossAgg: 'token-mean' };
    default:
      return { clipLow: 0.2, clipHigh: 0.2, klCoef: 0.01, entropyCoef: 0.001, lossAgg: 'token-mean' };
  }
}

/** A config that is wrong; `field` is its dotted path ('ppo.epochs'). */
export class TrainConfigError extends Error {
  constructor(
    readonly field: string,
    detail: string,
  ) {
    super(`invalid train config: field '${field}': ${detail}`);
    this.name = 'TrainConfigError';
  }
}

/**
 * A section of the config (`envOptions`, `agentOptions`, `estimatorOptions`...) parsed by its own
 * schema; a bad one is a TrainConfigError naming `<section>.<field>`, with `note` after the message.
 */
export function parseConfigSection<S extends z.ZodType>(
  schema: S,
  input: unknown,
  section: string,
  note = '',
): z.output<S> {
  return parseOrThrow(
    schema,
    input ?? {},
    (i) => new TrainConfigError(i.field ? `${section}.${i.field}` : section, `${i.message}${note}`),
  );
}

/**
 * Household prompt tokens the growing format needs at most, measured with the domain tokenizer
 * (1024 tokens) on exploring-expert trajectories: the opening message (157 in 4-receptacle rooms,
 * 188 in 8-receptacle ones) and each later step's observation with its admissible list (122 and 146
 * at most), plus the reply.
 */
export const GROWING_OPENING_TOKENS = 200;
export const GROWING_TURN_TOKENS = 100;

/** Whether a whole household trajectory of `loop` fits a context of `contextLength` tokens. */
export function growingFits(loop: { maxSteps: number; maxTokens: number }, contextLength: number): boolean {
  return GROWING_OPENING_TOKENS + loop.maxSteps * (loop.maxTokens + GROWING_TURN_TOKENS) <= contextLength;
}

/** The loop's prompt format when the config does not set it: growing where it fits (a checkpoint's context is not known here). */
function defaultPromptFormat(c: z.output<typeof TrainConfig>): PromptFormat {
  if (c.env !== 'household') return 'growing';
  const context =
    c.policy.model?.contextLength ??
    (c.policy.checkpoint ? undefined : presets[c.policy.preset].contextLength);
  return context !== undefined && growingFits(c.loop, context) ? 'growing' : 'windowed';
}

/** Parse and complete a config; the error names the first bad field. */
export function parseTrainConfig(input: unknown): TrainConfig {
  const parsed = parseOrThrow(TrainConfig, input ?? {}, (i) => new TrainConfigError(i.field, i.message));
  const c = {
    ...parsed,
    loop: { ...parsed.loop, promptFormat: parsed.loop.promptFormat ?? defaultPromptFormat(parsed) },
  };
  // The trainer's default penalty placement reaches every estimator that has the option, unless
  // the estimator's own options set it.
  const shape = estimators[c.estimator].options.shape;
  const given = c.estimatorOptions;
  const withDefaults = {
    ...('penaltyPlacement' in shape && !('penaltyPlacement' in given)
      ? { penaltyPlacement: c.penaltyPlacement }
      : {}),
    // HGPO's levels reach as far back as the prompt shows (ALGORITHMS.md): the loop's history,
    // unless set (its own default, 2, is the references' loop's); the growing prompt shows every step.
    ...(c.estimator === 'hgpo' && !('history' in given)
      ? { history: c.loop.promptFormat === 'growing' ? c.loop.maxSteps : c.loop.history }
      : {}),
    ...given,
  };
  const estimatorOptions = parseConfigSection(
    estimators[c.estimator].options,
    withDefaults,
    'estimatorOptions',
    ` (estimator ${c.estimator})`,
  );
  if (c.estimator === 'flow-grpo' && c.agent !== 'agentflow') {
    throw new TrainConfigError('estimator', "'flow-grpo' trains AgentFlow's planner; set agent: 'agentflow'");
  }
  if (c.estimator === 'igpo' && c.agent === 'served') {
    // IGPO's value of a turn is the policy's probability of the gold answer after the env's own
    // answer prefix (`<answer>`); a served agent answers in its own format, and recorded rollouts
    // have no known answer, so the values would measure nothing.
    throw new TrainConfigError(
      'estimator',
      "'igpo' cannot train agent 'served': its turn values score the gold answer in the env's own answer " +
        'format (<answer>...</answer>), which a served agent does not write (and recorded rollouts have no ' +
        "known answer); use 'grpo', 'rloo', 'gigpo' or 'hgpo'",
    );
  }
  if (c.loop.actions === 'admissible' && (c.env !== 'household' || c.agent !== 'react')) {
    throw new TrainConfigError(
      'loop.actions',
      `'admissible' chooses among the household world's admissible commands in its ReAct loop (env 'household', agent 'react'); got env '${c.env}', agent '${c.agent}'`,
    );
  }
  if (c.estimator === 'igpo' && c.env === 'household') {
    throw new TrainConfigError(
      'estimator',
      "'igpo' needs tasks with a known answer (env 'search' or 'codemath'); the household world has none",
    );
  }
  if (c.policy.model && c.policy.model.width % c.policy.model.heads !== 0) {
    throw new TrainConfigError(
      'policy.model.heads',
      `${c.policy.model.heads} does not divide the width ${c.policy.model.width}`,
    );
  }
  if (c.policy.lora && !c.policy.checkpoint) {
    throw new TrainConfigError(
      'policy.lora',
      'needs policy.checkpoint (a Hugging Face model folder to adapt)',
    );
  }
  if (c.policy.adapters) {
    if (!c.policy.checkpoint) {
      throw new TrainConfigError(
        'policy.adapters',
        'needs policy.checkpoint (a Hugging Face model folder to adapt)',
      );
    }
    if (c.policy.lora) {
      throw new TrainConfigError(
        'policy.adapters',
        "and policy.lora: give one ('lora' is one adapter for every role, 'adapters' one per role)",
      );
    }
    if (c.agent !== 'agentflow') {
      throw new TrainConfigError(
        'policy.adapters',
        `an adapter per role needs a multi-agent loop (agent 'agentflow'); agent '${c.agent}' has one role, use policy.lora`,
      );
    }
    if (c.policy.adapters.planner?.trainable !== true) {
      throw new TrainConfigError(
        'policy.adapters.planner',
        'RL trains the planner: name a trainable planner adapter (e.g. planner: { rank: 16 })',
      );
    }
  }
  if (!c.sft.enabled && !c.policy.checkpoint) {
    throw new TrainConfigError(
      'sft.enabled',
      'false needs policy.checkpoint (RL must start from a trained policy, which is also its reference)',
    );
  }
  const d = ppoDefaults(c.estimator);
  const ppo = {
    ...c.ppo,
    clipLow: c.ppo.clipLow ?? d.clipLow,
    clipHigh: c.ppo.clipHigh ?? d.clipHigh,
    klCoef: c.ppo.klCoef ?? d.klCoef,
    entropyCoef: c.ppo.entropyCoef ?? d.entropyCoef,
    lossAgg: c.ppo.lossAgg ?? d.lossAgg,
  };
  // Per run: several runs may share one store, and their `sft` and `iter-N` folders must not collide.
  // A PostgreSQL store has no folder to sit beside: checkpoints go under runs/ (workers must reach them).
  const checkpointDir =
    c.checkpointDir ??
    (isPostgresUrl(c.db)
      ? `runs/checkpoints/${c.runId}`
      : `${c.db.replace(/\.db$/, '')}-checkpoints/${c.runId}`);
  return { ...c, estimatorOptions: estimatorOptions as Record<string, unknown>, ppo, checkpointDir };
}
