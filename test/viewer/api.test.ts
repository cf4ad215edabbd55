// The viewer's JSON API over HTTP on 127.0.0.1:0, on a store written by short real training runs
// (training-store.ts). Expected values come from the store's own queries, the estimators run
// again over the stored rows, and the run's checkpoint tokenizer, not from the API's code.
import { spawn } from 'node:child_process';
import {
  closeSync,
  copyFileSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tokenDecoder } from '../../src/cli/commands/view.ts';
import { estimators } from '../../src/credit/index.ts';
import { Tokenizer } from '../../src/policy/tokenizer/tokenizer.ts';
import {
  type Json,
  openSqliteStore,
  openStore,
  type StepDetail,
  type TrajectoryStore,
} from '../../src/store/index.ts';
import { startViewer, type Viewer } from '../../src/viewer/server.ts';
import { copyStore, RUNS, resumeConfig, sharedTrainingStore } from './training-store.ts';

let dir: string;
let db: string;
let viewer: Viewer;
let store: TrajectoryStore;

const get = async (path: string) => {
  const res = await fetch(new URL(path, viewer.url));
  return { status: res.status, type: res.headers.get('content-type') ?? '', body: await res.text() };
};
// biome-ignore lint/suspicious/noExplicitAny: API bodies are checked field by field below
const json = async (path: string): Promise<any> => {
  const r = await get(path);
  expect(r.status, `${path}: ${r.body}`).toBe(200);
  return JSON.parse(r.body);
};
const trajectoryPath = (runId: string, iteration: number, groupId: string, trajectoryId: string) =>
  `/api/runs/${runId}/iterations/${iteration}/groups/${encodeURIComponent(groupId)}/trajectories/${trajectoryId}`;

/** Every stored trajectory of a run's iteration with its steps. */
function trajectoriesOf(runId: string, iteration: number) {
  return store.groups(runId, iteration).flatMap((g) =>
    g.trajectories.map((t) => ({
      groupId: g.groupId,
      trajectoryId: t.trajectoryId,
      won: t.won,
      steps: store.trajectory({ runId, iteration, groupId: g.groupId, trajectoryId: t.trajectoryId }),
    })),
  );
}

/** The first stored step of `runId` (any iteration) that `match` accepts, with where it is. */
function findStep(runId: string, match: (s: StepDetail, steps: StepDetail[]) => boolean) {
  for (const { iteration } of store.iterations(runId)) {
    for (const t of trajectoriesOf(runId, iteration)) {
      const step = t.steps.find((s) => match(s, t.steps));
      if (step) return { iteration, ...t, step };
    }
  }
  throw new Error(`the training store has no step of run '${runId}' such as the test needs`);
}

const runConfig = (runId: string) => store.run(runId)!.config as Record<string, unknown>;
const detailsOf = (s: StepDetail) => s.advantages[0]!.details as Record<string, number | null>;
/** A credit view's fields by key. */
const fields = (credit: { fields: Array<{ key: string; value: number | null }> }) =>
  Object.fromEntries(credit.fields.map((f) => [f.key, f.value]));

beforeAll(async () => {
  const shared = await sharedTrainingStore();
  dir = mkdtempSync(join(tmpdir(), 'viewer-api-'));
  // a copy: the tests below write into it, corrupt copies of it and resume its runs
  db = copyStore(shared, dir);
  store = openStore(db, { readonly: true });
  viewer = await startViewer({ db, port: 0, decodeToken: tokenDecoder(undefined, db)(store) });
}, 600_000);

