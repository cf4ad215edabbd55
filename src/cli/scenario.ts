/**
 * What a finished run leaves and prints (the final table, the learning-curve SVG beside the store,
 * the `--summary` JSON, the viewer command), shared by `stepwise train` and the scenario scripts,
 * which run themselves with `runScenario` when executed directly (`npx tsx scenarios/<file>`).
 */
import { writeFile } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';
import { isPostgresUrl, openStore } from '../store/index.ts';
import { redactUrl } from '../store/postgres/store.ts';
import { parseTrainConfig, type TrainConfigInput } from '../training/config.ts';
import { learningCurveSvg, resultTable, summaryJson } from '../training/report.ts';
import { type TrainHooks, type TrainResult, train } from '../training/trainer.ts';
import { progressBars } from './progress.ts';

/** Print the final table, write the learning curve (and the summary JSON when asked); returns the curve's path. */
export async function reportRun(
  result: TrainResult,
  input: TrainConfigInput,
  options: { summary?: string } = {},
): Promise<string> {
  const config = parseTrainConfig(input);
  console.log(`\n${resultTable(result)}\n`);
  const store = openStore(config.db, { readonly: true });
  const svg = learningCurveSvg(store, config.runId, config.eval.split);
  store.close();
  // A PostgreSQL store has no folder to sit beside: the curve goes beside the checkpoints.
  const curve = isPostgresUrl(config.db)
    ? `${config.checkpointDir}-curve.svg`
    : `${config.db.replace(/\.db$/, '')}-curve.svg`;
  await writeFile(curve, svg);
  if (options.summary) {
    await writeFile(options.summary, `${JSON.stringify(summaryJson(result, { curve }), null, 2)}\n`);
  }
  console.log(`trained policy: ${result.finalCheckpoint}`);
  console.log(`store: ${redactUrl(config.db)}`);
  console.log(`learning curve: ${curve}`);
  console.log(`replay: npx stepwise view --db ${redactUrl(config.db)}`);
  console.log(`continue it: npx stepwise train --db ${redactUrl(config.db)} --resume --iterations <more>`);
  return curve;
}

/** True when `moduleUrl` (a scenario's `import.meta.url`) is the script node was started with. */
export function isMain(moduleUrl: string): boolean {
  return process.argv[1] !== undefined && moduleUrl === pathToFileURL(process.argv[1]).href;
}

/** Train on `config` with progress bars, then report as `stepwise train` does. */
export async function runScenario(config: TrainConfigInput, hooks: TrainHooks = {}): Promise<TrainResult> {
  const result = await train(config, { onProgress: progressBars(), ...hooks });
  await reportRun(result, config);
  return result;
}
