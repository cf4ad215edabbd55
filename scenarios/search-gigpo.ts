/**
 * GiGPO on search QA, the IGPO scenario's setting with GiGPO's step groups: searches whose
 * results (the step's anchor) are at least 90% similar count as the same state, so a search can
 * be credited against the other rollouts' searches that found the same document.
 *
 *   npx tsx scenarios/search-gigpo.ts
 *   npx stepwise train scenarios/search-gigpo.ts
 */
import { isMain, runScenario, type TrainConfigInput } from '../src/index.ts';
import igpo from './search-igpo.ts';

const config = {
  ...igpo,
  estimator: 'gigpo',
  estimatorOptions: { similarity: 0.9 },
  db: 'runs/search-gigpo.db',
  runId: 'search-gigpo',
} satisfies TrainConfigInput;

export default config;

if (isMain(import.meta.url)) await runScenario(config);
