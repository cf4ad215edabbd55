/**
 * The household world (ALFWorld-style, six task types) trained with GiGPO: the episode-level group
 * advantage plus a step-level one, from the steps of the G rollouts that stood in the same state
 * (anchor) - the paper's ALFWorld method.
 *
 * SFT on the exploring expert's demonstrations warm-starts the tiny policy (it is also the
 * reference), then RL; evaluation before and after on valid-seen and valid-unseen.
 *
 *   npx tsx scenarios/household-gigpo.ts
 *   npx stepwise train scenarios/household-gigpo.ts [--iterations N] [--seed N] [--db runs/x.db]
 */
import { HOUSEHOLD_DEFAULT, isMain, runScenario, type TrainConfigInput } from '../src/index.ts';

const config: TrainConfigInput = {
  ...HOUSEHOLD_DEFAULT,
  estimator: 'gigpo',
  db: 'runs/household-gigpo.db',
  runId: 'household-gigpo',
};

export default config;

if (isMain(import.meta.url)) await runScenario(config);
