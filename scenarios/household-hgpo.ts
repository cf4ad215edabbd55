/**
 * The household world (ALFWorld-style, six task types) trained with HGPO: each step joins groups
 * at several levels of shared history (the same last 1, 2, ... H+1 anchors across the G rollouts);
 * each level's normalized return is weighted by (k+1)^alpha and mixed.
 *
 * SFT on the exploring expert's demonstrations warm-starts the tiny policy (it is also the
 * reference), then RL; evaluation before and after on valid-seen and valid-unseen.
 *
 *   npx tsx scenarios/household-hgpo.ts
 *   npx stepwise train scenarios/household-hgpo.ts [--iterations N] [--seed N] [--db runs/x.db]
 */
import { HOUSEHOLD_DEFAULT, isMain, runScenario, type TrainConfigInput } from '../src/index.ts';

const config: TrainConfigInput = {
  ...HOUSEHOLD_DEFAULT,
  estimator: 'hgpo',
  db: 'runs/household-hgpo.db',
  runId: 'household-hgpo',
};

export default config;

if (isMain(import.meta.url)) await runScenario(config);
