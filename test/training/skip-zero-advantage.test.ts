/**
 * `ppo.skipZeroAdvantage` (issue 13): on real household rollouts, the rows whose every advantage is
 * 0 leave the update, the others keep their layout (shared prefixes, packed trajectories), and
 * without KL or entropy terms the rows left give the whole batch's gradient up to the token-mean's
 * count.
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { Policy } from '../../src/index.ts';
import type { TrainStep } from '../../src/training/credit.ts';
import { informative, tokenRows } from '../../src/training/update.ts';
import { tinyPolicy } from '../agents/loops-helpers.ts';
import { householdRollouts, relativeError, trainSteps, weightCopies } from './update-fixtures.ts';

const policies: Policy[] = [];
afterAll(async () => {
  for (const p of policies) await p.dispose();
});

/** Every third trajectory uninformative (all its advantages 0), and one zero step inside another. */
function withZeros(steps: readonly TrainStep[]): TrainStep[] {
  const order = [...new Set(steps.map((s) => s.trajectory))];
  let firstOfSecond = true;
  return steps.map((s) => {
    const k = order.indexOf(s.trajectory);
    if (k % 3 === 0) return { ...s, advantage: 0 };
    if (k === 1 && firstOfSecond) {
      firstOfSecond = false;
      return { ...s, advantage: 0 };
    }
    return s;
  });
}

describe('ppo.skipZeroAdvantage', () => {
  it('leaves out the zero-advantage step rows and keeps the rest as they were, prefixes included', async () => {
    const policy = tinyPolicy(31);
    policies.push(policy);
    const steps = withZeros(
      trainSteps(await householdRollouts(policy, { promptFormat: 'windowed', groupSize: 4, seed: 3 })),
    );
    const zero = steps.filter((s) => s.advantage === 0).length;
    expect(zero).toBeGreaterThan(0);
    const options = { rolloutLogprobs: true, klCoef: 0, sharedPrefix: 16 };
    const all = await tokenRows(policy, policy, steps, options);
    const kept = await tokenRows(policy, policy, steps, { ...options, skipZeroAdvantage: true });
    expect(all.skipped).toBe(0);
    expect(kept.skipped).toBe(zero);
    expect(kept.rows).toHaveLength(steps.length - zero);
    expect(kept.rows.every(informative)).toBe(true);
    // The rows left are the informative ones, in order, each with the tokens it had; those whose
    // group-step keeps several rows still share their prefix.
    const expected = all.rows.filter(informative);
    const whole = (r: { tokens: readonly number[]; prefix?: readonly number[] }) => [
      ...(r.prefix ?? []),
      ...r.tokens,
    ];
    expect(kept.rows.map(whole)).toEqual(expected.map(whole));
    expect(kept.rows.some((r) => (r.prefix?.length ?? 0) >= 16)).toBe(true);
  });

  it('keeps a packed trajectory whole when any of its steps carries an advantage', async () => {
    const policy = tinyPolicy(32);
    policies.push(policy);
    const steps = withZeros(
      trainSteps(await householdRollouts(policy, { promptFormat: 'growing', groupSize: 3, seed: 4 })),
    );
    const options = { pack: true, rolloutLogprobs: true, klCoef: 0 };
    const all = await tokenRows(policy, policy, steps, options);
    const kept = await tokenRows(policy, policy, steps, { ...options, skipZeroAdvantage: true });
    const trajectories = new Set(steps.map((s) => s.trajectory));
    const silent = [...trajectories].filter((t) =>
      steps.every((s) => s.trajectory !== t || s.advantage === 0),
    );
    expect(all.rows).toHaveLength(trajectories.size);
    expect(kept.rows).toHaveLength(trajectories.size - silent.length);
    expect(kept.skipped).toBe(silent.length);
    // The trajectory with one zero step inside is still one sequence with all its turns.
    expect(
      kept.rows.some((r) => r.steps > 1 && r.advantages!.some((a, t) => a === 0 && r.mask[t] === 1)),
    ).toBe(true);
  });

  it('without KL and entropy terms, the rows left give the whole batch gradient times its token count ratio', async () => {
    const policy = tinyPolicy(33);
    policies.push(policy);
    const steps = withZeros(
      trainSteps(await householdRollouts(policy, { promptFormat: 'windowed', groupSize: 4, seed: 5 })),
    );
    const options = { rolloutLogprobs: true, klCoef: 0 };
    const all = await tokenRows(policy, policy, steps, options);
    const kept = await tokenRows(policy, policy, steps, { ...options, skipZeroAdvantage: true });
    const copies = weightCopies(policy, 33);
    policies.push(...copies);
    const loss = { kind: 'rl' as const, learningRate: 1e-9, maxGradNorm: 1e9, klCoef: 0, entropyCoef: 0 };
    const a = await copies[0]!.update(kept.rows, loss);
    const b = await copies[1]!.update(all.rows, loss);
    // token-mean: the whole batch divides the same sum by more tokens.
    const ratio = b.tokens / a.tokens;
    expect(ratio).toBeGreaterThan(1);
    expect(Math.abs(a.loss - ratio * b.loss)).toBeLessThanOrEqual(1e-5 * Math.abs(a.loss) + 1e-7);
    const ma = copies[0]!.runner.getOptimizerState()!.m;
    let worst = 0;
    for (const [name, m] of copies[1]!.runner.getOptimizerState()!.m) {
      worst = Math.max(
        worst,
        relativeError(
          ma.get(name)!,
          m.map((x) => x * ratio),
        ),
      );
    }
    expect(worst).toBeLessThan(1e-4);
    expect(a.gradNorm).toBeGreaterThan(0);
  });
});
