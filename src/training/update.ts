/**
 * An iteration's update: token rows (the step's advantage on every response token, behaviour and
 * reference log-probs from the scoring graph), then PPO epochs of shuffled mini-batches through
 * `Policy.update`, with the loss built from the config's `ppo` section. A non-finite loss or a KL
 * past `ppo.maxKl` stops the run (`DivergenceError`) with its last good checkpoint named.
 */

import type { Policy } from '../policy/policy.ts';
import type { TokenRow } from '../policy/runtime/runner.ts';
import { Rng } from '../util/random.ts';
import { mean, type RunContext } from './context.ts';
import type { TrainStep } from './credit.ts';

/** A run that stopped because its update went wrong; its last good checkpoint is kept. */
export class DivergenceError extends Error {
  constructor(
    message: string,
    readonly lastGoodCheckpoint: string,
  ) {
    super(`${message}; the run stopped, its last good checkpoint is ${lastGoodCheckpoint}`);
    this.name = 'DivergenceError';
  }
}

/** Means over an iteration's mini-batches, and its throughput. */
export interface UpdateResult {
  loss: number;
  kl: number;
  entropy: number;
  clipFraction: number;
  gradNorm: number;
  /** Response tokens trained on, over all epochs. */
  tokens: number;
  seconds: number;
}

/**
 * Token rows of an iteration: prompt + response tokens, the loss mask on the response, the step's
 * advantage broadcast to its response tokens, and the behaviour (current policy) and reference
 * log-probs of the response tokens from the scoring graph.
 */
export async function tokenRows(
  policy: Policy,
  reference: Policy,
  steps: readonly TrainStep[],
  chunk = 32,
): Promise<TokenRow[]> {
  const rows: TokenRow[] = [];
  for (let i = 0; i < steps.length; i += chunk) {
    const part = steps.slice(i, i + chunk);
    const pairs = part.map((s) => ({ prompt: s.prompt, continuation: s.response }));
    const [old, ref] = [await policy.scoreBatch(pairs), await reference.scoreBatch(pairs)];
    part.forEach((s, j) => {
      const pad = s.prompt.map(() => 0);
      rows.push({
        tokens: [...s.prompt, ...s.response],
        mask: [...pad, ...s.response.map(() => 1)],
        advantages: [...pad, ...s.response.map(() => s.advantage)],
        // A stale rollout's ratio is against the policy that sampled it (its behaviour log-probs).
        oldLogprobs: [...pad, ...(s.behaviourLogprobs ?? old[j]!)],
        refLogprobs: [...pad, ...ref[j]!],
      });
    });
  }
  return rows;
}

/** PPO on iteration `it`'s steps; `lastGood` is the checkpoint a divergence names. */
export async function update(
  ctx: RunContext,
  it: number,
  steps: readonly TrainStep[],
  lastGood: string,
): Promise<UpdateResult> {
  const { config, policy } = ctx;
  const { epochs, miniBatchSize, maxKl } = config.ppo;
  const started = performance.now();
  const rows = await tokenRows(policy, ctx.reference, steps);
  // LossConfig strips the keys that are not the loss's (epochs, miniBatchSize, maxKl).
  const loss = { kind: 'rl' as const, ...config.ppo };
  const rng = new Rng(`ppo:${config.seed}:${it}`);
  const seen = {
    loss: [] as number[],
    kl: [] as number[],
    entropy: [] as number[],
    clipFraction: [] as number[],
    gradNorm: [] as number[],
  };
  let tokens = 0;
  ctx.progress({
    type: 'start',
    phase: 'update',
    iteration: it,
    total: Math.ceil(rows.length / miniBatchSize) * epochs,
  });
  try {
    for (let epoch = 0; epoch < epochs; epoch++) {
      const order = rng.shuffle(rows.map((_, i) => i));
      for (let b = 0; b < order.length; b += miniBatchSize) {
        const m = await policy.update(
          order.slice(b, b + miniBatchSize).map((i) => rows[i]!),
          loss,
        );
        if (m.skipped || !Number.isFinite(m.loss)) {
          throw new DivergenceError(
            `iteration ${it}: the loss (${m.loss}) or gradient norm (${m.gradNorm}) is not finite`,
            lastGood,
          );
        }
        if (m.kl > maxKl) {
          throw new DivergenceError(
            `iteration ${it}: the KL to the reference (${m.kl.toFixed(4)}) passed ppo.maxKl (${maxKl})`,
            lastGood,
          );
        }
        for (const k of Object.keys(seen) as (keyof typeof seen)[]) seen[k].push(m[k]);
        tokens += m.tokens;
        ctx.progress({ type: 'advance', phase: 'update', done: seen.loss.length });
      }
    }
  } finally {
    ctx.progress({ type: 'end', phase: 'update' });
  }
  return {
    loss: mean(seen.loss),
    kl: mean(seen.kl),
    entropy: mean(seen.entropy),
    clipFraction: mean(seen.clipFraction),
    gradNorm: mean(seen.gradNorm),
    tokens,
    seconds: (performance.now() - started) / 1000,
  };
}
