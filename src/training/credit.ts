/**
 * An iteration's credit: the estimator over the trainable steps' rows, each step's advantage with
 * the details that explain it (stored for the viewer), and the steps to train with their advantages.
 */
import type { Trajectory } from '../agents/record.ts';
import { rowDetails } from '../credit/details.ts';
import { estimators } from '../credit/estimators.ts';
import type { AdvantageRecord, GroupInput } from '../store/types.ts';
import type { RunContext } from './context.ts';
import { creditRows } from './family.ts';
import { groupTrajectories } from './record.ts';

/** A step to train: its tokens and the advantage that goes on every response token. */
export interface TrainStep {
  prompt: number[];
  response: number[];
  advantage: number;
  /** The trajectory it belongs to (`groupId/trajectoryId`): its steps may train as one sequence. */
  trajectory?: string;
  /** Its trajectory's group: the group's rows at one step index may share their prompt's prefix. */
  group?: string;
  /** The log-prob each response token was sampled with (the rollout's behaviour log-probs). */
  logprobs?: number[];
  /**
   * Sampled by an older policy than the one updated (a distributed run's stale rollout,
   * `extras.policyVersion`): the importance ratio is always taken against its `logprobs`, never
   * against the current policy's scores.
   */
  stale?: boolean;
}

/** What the estimator gave an iteration. */
export interface IterationCredit {
  /** The trainable steps, trajectory by trajectory, in step order. */
  steps: TrainStep[];
  /** The iteration's groups to store, each trained step with its advantage record. */
  groups: GroupInput[];
  /** The estimator's advantages, one per credit row. */
  advantages: Float64Array;
}

const stepKey = (groupId: string | number, trajectoryId: string | number, stepIndex: number) =>
  `${groupId}|${trajectoryId}|${stepIndex}`;

/** Advantages over the trainable steps of `trajectories`, with the details that explain them. */
export async function assignCredit(
  ctx: RunContext,
  trajectories: readonly Trajectory[],
): Promise<IterationCredit> {
  const { config, family } = ctx;
  const trainable = (s: Trajectory['steps'][number]) =>
    s.responseTokens.length > 0 && (family.trainable?.(s) ?? true);
  const rows = family.creditRows
    ? await family.creditRows(trajectories, ctx.policy)
    : creditRows(trajectories, trainable);
  const credit = estimators[config.estimator].run(rows, config.estimatorOptions);
  const records = new Map<string, AdvantageRecord>();
  for (const [i, r] of rows.entries()) {
    records.set(stepKey(r.groupId, r.trajectoryId, r.stepIndex), {
      estimator: config.estimator,
      value: credit.advantages[i]!,
      details: rowDetails(credit.details, i),
    });
  }
  const recordOf = (groupId: string, trajectoryId: string, stepIndex: number) =>
    records.get(stepKey(groupId, trajectoryId, stepIndex));

  const steps = trajectories.flatMap((t) =>
    t.steps.filter(trainable).map((s) => {
      const record = recordOf(t.groupId, t.trajectoryId, s.stepIndex);
      if (!record) {
        throw new Error(
          `the estimator's rows miss trainable step ${s.stepIndex} of trajectory ${t.groupId}/${t.trajectoryId}`,
        );
      }
      const stale = typeof s.extras.policyVersion === 'number';
      return {
        prompt: s.promptTokens,
        response: s.responseTokens,
        advantage: record.value,
        trajectory: `${t.groupId}/${t.trajectoryId}`,
        group: t.groupId,
        logprobs: s.responseLogprobs,
        ...(stale ? { stale: true } : {}),
      };
    }),
  );
  const groups = groupTrajectories(trajectories).map((g) => ({
    ...g,
    trajectories: g.trajectories.map((t) => ({
      ...t,
      steps: t.steps.map((s) => {
        const record = recordOf(g.groupId, t.trajectoryId, s.stepIndex);
        return record ? { ...s, advantages: [record] } : s;
      }),
    })),
  }));
  return { steps, groups, advantages: credit.advantages };
}