afterAll(async () => {
  store?.close();
  await viewer?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('runs and a run', () => {
  it('lists every run with estimator, status and best success', async () => {
    const { runs, estimators: names } = await json('/api/runs');
    const stored = store.runs();
    expect(runs.map((r: { runId: string }) => r.runId)).toEqual(stored.map((r) => r.runId));
    expect(runs.map((r: { runId: string }) => r.runId).sort()).toEqual(Object.values(RUNS).sort());
    expect(names).toEqual(['flow-grpo', 'gigpo', 'grpo', 'hgpo', 'igpo']);
    for (const r of runs) {
      const best = Math.max(...store.metricSeries(r.runId, 'success_rate').map((p) => p.value));
      expect(r.bestSuccess, r.runId).toBe(best);
      expect(r.iterations, r.runId).toBe(store.iterations(r.runId).length);
      expect(r.status, r.runId).toBe(store.run(r.runId)!.status);
      expect(r.estimator, r.runId).toBe(runConfig(r.runId).estimator);
      expect(r.env, r.runId).toBe(runConfig(r.runId).env);
    }
    // the door run wins some rollouts: its best success is not zero
    expect(runs.find((r: { runId: string }) => r.runId === RUNS.grpo).bestSuccess).toBeGreaterThan(0);
    const filtered = await json('/api/runs?estimator=igpo');
    expect(filtered.runs.map((r: { runId: string }) => r.runId)).toEqual([RUNS.igpo]);
  });

  it('gives every metric the trainer wrote as a series, and the iterations', async () => {
    const run = await json(`/api/runs/${RUNS.igpo}`);
    const iterations = store.iterations(RUNS.igpo);
    expect(Object.keys(run.metrics).sort()).toEqual(store.metricNames(RUNS.igpo));
    for (const name of store.metricNames(RUNS.igpo)) {
      expect(run.metrics[name], name).toEqual(
        store.metricSeries(RUNS.igpo, name).map((p) => [p.iteration, p.value]),
      );
    }
    for (const name of [
      'success_rate',
      'mean_return',
      'invalid_rate',
      'kl',
      'entropy',
      'rollout_tokens_per_s',
      'update_tokens_per_s',
    ]) {
      expect(run.metrics[name], name).toHaveLength(iterations.length);
    }
    // the trainer's success_rate is the won share of the stored trajectories
    run.metrics.success_rate.forEach(([it, v]: [number, number], i: number) => {
      expect(it).toBe(iterations[i]!.iteration);
      expect(v).toBeCloseTo(iterations[i]!.successRate, 12);
    });
    expect(run.iterations).toEqual(iterations);
    expect(run.run.estimator).toBe('igpo');
  });

  it('gives the evaluations before, during and after training, in that order', async () => {
    const { evaluations } = await json(`/api/runs/${RUNS.igpo}`);
    const expected = store
      .metricNames(RUNS.igpo)
      .flatMap((name) => {
        const m = /^(before|eval|after)\/([^/]+)\/(.+)$/.exec(name);
        return m
          ? store.metricSeries(RUNS.igpo, name).map((p) => ({
              phase: m[1],
              iteration: p.iteration,
              split: m[2],
              metric: m[3],
              value: p.value,
            }))
          : [];
      })
      .sort((a, b) => a.phase.localeCompare(b.phase) || a.iteration - b.iteration);
    const key = (e: { phase: string; iteration: number; split: string; metric: string }) =>
      `${e.phase} ${e.iteration} ${e.split} ${e.metric}`;
    expect([...evaluations].sort((a, b) => key(a).localeCompare(key(b)))).toEqual(
      [...expected].sort((a, b) => key(a).localeCompare(key(b))),
    );
    const phases = evaluations.map((e: { phase: string }) => e.phase);
    expect([...new Set(phases)]).toEqual(['before', 'eval', 'after']);
    // the search family's own figures are evaluated too, per split and task type
    const metrics = new Set(evaluations.map((e: { metric: string }) => e.metric));
    for (const m of ['success', 'invalid_rate', 'f1', 'exact_match', 'success/single-hop'])
      expect(metrics.has(m), m).toBe(true);
    const evalIterations = evaluations
      .filter((e: { phase: string }) => e.phase === 'eval')
      .map((e: { iteration: number }) => e.iteration);
    expect([...new Set(evalIterations)]).toEqual(store.iterations(RUNS.igpo).map((i) => i.iteration));
  });
});

describe('an iteration', () => {
  it('has its groups with G rollouts each, and filters by task type, split and success', async () => {
    const all = await json(`/api/runs/${RUNS.gigpo}/iterations/1`);
    expect(all.groups).toEqual(store.groups(RUNS.gigpo, 1));
    const G = runConfig(RUNS.gigpo).groupSize;
    expect(all.groups.length).toBe(runConfig(RUNS.gigpo).tasksPerIteration);
    expect(all.groups.every((g: { trajectories: unknown[] }) => g.trajectories.length === G)).toBe(true);
    for (const kind of all.taskTypes) {
      const byKind = await json(`/api/runs/${RUNS.gigpo}/iterations/1?taskType=${kind}`);
      expect(byKind.groups).toEqual(store.groups(RUNS.gigpo, 1).filter((g) => g.taskType === kind));
    }
    // RL tasks come from the train split only
    expect(all.splits).toEqual(['train']);
    expect((await json(`/api/runs/${RUNS.gigpo}/iterations/1?split=train`)).groups).toEqual(all.groups);
    expect((await json(`/api/runs/${RUNS.gigpo}/iterations/1?split=valid-seen`)).groups).toEqual([]);

    // the door run has won and lost rollouts in its groups
    for (const [success, won] of [
      ['won', true],
      ['lost', false],
    ] as const) {
      const filtered = await json(`/api/runs/${RUNS.grpo}/iterations/0?success=${success}`);
      const expected = store
        .groups(RUNS.grpo, 0)
        .map((g) => ({ ...g, trajectories: g.trajectories.filter((t) => t.won === won) }))
        .filter((g) => g.trajectories.length > 0);
      expect(expected.length, success).toBeGreaterThan(0);
      expect(filtered.groups).toEqual(expected);
    }
  });

  it('searches the trajectories of a run by iteration and outcome', async () => {
    for (const success of ['won', 'lost']) {
      const r = await json(`/api/runs/${RUNS.grpo}/trajectories?iteration=1&success=${success}`);
      const expected = store
        .groups(RUNS.grpo, 1)
        .flatMap((g) =>
          g.trajectories
            .filter((t) => t.won === (success === 'won'))
            .map((t) => `${g.groupId}/${t.trajectoryId}`),
        );
      expect(
        r.trajectories
          .map((t: { groupId: string; trajectoryId: string }) => `${t.groupId}/${t.trajectoryId}`)
          .sort(),
      ).toEqual(expected.sort());
      expect(
        r.trajectories.every(
          (t: { iteration: number; won: boolean }) => t.iteration === 1 && t.won === (success === 'won'),
        ),
      ).toBe(true);
    }
    const all = await json(`/api/runs/${RUNS.gigpo}/trajectories`);
    expect(all.trajectories).toHaveLength(
      store.iterations(RUNS.gigpo).reduce((n, i) => n + i.trajectories, 0),
    );
    expect(all.taskTypes).toEqual(
      [
        ...new Set(
          store
            .iterations(RUNS.gigpo)
            .flatMap((i) => store.groups(RUNS.gigpo, i.iteration).map((g) => g.taskType)),
        ),
      ].sort(),
    );
  });
});

describe('a trajectory', () => {
  it('has every step with tokens, log-probs, token texts, tool calls and its estimator', async () => {
    const at = findStep(RUNS.igpo, (s) => s.toolCalls.length > 0);
    const t = await json(trajectoryPath(RUNS.igpo, at.iteration, at.groupId, at.trajectoryId));
    const last = store.checkpoints(RUNS.igpo).at(-1)!;
    const tokenizer = Tokenizer.fromJSON(readFileSync(join(last.path, 'tokenizer.json'), 'utf8'));
    expect(t.steps).toHaveLength(at.steps.length);
    t.steps.forEach(
      (
        s: {
          tokens: Array<{ id: number; logprob: number; text: string }>;
          credit: Array<{ estimator: string }>;
          toolCalls: unknown;
          promptText: string;
        },
        i: number,
      ) => {
        const stored = at.steps[i]!;
        expect(s.tokens.map((k) => k.id)).toEqual(Array.from(stored.responseTokens));
        expect(s.tokens.map((k) => k.logprob)).toEqual(Array.from(stored.responseLogprobs));
        expect(s.tokens.map((k) => k.text).join('')).toBe(tokenizer.decode(stored.responseTokens));
        expect(s.credit.map((c) => c.estimator)).toEqual(['igpo']);
        expect(s.toolCalls).toEqual(stored.toolCalls);
        expect(s.promptText).toBe(stored.promptText);
      },
    );
    const call = t.steps[at.step.stepIndex].toolCalls[0];
    expect(call.tool).toBe('web_search');
    expect(JSON.parse(call.arguments)).toHaveProperty('query');
  });

  it("shows GiGPO's parts and the members of the step group (same anchor, other rollouts)", async () => {
    const rows = store.trainingRows(RUNS.gigpo, 0, 'gigpo');
    // the estimator again, over the stored rows of the iteration, with the run's options
    const again = estimators.gigpo.run(
      rows.map((r) => ({ ...r, anchor: r.anchor as string })),
      runConfig(RUNS.gigpo).estimatorOptions as Record<string, unknown>,
    );
    const g = store.groups(RUNS.gigpo, 0)[0]!;
    for (const trajectoryId of g.trajectories.map((x) => x.trajectoryId)) {
      const t = await json(trajectoryPath(RUNS.gigpo, 0, g.groupId, trajectoryId));
      for (const step of t.steps) {
        const credit = step.credit.find((c: { estimator: string }) => c.estimator === 'gigpo');
        const i = rows.findIndex(
          (r) => r.groupId === g.groupId && r.trajectoryId === trajectoryId && r.stepIndex === step.stepIndex,
        );
        expect(credit.value).toBeCloseTo(again.advantages[i]!, 9);
        expect(credit.value).toBeCloseTo(rows[i]!.advantage!, 12);
        expect(credit.details.episode + credit.details.step - credit.details.penalty).toBeCloseTo(
          credit.value,
          12,
        );
        const sameAnchor = rows.filter(
          (r, j) => j !== i && r.groupId === g.groupId && r.anchor === rows[i]!.anchor,
        );
        expect(
          credit.peers.members
            .map((m: { trajectoryId: string; stepIndex: number }) => `${m.trajectoryId}/${m.stepIndex}`)
            .sort(),
        ).toEqual(sameAnchor.map((r) => `${r.trajectoryId}/${r.stepIndex}`).sort());
        expect(credit.details.stepGroupSize).toBe(sameAnchor.length + 1);
      }
    }
    // every rollout of a group starts from the same observation: its first steps share a step group
    const first = await json(trajectoryPath(RUNS.gigpo, 0, g.groupId, g.trajectories[0]!.trajectoryId));
    const others = first.steps[0].credit[0].peers.members
      .map((m: { trajectoryId: string }) => m.trajectoryId)
      .filter((id: string) => id !== g.trajectories[0]!.trajectoryId);
    expect(new Set(others).size).toBe(g.trajectories.length - 1);
  });

  it("shows HGPO's levels: group sizes from the shared anchor histories, weights (k+1)^alpha", async () => {
    const rows = store.trainingRows(RUNS.hgpo, 0, 'hgpo');
    const options = runConfig(RUNS.hgpo).estimatorOptions as Record<string, unknown>;
    const again = estimators.hgpo.run(
      rows.map((r) => ({ ...r, anchor: r.anchor as string })),
      options,
    );
    // the parsed options are stored with the run: H, alpha
    const H = options.history as number;
    const alpha = options.alpha as number;
    // the anchors of a trajectory up to each step
    const history = (groupId: string, trajectoryId: string, stepIndex: number) =>
      rows
        .filter((r) => r.groupId === groupId && r.trajectoryId === trajectoryId && r.stepIndex <= stepIndex)
        .sort((a, b) => a.stepIndex - b.stepIndex)
        .map((r) => r.anchor as string);
    const g = store.groups(RUNS.hgpo, 0)[0]!;
    let shared = 0;
    for (const { trajectoryId } of g.trajectories) {
      const t = await json(trajectoryPath(RUNS.hgpo, 0, g.groupId, trajectoryId));
      for (const step of t.steps) {
        const credit = step.credit.find((c: { estimator: string }) => c.estimator === 'hgpo');
        const i = rows.findIndex(
          (r) => r.groupId === g.groupId && r.trajectoryId === trajectoryId && r.stepIndex === step.stepIndex,
        );
        expect(credit.value).toBeCloseTo(again.advantages[i]!, 9);
        const mine = history(g.groupId, trajectoryId, step.stepIndex);
        const expected = Array.from({ length: H + 1 }, (_, j) => {
          const k = j + 1;
          if (mine.length < k) return { k, size: 0, weight: (k + 1) ** alpha };
          const tail = mine.slice(-k).join('\u0000');
          const size = rows.filter((r) => {
            if (r.groupId !== g.groupId) return false;
            const theirs = history(r.groupId, r.trajectoryId, r.stepIndex);
            return theirs.length >= k && theirs.slice(-k).join('\u0000') === tail;
          }).length;
          return { k, size, weight: (k + 1) ** alpha };
        });
        expect(
          credit.levels.map((l: { k: number; size: number; weight: number }) => ({
            k: l.k,
            size: l.size,
            weight: l.weight,
          })),
        ).toEqual(expected);
        for (const l of credit.levels) {
          expect(l.kept).toBe(l.advantage !== null && l.advantage !== 0);
          if (l.size > 1) shared++;
        }
      }
    }
    expect(shared).toBeGreaterThan(0);
  });

  it('renders HGPO details stored before they carried their weights (the trainer added `alpha`)', async () => {
    // an HGPO step of the run, its details rewritten in the older shape (alpha 0.5, no levelWeight)
    const at = findStep(RUNS.hgpo, (s) => s.stepIndex >= 2);
    const record = at.step.advantages[0]!;
    const { levelWeight, ...rest } = record.details as Record<string, unknown>;
    expect(levelWeight).toBeDefined();
    const older = { ...rest, alpha: 0.5 };
    const ref = { groupId: at.groupId, trajectoryId: at.trajectoryId, stepIndex: at.step.stepIndex };
    const writer = openSqliteStore(db, { backgroundCheckpoint: false });
    try {
      writer.writeAdvantages(RUNS.hgpo, at.iteration, [{ ...ref, ...record, details: older as Json }]);
      const t = await json(trajectoryPath(RUNS.hgpo, at.iteration, at.groupId, at.trajectoryId));
      const credit = t.steps[at.step.stepIndex].credit[0];
      const H = (runConfig(RUNS.hgpo).estimatorOptions as { history: number }).history;
      // base group off: no level 0; the levels' weights (k+1)^alpha from the stored alpha
      expect(credit.levels.map((l: { k: number; weight: number }) => [l.k, l.weight])).toEqual(
        Array.from({ length: H + 1 }, (_, j) => [j + 1, (j + 2) ** 0.5]),
      );
      expect(credit.levels.map((l: { advantage: number | null }) => l.advantage)).toEqual(
        (rest.level as Array<number | null>).slice(1),
      );
    } finally {
      writer.writeAdvantages(RUNS.hgpo, at.iteration, [{ ...ref, ...record }]);
      writer.close();
    }
  });

  it("shows IGPO's value before and after each turn and the turn's information gain", async () => {
    const at = findStep(RUNS.igpo, (s) => typeof detailsOf(s).gain === 'number');
    const t = await json(trajectoryPath(RUNS.igpo, at.iteration, at.groupId, at.trajectoryId));
    const i = at.step.stepIndex;
    const igpo = fields(t.steps[i].credit.find((c: { estimator: string }) => c.estimator === 'igpo'));
    expect(igpo.value).toBe(at.steps[i]!.extras.valueBefore);
    expect(igpo.value).toBe(detailsOf(at.step).value);
    expect(igpo.valueAfter).toBe(at.steps[i + 1]!.extras.valueBefore);
    expect(igpo.gain).toBe(detailsOf(at.step).gain);
    expect(igpo.gain).toBeCloseTo(Math.exp(igpo.valueAfter!) - Math.exp(igpo.value!), 9);
    // the last turn has no value after it
    expect(fields(t.steps.at(-1).credit[0]).valueAfter).toBeNull();
  });

  it("shows Flow-GRPO's turn samples of the group and the trajectory's shared outcome", async () => {
    const at = findStep(RUNS.flowGrpo, (s) => s.role === 'planner');
    const t = await json(trajectoryPath(RUNS.flowGrpo, at.iteration, at.groupId, at.trajectoryId));
    const planner = store
      .trainingRows(RUNS.flowGrpo, at.iteration, 'flow-grpo')
      .filter((r) => r.groupId === at.groupId && r.advantage !== undefined);
    expect(planner.every((r) => r.role === 'planner')).toBe(true);
    for (const step of t.steps) {
      if (step.role !== 'planner') {
        // only the planner is trained: the other modules' steps carry no credit
        expect(step.credit, step.role).toEqual([]);
        continue;
      }
      const flow = step.credit[0].peers;
      expect(step.credit[0].estimator).toBe('flow-grpo');
      expect(fields(step.credit[0]).outcome).toBe(at.won ? 1 : 0);
      expect(
        flow.members.map(
          (s: { trajectoryId: string; stepIndex: number }) => `${s.trajectoryId}/${s.stepIndex}`,
        ),
      ).toEqual(planner.map((r) => `${r.trajectoryId}/${r.stepIndex}`));
      const outcomes = planner.map((r) => (r.won ? 1 : 0) as number);
      expect(flow.meanValue).toBeCloseTo(outcomes.reduce((a, b) => a + b, 0) / outcomes.length, 12);
      for (const s of flow.members) {
        const row = planner.find((r) => r.trajectoryId === s.trajectoryId && r.stepIndex === s.stepIndex)!;
        expect(s.values.outcome).toBe(row.won ? 1 : 0);
        expect(s.advantage).toBe(row.advantage);
      }
    }
  });
});

describe('bad input', () => {
  it('answers unknown ids and routes with 404 and a message', async () => {
    const g = store.groups(RUNS.gigpo, 0)[0]!;
    for (const path of [
      '/api/runs/nope',
      `/api/runs/${RUNS.gigpo}/iterations/99`,
      trajectoryPath(RUNS.gigpo, 0, g.groupId, 'nope'),
      trajectoryPath(RUNS.gigpo, 0, 'nope', g.trajectories[0]!.trajectoryId),
      '/api/nothing',
    ]) {
      const r = await get(path);
      expect(r.status, path).toBe(404);
      expect(JSON.parse(r.body).error, path).toMatch(/no /);
    }
    const page = await get('/no/such/page');
    expect(page.status).toBe(404);
    expect(page.type).toContain('text/html');
    const bad = await get(`/api/runs/${RUNS.gigpo}/trajectories?iteration=x`);
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.body).error).toContain('iteration=x');
  });

  it('refuses a missing, corrupt or newer-schema database with a clear message', async () => {
    await expect(startViewer({ db: join(dir, 'missing.db'), port: 0 })).rejects.toThrow(/does not exist/);
    const corrupt = join(dir, 'corrupt.db');
    writeFileSync(corrupt, 'this is not a database, just some text '.repeat(200));
    await expect(startViewer({ db: corrupt, port: 0 })).rejects.toThrow(/not a stepwise store/);
    const newer = join(dir, 'newer.db');
    copyFileSync(db, newer);
    const raw = new Database(newer);
    raw.pragma('user_version = 99');
    raw.close();
    await expect(startViewer({ db: newer, port: 0 })).rejects.toThrow(/newer than this stepwise supports/);
  });

  it('answers 500 with a message, not a crash, when the file turns out corrupt under a running viewer', async () => {
    const file = join(dir, 'damaged.db');
    copyFileSync(db, file);
    const damaged = await startViewer({ db: file, port: 0 });
    try {
      // overwrite everything after the first pages (the schema stays readable)
      const size = statSync(file).size;
      const fd = openSync(file, 'r+');
      writeSync(fd, Buffer.alloc(size - 4 * 65536, 0x5a), 0, size - 4 * 65536, 4 * 65536);
      closeSync(fd);
      const g = store.groups(RUNS.gigpo, 0)[0]!;
      const res = await fetch(
        new URL(trajectoryPath(RUNS.gigpo, 0, g.groupId, g.trajectories[0]!.trajectoryId), damaged.url),
      );
      expect(res.status).toBe(500);
      expect(((await res.json()) as { error: string }).error).toMatch(/corrupt/);
      expect((await fetch(damaged.url)).status).toBe(200);
    } finally {
      await damaged.close();
    }
  });

  it('the CLI prints the message, not a stack trace, and exits 1', async () => {
    const out = await runCli(['view', '--db', join(dir, 'missing.db'), '--port', '0']);
    expect(out.code).toBe(1);
    expect(out.stderr).toContain('no store at');
    expect(out.stderr).not.toMatch(/\n\s+at /);
  });
});

