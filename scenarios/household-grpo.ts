/**
 * The household world (ALFWorld-style, six task types) trained with GRPO, the baseline: every step
 * of a rollout gets its trajectory's outcome, normalized within the group of G rollouts of the
 * task.
 *
 * SFT on the exploring expert's demonstrations warm-starts the tiny policy (it is also the
 * reference), then RL; evaluation before and after on valid-seen and valid-unseen.
 *
 *   npx tsx scenarios/household-grpo.ts
 *   npx stepwise train scenarios/household-grpo.ts [--iterations N] [--seed N] [--db runs/x.db]
 */
import { HOUSEHOLD_DEFAULT, isMain, runScenario, type TrainConfigInput } from '../src/index.ts';

const config: TrainConfigInput = {
  ...HOUSEHOLD_DEFAULT,
  estimator: 'grpo',
  db: 'runs/household-grpo.db',
  runId: 'household-grpo',
};

export default config;

if (isMain(import.meta.url)) await runScenario(config);
