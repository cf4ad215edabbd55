/**
 * Bench suite `agents`: rollout speed of the household loop (64 trajectories in parallel on the
 * `small` policy through PolicyChatModel, so their model calls share the continuous decode batch),
 * with the prefix cache and, side by side in the same run, without it; then the serve metrics
 * (bench/agents-serve.ts).
 */
import { availableParallelism, loadavg } from 'node:os';
import { PolicyChatModel } from '../../src/agents/chat/policy-chat-model.ts';
import { rollout } from '../../src/agents/loops/rollout.ts';
import { householdPrompt } from '../../src/agents/prompts/household.ts';
import {
  HouseholdEnv,
  HouseholdExpert,
  HouseholdGenerator,
  type HouseholdTask,
} from '../../src/envs/index.ts';
import { Policy } from '../../src/policy/policy.ts';
import { PREFIX_CACHE_BYTES } from '../../src/policy/runtime/runner.ts';
import { Tokenizer } from '../../src/policy/tokenizer/tokenizer.ts';
import { benchServe } from '../agents-serve.ts';
import { type BenchContext, formatNumber, type Suite } from '../suite.ts';

const TASKS = 8;
const GROUP = 8;
/** Steps per trajectory and tokens per response: caps that bound a run of an untrained policy. */
const MAX_STEPS = 8;
const MAX_TOKENS = 32;

/** Household prompts along expert trajectories: the text the policy reads, for its tokenizer. */
function householdTexts(tasks: number): string[] {
  const generator = new HouseholdGenerator();
  const env = new HouseholdEnv();
  const texts: string[] = [];
  for (let seed = 0; seed < tasks; seed++) {
    const task = generator.generate('train', 10_000 + seed);
    let observation = env.resetSync(task.seed, task);
    const history: { observation: string; action: string }[] = [];
    for (const action of new HouseholdExpert().demonstrate(task).actions) {
      const [m] = householdPrompt({
        task: task.payload.goalText,
        stepCount: history.length,
        history: history.slice(-2),
        observation,
        admissible: env.admissibleActions(),
      });
      texts.push(m!.content, `<think>Next I ${action}.</think><action>${action}</action>`);
      history.push({ observation, action });
      const r = env.stepSync(action);
      observation = r.observation;
      if (r.done) break;
    }
  }
  return texts;
}

interface RolloutRun {
  steps: number;
  responseTokens: number;
  promptTokens: number;
  prefilledTokens: number;
  wall: number;
  cpu: number;
  runs: number;
  rows: number;
}

/** One timed rollout of the bench's tasks; the batch's stats say how much was prefilled. */
async function timedRollout(model: PolicyChatModel, tasks: HouseholdTask[]): Promise<RolloutRun> {
  // The references' windowed prompt (history 2), as this suite has measured it from the start: the
  // growing one outgrows the small preset's 512-token context within 8 steps.
  const loops = {
    household: {
      promptFormat: 'windowed' as const,
      maxSteps: MAX_STEPS,
      sampling: { maxTokens: MAX_TOKENS },
    },
  };
  const before = { ...model.batcher.batch.stats };
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const trajectories = await rollout({ model, tasks, groupSize: GROUP, loops });
  const wall = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const after = model.batcher.batch.stats;
  const steps = trajectories.flatMap((t) => t.steps);
  return {
    steps: steps.length,
    responseTokens: steps.reduce((n, s) => n + s.responseTokens.length, 0),
    promptTokens: steps.reduce((n, s) => n + s.promptTokens.length, 0),
    prefilledTokens: after.prefilledTokens - before.prefilledTokens,
    wall,
    cpu: (cpu.user + cpu.system) / 1e6,
    runs: after.runs - before.runs,
    rows: after.rows - before.rows,
  };
}

