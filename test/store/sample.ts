/**
 * Small, fully specified iterations for the store tests: every field takes a value a bug could
 * lose (unicode text, JSON anchors, negative rewards, extras, tool calls, advantages).
 */
import type { GroupInput, StepInput, TrajectoryInput } from '../../src/store/index.ts';

export function sampleStep(g: number, t: number, s: number, last: boolean): StepInput {
  const base = 1000 * g + 100 * t + 10 * s;
  return {
    stepIndex: s,
    role: s % 2 === 0 ? 'planner' : 'executor',
    // Structured anchors on group 1, text elsewhere.
    anchor:
      g === 1 ? { room: 'kitchen', see: ['fridge 1', `drawer ${s}`] } : `You are in room ${s % 2}. Ünïcødé ✓`,
    promptText: `<user> step ${s} of trajectory ${t} — "quoted" \n newline`,
    promptTokens: Int32Array.from([base, base + 1, -5, 2 ** 31 - 1]),
    responseText: `go to drawer ${s} 🚪`,
    responseTokens: [base + 2, base + 3],
    responseLogprobs: Float32Array.from([-0.1, -2.5 - s]),
    envReward: last ? (t % 2 === 0 ? 10 : -1) : -0.5,
    valid: s !== 1,
    done: last,
    extras: { valueBefore: -1.25 * s - 0.5, note: `g${g}` },
    toolCalls:
      s === 0
        ? [
            {
              tool: 'web_search',
              arguments: '{"query":"capital of France"}',
              startedAt: 1_700_000_000_000 + base,
              durationMs: 12.5,
              ok: true,
              truncated: false,
              outputChars: 321,
            },
            {
              tool: 'python',
              arguments: '{"code":"1/0"}',
              startedAt: 1_700_000_000_100 + base,
              durationMs: 3,
              ok: false,
              errorKind: 'tool_error',
              truncated: true,
              outputChars: 40,
            },
          ]
        : [],
    advantages: [{ estimator: 'gigpo', value: 0.5 - t + s / 4, details: { episode: 0.5 - t, step: s / 4 } }],
  };
}

export function sampleTrajectory(g: number, t: number, length: number): TrajectoryInput {
  const steps = Array.from({ length }, (_, s) => sampleStep(g, t, s, s === length - 1));
  return { trajectoryId: `it-g${g}-t${t}`, outcome: t % 2 === 0 ? 'won' : 'lost', won: t % 2 === 0, steps };
}

/** `groups` groups of `size` trajectories with lengths 1, 2, 3, 1, 2, 3... */
export function sampleGroups(groups = 2, size = 3): GroupInput[] {
  return Array.from({ length: groups }, (_, g) => ({
    groupId: `g${g}`,
    taskId: `task-${g}`,
    // Group 2 and later have no task type.
    taskType: ['pick_and_place', 'look_at_obj'][g],
    seed: 42 + g,
    split: 'train',
    trajectories: Array.from({ length: size }, (_, t) => sampleTrajectory(g, t, 1 + ((g + t) % 3))),
  }));
}
