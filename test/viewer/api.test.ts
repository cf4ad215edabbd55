// The viewer's JSON API over HTTP on 127.0.0.1:0, on a store built from real envs, tokenizer,
// policy and estimators (fixture-store.ts). Expected values are derived from the store's own
// queries and from running the estimators again, not from the API's code.
import { spawn } from 'node:child_process';
import {
  closeSync,
  copyFileSync,
  mkdtempSync,
  openSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { estimators } from '../../src/credit/index.ts';
import { openStore, type TrajectoryStore } from '../../src/store/index.ts';
import { startViewer, type Viewer } from '../../src/viewer/server.ts';
import {
  buildFixtureStore,
  disposeFixtureModels,
  fixtureModels,
  HOUSEHOLD_RUN,
  SEARCH_RUN,
  writeHouseholdIteration,
} from './fixture-store.ts';

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

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'viewer-api-'));
  db = join(dir, 'runs.db');
  await buildFixtureStore(db, { iterations: 3, keepRunning: true });
  const { tokenizer } = fixtureModels();
  viewer = await startViewer({ db, port: 0, decodeToken: () => (id) => tokenizer.decode([id]) });
  store = openStore(db, { readonly: true });
}, 120_000);

afterAll(async () => {
  store?.close();
  await viewer?.close();
  await disposeFixtureModels();
  rmSync(dir, { recursive: true, force: true });
});

describe('runs and a run', () => {
  it('lists every run with estimator, status and best success', async () => {
    const { runs, estimators: names } = await json('/api/runs');
    expect(runs.map((r: { runId: string }) => r.runId)).toEqual([HOUSEHOLD_RUN, SEARCH_RUN]);
    expect(names).toEqual(['gigpo', 'igpo']);
    for (const r of runs) {
      const best = Math.max(...store.iterations(r.runId).map((i) => i.successRate));
      expect(r.bestSuccess).toBeCloseTo(best, 12);
      expect(r.iterations).toBe(3);
    }
    expect(runs[0].status).toBe('running');
    expect(runs[1].status).toBe('finished');
    const filtered = await json('/api/runs?estimator=igpo');
    expect(filtered.runs.map((r: { runId: string }) => r.runId)).toEqual([SEARCH_RUN]);
  });

  it('gives every metric as a series, the evaluations and the iterations', async () => {
    const run = await json(`/api/runs/${SEARCH_RUN}`);
    for (const name of ['success_rate', 'mean_return', 'invalid_rate', 'kl', 'entropy', 'tokens_per_s']) {
      expect(run.metrics[name], name).toHaveLength(3);
    }
    // success_rate as the stored trajectories say (won share per iteration)
    const won = store.iterations(SEARCH_RUN).map((i) => [i.iteration, i.successRate]);
    expect(run.metrics.success_rate).toEqual(won);
    const held = store
      .groups(SEARCH_RUN, 1)
      .filter((g) => g.split === 'valid-seen')
      .flatMap((g) => g.trajectories);
    const ev = run.evaluations.find((e: { iteration: number }) => e.iteration === 1);
    expect(ev).toMatchObject({ split: 'valid-seen', metric: 'success_rate' });
    expect(ev.value).toBeCloseTo(held.filter((t) => t.won).length / held.length, 12);
    expect(run.iterations.map((i: { iteration: number }) => i.iteration)).toEqual([0, 1, 2]);
  });
});

describe('an iteration', () => {
  it('has its groups with G rollouts each, and filters by task type, split and success', async () => {
    const all = await json(`/api/runs/${HOUSEHOLD_RUN}/iterations/1`);
    expect(all.groups).toEqual(store.groups(HOUSEHOLD_RUN, 1));
    expect(all.groups.every((g: { trajectories: unknown[] }) => g.trajectories.length === 4)).toBe(true);
    const won = await json(`/api/runs/${HOUSEHOLD_RUN}/iterations/1?success=won`);
    const expectedWon = store.groups(HOUSEHOLD_RUN, 1).flatMap((g) => g.trajectories.filter((t) => t.won));
    expect(won.groups.flatMap((g: { trajectories: unknown[] }) => g.trajectories)).toEqual(expectedWon);
    const kind = all.taskTypes[0];
    const byKind = await json(`/api/runs/${HOUSEHOLD_RUN}/iterations/1?taskType=${kind}`);
    expect(byKind.groups.every((g: { taskType: string }) => g.taskType === kind)).toBe(true);
    expect(byKind.groups.length).toBe(
      all.groups.filter((g: { taskType: string }) => g.taskType === kind).length,
    );
    const split = await json(`/api/runs/${SEARCH_RUN}/iterations/0?split=valid-seen`);
    expect(split.groups.map((g: { split: string }) => g.split)).toEqual(['valid-seen']);
  });

  it('searches the trajectories of a run by iteration and outcome', async () => {
    const r = await json(`/api/runs/${HOUSEHOLD_RUN}/trajectories?iteration=2&success=lost`);
    const lost = store.groups(HOUSEHOLD_RUN, 2).flatMap((g) => g.trajectories.filter((t) => !t.won));
    expect(r.trajectories.map((t: { trajectoryId: string }) => t.trajectoryId).sort()).toEqual(
      lost.map((t) => t.trajectoryId).sort(),
    );
    expect(
      r.trajectories.every((t: { iteration: number; won: boolean }) => t.iteration === 2 && !t.won),
    ).toBe(true);
  });
});

