/**
 * The `trainer` suite: RL throughput on the household default (`npm start`'s config), two paths
 * side by side in one process: the former one (the 'windowed' prompt on the tiny preset, one
 * training row per step, behaviour log-probs re-scored) and the current one (the 'growing' prompt
 * on tiny-2k: each turn prefills only what it appended, one packed sequence per trajectory,
 * behaviour log-probs from the rollout). Each path gets a short SFT of its own prompt format
 * (not measured), then RL iterations whose CPU time (process.cpuUsage: all threads) is split into
 * rollout and update from the trainer's progress events. Learning itself is measured by the
 * `learning` suite.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Policy } from '../../src/policy/policy.ts';
import type { Tokenizer } from '../../src/policy/tokenizer/tokenizer.ts';
import { openStore } from '../../src/store/index.ts';
import type { TrainConfigInput } from '../../src/training/config.ts';
import type { ProgressEvent } from '../../src/training/context.ts';
import { HOUSEHOLD_DEFAULT } from '../../src/training/presets.ts';
import { domainTokenizer } from '../../src/training/sft.ts';
import { train } from '../../src/training/trainer.ts';
import { formatNumber, type Suite } from '../suite.ts';

/** What one path's RL phase cost. */
interface PathRun {
  envSteps: number;
  /** CPU seconds: the RL iterations (rollout start to update end), their rollouts, their updates. */
  rlCpu: number;
  rolloutCpu: number;
  updateCpu: number;
  /** Between a rollout's end and its update's start: credit assignment, behaviour and reference scoring. */
  scoringCpu: number;
  prefillPerStep: number;
  /** Highest RSS sampled at the RL phase's progress events, MB. */
  peakRssMb: number;
  meanLength: number;
  iterations: number;
}

const cpuSeconds = (u: NodeJS.CpuUsage) => (u.user + u.system) / 1e6;

