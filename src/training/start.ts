/**
 * Where a run starts: a new run's policy (fresh with a domain tokenizer, or the configured
 * checkpoint) warm-started by SFT on the expert's demonstrations, or a stored run's last
 * checkpoint (with the checks and the repair a resume needs).
 */
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Split } from '../envs/types.ts';
import { Policy } from '../policy/policy.ts';
import type { Json } from '../store/types.ts';
import { type TrainConfig, TrainConfigError } from './config.ts';
import type { RunBase } from './context.ts';
import type { Demonstrated, TaskFamily } from './family.ts';
import {
  demonstrationStream,
  domainTokenizer,
  keptByRole,
  runSft,
  type SftResult,
  sftSamples,
} from './sft.ts';

/** Where a run starts: a new run's SFT (or configured checkpoint), or a stored run's last checkpoint. */
export interface Start {
  policy: Policy;
  referenceDir: string;
  next: number;
  sft?: SftResult;
}

export async function startRun(base: RunBase): Promise<Start> {
  const { config, store } = base;
  const existing = store.run(config.runId);
  if (existing && !base.hooks.resume) {
    throw new Error(
      `run '${config.runId}' is already in ${config.db}; pass --resume to continue it, or choose another --db or runId`,
    );
  }
  if (existing) return resumeRun(base, existing.config);
  const sftDir = join(config.checkpointDir, 'sft');
  const demos = config.sft.enabled ? await demosOf(base.family, 'train', config.sft.tasks) : [];
  const policy = await startingPolicy(base, demos);
  let sft: SftResult | undefined;
  if (config.sft.enabled) {
    sft = await warmStart(base, policy, demos);
    await rm(sftDir, { recursive: true, force: true });
    await policy.save(sftDir);
  }
  const referenceDir = config.sft.enabled ? sftDir : config.policy.checkpoint!;
  store.createRun(config.runId, { ...(config as unknown as Record<string, Json>), reference: referenceDir });
  return { policy, referenceDir, next: 0, sft };
}

/**
 * A stored run continues from its last iteration's checkpoint. The checkpoint is saved before its
 * iteration is written; a kill between the write and its registration leaves it on disk but
 * unregistered, which is repaired here from the folder `iter-<n>`.
 */
async function resumeRun({ config, store, log }: RunBase, stored: Json): Promise<Start> {
  const runId = config.runId;
  sameAsStored(config, stored);
  const referenceDir = (stored as { reference?: string }).reference ?? join(config.checkpointDir, 'sft');
  const last = store.lastCompleteIteration(runId);
  if (last !== undefined && !store.checkpoints(runId).some((c) => c.iteration === last)) {
    const dir = join(config.checkpointDir, `iter-${last}`);
    if (!existsSync(join(dir, 'config.json'))) {
      throw new Error(
        `cannot resume run '${runId}': iteration ${last} is stored but its checkpoint is missing`,
      );
    }
    store.addCheckpoint(runId, last, dir);
  }
  const point = store.resumePoint(runId);
  const from = point.checkpoint?.path ?? referenceDir;
  const policy = await Policy.load(from, {
    device: config.device,
    dtype: config.policy.dtype,
    // Named adapters come back from the checkpoint's own folders, trainable as the config says.
    ...(config.policy.adapters ? { adapters: config.policy.adapters, adapter: 'planner' } : {}),
  });
  store.setRunStatus(runId, 'running');
  log(`resuming run '${runId}' at iteration ${point.nextIteration} from ${from}`);
  return { policy, referenceDir, next: point.nextIteration };
}

/**
 * A resumed run must keep what its stored iterations were made with (more iterations are fine):
 * otherwise the run would mix two experiments under one id.
 */
function sameAsStored(config: TrainConfig, stored: Json): void {
  const before = stored as Record<string, Json>;
  for (const field of ['env', 'estimator', 'groupSize', 'tasksPerIteration', 'seed', 'split'] as const) {
    const was = before[field];
    if (was !== undefined && was !== config[field]) {
      throw new TrainConfigError(
        field,
        `${JSON.stringify(config[field])} differs from the stored run's ${JSON.stringify(was)}; resume with the same value or start a new run`,
      );
    }
  }
}

/** The expert's demonstrations on `n` tasks of `split` (seeds offset from the evaluation's 0..n-1). */
/**
 * SFT with an adapter per role: each trainable adapter on its own role's demonstrations (the
 * family's `adapterOf`); demonstrations of roles on the base or on a frozen adapter train nothing.
 * Returns the trained adapter's result.
 */
