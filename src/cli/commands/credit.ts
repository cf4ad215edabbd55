/**
 * `stepwise credit`: run an estimator over a JSONL file of step rows (a store export, or rows
 * from elsewhere) and write the same rows with `advantage` and `credit` added.
 */
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { estimators } from '../../credit/estimators.ts';
import { creditJsonl } from '../../credit/jsonl.ts';
import { type EstimatorName, estimatorNames } from '../../credit/types.ts';
import { parseOrThrow } from '../../util/zod.ts';

/** CLI flag -> estimator option, with how its value is read. */
const flags: Array<{ flag: string; key: string; kind: 'number' | 'int' | 'string' | 'boolean' }> = [
  { flag: '--mode', key: 'mode', kind: 'string' },
  { flag: '--gamma', key: 'gamma', kind: 'number' },
  { flag: '--step-weight', key: 'stepWeight', kind: 'number' },
  { flag: '--similarity', key: 'similarity', kind: 'number' },
  { flag: '--history', key: 'history', kind: 'int' },
  { flag: '--alpha', key: 'alpha', kind: 'number' },
  { flag: '--base-group', key: 'baseGroup', kind: 'boolean' },
  { flag: '--penalty', key: 'penaltyCoef', kind: 'number' },
  { flag: '--statistics', key: 'statistics', kind: 'string' },
  { flag: '--info-gain', key: 'infoGain', kind: 'string' },
  { flag: '--norm', key: 'norm', kind: 'string' },
  { flag: '--normalize-over', key: 'normalizeOver', kind: 'string' },
];

interface CreditFlags {
  estimator: string;
  in: string;
  out: string;
  /** false for --no-penalty, the coefficient's text for --penalty <coef>, undefined when neither. */
  penalty?: string | false;
  [key: string]: unknown;
}

/** Estimator options from the command line; fails on a flag the estimator does not have. */
export function optionsFromFlags(estimator: EstimatorName, opts: CreditFlags): Record<string, unknown> {
  const shape = estimators[estimator].options.shape;
  const applies = (key: string) => key in shape;
  const out: Record<string, unknown> = {};
  const given = (flag: string) => opts[camel(flag)];
  for (const { flag, key, kind } of flags) {
    const raw = flag === '--penalty' ? (opts.penalty === false ? undefined : opts.penalty) : given(flag);
    if (raw === undefined) continue;
    if (!applies(key)) {
      const users = estimatorNames.filter((n) => key in estimators[n].options.shape);
      throw new Error(
        `option ${flag} does not apply to estimator ${estimator} (it applies to: ${users.join(', ')})`,
      );
    }
    if (kind === 'boolean') out[key] = true;
    else if (kind === 'string') out[key] = raw;
    else {
      const x = Number(raw);
      if (raw === '' || !Number.isFinite(x) || (kind === 'int' && !Number.isInteger(x))) {
        throw new Error(
          `option ${flag}: expected ${kind === 'int' ? 'an integer' : 'a number'}, got '${String(raw)}'`,
        );
      }
      out[key] = x;
    }
  }
  if (opts.penalty !== undefined) {
    if (!applies('penalty')) {
      const users = estimatorNames.filter((n) => 'penalty' in estimators[n].options.shape);
      const flag = `--${opts.penalty === false ? 'no-' : ''}penalty`;
      throw new Error(
        `option ${flag} does not apply to estimator ${estimator} (it applies to: ${users.join(', ')})`,
      );
    }
    out.penalty = opts.penalty !== false;
  }
  // Validate here, so that a bad value names its flag rather than the option's field.
  parseOrThrow(estimators[estimator].options, out, ({ field, message }) => {
    const key = field.split('.')[0]!;
    return new Error(`option ${flags.find((f) => f.key === key)?.flag ?? key}: ${message}`);
  });
  return out;
}

function camel(flag: string): string {
  return flag.slice(2).replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

export function registerCredit(program: Command): void {
  program
    .command('credit')
    .description('compute advantages for a JSONL file of step rows (one JSON object per line)')
    .requiredOption('--estimator <name>', `one of: ${estimatorNames.join(', ')}`)
    .requiredOption(
      '--in <file>',
      'input rows: groupId, trajectoryId, stepIndex, anchor, envReward, valid, ...',
    )
    .requiredOption('--out <file>', 'output: every input row, in order, with advantage and credit added')
    .option('--mode <mode>', 'mean_norm | mean_std_norm (grpo, gigpo, hgpo)')
    .option('--gamma <x>', 'discount (gigpo, hgpo: 0.95; igpo: 1)')
    .option('--step-weight <x>', 'w in A = A_E + w * A_S (gigpo: 1)')
    .option('--similarity <threshold>', 'cluster text anchors with difflib ratio >= threshold (gigpo)')
    .option('--history <H>', 'history depth; levels 1..H+1 (hgpo: 2)')
    .option('--alpha <x>', 'level weights (k+1)^alpha (hgpo: 1)')
    .option('--base-group', "add GiGPO's episode advantage as level 0 (hgpo)")
    .option(
      '--penalty <coef>',
      'invalid-action penalty (grpo, gigpo, hgpo, rloo: 0.1); igpo: format penalty (2)',
    )
    .option('--no-penalty', 'no invalid-action / format penalty')
    .option('--statistics <over>', 'steps | trajectories (grpo)')
    .option('--info-gain <kind>', 'prob_diff | log_prob_diff (igpo)')
    .option('--norm <pools>', 'separate | joint (igpo)')
    .option('--normalize-over <over>', 'turns | trajectories (flow-grpo)')
    .action((opts: CreditFlags) => {
      if (!(estimatorNames as readonly string[]).includes(opts.estimator)) {
        throw new Error(
          `unknown estimator '${opts.estimator}'; expected one of: ${estimatorNames.join(', ')}`,
        );
      }
      const estimator = opts.estimator as EstimatorName;
      const options = optionsFromFlags(estimator, opts);
      let text: string;
      try {
        text = readFileSync(opts.in, 'utf8');
      } catch (err) {
        throw new Error(`cannot read --in ${opts.in}: ${(err as Error).message}`);
      }
      // Everything is computed before anything is written; the output appears whole, by rename.
      const { output, diagnostics, rows } = creditJsonl(text, estimator, options);
      const tmp = path.join(path.dirname(opts.out), `.${path.basename(opts.out)}.${process.pid}.tmp`);
      try {
        writeFileSync(tmp, output);
        renameSync(tmp, opts.out);
      } catch (err) {
        rmSync(tmp, { force: true });
        throw err;
      }
      console.log(`credit: ${estimator} over ${rows} rows -> ${opts.out}`);
      console.log(JSON.stringify(diagnostics));
    });
}
