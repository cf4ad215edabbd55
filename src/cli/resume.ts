/**
 * `stepwise train --resume`: the config a resumed run trains with is the one its store holds (the
 * trainer stores the parsed config when it creates the run), so `train --db <db> --resume` needs
 * nothing else. A config given as well must be that same config; only the fields that say how
 * long to go on, and where, may differ.
 */
import { openStore } from '../store/store.ts';
import { parseTrainConfig, type TrainConfig } from '../training/config.ts';

/** Fields a resumed run may change: when it stops, the device it runs on, where its files go. */
export const RESUMABLE_FIELDS = ['iterations', 'envStepBudget', 'device', 'db', 'checkpointDir'] as const;

type Input = Record<string, unknown>;

/**
 * The input to resume with: the stored run's config with the RESUMABLE_FIELDS that `config` and
 * `flags` name applied.
 * The run is `runId` when given (a config's or `--run`), else the store's only run. A `config`
 * (from a file) with `flags` over it, or the stored config with other `flags` over it, must parse
 * to the stored config apart from RESUMABLE_FIELDS, or the error lists each differing field.
 */
export function resumeInput(db: string, options: { runId?: string; config?: Input; flags: Input }): Input {
  const store = openStore(db, { readonly: true });
  let stored: Input;
  try {
    const runs = store.runs();
    const runId = options.runId;
    const run = runId === undefined ? runs[0] : store.run(runId);
    if (runs.length === 0) throw new Error(`--resume: ${db} holds no run to resume`);
    if (runId === undefined && runs.length > 1) {
      throw new Error(
        `--resume: ${db} holds ${runs.length} runs (${runs.map((r) => r.runId).join(', ')}); name one with --run <id>`,
      );
    }
    if (!run) {
      throw new Error(
        `--resume: ${db} holds no run '${runId}'; its runs: ${runs.map((r) => r.runId).join(', ')}`,
      );
    }
    // `reference` is the trainer's own note beside the config (where the reference policy is).
    const { reference: _reference, ...config } = run.config as Input;
    stored = config;
  } finally {
    store.close();
  }
  const flags = Object.fromEntries(Object.entries(options.flags).filter(([, v]) => v !== undefined));
  // What the user wrote (config, then flags over it) changes the RESUMABLE_FIELDS it names.
  const changes = Object.fromEntries(
    Object.entries({ ...options.config, ...flags }).filter(([k, v]) => v !== undefined && isResumable(k)),
  );
  const input: Input = { ...stored, ...changes, db };
  const given = options.config
    ? { ...options.config, ...flags, db }
    : Object.keys(flags).some((k) => !isResumable(k))
      ? { ...input, ...flags }
      : undefined;
  if (given) {
    const differences = configDifferences(parseTrainConfig(stored), parseTrainConfig(given));
    if (differences.length > 0) {
      throw new Error(
        `--resume: the config differs from the stored run's in ${differences.join('; ')}. ` +
          `A resumed run keeps its config (only ${RESUMABLE_FIELDS.join(', ')} may change); ` +
          'resume without a config to use the stored one, or start a new run in another --db',
      );
    }
  }
  return input;
}

function isResumable(field: string): boolean {
  return (RESUMABLE_FIELDS as readonly string[]).includes(field);
}

/** `field: stored -> given` for every leaf that differs, outside RESUMABLE_FIELDS. */
export function configDifferences(stored: TrainConfig, given: TrainConfig): string[] {
  const out: string[] = [];
  const walk = (path: string, a: unknown, b: unknown) => {
    if (isPlainObject(a) && isPlainObject(b)) {
      for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
        walk(path ? `${path}.${key}` : key, a[key], b[key]);
      }
    } else if (JSON.stringify(a) !== JSON.stringify(b)) {
      out.push(`${path}: stored ${JSON.stringify(a) ?? 'unset'}, given ${JSON.stringify(b) ?? 'unset'}`);
    }
  };
  for (const key of new Set([...Object.keys(stored), ...Object.keys(given)])) {
    if (isResumable(key)) continue;
    walk(key, (stored as Input)[key], (given as Input)[key]);
  }
  return out;
}

function isPlainObject(v: unknown): v is Input {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
