/**
 * The viewer's JSON API: what each page shows, read from the store. Every handler runs inside one
 * read transaction (see server.ts), so a page never mixes two states of a store being written.
 *
 * The store is all this module reads; token texts come from an optional `decodeToken` the caller
 * builds from the run's tokenizer (src/viewer imports nothing but src/store, DESIGN.md).
 */
import type { Json, StepDetail, TrajectoryStore } from '../store/index.ts';

/** An error the page shows as "not found" (HTTP 404). */
export class NotFound extends Error {
  readonly status = 404;
}

/** A bad query parameter (HTTP 400). */
export class BadRequest extends Error {
  readonly status = 400;
}

/** Token id -> its text, per run (undefined: no tokenizer known, the page shows ids). */
export type TokenDecoder = (runId: string) => ((id: number) => string) | undefined;

export type Query = URLSearchParams;

function configField(config: Json, key: string): string | undefined {
  if (config && typeof config === 'object' && !Array.isArray(config)) {
    const v = (config as Record<string, Json>)[key];
    if (typeof v === 'string') return v;
  }
  return undefined;
}

function intParam(q: Query, name: string): number | undefined {
  const raw = q.get(name);
  if (raw === null || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new BadRequest(`${name}=${raw}: expected a non-negative integer`);
  return n;
}

function successParam(q: Query): boolean | undefined {
  const raw = q.get('success');
  if (raw === null || raw === '' || raw === 'any') return undefined;
  if (raw === 'won' || raw === '1' || raw === 'true') return true;
  if (raw === 'lost' || raw === '0' || raw === 'false') return false;
  throw new BadRequest(`success=${raw}: expected won or lost`);
}

// --- runs -------------------------------------------------------------------------------------

export interface RunSummary {
  runId: string;
  status: string;
  estimator: string | undefined;
  env: string | undefined;
  config: Json;
  iterations: number;
  lastIteration: number | undefined;
  /** Highest success_rate metric (or stored share of won trajectories) over the iterations. */
  bestSuccess: number | undefined;
  updatedAt: number;
}

/** Every run, optionally only those whose config names `estimator`. */
export function listRuns(store: TrajectoryStore, q: Query): { runs: RunSummary[]; estimators: string[] } {
  const best = store.db.prepare(`SELECT max(value) FROM metrics WHERE run_id = ? AND name = 'success_rate'`);
  const all = store.runs().map((r) => {
    let bestSuccess = best.pluck().get(r.runId) as number | null;
    if (bestSuccess === null && r.iterations > 0) {
      bestSuccess = Math.max(...store.iterations(r.runId).map((i) => i.successRate));
    }
    return {
      runId: r.runId,
      status: r.status,
      estimator: configField(r.config, 'estimator'),
      env: configField(r.config, 'env'),
      config: r.config,
      iterations: r.iterations,
      lastIteration: r.lastIteration,
      bestSuccess: bestSuccess ?? undefined,
      updatedAt: r.updatedAt,
    };
  });
  const estimator = q.get('estimator');
  const estimators = [...new Set(all.map((r) => r.estimator).filter((e): e is string => !!e))].sort();
  return { runs: estimator ? all.filter((r) => r.estimator === estimator) : all, estimators };
}

function requireRun(store: TrajectoryStore, runId: string) {
  const run = store.run(runId);
  if (!run) throw new NotFound(`no run '${runId}' in this store`);
  return run;
}

/**
 * When an evaluation was made, as its metric's prefix says: `before` the RL iterations (the
 * starting policy), `eval` every k iterations, `after` the last one.
 */
export const EVALUATION_PHASES = ['before', 'eval', 'after'] as const;
export type EvaluationPhase = (typeof EVALUATION_PHASES)[number];

export interface Evaluation {
  phase: EvaluationPhase;
  iteration: number;
  /** The split (or evaluation set) named after the phase. */
  split: string;
  metric: string;
  value: number;
}

const EVALUATION_METRIC = new RegExp(`^(${EVALUATION_PHASES.join('|')})/([^/]+)/(.+)$`);

/**
 * A run: its config, every metric as a series, evaluations (metrics named <phase>/<split>/<metric>,
 * in phase order) and iterations.
 */
export function runDetail(store: TrajectoryStore, runId: string) {
  const run = requireRun(store, runId);
  const metrics: Record<string, Array<[number, number]>> = {};
  const evaluations: Evaluation[] = [];
  const rows = store.db
    .prepare('SELECT name, iteration, value FROM metrics WHERE run_id = ? ORDER BY name, iteration')
    .all(runId) as Array<{ name: string; iteration: number; value: number }>;
  for (const r of rows) {
    const ev = EVALUATION_METRIC.exec(r.name);
    if (ev) {
      const phase = ev[1] as EvaluationPhase;
      evaluations.push({ phase, iteration: r.iteration, split: ev[2]!, metric: ev[3]!, value: r.value });
    }
    if (!metrics[r.name]) metrics[r.name] = [];
    metrics[r.name]!.push([r.iteration, r.value]);
  }
  const order = (e: Evaluation) => EVALUATION_PHASES.indexOf(e.phase);
  evaluations.sort((a, b) => order(a) - order(b) || a.iteration - b.iteration);
  return {
    run: { ...run, estimator: configField(run.config, 'estimator') },
    metrics,
    evaluations,
    iterations: store.iterations(runId),
  };
}

// --- iterations and groups ---------------------------------------------------------------------

/** An iteration's groups, each with its G trajectories; filters: taskType, split, success. */
export function iterationDetail(store: TrajectoryStore, runId: string, iteration: number, q: Query) {
  requireRun(store, runId);
  const info = store.iterations(runId).find((i) => i.iteration === iteration);
  if (!info) throw new NotFound(`run '${runId}' has no iteration ${iteration}`);
  const all = store.groups(runId, iteration);
  const taskType = q.get('taskType') || undefined;
  const split = q.get('split') || undefined;
  const success = successParam(q);
  const groups = all
    .filter((g) => taskType === undefined || g.taskType === taskType)
    .filter((g) => split === undefined || g.split === split)
    .map((g) => ({
      ...g,
      trajectories: g.trajectories.filter((t) => success === undefined || t.won === success),
    }))
    .filter((g) => g.trajectories.length > 0);
  return {
    runId,
    iteration: info,
    groups,
    taskTypes: [...new Set(all.map((g) => g.taskType ?? ''))].filter(Boolean).sort(),
    splits: [...new Set(all.map((g) => g.split))].sort(),
  };
}

/** Trajectories of a run matching the filters (iteration, taskType, split, success), newest first. */
export function searchTrajectories(store: TrajectoryStore, runId: string, q: Query) {
  requireRun(store, runId);
  const where = ['i.run_id = ?'];
  const params: Array<string | number> = [runId];
  const iteration = intParam(q, 'iteration');
  if (iteration !== undefined) {
    where.push('i.iteration = ?');
    params.push(iteration);
  }
  const taskType = q.get('taskType');
  if (taskType) {
    where.push('g.task_type = ?');
    params.push(taskType);
  }
  const split = q.get('split');
  if (split) {
    where.push('g.split = ?');
    params.push(split);
  }
  const success = successParam(q);
  if (success !== undefined) {
    where.push('t.won = ?');
    params.push(success ? 1 : 0);
  }
  const limit = Math.min(intParam(q, 'limit') ?? 200, 1000);
  const rows = store.db
    .prepare(
      `SELECT i.iteration, g.group_key AS groupId, g.task_id AS taskId, g.task_type AS taskType, g.split,
         t.trajectory_key AS trajectoryId, t.outcome, t.won, t.length, t.episode_return AS episodeReturn
       FROM trajectories t JOIN groups g ON g.id = t.group_id JOIN iterations i ON i.id = g.iteration_id
       WHERE ${where.join(' AND ')} ORDER BY i.iteration DESC, g.id, t.id LIMIT ?`,
    )
    .all(...params, limit) as Array<Record<string, unknown> & { won: number }>;
  // the filters' choices: every task type and split of the run
  const choices = store.db
    .prepare(
      `SELECT DISTINCT g.task_type AS taskType, g.split FROM groups g
       JOIN iterations i ON i.id = g.iteration_id WHERE i.run_id = ?`,
    )
    .all(runId) as Array<{ taskType: string | null; split: string }>;
  return {
    runId,
    trajectories: rows.map((r) => ({ ...r, won: r.won === 1 })),
    taskTypes: [...new Set(choices.map((c) => c.taskType ?? ''))].filter(Boolean).sort(),
    splits: [...new Set(choices.map((c) => c.split))].sort(),
  };
}

// --- a trajectory ------------------------------------------------------------------------------

type Details = Record<string, Json>;

function num(d: Details | undefined, key: string): number | null {
  const v = d?.[key];
  return typeof v === 'number' ? v : null;
}

/** What each estimator's panel shows beside the stored value and details. */
export interface CreditView {
  estimator: string;
  value: number;
  details: Json | null;
  /** GiGPO: the other members of the step's step group (same anchor in the group's other rollouts). */
  stepGroup?: Array<{ trajectoryId: string; stepIndex: number; return: number | null; step: number | null }>;
  /** HGPO: one entry per level k (0 = the base group when on). */
  levels?: Array<{ k: number; size: number; weight: number; advantage: number | null; kept: boolean }>;
  /** IGPO: v_t, v_{t+1} and the turn's gain. */
  igpo?: {
    valueBefore: number | null;
    valueAfter: number | null;
    gain: number | null;
    reward: number | null;
  };
  /** Flow-GRPO: every turn sample of the group with its trajectory's outcome, and the shared outcome. */
  flow?: {
    outcome: number | null;
    samples: Array<{ trajectoryId: string; stepIndex: number; outcome: number | null; advantage: number }>;
    mean: number;
  };
}

interface GroupAdvantage {
  trajectoryId: string;
  stepIndex: number;
  anchor: string;
  estimator: string;
  value: number;
  details: Details | undefined;
}

/** Every advantage of the steps of one group (for the step-group and sample panels). */
function groupAdvantages(store: TrajectoryStore, runId: string, iteration: number, groupId: string) {
  const rows = store.db
    .prepare(
      `SELECT t.trajectory_key AS trajectoryId, s.step_index AS stepIndex, s.anchor, a.estimator, a.value, a.details
       FROM advantages a JOIN steps s ON s.id = a.step_id JOIN trajectories t ON t.id = s.trajectory_id
       JOIN groups g ON g.id = t.group_id JOIN iterations i ON i.id = g.iteration_id
       WHERE i.run_id = ? AND i.iteration = ? AND g.group_key = ? ORDER BY t.id, s.step_index`,
    )
    .all(runId, iteration, groupId) as Array<Omit<GroupAdvantage, 'details'> & { details: string | null }>;
  return rows.map((r) => ({
    ...r,
    details: r.details === null ? undefined : (JSON.parse(r.details) as Details),
  }));
}

function creditViews(
  step: StepDetail,
  steps: StepDetail[],
  group: GroupAdvantage[],
  trajectoryId: string,
): CreditView[] {
  return step.advantages.map((a) => {
    const details = (a.details ?? null) as Details | null;
    const view: CreditView = { estimator: a.estimator, value: a.value, details };
    const others = group.filter((g) => g.estimator === a.estimator);
    if (a.estimator === 'gigpo') {
      // Members share the step-group number the estimator gave them; without it, the anchor.
      const id = num(details ?? undefined, 'stepGroup');
      const anchor = typeof step.anchor === 'string' ? step.anchor : JSON.stringify(step.anchor);
      view.stepGroup = others
        .filter((g) => (id !== null ? num(g.details, 'stepGroup') === id : g.anchor === anchor))
        .filter((g) => !(g.trajectoryId === trajectoryId && g.stepIndex === step.stepIndex))
        .map((g) => ({
          trajectoryId: g.trajectoryId,
          stepIndex: g.stepIndex,
          return: num(g.details, 'return'),
          step: num(g.details, 'step'),
        }));
    } else if (a.estimator === 'hgpo' && details) {
      const level = Array.isArray(details.level) ? details.level : [];
      const sizes = Array.isArray(details.levelGroupSize) ? details.levelGroupSize : [];
      const alpha = num(details, 'alpha') ?? 1;
      view.levels = level
        .map((v, k) => {
          const size = typeof sizes[k] === 'number' ? (sizes[k] as number) : 0;
          const advantage = typeof v === 'number' ? v : null;
          return {
            k,
            size,
            weight: k === 0 ? 1 : (k + 1) ** alpha,
            advantage,
            // ALGORITHMS.md: groups of one member are dropped, and items equal to 0.
            kept: advantage !== null && advantage !== 0,
          };
        })
        .filter((l) => l.k > 0 || l.size > 0);
    } else if (a.estimator === 'igpo') {
      const next = steps.find((s) => s.stepIndex === step.stepIndex + 1);
      const after = next?.extras.valueBefore;
      view.igpo = {
        valueBefore: num(details ?? undefined, 'value') ?? num(step.extras, 'valueBefore'),
        valueAfter: typeof after === 'number' ? after : null,
        gain: num(details ?? undefined, 'gain'),
        reward: num(details ?? undefined, 'reward'),
      };
    } else if (a.estimator === 'flow-grpo') {
      const samples = others.map((g) => ({
        trajectoryId: g.trajectoryId,
        stepIndex: g.stepIndex,
        outcome: num(g.details, 'outcome'),
        advantage: g.value,
      }));
      const outcomes = samples.map((s) => s.outcome ?? 0);
      view.flow = {
        outcome: num(details ?? undefined, 'outcome'),
        samples,
        mean: outcomes.reduce((x, y) => x + y, 0) / Math.max(1, outcomes.length),
      };
    }
    return view;
  });
}

/** One trajectory with everything its replay page shows. */
export function trajectoryDetail(
  store: TrajectoryStore,
  ref: { runId: string; iteration: number; groupId: string; trajectoryId: string },
  decode: TokenDecoder,
) {
  requireRun(store, ref.runId);
  const group = store.groups(ref.runId, ref.iteration).find((g) => g.groupId === ref.groupId);
  const info = group?.trajectories.find((t) => t.trajectoryId === ref.trajectoryId);
  if (!group || !info) {
    throw new NotFound(
      `no trajectory '${ref.trajectoryId}' in group '${ref.groupId}' of run '${ref.runId}', iteration ${ref.iteration}`,
    );
  }
  const steps = store.trajectory(ref);
  const groupAdv = groupAdvantages(store, ref.runId, ref.iteration, ref.groupId);
  const text = decode(ref.runId);
  return {
    ref,
    group: { ...group, trajectories: group.trajectories },
    trajectory: info,
    steps: steps.map((s) => ({
      stepIndex: s.stepIndex,
      role: s.role,
      anchor: s.anchor,
      promptText: s.promptText,
      promptTokens: s.promptTokens.length,
      responseText: s.responseText,
      tokens: Array.from(s.responseTokens, (id, i) => ({
        id,
        text: text ? text(id) : null,
        logprob: s.responseLogprobs[i]!,
      })),
      envReward: s.envReward,
      valid: s.valid,
      done: s.done,
      extras: s.extras,
      toolCalls: s.toolCalls,
      credit: creditViews(s, steps, groupAdv, ref.trajectoryId),
    })),
  };
}
