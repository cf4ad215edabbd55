/**
 * The viewer's test store, written by short real training runs (`train`, src/training): one SQLite
 * file, one run per estimator, each with its own checkpoint folder.
 *
 * - household-gigpo: SFT on the household expert's demonstrations, then three GiGPO iterations
 *   (multi-step rollouts in the real household world, step groups by anchor);
 * - household-hgpo: two HGPO iterations from that SFT checkpoint;
 * - doors-grpo: GRPO on the trainer's door family (test/training/helpers.ts), whose policy wins
 *   about half its rollouts after a short SFT: the household runs' tiny policy hardly ever wins,
 *   and the success filters need won and lost rollouts side by side;
 * - search-igpo: SFT then two IGPO iterations on search QA through the real web_search tool (a
 *   few more if no rollout has searched and answered yet: IGPO's gains need one);
 * - agentflow-flow-grpo: SFT of every AgentFlow module, then two Flow-GRPO iterations on the
 *   planner (search QA).
 *
 * Sizes are the trainer tests' (a 64-wide two-layer model, 2 tasks x 4 rollouts per iteration), so
 * the whole store takes a few tens of seconds. Tests share one build per vitest run (see
 * `sharedTrainingStore`) and copy the file before writing into it.
 */
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../../src/store/index.ts';
import type { TrainConfigInput } from '../../src/training/config.ts';
import { type TrainHooks, train } from '../../src/training/trainer.ts';
import { doorHooks, doorTokenizer } from '../training/helpers.ts';

/** The runs of the store, by estimator. */
export const RUNS = {
  gigpo: 'household-gigpo',
  hgpo: 'household-hgpo',
  grpo: 'doors-grpo',
  igpo: 'search-igpo',
  flowGrpo: 'agentflow-flow-grpo',
} as const;

export interface TrainingStore {
  /** The folder holding the store and every run's checkpoints. */
  dir: string;
  db: string;
}

/** The household runs' settings: two task types, short loops, a small model. */
export const HOUSEHOLD = {
  env: 'household',
  envOptions: {
    receptacles: 4,
    objects: 1,
    taskTypes: ['pick_and_place_simple', 'pick_heat_then_place_in_recep'],
    maxSteps: 8,
  },
  // No history and a cooler temperature: after a short SFT most replies are well formed, so the
  // rollouts of a group part ways (several step groups per trajectory).
  loop: { history: 0, maxSteps: 5, maxTokens: 32, temperature: 0.7 },
  policy: { model: { width: 64, layers: 2, heads: 2, contextLength: 512 }, tokenizerTasks: 20 },
  groupSize: 4,
  tasksPerIteration: 2,
  ppo: { miniBatchSize: 8, learningRate: 3e-4 },
  eval: { every: 1, tasks: 2 },
} satisfies TrainConfigInput;

/** The household SFT: enough behaviour cloning that most replies are well formed. */
export const HOUSEHOLD_SFT = {
  tasks: 24,
  validTasks: 4,
  maxSteps: 80,
  batchSize: 16,
  learningRate: 3e-3,
  evalEvery: 40,
} satisfies TrainConfigInput['sft'];

const quiet: TrainHooks = { log: () => {} };

/** Writes the store into `dir` (created; any earlier store there is replaced). */
export async function buildTrainingStore(dir: string, hooks: TrainHooks = quiet): Promise<TrainingStore> {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const db = join(dir, 'runs.db');
  // Each run its own checkpoint folder, named here so that tests can resume a run from it.
  const run = (runId: string, config: TrainConfigInput, extra: TrainHooks = {}) =>
    train({ ...config, runId, db, checkpointDir: join(dir, 'checkpoints', runId) }, { ...hooks, ...extra });

  const gigpo = await run(RUNS.gigpo, {
    ...HOUSEHOLD,
    estimator: 'gigpo',
    iterations: 3,
    sft: HOUSEHOLD_SFT,
  });
  const fromSft = { policy: { checkpoint: gigpo.referenceCheckpoint }, sft: { enabled: false } };
  await run(RUNS.hgpo, { ...HOUSEHOLD, ...fromSft, estimator: 'hgpo', iterations: 2 });
  await run(
    RUNS.grpo,
    {
      loop: { history: 0, maxSteps: 1, maxTokens: 24 },
      policy: { model: { width: 64, layers: 2, heads: 2, contextLength: 256 } },
      estimator: 'grpo',
      groupSize: 4,
      tasksPerIteration: 3,
      iterations: 2,
      ppo: { miniBatchSize: 8, learningRate: 1e-3, maxKl: 10 },
      eval: { every: 1, tasks: 4 },
      sft: { tasks: 32, validTasks: 8, maxSteps: 60, batchSize: 16, learningRate: 3e-3, evalEvery: 30 },
    },
    { ...doorHooks, tokenizer: doorTokenizer() },
  );
  await run(RUNS.igpo, {
    env: 'search',
    // single-hop questions, a search then an answer: a short SFT gets some rollouts to answer
    envOptions: { kinds: ['single-hop'] },
    loop: { maxSteps: 3, maxTokens: 24, temperature: 0.7 },
    policy: HOUSEHOLD.policy,
    estimator: 'igpo',
    groupSize: 4,
    tasksPerIteration: 2,
    iterations: 2,
    ppo: HOUSEHOLD.ppo,
    eval: { every: 1, tasks: 2 },
    // a high learning rate: after 40 steps some replies search and answer (IGPO's gains need answers)
    sft: { tasks: 24, validTasks: 4, maxSteps: 40, batchSize: 16, learningRate: 1e-2, evalEvery: 20 },
  });
  // IGPO's gains need a rollout that searches, then answers; the tiny policy's first iterations may
  // have none (training is not bit-reproducible, so neither is when one appears): it trains on, an
  // iteration at a time, until one does, and says so plainly if none ever does.
  for (let more = 0; more < 8 && !hasGainAndSearch(db); more++) {
    const config = resumeConfig(db, RUNS.igpo, 1, join(dir, 'checkpoints', RUNS.igpo));
    await train(config, { ...hooks, resume: true });
  }
  if (!hasGainAndSearch(db)) {
    throw new Error(`training store: the IGPO run never searched and answered in ${db}; raise its SFT`);
  }
  await run(RUNS.flowGrpo, {
    env: 'search',
    agent: 'agentflow',
    estimator: 'flow-grpo',
    agentOptions: { maxTurns: 2 },
    policy: HOUSEHOLD.policy,
    groupSize: 3,
    tasksPerIteration: 2,
    iterations: 2,
    ppo: HOUSEHOLD.ppo,
    eval: { every: 1, tasks: 2 },
    sft: { tasks: 8, validTasks: 2, maxSteps: 10, batchSize: 8, learningRate: 3e-3, evalEvery: 5 },
  });
  return { dir, db };
}

