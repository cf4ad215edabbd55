/**
 * Bench suite `agents`: rollout speed of the household loop (64 trajectories in parallel on the
 * `small` policy through PolicyChatModel, so their model calls share decode batches), then the
 * serve metrics (bench/agents-serve.ts).
 */
import { availableParallelism, loadavg } from 'node:os';
import { PolicyChatModel } from '../../src/agents/chat/policy-chat-model.ts';
import { rollout } from '../../src/agents/loops/rollout.ts';
import { householdPrompt } from '../../src/agents/prompts/household.ts';
import { HouseholdEnv, HouseholdExpert, HouseholdGenerator } from '../../src/envs/index.ts';
import { Policy } from '../../src/policy/policy.ts';
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

export async function benchRollout(log: BenchContext['log']) {
  log('agents: tokenizer on household prompts, small policy (untrained)');
  const tokenizer = Tokenizer.train(householdTexts(100), { vocabSize: 2048 });
  const policy = Policy.create({ model: 'small', tokenizer, seed: 0 });
  const model = new PolicyChatModel(policy, { maxBatch: 64 });
  const generator = new HouseholdGenerator();
  const loops = { household: { maxSteps: MAX_STEPS, sampling: { maxTokens: MAX_TOKENS } } };
  try {
    log('agents: warm-up (session builds)');
    await rollout({
      model,
      tasks: [generator.generate('train', 0)],
      groupSize: 2,
      loops: { household: { maxSteps: 1 } },
    });

    log(
      `agents: ${TASKS * GROUP} household trajectories in parallel (${TASKS} tasks x ${GROUP}), ${MAX_STEPS} steps, ${MAX_TOKENS} tokens`,
    );
    const tasks = Array.from({ length: TASKS }, (_, i) => generator.generate('train', 1 + i));
    const batches0 = model.batcher.stats.batches;
    const rows0 = model.batcher.stats.rows;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const trajectories = await rollout({ model, tasks, groupSize: GROUP, loops });
    const wall = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const steps = trajectories.flatMap((t) => t.steps);
    const tokens = steps.reduce((n, s) => n + s.responseTokens.length, 0);
    const promptTokens = steps.reduce((n, s) => n + s.promptTokens.length, 0);
    const batches = model.batcher.stats.batches - batches0;
    const rows = model.batcher.stats.rows - rows0;
    const results = {
      household_rollout_steps_per_s: steps.length / wall,
      rollout_tokens_per_s: tokens / wall,
    };
    const cpuS = (cpu.user + cpu.system) / 1e6;
    const report = [
      `Household rollout: ${trajectories.length} trajectories (${TASKS} tasks x ${GROUP}) at once on the untrained`,
      `\`small\` policy (${policy.config.layers} layers, width ${policy.config.width}, vocabulary ${tokenizer.vocabSize}),`,
      `at most ${MAX_STEPS} steps and ${MAX_TOKENS} response tokens each, temperature 1, through one PolicyChatModel:`,
      `${steps.length} steps, ${tokens} response tokens and ${promptTokens} prompt tokens`,
      `(${formatNumber(promptTokens / steps.length)} per prompt) in ${formatNumber(wall)} s wall and ${formatNumber(cpuS)} s CPU`,
      `(${formatNumber(steps.length / cpuS)} steps and ${formatNumber(tokens / cpuS)} response tokens per CPU second;`,
      `load average ${formatNumber(loadavg()[0]!)} on ${availableParallelism()} cores), in ${batches} decode batches of`,
      `${formatNumber(rows / batches)} rows on average. Prefilling the prompts (${formatNumber(promptTokens / tokens)} tokens per generated one) is most of`,
      'the work. An untrained policy answers without the tags, so every step is invalid and the env is never',
      'stepped: the figure is the agent side (prompting, batched prefill and decode, parsing), which is what',
      'limits a rollout; a valid step adds a household env step of microseconds.',
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