async function warmStartAdapters(
  { config, hooks, family, log }: RunBase,
  policy: Policy,
  trainDemos: readonly Demonstrated[],
): Promise<SftResult> {
  const context = policy.config.contextLength;
  const adapterOf = family.adapterOf ?? ((role: string | undefined) => role);
  const validDemos = await demosOf(family, 'valid-seen', config.sft.validTasks);
  let result: SftResult | undefined;
  for (const name of policy.adapterNames) {
    const adapter = policy.adapter(name);
    const mine = (d: Demonstrated) => adapterOf(d.role) === name;
    const train = sftSamples(trainDemos.filter(mine), policy.tokenizer, context);
    if (adapter.frozen || train.length === 0) {
      log(`sft: adapter '${name}' ${adapter.frozen ? 'is frozen' : 'has no demonstrations'}; not trained`);
      continue;
    }
    const valid = sftSamples(validDemos.filter(mine), policy.tokenizer, context);
    log(`sft: adapter '${name}': ${train.length} training samples, ${valid.length} validation samples`);
    const r = await runSft(adapter, train, valid.length > 0 ? valid : train, config.sft, {
      seed: config.seed,
      onProgress: hooks.onProgress,
      log,
    });
    log(
      `sft: adapter '${name}': ${r.steps} steps, train loss ${r.trainLoss.toFixed(4)}, valid loss ${r.validLoss.toFixed(4)} ` +
        `(stopped by ${r.stoppedBy})`,
    );
    if (name === policy.adapterName || !result) result = r;
  }
  if (!result) throw new Error('sft: no trainable adapter has demonstrations of its role');
  return result;
}

function demosOf(family: TaskFamily, split: Split, n: number): Promise<Demonstrated[]> {
  // Offset so that SFT never sees an evaluated task.
  return family.demonstrations(Array.from({ length: n }, (_, k) => family.task(split, 1_000_000 + k)));
}

/** A fresh policy (tokenizer trained on the envs' and the loop's text) or the configured checkpoint. */
async function startingPolicy(
  { config, hooks, family }: RunBase,
  demos: readonly Demonstrated[],
): Promise<Policy> {
  if (config.policy.checkpoint) {
    return Policy.load(config.policy.checkpoint, {
      device: config.device,
      dtype: config.policy.dtype,
      lora: config.policy.lora,
      seed: config.seed,
      // An adapter per role: the run holds (and RL updates) the family's trained adapter.
      ...(config.policy.adapters
        ? { adapters: config.policy.adapters, adapter: family.trainedAdapter ?? 'planner' }
        : {}),
    });
  }
  const tokenizer =
    hooks.tokenizer ??
    (await domainTokenizer({ ...config.policy, demos, texts: await family.tokenizerText?.() }));
  return Policy.create({
    model: config.policy.model ?? config.policy.preset,
    tokenizer,
    device: config.device,
    dtype: config.policy.dtype,
    seed: config.seed,
  });
}

/**
 * The frozen reference a run's KL is measured against. With named adapters it is the trained
 * adapter as the reference checkpoint holds it, on the run's own base (no second base in memory);
 * a planner that starts fresh (B = 0) is the base model itself.
 */
export async function referencePolicy(
  config: TrainConfig,
  policy: Policy,
  referenceDir: string,
): Promise<Policy> {
  if (policy.adapterNames.length === 0) {
    return Policy.load(referenceDir, {
      device: config.device,
      dtype: config.policy.dtype,
      bakeWeights: true,
    });
  }
  const name = policy.adapterName!;
  const stored = join(referenceDir, name);
  if (existsSync(join(stored, 'adapter_config.json')))
    return policy.frozenAdapterFrom(stored, 'the reference');
  const from = config.policy.adapters?.[name]?.from;
  return from ? policy.frozenAdapterFrom(from, 'the reference') : policy.base;
}

/** SFT on the expert's demonstrations (train split), validated on valid-seen ones. */
async function warmStart(
  base: RunBase,
  policy: Policy,
  trainDemos: readonly Demonstrated[],
): Promise<SftResult> {
  if (policy.adapterNames.length > 0) return warmStartAdapters(base, policy, trainDemos);
  const { config, hooks, family, log } = base;
  const context = policy.config.contextLength;
  const fixed = sftSamples(trainDemos, policy.tokenizer, context);
  // A fresh stream draws new train tasks for every batch; the fixed demonstrations still train the
  // tokenizer and say what fits the context.
  const train = config.sft.fresh
    ? demonstrationStream(family, policy.tokenizer, context, { seed: config.seed })
    : fixed;
  const valid = sftSamples(
    await demosOf(family, 'valid-seen', config.sft.validTasks),
    policy.tokenizer,
    context,
  );
  const roles = keptByRole(trainDemos, policy.tokenizer, context);
  log(
    `sft: ${config.sft.fresh ? 'fresh demonstrations every batch, ' : ''}${fixed.length} training samples (${trainDemos.length - fixed.length} longer than the context left out), ` +
      `${valid.length} validation samples${roles ? `; kept per role: ${roles}` : ''}`,
  );
  const result = await runSft(policy, train, valid, config.sft, {
    seed: config.seed,
    // the hook itself, not the context's no-op: without a listener SFT logs its evaluations
    onProgress: hooks.onProgress,
    log,
    ...(await family.sftExtras?.()),
  });
  log(
    `sft: ${result.steps} steps, train loss ${result.trainLoss.toFixed(4)}, valid loss ${result.validLoss.toFixed(4)} ` +
      `(stopped by ${result.stoppedBy})`,
  );
  return result;
}