describe('stepwise view', () => {
  it("prints the URL and shows token texts from the run's checkpoint tokenizer", async () => {
    const child = spawn(process.execPath, ['bin/stepwise.js', 'view', '--db', db, '--port', '0'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (d) => {
          out += d;
          const m = /at (http:\/\/127\.0\.0\.1:\d+\/)/.exec(out);
          if (m) resolve(m[1]!);
        });
        child.on('close', (code) => reject(new Error(`stepwise view exited with ${code}: ${out}`)));
      });
      for (const runId of [RUNS.gigpo, RUNS.igpo]) {
        const g = store.groups(runId, 0)[0]!;
        const res = await fetch(
          new URL(trajectoryPath(runId, 0, g.groupId, g.trajectories[0]!.trajectoryId).slice(1), url),
        );
        const body = (await res.json()) as {
          steps: Array<{ tokens: Array<{ id: number; text: string | null }> }>;
        };
        const last = store.checkpoints(runId).at(-1)!;
        const tokenizer = Tokenizer.fromJSON(readFileSync(join(last.path, 'tokenizer.json'), 'utf8'));
        const step = body.steps[0]!;
        expect(step.tokens.length, runId).toBeGreaterThan(0);
        expect(step.tokens.map((t) => t.text).join(''), runId).toBe(
          tokenizer.decode(step.tokens.map((t) => t.id)),
        );
      }
      expect((await fetch(url)).headers.get('content-type')).toContain('text/html');
    } finally {
      child.kill('SIGTERM');
    }
  }, 30_000);
});

