/**
 * Trajectories into the trajectory store: each `AgentStep` as the store's step input (extras:
 * model, observation, action, requested tool calls), trajectories grouped by `groupId` (a group
 * shares its task and seed), and `recordIteration`, a whole iteration with its rollout metrics in
 * one transaction.
 */
import { type AgentStep, rolloutMetrics, type Trajectory } from '../agents/record.ts';
import type { GroupInput, Json, StepInput, TrajectoryInput, TrajectoryStore } from '../store/index.ts';

/** The store's step row for an agent step. */
export function stepInput(step: AgentStep): StepInput {
  const extras: Record<string, Json> = {
    ...step.extras,
    model: step.model,
    observation: step.observation,
  };
  if (step.action !== undefined) extras.action = step.action;
  // The model's structured tool calls are kept apart from the audit (`toolCalls` is the audit's row field).
  if (step.toolCalls.length > 0) extras.requestedToolCalls = step.toolCalls.map((c) => ({ ...c }));
  return {
    stepIndex: step.stepIndex,
    role: step.role,
    anchor: step.anchor,
    promptText: step.promptText,
    promptTokens: step.promptTokens,
    responseText: step.responseText,
    responseTokens: step.responseTokens,
    responseLogprobs: step.responseLogprobs,
    envReward: step.envReward,
    valid: step.valid,
    done: step.done,
    extras,
    toolCalls: step.audit,
  };
}

export function trajectoryInput(t: Trajectory): TrajectoryInput {
  return {
    trajectoryId: t.trajectoryId,
    outcome: t.outcome,
    won: t.won,
    episodeReturn: t.episodeReturn,
    steps: t.steps.map(stepInput),
  };
}

/**
 * Trajectories grouped by `groupId`, in order of first appearance. Every trajectory of a group
 * must play the same task from the same seed (that is what makes it a group). Trajectories without
 * steps (a time limit hit before the first response) are left out: the store keeps decisions, and
 * they made none.
 */
export function groupTrajectories(trajectories: readonly Trajectory[]): GroupInput[] {
  const groups = new Map<string, { first: Trajectory; members: Trajectory[] }>();
  for (const t of trajectories) {
    if (t.steps.length === 0) continue;
    const g = groups.get(t.groupId);
    if (!g) {
      groups.set(t.groupId, { first: t, members: [t] });
      continue;
    }
    if (t.task.id !== g.first.task.id || t.seed !== g.first.seed) {
      throw new Error(
        `group ${t.groupId}: trajectory ${t.trajectoryId} plays task ${t.task.id} with seed ${t.seed}, ` +
          `but trajectory ${g.first.trajectoryId} plays ${g.first.task.id} with seed ${g.first.seed}; ` +
          'a group must share its task and seed',
      );
    }
    if (g.members.some((m) => m.trajectoryId === t.trajectoryId)) {
      throw new Error(`group ${t.groupId}: two trajectories have the id ${t.trajectoryId}`);
    }
    g.members.push(t);
  }
  return [...groups.entries()].map(([groupId, { first, members }]) => ({
    groupId,
    taskId: first.task.id,
    taskType: first.task.kind,
    seed: first.seed,
    split: first.task.split,
    trajectories: members.map(trajectoryInput),
  }));
}

/**
 * Writes the trajectories as iteration `iteration` of run `runId` (one transaction), with
 * `rolloutMetrics` plus `metrics`. The run is created when it does not exist yet.
 */
export function recordIteration(
  store: TrajectoryStore,
  runId: string,
  iteration: number,
  trajectories: readonly Trajectory[],
  options: { metrics?: Record<string, number>; runConfig?: Json } = {},
): void {
  if (!store.run(runId)) store.createRun(runId, options.runConfig ?? {});
  store.writeIteration(runId, {
    iteration,
    groups: groupTrajectories(trajectories),
    metrics: { ...rolloutMetrics(trajectories), ...options.metrics },
  });
}
