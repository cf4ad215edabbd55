/**
 * AgentFlow's planner trained locally with Flow-GRPO while the executor, verifier, generator (and
 * the query analysis) call an OpenAI-compatible endpoint: the setting of the AgentFlow paper,
 * where only the planner learns and the other modules are a fixed model.
 *
 * The endpoint, in order of preference:
 *   - OPENAI_BASE_URL (+ OPENAI_API_KEY, OPENAI_MODEL): a real endpoint (OpenAI, vLLM...). The
 *     local planner is then SFT'd from scratch on the gold replays.
 *   - STEPWISE_SERVE_CHECKPOINT: a stepwise checkpoint this scenario serves itself.
 *   - otherwise an SFT'd checkpoint it makes first (kept under runs/, reused on the next run).
 * A served checkpoint runs in this process (`stepwise serve` on a free port of 127.0.0.1), and the
 * planner starts from the same checkpoint.
 *
 *   npx tsx scenarios/agentflow-openai.ts
 *   npx stepwise train scenarios/agentflow-openai.ts
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import {
  agentflowFamily,
  domainTokenizer,
  isMain,
  openStore,
  Policy,
  PolicyServer,
  parseTrainConfig,
  runScenario,
  runSft,
  SftConfig,
  sftSamples,
  type TrainConfigInput,
} from '../src/index.ts';
import flowGrpo from './agentflow-flowgrpo.ts';

const db = 'runs/agentflow-openai.db';
const runId = 'agentflow-openai';
/** Where the scenario keeps the SFT checkpoint it serves by default. */
const sftDir = 'runs/agentflow-openai-sft';
const servedModel = 'agentflow-sft';

/** Every run of this scenario: the tasks, the policy and the RL settings of agentflow-flowgrpo. */
const base = { ...flowGrpo, db, runId } satisfies TrainConfigInput;

/** SFT of every AgentFlow role on one fresh policy, saved to `dir` (skipped when it is there). */
async function sftCheckpoint(dir: string): Promise<string> {
  if (existsSync(join(dir, 'config.json'))) return dir;
  const config = parseTrainConfig({ ...base, db: join(dir, 'unused.db') });
  const family = agentflowFamily(config, {});
  try {
    const demos = (split: 'train' | 'valid-seen', n: number, offset: number) =>
      family.demonstrations(Array.from({ length: n }, (_, k) => family.task(split, offset + k)));
    const train = await demos('train', config.sft.tasks, 1_000_000);
    const valid = await demos('valid-seen', config.sft.validTasks, 1_000_000);
    const tokenizer = await domainTokenizer({ ...config.policy, demos: train });
    const policy = Policy.create({
      model: config.policy.model ?? config.policy.preset,
      tokenizer,
      seed: config.seed,
    });
    const context = policy.config.contextLength;
    const sft = SftConfig.parse(base.sft);
    const result = await runSft(
      policy,
      sftSamples(train, tokenizer, context),
      sftSamples(valid, tokenizer, context),
      sft,
      { log: (line) => console.log(line) },
    );
    console.log(
      `sft of the served modules: ${result.steps} steps, valid loss ${result.validLoss.toFixed(4)}`,
    );
    await policy.save(dir);
    await policy.dispose();
    return dir;
  } finally {
    await family.close?.();
  }
}

/**
 * Serves `checkpoint` in this process. The server is closed once the run `target()` names has
 * finished, so that `stepwise train` (which imports this file and runs its config) can exit; the
 * target is read at each check because the command's flags (--db) are set on the exported config.
 */
async function serve(checkpoint: string, target: () => { db: string; runId: string }): Promise<string> {
  const policy = await Policy.load(checkpoint);
  const server = new PolicyServer(policy, { port: 0, modelId: servedModel });
  const url = await server.listen();
  console.log(`serving ${checkpoint} as '${servedModel}' at ${url}`);
  let started = false;
  const watch = setInterval(() => {
    const { db, runId } = target();
    if (!existsSync(db)) return;
    const store = openStore(db, { readonly: true });
    const status = store.run(runId)?.status;
    store.close();
    // A resumed run is 'finished' from before until the trainer marks it running again.
    if (status === 'running') started = true;
    else if (started && status !== undefined) {
      clearInterval(watch);
      void server.close().then(() => policy.dispose());
    }
  }, 1000);
  watch.unref();
  return url;
}

async function makeConfig(): Promise<TrainConfigInput> {
  const remote = process.env.OPENAI_BASE_URL;
  if (remote) {
    const endpoint = {
      baseURL: remote,
      model: process.env.OPENAI_MODEL ?? 'gpt-4o-mini',
      ...(process.env.OPENAI_API_KEY ? { apiKey: process.env.OPENAI_API_KEY } : {}),
    };
    return { ...base, agentOptions: { ...base.agentOptions, endpoint } };
  }
  const checkpoint = process.env.STEPWISE_SERVE_CHECKPOINT ?? (await sftCheckpoint(sftDir));
  const target = () => ({ db: String(config?.db ?? db), runId: String(config?.runId ?? runId) });
  const endpoint = { baseURL: await serve(checkpoint, target), model: servedModel, apiKey: 'local' };
  return {
    ...base,
    agentOptions: { ...base.agentOptions, endpoint },
    // The planner starts from the served checkpoint: the modules begin as one model.
    policy: { checkpoint },
    sft: { enabled: false },
  };
}

let config: TrainConfigInput | undefined;
config = await makeConfig();
export default config;

if (isMain(import.meta.url)) await runScenario(config);