describe('a store being written', () => {
  it('shows only committed iterations: rows of an open transaction stay invisible', async () => {
    const writer = openSqliteStore(db, { backgroundCheckpoint: false });
    try {
      writer.db.exec('BEGIN');
      writer.db
        .prepare('INSERT INTO iterations (run_id, iteration, created_at) VALUES (?, ?, ?)')
        .run(RUNS.gigpo, 50, Date.now());
      const during = await json(`/api/runs/${RUNS.gigpo}`);
      expect(during.iterations.map((i: { iteration: number }) => i.iteration)).toEqual(
        store.iterations(RUNS.gigpo).map((i) => i.iteration),
      );
      writer.db.exec('ROLLBACK');
    } finally {
      writer.close();
    }
  });

  it('every response is one snapshot while `stepwise train --resume` writes iterations in another process', async () => {
    const before = store.iterations(RUNS.gigpo).map((i) => i.iteration);
    const config = join(dir, 'resume.json');
    writeFileSync(config, JSON.stringify(resumeConfig(db, RUNS.gigpo, 2, join(dir, 'resumed'))));
    const writer = spawn(
      process.execPath,
      ['bin/stepwise.js', 'train', config, '--db', db, '--resume', '--no-progress'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    writer.stdout.on('data', (d) => {
      output += d;
    });
    writer.stderr.on('data', (d) => {
      output += d;
    });
    const exited = new Promise<number | null>((resolve) => writer.on('close', resolve));
    let done = false;
    void exited.then(() => {
      done = true;
    });
    const G = runConfig(RUNS.gigpo).groupSize as number;
    const tasks = runConfig(RUNS.gigpo).tasksPerIteration as number;
    const seen = new Set<number>();
    let checks = 0;
    while (!done || checks === 0) {
      const run = await json(`/api/runs/${RUNS.gigpo}`);
      const its = run.iterations as Array<{ iteration: number; trajectories: number; groups: number }>;
      // metrics go in the same transaction as their iteration: one series point per iteration
      expect(run.metrics.success_rate.map((p: number[]) => p[0])).toEqual(its.map((i) => i.iteration));
      for (const i of its) {
        expect(i.groups).toBe(tasks);
        expect(i.trajectories).toBe(tasks * G);
        seen.add(i.iteration);
      }
      checks++;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(await exited, output).toBe(0);
    const final = await json(`/api/runs/${RUNS.gigpo}`);
    const all = [...before, before.length, before.length + 1];
    expect(final.iterations.map((i: { iteration: number }) => i.iteration)).toEqual(all);
    expect(final.metrics.success_rate).toHaveLength(all.length);
    expect(final.run.status).toBe('finished');
    expect(seen.size).toBeGreaterThanOrEqual(before.length);
    expect(checks).toBeGreaterThan(5);
  }, 180_000);
});

function runCli(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['bin/stepwise.js', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.on('close', (code) => resolve({ code, stderr }));
  });
}
