/**
 * `stepwise serve --checkpoint <dir> [--port 8000] [--host 127.0.0.1] [--prefix-cache-mb 256]
 * [--record <db>]`: serve a policy over the OpenAI API until interrupted; with `--record`,
 * completions of rollouts (`x-stepwise-rollout`) and their rewards (`POST /v1/rewards`) go into
 * the store. A checkpoint with named adapters (`policy.adapters`) serves the base and each adapter
 * under its own model name.
 */
import { basename, resolve } from 'node:path';
import type { Command } from 'commander';
import { Policy } from '../../policy/policy.ts';
import { PolicyServer } from '../../serve/server.ts';
import { openStore } from '../../store/index.ts';
import { ServedLog } from '../../store/served.ts';

interface ServeFlags {
  checkpoint: string;
  port: string;
  host: string;
  model?: string;
  maxBatch: string;
  device: string;
  dtype: string;
  prefixCacheMb: string;
  record?: string;
  contextLength?: string;
}

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description(
      'serve a policy checkpoint over the OpenAI API (/v1/models, /v1/chat/completions, /v1/completions)',
    )
    .requiredOption('--checkpoint <dir>', 'a checkpoint folder (from init-policy or training)')
    .option('--port <n>', 'port (0: any free port)', '8000')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option(
      '--model <id>',
      "the base model's id (default: the checkpoint folder name); a checkpoint's named adapters are served under their own names",
    )
    .option('--max-batch <n>', 'most rows per decode batch', '64')
    .option('--device <device>', 'cpu or cuda', 'cpu')
    .option(
      '--dtype <type>',
      "compute precision of generation: 'float32', 'float16' or 'bfloat16' (half precision is for --device cuda)",
      'float32',
    )
    .option(
      '--prefix-cache-mb <n>',
      'bound of the prefix cache (keys and values of prompts seen before), in MiB; 0 turns it off',
      '256',
    )
    .option(
      '--record <db>',
      'record completions sent with x-stepwise-rollout (and POST /v1/rewards) into this trajectory store',
    )
    .option('--context-length <n>', 'a Hugging Face folder: context length (default min(model max, 4096))')
    .action(async (opts: ServeFlags) => {
      const port = Number(opts.port);
      const maxBatch = Number(opts.maxBatch);
      if (!Number.isInteger(port) || port < 0 || port > 65535) {
        throw new Error(`--port must be an integer from 0 to 65535, got "${opts.port}"`);
      }
      if (!Number.isInteger(maxBatch) || maxBatch < 1) {
        throw new Error(`--max-batch must be a positive integer, got "${opts.maxBatch}"`);
      }
      const prefixCacheMb = Number(opts.prefixCacheMb);
      if (!Number.isFinite(prefixCacheMb) || prefixCacheMb < 0) {
        throw new Error(`--prefix-cache-mb must be a number of MiB >= 0, got "${opts.prefixCacheMb}"`);
      }
      const contextLength = opts.contextLength === undefined ? undefined : Number(opts.contextLength);
      if (contextLength !== undefined && !(Number.isInteger(contextLength) && contextLength >= 2)) {
        throw new Error(`--context-length must be an integer >= 2, got "${opts.contextLength}"`);
      }
      // Opened first: a file that is not a stepwise store is refused before the model loads.
      const store = opts.record === undefined ? undefined : openStore(opts.record);
      const policy = await Policy.load(opts.checkpoint, {
        device: opts.device,
        dtype: opts.dtype,
        prefixCacheBytes: Math.floor(prefixCacheMb * 2 ** 20),
        contextLength,
      });
      const modelId = opts.model ?? basename(resolve(opts.checkpoint));
      const recorder = store ? new ServedLog(store) : undefined;
      const server = new PolicyServer(policy, { host: opts.host, port, modelId, maxBatch }, recorder);
      const url = await server.listen();
      const adapters = policy.adapterNames;
      console.log(
        `serving model "${modelId}"${adapters.length > 0 ? ` and its adapters ${adapters.map((a) => `"${a}"`).join(', ')}` : ''} ` +
          `at ${url}${store ? `, recording rollouts into ${opts.record}` : ''} (Ctrl-C to stop)`,
      );
      const stop = async () => {
        await server.close();
        store?.close();
        await policy.dispose();
        process.exit(0);
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
}
