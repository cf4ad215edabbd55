/**
 * `stepwise train [config] [--estimator ...] [--iterations N] [--device cpu|cuda] [--db runs/<name>.db]
 * [--resume] [--run <id>] [--seed N] [--summary <file>]`: SFT warm-start, the RL iterations, the
 * before/after table, a learning-curve SVG beside the store, and optionally the summary as JSON.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Command } from 'commander';
import type { ServedAgent } from '../../training/families/served.ts';

interface TrainFlags {
  estimator?: string;
  iterations?: string;
  device?: string;
  dtype?: string;
  db?: string;
  resume?: boolean;
  run?: string;
  seed?: string;
  summary?: string;
  progress?: boolean;
  promptFormat?: string;
  queue?: boolean;
  maxStaleness?: string;
  lease?: string;
}

/** A served agent function a config module exports as `agent` (agent: 'served'). */
let moduleAgent: unknown;

/**
 * A config file: JSON, or a module whose default (or `config`) export is the config object (and
 * whose `agent` export, if any, is the served agent function). A TypeScript module (a scenario) is
 * loaded through tsx, which the compiled CLI otherwise never needs.
 */
async function readConfig(file: string | undefined): Promise<Record<string, unknown>> {
  if (file === undefined) return {};
  if (file.endsWith('.json')) {
    const text = await readFile(file, 'utf8').catch((err: Error) => {
      throw new Error(`cannot read config ${file}: ${err.message}`);
    });
    try {
      return JSON.parse(text) as Record<string, unknown>;
    } catch (err) {
      throw new Error(`config ${file} is not valid JSON: ${(err as Error).message}`);
    }
  }
  const url = pathToFileURL(resolve(file)).href;
  const load = /\.[cm]?tsx?$/.test(file)
    ? async () => (await import('tsx/esm/api')).tsImport(url, import.meta.url)
    : async () => import(url);
  let mod = (await load()) as { default?: unknown; config?: unknown; agent?: unknown };
  // A TypeScript file outside an ESM package loads as CommonJS: its exports arrive as `default`.
  if (mod.config === undefined && isModuleLike(mod.default)) mod = mod.default;
  if (mod.agent !== undefined && typeof mod.agent !== 'function') {
    throw new Error(
      `${file} exports \`agent\`, but it is not a function (expected the served agent function)`,
    );
  }
  moduleAgent = mod.agent;
  const config = mod.config ?? mod.default;
  if (typeof config !== 'object' || config === null) {
    throw new Error(
      `${file} exports no config object (expected \`export default { ... }\` or \`export const config\`)`,
    );
  }
  return config as Record<string, unknown>;
}

function isModuleLike(v: unknown): v is { default?: unknown; config?: unknown; agent?: unknown } {
  return typeof v === 'object' && v !== null && ('default' in v || 'config' in v);
}

function integer(flag: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n)) throw new Error(`${flag} must be an integer, got "${value}"`);
  return n;
}