describe('a trajectory', () => {
  it('has every step with tokens, log-probs, tool calls and each estimator stored', async () => {
    const t = await json(`/api/runs/${SEARCH_RUN}/iterations/0/groups/q0/trajectories/t0`);
    const steps = store.trajectory({ runId: SEARCH_RUN, iteration: 0, groupId: 'q0', trajectoryId: 't0' });
    const { tokenizer } = fixtureModels();
    expect(t.steps).toHaveLength(steps.length);
    t.steps.forEach(
      (
        s: {
          tokens: Array<{ id: number; logprob: number; text: string }>;
          credit: Array<{ estimator: string }>;
          toolCalls: unknown;
        },
        i: number,
      ) => {
        expect(s.tokens.map((k: { id: number }) => k.id)).toEqual(Array.from(steps[i]!.responseTokens));
        expect(s.tokens.map((k: { logprob: number }) => k.logprob)).toEqual(
          Array.from(steps[i]!.responseLogprobs),
        );
        expect(s.tokens.map((k: { text: string }) => k.text).join('')).toBe(
          tokenizer.decode(steps[i]!.responseTokens),
        );
        expect(s.credit.map((c: { estimator: string }) => c.estimator).sort()).toEqual(['flow-grpo', 'igpo']);
        expect(s.toolCalls).toEqual(steps[i]!.toolCalls);
      },
    );
    expect(t.steps[0].toolCalls[0].tool).toBe('web_search');
  });

  it("shows GiGPO's parts and the members of the step group (same anchor, other rollouts)", async () => {
    const t = await json(`/api/runs/${HOUSEHOLD_RUN}/iterations/0/groups/g0/trajectories/t0`);
    const rows = store.trainingRows(HOUSEHOLD_RUN, 0);
    // the estimator again, over the stored rows of the iteration
    const again = estimators.gigpo.run(
      rows.map((r) => ({ ...r, anchor: r.anchor as string })),
      {},
    );
    const first = t.steps[0].credit.find((c: { estimator: string }) => c.estimator === 'gigpo');
    const i = rows.findIndex((r) => r.groupId === 'g0' && r.trajectoryId === 't0' && r.stepIndex === 0);
    expect(first.value).toBeCloseTo(again.advantages[i]!, 12);
    expect(first.details.episode + first.details.step).toBeCloseTo(first.value, 12);
    // every rollout of g0 starts from the same observation: all three others are in the step group
    const sameAnchor = rows.filter(
      (r) => r.groupId === 'g0' && r.trajectoryId !== 't0' && r.anchor === rows[i]!.anchor,
    );
    expect(
      first.stepGroup
        .map((m: { trajectoryId: string; stepIndex: number }) => `${m.trajectoryId}/${m.stepIndex}`)
        .sort(),
    ).toEqual(sameAnchor.map((r) => `${r.trajectoryId}/${r.stepIndex}`).sort());
    expect(first.stepGroup.length).toBeGreaterThanOrEqual(3);
  });

  it("shows HGPO's levels with sizes and weights, IGPO's values and gain, Flow-GRPO's samples", async () => {
    const h = await json(`/api/runs/${HOUSEHOLD_RUN}/iterations/0/groups/g0/trajectories/t0`);
    const hgpo = h.steps[0].credit.find((c: { estimator: string }) => c.estimator === 'hgpo');
    expect(hgpo.levels[0]).toMatchObject({
      k: 1,
      weight: 2,
      size: h.steps[0].credit[0].details.stepGroupSize,
    });
    expect(hgpo.levels.map((l: { weight: number }) => l.weight)).toEqual(
      hgpo.levels.map((l: { k: number }) => l.k + 1),
    );
    const s = await json(`/api/runs/${SEARCH_RUN}/iterations/0/groups/q0/trajectories/t0`);
    const steps = store.trajectory({ runId: SEARCH_RUN, iteration: 0, groupId: 'q0', trajectoryId: 't0' });
    const igpo = s.steps[0].credit.find((c: { estimator: string }) => c.estimator === 'igpo').igpo;
    expect(igpo.valueBefore).toBe(steps[0]!.extras.valueBefore);
    expect(igpo.valueAfter).toBe(steps[1]!.extras.valueBefore);
    expect(igpo.gain).toBeCloseTo(Math.exp(igpo.valueAfter) - Math.exp(igpo.valueBefore), 12);
    const flow = s.steps[0].credit.find((c: { estimator: string }) => c.estimator === 'flow-grpo').flow;
    const groupSteps = store.groups(SEARCH_RUN, 0)[0]!.trajectories.reduce((n, t) => n + t.length, 0);
    expect(flow.samples).toHaveLength(groupSteps);
    expect(flow.outcome).toBe(1);
  });
});