/** Whether the IGPO run has a turn with an information gain and a turn that called the search tool. */
function hasGainAndSearch(db: string): boolean {
  const store = openStore(db, { readonly: true });
  try {
    let gain = false;
    let search = false;
    for (const { iteration } of store.iterations(RUNS.igpo)) {
      for (const g of store.groups(RUNS.igpo, iteration)) {
        for (const t of g.trajectories) {
          const ref = { runId: RUNS.igpo, iteration, groupId: g.groupId, trajectoryId: t.trajectoryId };
          for (const s of store.trajectory(ref)) {
            const details = s.advantages[0]?.details as Record<string, unknown> | undefined;
            gain ||= typeof details?.gain === 'number';
            search ||= s.toolCalls.length > 0;
          }
        }
      }
    }
    return gain && search;
  } finally {
    store.close();
  }
}

// One build per vitest run: test files run in processes forked by the same vitest process, so its
// pid names the folder; the first file to come builds it under a lock, the others wait for it.
const ROOT_PREFIX = 'stepwise-viewer-store-';
let shared: Promise<TrainingStore> | undefined;

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/** The store of this test run (built on first use, then reused by every test file of the run). */
export function sharedTrainingStore(): Promise<TrainingStore> {
  shared ??= openShared();
  return shared;
}

async function openShared(): Promise<TrainingStore> {
  // A vitest worker is a forked child (it has an IPC channel); anywhere else the store is this
  // process's own. VIEWER_TEST_STORE=<folder> keeps one across runs (while editing the tests).
  const owner = process.env.VITEST && process.send ? process.ppid : process.pid;
  const dir = process.env.VIEWER_TEST_STORE ?? join(tmpdir(), `${ROOT_PREFIX}${owner}`);
  const done = join(dir, 'done');
  const lock = `${dir}.lock`;
  removeStale();
  for (;;) {
    if (existsSync(done)) return { dir, db: join(dir, 'runs.db') };
    try {
      mkdirSync(lock);
    } catch {
      // Another test file builds it; take over only if that process died.
      const holder = Number(readFileSafe(join(lock, 'pid')));
      if (holder > 0 && !alive(holder)) rmSync(lock, { recursive: true, force: true });
      await new Promise((r) => setTimeout(r, 250));
      continue;
    }
    try {
      writeFileSync(join(lock, 'pid'), String(process.pid));
      if (existsSync(done)) continue;
      const store = await buildTrainingStore(dir);
      writeFileSync(done, new Date().toISOString());
      return store;
    } finally {
      rmSync(lock, { recursive: true, force: true });
    }
  }
}

function readFileSafe(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** Stores of vitest runs that have ended (their pid is gone). */
function removeStale(): void {
  for (const name of readdirSync(tmpdir())) {
    const m = new RegExp(`^${ROOT_PREFIX}(\\d+)(\\.lock)?$`).exec(name);
    if (m && !alive(Number(m[1]))) rmSync(join(tmpdir(), name), { recursive: true, force: true });
  }
}

/** A copy of the store's file in `dir`, for a test that writes into it (checkpoints stay shared). */
export function copyStore(store: TrainingStore, dir: string, name = 'runs.db'): string {
  mkdirSync(dir, { recursive: true });
  const to = join(dir, name);
  copyFileSync(store.db, to);
  return to;
}

/**
 * The config that continues run `runId` of the store at `db` for `more` iterations, its new
 * checkpoints in `checkpointDir` (the stored ones are only read).
 */
export function resumeConfig(
  db: string,
  runId: string,
  more: number,
  checkpointDir: string,
): TrainConfigInput {
  const store = openStore(db, { readonly: true });
  try {
    const { reference: _, ...config } = store.run(runId)!.config as Record<string, unknown>;
    const iterations = (store.lastCompleteIteration(runId) ?? -1) + 1 + more;
    return { ...(config as TrainConfigInput), db, iterations, checkpointDir };
  } finally {
    store.close();
  }
}
