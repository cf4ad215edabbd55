/**
 * The viewer's JSON API: what each page shows, read from the store. Every handler runs inside one
 * read transaction (see server.ts), so a page never mixes two states of a store being written.
 *
 * The store is all this module reads, through the store's queries (no SQL here); token texts come
 * from an optional `decodeToken` the caller builds from the run's tokenizer. Credit panels follow
 * each estimator's `DetailSchema` from src/credit (labelled fields, levels, peers), so nothing
 * here knows an estimator by name.
 */
import {
  currentDetails,
  type DetailField,
  type DetailPeers,
  type DetailSchema,
  detailSchema,
} from '../credit/details.ts';
import type { GroupAdvantage, Json, StepDetail, TrajectoryStore } from '../store/index.ts';

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
  const all = store.runs().map((r) => {
    let bestSuccess = store.metricMax(r.runId, 'success_rate');
    if (bestSuccess === undefined && r.iterations > 0) {
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
      bestSuccess,
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
  for (const r of store.metrics(runId)) {
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
  const trajectories = store.findTrajectories(runId, {
    iteration: intParam(q, 'iteration'),
    taskType: q.get('taskType') || undefined,
    split: q.get('split') || undefined,
    won: successParam(q),
    limit: Math.min(intParam(q, 'limit') ?? 200, 1000),
  });
  // the filters' choices: every task type and split of the run
  const choices = store.taskKinds(runId);
  return {
    runId,
    trajectories,
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

/** A labelled detail with its value on this row (a string only for an unknown estimator's non-numbers). */
export interface FieldView extends DetailField {
  value: number | string | null;
}

/** A level of a hierarchy of groups, for one row. */
export interface LevelView {
  k: number;
  /** k, or the schema's name of level 0. */
  name: string;
  size: number;
  weight: number;
  advantage: number | null;
  /** The item counts toward the advantage (it exists and is not 0). */
  kept: boolean;
}

/** A peer row of the group, with its advantage and the schema's peer fields. */
export interface PeerView {
  trajectoryId: string;
  stepIndex: number;
  advantage: number;
  values: Record<string, number | null>;
}

/** One estimator's credit at a step, as its schema explains it; the page draws it generically. */
export interface CreditView {
  estimator: string;
  value: number;
  /** The details in today's shape (older stores' are read through `currentDetails`). */
  details: Details | null;
  fields: FieldView[];
  levels?: LevelView[];
  peers?: Omit<DetailPeers, 'sameAs'> & {
    members: PeerView[];
    /** The schema's mean over the members, when it asks for one. */
    meanValue?: number;
  };
}

/** Details of a stored advantage, in today's shape. */
const detailsOf = (a: { estimator: string; details?: Json }): Details | undefined =>
  a.details && typeof a.details === 'object' && !Array.isArray(a.details)
    ? (currentDetails(a.estimator, a.details) as Details)
    : undefined;

function levelViews(schema: NonNullable<DetailSchema['levels']>, d: Details): LevelView[] {
  const list = (key: string) => (Array.isArray(d[key]) ? (d[key] as Json[]) : []);
  const sizes = list(schema.size);
  const weights = list(schema.weight);
  return list(schema.value)
    .map((v, k) => {
      const advantage = typeof v === 'number' ? v : null;
      const weight = weights[k];
      return {
        k,
        name: k === 0 ? schema.baseName : String(k),
        size: typeof sizes[k] === 'number' ? (sizes[k] as number) : 0,
        weight: typeof weight === 'number' ? weight : Number.NaN,
        advantage,
        kept: advantage !== null && advantage !== 0,
      };
    })
    .filter((l) => !Number.isNaN(l.weight));
}

/** Each estimator's credit at `step`, explained by its schema (or all its details, when unknown). */
function creditViews(
  step: StepDetail,
  steps: StepDetail[],
  group: GroupAdvantage[],
  trajectoryId: string,
): CreditView[] {
  const anchor = typeof step.anchor === 'string' ? step.anchor : JSON.stringify(step.anchor);
  return step.advantages.map((a) => {
    const details = detailsOf(a);
    const view: CreditView = { estimator: a.estimator, value: a.value, details: details ?? null, fields: [] };
    const schema = detailSchema(a.estimator);
    if (!schema) {
      view.fields = Object.entries(details ?? {}).map(([key, v]) => ({
        key,
        label: key,
        value: typeof v === 'number' || v === null ? v : JSON.stringify(v),
      }));
      return view;
    }
    const next = steps.find((s) => s.stepIndex === step.stepIndex + 1);
    const nextDetails = next?.advantages.find((n) => n.estimator === a.estimator);
    view.fields = schema.fields.map((f) => ({
      ...f,
      value: f.fromNextStep
        ? num(nextDetails && detailsOf(nextDetails), f.fromNextStep)
        : num(details, f.key),
    }));
    if (schema.levels && details) view.levels = levelViews(schema.levels, details);
    if (schema.peers) {
      const { sameAs, ...peers } = schema.peers;
      const id = sameAs === undefined ? null : num(details, sameAs);
      const matched = group.filter(
        (g) =>
          g.estimator === a.estimator &&
          (sameAs === undefined || (id !== null ? num(detailsOf(g), sameAs) === id : g.anchor === anchor)) &&
          (peers.includeSelf || !(g.trajectoryId === trajectoryId && g.stepIndex === step.stepIndex)),
      );
      const members = matched.map((g) => {
        const d = detailsOf(g);
        return {
          trajectoryId: g.trajectoryId,
          stepIndex: g.stepIndex,
          advantage: g.value,
          values: Object.fromEntries(peers.fields.map((f) => [f.key, num(d, f.key)])),
        };
      });
      const mean = peers.mean?.key;
      const meanValue =
        mean === undefined
          ? undefined
          : matched.reduce((sum, g) => sum + (num(detailsOf(g), mean) ?? 0), 0) / Math.max(1, matched.length);
      view.peers = { ...peers, members, meanValue };
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
  const groupAdv = store.groupAdvantages(ref);
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