export async function rlRun(config: TrainConfigInput, log: (line: string) => void): Promise<PathRun> {
  const dir = mkdtempSync(join(tmpdir(), 'stepwise-bench-trainer-'));
  const db = join(dir, 'run.db');
  let rolloutCpu = 0;
  let updateCpu = 0;
  let scoringCpu = 0;
  let rlCpu = 0;
  let peakRss = 0;
  let at = {
    rollout: process.cpuUsage(),
    update: process.cpuUsage(),
    iteration: process.cpuUsage(),
    rolloutEnd: process.cpuUsage(),
  };
  const onProgress = (e: ProgressEvent) => {
    if (e.phase === 'sft') return;
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
    if (e.type === 'start') {
      if (e.phase === 'update') scoringCpu += cpuSeconds(process.cpuUsage(at.rolloutEnd));
      at = { ...at, [e.phase]: process.cpuUsage() };
      if (e.phase === 'rollout' && e.iteration !== undefined) at.iteration = process.cpuUsage();
    } else if (e.type === 'end') {
      const spent = cpuSeconds(process.cpuUsage(at[e.phase]));
      if (e.phase === 'rollout') {
        rolloutCpu += spent;
        at.rolloutEnd = process.cpuUsage();
      } else {
        updateCpu += spent;
        rlCpu += cpuSeconds(process.cpuUsage(at.iteration));
      }
    }
  };
  try {
    await train({ ...config, db }, { log, onProgress });
    const store = openStore(db, { readonly: true });
    const series = (name: string) => store.metricSeries(HOUSEHOLD_DEFAULT.runId, name).map((p) => p.value);
    const envSteps = series('env_steps').at(-1) ?? 0;
    const prefill = series('prefill_tokens_per_env_step');
    const lengths = series('mean_length');
    store.close();
    return {
      envSteps,
      rlCpu,
      rolloutCpu,
      updateCpu,
      scoringCpu,
      // Per-iteration figures weighted alike (iterations have similar step counts).
      prefillPerStep: prefill.reduce((a, b) => a + b, 0) / prefill.length,
      peakRssMb: peakRss / 2 ** 20,
      meanLength: lengths.reduce((a, b) => a + b, 0) / lengths.length,
      iterations: prefill.length,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The household default with a short SFT and no evaluations during RL; `iterations` RL iterations.
 * With `start` (a checkpoint folder) RL starts from it without SFT.
 */
export function benchConfig(
  iterations: number,
  sftSteps: number,
  start?: string,
  tasks = 2,
): TrainConfigInput {
  if (start) {
    return {
      ...benchConfig(iterations, 1, undefined, tasks),
      policy: { checkpoint: start },
      sft: { enabled: false },
    };
  }
  return {
    ...HOUSEHOLD_DEFAULT,
    iterations,
    tasksPerIteration: tasks,
    eval: { every: 0, split: 'valid-unseen', tasks: 4 },
    sft: {
      ...HOUSEHOLD_DEFAULT.sft,
      maxSteps: sftSteps,
      evalEvery: sftSteps,
      selectTasks: 0,
      dagger: { ...HOUSEHOLD_DEFAULT.sft.dagger, every: 0 },
    },
  };
}

export const suite: Suite = {
  name: 'trainer',
  description:
    'household default, RL phase CPU: former path (windowed, whole step rows, re-scored) vs current (growing, packed, rollout log-probs); with --start, the default from a trained checkpoint vs the same with whole rows, re-scored',
  quick: false,
  async run(ctx) {
    const flag = (name: string, fallback: number) => {
      const i = ctx.args.indexOf(name);
      return i >= 0 ? Number(ctx.args[i + 1]) : fallback;
    };
    const iterations = flag('--iterations', 2);
    // A short SFT of each path's own format instead of untrained policies (a script's option).
    const sftSteps = flag('--sft-steps', 0);
    const tasks = flag('--tasks', HOUSEHOLD_DEFAULT.tasksPerIteration);
    // --sft-steps 0: both paths start RL from an untrained policy of their preset (one tokenizer),
    // whose replies run to the token cap and whose trajectories to the step cap: the longest
    // prompts the growing format gets, and no SFT to wait for on a busy machine.
    const scratch = mkdtempSync(join(tmpdir(), 'stepwise-bench-trainer-start-'));
    let tokenizer: Tokenizer | undefined;
    const start = async (preset: 'tiny' | 'tiny-2k') => {
      if (sftSteps > 0) return undefined;
      tokenizer ??= await domainTokenizer({ vocabSize: 1024, tokenizerTasks: 100 });
      const policy = Policy.create({ model: preset, tokenizer, seed: 0 });
      const dir = join(scratch, preset);
      await policy.save(dir);
      await policy.dispose();
      return dir;
    };
    // --start <checkpoint>: both paths start RL from that trained policy (an SFT of the household
    // default's format and preset, e.g. an `npm start` run's sft checkpoint): a trained policy's
    // valid, varied steps are what the default really runs (the untrained start is every path's
    // worst or best case, see docs/BENCHMARKS.md). The current path is then the household default
    // itself and the former one the same with behaviour log-probs re-scored; the growing prompt,
    // which needs an SFT of its own format, is not run.
    const i = ctx.args.indexOf('--start');
    const trained = i >= 0 ? ctx.args[i + 1] : undefined;
    if (i >= 0 && (!trained || trained.startsWith('--')))
      throw new Error(
        '--start needs a checkpoint folder (a policy saved by the trainer, e.g. <checkpoints>/sft)',
      );
    const base = trained
      ? benchConfig(iterations, 0, trained, tasks)
      : benchConfig(iterations, sftSteps, await start('tiny-2k'), tasks);
    // --former-start <checkpoint>: the former path from another trained policy (e.g. an SFT with
    // the word tokenizer, where the current one has superword merges): paths then play different
    // trajectories, compared per environment step.
    const j = ctx.args.indexOf('--former-start');
    const formerTrained = j >= 0 ? ctx.args[j + 1] : undefined;
    if (j >= 0 && (!formerTrained || formerTrained.startsWith('--') || !trained))
      throw new Error('--former-start needs a checkpoint folder, and --start for the current path');
    // From --start both paths share the checkpoint; without it each starts from its own preset.
    let formerBase = base;
    if (formerTrained) formerBase = benchConfig(iterations, 0, formerTrained, tasks);
    else if (!trained) formerBase = benchConfig(iterations, sftSteps, await start('tiny'), tasks);
    const former: TrainConfigInput = {
      ...formerBase,
      loop: { ...HOUSEHOLD_DEFAULT.loop, promptFormat: 'windowed' },
      policy: sftSteps > 0 ? { preset: 'tiny' } : formerBase.policy,
      // The former update: whole rows (no shared prompt prefixes), behaviour log-probs re-scored,
      // the KL term with its full reference pass (ALGORITHMS.md's 0.01), every row trained.
      ppo: {
        ...HOUSEHOLD_DEFAULT.ppo,
        behaviourLogprobs: 'rescore',
        sharedPrefix: 0,
        klCoef: 0.01,
        skipZeroAdvantage: false,
      },
    };
    const labels = trained
      ? {
          former: `former: household default from --${formerTrained ? 'former-start' : 'start'}, whole rows, behaviour log-probs re-scored, KL term (0.01), zero-advantage rows trained`,
          current: `current: household default (${HOUSEHOLD_DEFAULT.loop.promptFormat}, ${HOUSEHOLD_DEFAULT.policy.preset}) from --start`,
        }
      : {
          former: 'former: windowed (tiny), whole step rows, re-scored',
          current: 'current: growing (tiny-2k), packed, rollout log-probs',
        };
    ctx.log(labels.former);
    const a = await rlRun(former, ctx.log);
    ctx.log(labels.current);
    const b = await rlRun(base, ctx.log);
    rmSync(scratch, { recursive: true, force: true });
    const perMin = (r: PathRun) => r.envSteps / (r.rlCpu / 60);
    const results = {
      rl_env_steps_per_cpu_min: perMin(b),
      rl_env_steps_per_cpu_min_former: perMin(a),
      rl_env_steps_per_cpu_min_ratio: perMin(b) / perMin(a),
      prefill_tokens_per_env_step: b.prefillPerStep,
      prefill_tokens_per_env_step_former: a.prefillPerStep,
      update_share: b.updateCpu / b.rolloutCpu,
      update_share_former: a.updateCpu / a.rolloutCpu,
      rl_cpu_seconds_per_iteration: b.rlCpu / b.iterations,
      rl_cpu_seconds_per_iteration_former: a.rlCpu / a.iterations,
      peak_rss_mb: b.peakRssMb,
      peak_rss_mb_former: a.peakRssMb,
      rollout_cpu_ms_per_env_step: (1000 * b.rolloutCpu) / b.envSteps,
      rollout_cpu_ms_per_env_step_former: (1000 * a.rolloutCpu) / a.envSteps,
      scoring_cpu_ms_per_env_step: (1000 * b.scoringCpu) / b.envSteps,
      scoring_cpu_ms_per_env_step_former: (1000 * a.scoringCpu) / a.envSteps,
      update_cpu_ms_per_env_step: (1000 * b.updateCpu) / b.envSteps,
      update_cpu_ms_per_env_step_former: (1000 * a.updateCpu) / a.envSteps,
      env_steps: b.envSteps,
      env_steps_former: a.envSteps,
      mean_length: b.meanLength,
      mean_length_former: a.meanLength,
    };
    // Where each path's RL starts, and so what its figures can be compared on.
    const starts = (() => {
      if (formerTrained)
        return {
          from: 'from the trained checkpoints given as --former-start and --start',
          compare:
            'The former path starts from the --former-start checkpoint and the current one from --start, so they play different trajectories: compare per environment step.',
        };
      if (trained)
        return {
          from: 'from the trained checkpoint given as --start',
          compare:
            'Both paths start from the same checkpoint with the same seeds, so they play the same trajectories (the behaviour log-probs do not change the rollout): the differences are the update path (re-scoring, shared prompt prefixes, the KL pass, zero-advantage rows) and the reference scoring.',
        };
      return {
        from:
          sftSteps > 0
            ? `after ${sftSteps} SFT steps of each path's own prompt format`
            : 'from an untrained policy of each preset',
        compare: 'The two paths play different trajectories (their SFT differs), so compare per env step.',
      };
    })();
    const row = (label: string, r: PathRun) =>
      `| ${label} | ${r.envSteps} | ${formatNumber(r.meanLength)} | ${formatNumber(r.rlCpu)} | ${formatNumber(r.rolloutCpu)} | ${formatNumber(r.scoringCpu)} | ${formatNumber(r.updateCpu)} | ${formatNumber(r.prefillPerStep)} | ${formatNumber(r.peakRssMb)} |`;
    return {
      results,
      report: [
        `RL phase of the household default (G=8 x ${tasks} tasks an iteration, ${iterations} iterations, ${starts.from}), CPU seconds of the process (all threads):`,
        '',
        '| path | env steps | mean length | RL CPU s | rollout CPU s | scoring CPU s | update CPU s | prefill tokens / step | peak RSS MB |',
        '|---|---|---|---|---|---|---|---|---|',
        row(labels.former, a),
        row(labels.current, b),
        '',
        'RL CPU runs from each rollout start to its update end (credit assignment and the reference scoring between rollout and update included, checkpoints not); rollout CPU is the rollout phase, update CPU the PPO epochs (the reference and behaviour scoring before them count in neither). `peak_rss_mb` is the highest RSS sampled at the RL phase progress events.',
        starts.compare,
      ].join('\n'),
    };
  },
};
