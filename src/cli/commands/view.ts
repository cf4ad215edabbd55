/**
 * `stepwise view --db <file> [--port 7007] [--host 127.0.0.1] [--tokenizer <file|dir>]`: the trajectory
 * replay viewer over a store, until interrupted.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { Tokenizer } from '../../policy/tokenizer/tokenizer.ts';
import type { TrajectoryStore } from '../../store/index.ts';
import { startViewer } from '../../viewer/server.ts';

interface ViewFlags {
  db: string;
  port: string;
  host: string;
  tokenizer?: string;
}

function loadTokenizer(path: string): Tokenizer {
  const file = existsSync(path) && statSync(path).isDirectory() ? join(path, 'tokenizer.json') : path;
  if (!existsSync(file))
    throw new Error(`no tokenizer at ${file}; expected a tokenizer.json or a checkpoint folder`);
  return Tokenizer.fromJSON(readFileSync(file, 'utf8'));
}

/**
 * Token texts per run: the --tokenizer given, else the tokenizer.json of the run's newest checkpoint
 * (a relative checkpoint path is looked up from the store's folder, then from here).
 */
export function tokenDecoder(flag: string | undefined, db: string) {
  const fixed = flag === undefined ? undefined : loadTokenizer(flag);
  const perRun = new Map<string, Tokenizer | undefined>();
  const decoderOf = (t: Tokenizer) => (id: number) => t.decode([id]);
  return (store: TrajectoryStore) =>
    (runId: string): ((id: number) => string) | undefined => {
      if (fixed) return decoderOf(fixed);
      if (!perRun.has(runId)) {
        let found: Tokenizer | undefined;
        for (const c of store.checkpoints(runId).reverse()) {
          const dirs = isAbsolute(c.path) ? [c.path] : [resolve(dirname(db), c.path), resolve(c.path)];
          const dir = dirs.find((d) => existsSync(join(d, 'tokenizer.json')));
          if (dir) {
            found = loadTokenizer(dir);
            break;
          }
        }
        perRun.set(runId, found);
      }
      const t = perRun.get(runId);
      return t ? decoderOf(t) : undefined;
    };
}

export function registerView(program: Command): void {
  program
    .command('view')
    .description(
      'the trajectory replay viewer: runs, learning curves, groups, step-by-step replays and credit',
    )
    .requiredOption('--db <file>', 'the store file (opened read-only)')
    .option('--port <n>', 'port (0: any free port)', '7007')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option(
      '--tokenizer <file>',
      "token texts from this tokenizer.json or checkpoint (default: the run's checkpoints)",
    )
    .action(async (opts: ViewFlags) => {
      const port = Number(opts.port);
      if (!Number.isInteger(port) || port < 0 || port > 65535) {
        throw new Error(`--port must be an integer from 0 to 65535, got "${opts.port}"`);
      }
      const decoders = tokenDecoder(opts.tokenizer, opts.db);
      let store: TrajectoryStore | undefined;
      const viewer = await startViewer({
        db: opts.db,
        port,
        host: opts.host,
        decodeToken: (runId) => (store ? decoders(store)(runId) : undefined),
      });
      store = viewer.store;
      console.log(`stepwise viewer on ${opts.db} at ${viewer.url} (Ctrl-C to stop)`);
      const stop = async () => {
        await viewer.close();
        process.exit(0);
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
}