export function registerTrain(program: Command): void {
  program
    .command('train')
    .description('SFT then RL with a credit-assignment estimator; before/after table, learning curve, store')
    .argument('[config]', 'a JSON config file (or a module exporting one); flags override it')
    .option('--estimator <name>', 'grpo, gigpo, hgpo or rloo')
    .option('--iterations <n>', 'RL iterations')
    .option('--device <name>', "'cpu' or 'cuda'")
    .option(
      '--dtype <type>',
      "policy.dtype, the compute precision of rollouts, scoring and updates (weights stay float32): 'float32', 'float16' or 'bfloat16' (half precision is for --device cuda)",
    )
    .option('--db <file>', 'the trajectory store (default runs/train.db)')
    .option(
      '--resume',
      'continue the run stored in --db, with its stored config, from its last complete iteration',
    )
    .option('--run <id>', 'the run (its runId): which run of --db to resume, or the id of a new one')
    .option('--seed <n>', 'seed of weights, task draws and sampling')
    .option('--summary <file>', 'write the before/after table as JSON')
    .option(
      '--prompt-format <format>',
      "household prompt: 'growing' (the whole trajectory) or 'windowed' (the last loop.history steps)",
    )
    .option('--no-progress', 'no progress bars')
    .option(
      '--queue',
      'roll out through a job queue in the PostgreSQL --db: start `stepwise worker --db <same URL>` anywhere',
    )
    .option('--max-staleness <n>', 'with --queue: train on rollouts up to n policy versions old (default 0)')
    .option(
      '--lease <seconds>',
      'with --queue: a job whose worker is silent this long is retried (default 600)',
    )
    .action(async (file: string | undefined, flags: TrainFlags) => {
      const { parseTrainConfig } = await import('../../training/config.ts');
      const { train } = await import('../../training/trainer.ts');
      const { reportRun } = await import('../scenario.ts');
      const { HOUSEHOLD_DEFAULT } = await import('../../training/presets.ts');
      const { resumeInput } = await import('../resume.ts');
      const flagged: Record<string, unknown> = {
        estimator: flags.estimator,
        iterations: flags.iterations === undefined ? undefined : integer('--iterations', flags.iterations),
        device: flags.device,
        seed: flags.seed === undefined ? undefined : integer('--seed', flags.seed),
        runId: flags.run,
      };
      const fileConfig = file === undefined ? undefined : await readConfig(file);
      let input: Record<string, unknown>;
      if (flags.resume && flags.promptFormat !== undefined) {
        throw new Error(
          "--prompt-format cannot change a resumed run's prompts; it keeps its stored loop.promptFormat",
        );
      }
      if (flags.resume) {
        const db = flags.db ?? (fileConfig?.db as string | undefined);
        if (db === undefined) throw new Error('--resume needs --db <the store of the run to continue>');
        const runId = flags.run ?? (fileConfig?.runId as string | undefined);
        input = resumeInput(db, { runId, config: fileConfig, flags: flagged });
      } else {
        // No config: the embedded default (what `npm start` runs).
        input = fileConfig ?? structuredClone(HOUSEHOLD_DEFAULT);
        for (const [key, value] of Object.entries(flagged)) if (value !== undefined) input[key] = value;
        if (flags.promptFormat !== undefined) {
          input.loop = { ...(input.loop as object | undefined), promptFormat: flags.promptFormat };
        }
        if (flags.db !== undefined) input.db = flags.db;
        if (input.db === undefined) {
          // A fresh store per run, so that running the same command twice never collides.
          const stamp = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
          input.db = `runs/${String(input.runId ?? 'train')}-${stamp}.db`;
        }
      }
      // A resumed run may change it: the precision of rollouts is not part of the experiment's identity.
      if (flags.dtype !== undefined) {
        input.policy = { ...(input.policy as object | undefined), dtype: flags.dtype };
      }
      // Checked before any work: a bad config names its field here.
      parseTrainConfig(input);
      if (!flags.queue && (flags.maxStaleness !== undefined || flags.lease !== undefined)) {
        throw new Error('--max-staleness and --lease apply to --queue rollouts only; add --queue');
      }
      const { isPostgresUrl } = await import('../../store/postgres/store.ts');
      if (flags.queue && !isPostgresUrl(String(input.db))) {
        throw new Error(
          `--queue needs a PostgreSQL store every worker reaches (--db postgres://...); ${String(input.db)} is a SQLite file`,
        );
      }
      const { progressBars } = await import('../progress.ts');
      const rollout = flags.queue
        ? (await import('../../distributed/learner.ts')).queueRollout({
            maxStaleness:
              flags.maxStaleness === undefined ? 0 : integer('--max-staleness', flags.maxStaleness),
            leaseSeconds: flags.lease === undefined ? undefined : integer('--lease', flags.lease),
          })
        : undefined;
      const result = await train(input, {
        resume: flags.resume,
        ...(moduleAgent ? { servedAgent: moduleAgent as ServedAgent } : {}),
        onProgress: flags.progress === false ? undefined : progressBars(),
        rollout,
      });
      await reportRun(result, input, { summary: flags.summary });
    });
}