describe('bad input', () => {
  it('answers unknown ids and routes with 404 and a message', async () => {
    for (const path of [
      '/api/runs/nope',
      `/api/runs/${HOUSEHOLD_RUN}/iterations/99`,
      `/api/runs/${HOUSEHOLD_RUN}/iterations/0/groups/g0/trajectories/nope`,
      `/api/runs/${HOUSEHOLD_RUN}/iterations/0/groups/nope/trajectories/t0`,
      '/api/nothing',
    ]) {
      const r = await get(path);
      expect(r.status, path).toBe(404);
      expect(JSON.parse(r.body).error, path).toMatch(/no /);
    }
    const page = await get('/no/such/page');
    expect(page.status).toBe(404);
    expect(page.type).toContain('text/html');
    const bad = await get(`/api/runs/${HOUSEHOLD_RUN}/trajectories?iteration=x`);
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
      const res = await fetch(
        `${damaged.url}api/runs/${HOUSEHOLD_RUN}/iterations/0/groups/g0/trajectories/t0`,
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
      const res = await fetch(`${url}api/runs/${HOUSEHOLD_RUN}/iterations/0/groups/g0/trajectories/t0`);
      const body = (await res.json()) as {
        steps: Array<{ tokens: Array<{ id: number; text: string | null }> }>;
      };
      const { tokenizer } = fixtureModels();
      const step = body.steps[0]!;
      expect(step.tokens.map((t) => t.text).join('')).toBe(tokenizer.decode(step.tokens.map((t) => t.id)));
      expect((await fetch(url)).headers.get('content-type')).toContain('text/html');
    } finally {
      child.kill('SIGTERM');
    }
  }, 30_000);
});

describe('a store being written', () => {
  it('shows only whole iterations while a training run writes more', async () => {
    const writer = openStore(db, { backgroundCheckpoint: false });
    try {
      // Uncommitted rows of another connection are invisible; committed ones appear on the next request.
      writer.db.exec('BEGIN');
      writer.db
        .prepare('INSERT INTO iterations (run_id, iteration, created_at) VALUES (?, ?, ?)')
        .run(HOUSEHOLD_RUN, 50, Date.now());
      const during = await json(`/api/runs/${HOUSEHOLD_RUN}`);
      expect(during.iterations.map((i: { iteration: number }) => i.iteration)).toEqual([0, 1, 2]);
      writer.db.exec('ROLLBACK');
      await writeHouseholdIteration(writer, 3, { iterations: 4 });
      const after = await json(`/api/runs/${HOUSEHOLD_RUN}`);
      expect(after.iterations.map((i: { iteration: number }) => i.iteration)).toEqual([0, 1, 2, 3]);
      expect(after.metrics.success_rate).toHaveLength(4);
      expect(after.iterations[3].trajectories).toBe(8);
    } finally {
      writer.close();
    }
  }, 60_000);
});

describe('a store written by another process', () => {
  it('every response is one snapshot: iterations, their groups and their metrics agree', async () => {
    const writer = spawn(
      process.execPath,
      ['--import', 'tsx', 'test/viewer/write-iterations.ts', db, '4', '8'],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    let stderr = '';
    writer.stderr.on('data', (d) => {
      stderr += d;
    });
    const exited = new Promise<number | null>((resolve) => writer.on('close', resolve));
    let done = false;
    void exited.then(() => {
      done = true;
    });
    const seen = new Set<number>();
    let checks = 0;
    while (!done || checks === 0) {
      const run = await json(`/api/runs/${HOUSEHOLD_RUN}`);
      const its = run.iterations as Array<{ iteration: number; trajectories: number; groups: number }>;
      // metrics go in the same transaction as their iteration: one series point per iteration
      expect(run.metrics.success_rate.map((p: number[]) => p[0])).toEqual(its.map((i) => i.iteration));
      for (const i of its) {
        expect(i.groups).toBe(2);
        expect(i.trajectories).toBe(8);
        seen.add(i.iteration);
      }
      checks++;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(await exited, stderr).toBe(0);
    const final = await json(`/api/runs/${HOUSEHOLD_RUN}`);
    expect(final.iterations.map((i: { iteration: number }) => i.iteration)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(checks).toBeGreaterThan(5);
  }, 90_000);
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