export async function benchRollout(log: BenchContext['log']) {
  log('agents: tokenizer on household prompts, small policy (untrained)');
  const tokenizer = Tokenizer.train(householdTexts(100), { vocabSize: 2048 });
  const policy = Policy.create({ model: 'small', tokenizer, seed: 0 });
  const model = new PolicyChatModel(policy, { maxBatch: 64 });
  const generator = new HouseholdGenerator();
  try {
    log('agents: warm-up (session builds)');
    await rollout({
      model,
      tasks: [generator.generate('train', 0)],
      groupSize: 2,
      loops: { household: { maxSteps: 1 } },
    });

    log(
      `agents: ${TASKS * GROUP} household trajectories in parallel (${TASKS} tasks x ${GROUP}), ${MAX_STEPS} steps, ${MAX_TOKENS} tokens, without the prefix cache`,
    );
    const tasks = Array.from({ length: TASKS }, (_, i) => generator.generate('train', 1 + i));
    policy.runner.setPrefixCache(0);
    const plain = await timedRollout(model, tasks);
    log('agents: the same rollout with the prefix cache');
    policy.runner.setPrefixCache(PREFIX_CACHE_BYTES);
    const cache = policy.runner.prefixCache!;
    const run = await timedRollout(model, tasks);
    const results = {
      household_rollout_steps_per_s: run.steps / run.wall,
      rollout_tokens_per_s: run.responseTokens / run.wall,
      prefix_cache_hit_rate: cache.hitRate,
      prefill_tokens_per_step: run.prefilledTokens / run.steps,
      prefix_cache_cpu_ratio: plain.cpu / plain.steps / (run.cpu / run.steps),
    };
    const perCpu = (r: RolloutRun) =>
      `${formatNumber(r.steps / r.cpu)} steps and ${formatNumber(r.responseTokens / r.cpu)} response tokens per CPU second`;
    const report = [
      `Household rollout: ${TASKS * GROUP} trajectories (${TASKS} tasks x ${GROUP}) at once on the untrained`,
      `\`small\` policy (${policy.config.layers} layers, width ${policy.config.width}, vocabulary ${tokenizer.vocabSize}),`,
      `at most ${MAX_STEPS} steps and ${MAX_TOKENS} response tokens each, temperature 1, through one PolicyChatModel`,
      'whose calls join one continuous decode batch (64 rows at most). The same rollout twice, same seeds:',
      '',
      '| | steps | prompt tokens | prefilled tokens | wall s | CPU s | per CPU second |',
      '|---|---|---|---|---|---|---|',
      ...(
        [
          ['without the prefix cache', plain],
          ['with the prefix cache', run],
        ] as const
      ).map(
        ([label, r]) =>
          `| ${label} | ${r.steps} | ${r.promptTokens} | ${r.prefilledTokens} | ${formatNumber(r.wall)} | ${formatNumber(r.cpu)} | ${perCpu(r)} |`,
      ),
      '',
      `\`prefix_cache_hit_rate\` ${formatNumber(cache.hitRate)}: the share of prompt tokens found in the cache;`,
      `\`prefill_tokens_per_step\` ${formatNumber(run.prefilledTokens / run.steps)} (from ${formatNumber(plain.prefilledTokens / plain.steps)} without);`,
      `\`prefix_cache_cpu_ratio\` ${formatNumber(results.prefix_cache_cpu_ratio)}: CPU per step without the cache over with it`,
      `(load average ${formatNumber(loadavg()[0]!)} on ${availableParallelism()} cores at the end). The G = ${GROUP} first prompts of a task`,
      'are identical, so they cost one prefill; later turns share only the part of the prompt before the',
      "household prompt's step counter (issue 13's prompts that only grow would lift the rate). An untrained",
      'policy answers without the tags, so every step is invalid and the env is never stepped: the figure is',
      'the agent side (prompting, prefill and decode, parsing), which is what limits a rollout.',
    ].join('\n');
    return { results, report };
  } finally {
    await policy.dispose();
  }
}

export const suite: Suite = {
  name: 'agents',
  description: 'household rollout speed (64 trajectories on the small policy) and stepwise serve throughput',
  quick: false,
  async run(ctx) {
    const r = await benchRollout(ctx.log);
    const serve = await benchServe(ctx.log);
    return {
      results: { ...r.results, ...serve.results },
      report: `${r.report}\n\n${serve.report}`,
    };
  },
};
