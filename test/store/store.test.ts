import { afterEach, describe, expect, it } from 'vitest';
import { openStore, SCHEMA_VERSION, SqliteStore } from '../../src/store/index.ts';
import { backends } from './backends.ts';
import { sampleGroups } from './sample.ts';

describe.each(backends)('store writes and queries ($backend.name)', ({ backend, skip }) => {
  afterEach(() => backend.cleanup());
  const fresh = () => backend.fresh();

  it.skipIf(skip)('writes an iteration and reads every field back', () => {
    const file = fresh();
    const store = openStore(file);
    expect(store.backend).toBe(backend.name);
    if (store instanceof SqliteStore) {
      expect(store.db.pragma('journal_mode', { simple: true })).toBe('wal');
      expect(store.db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    }
    expect(store.check().schemaVersion).toBe(SCHEMA_VERSION);
    store.createRun('r1', { estimator: 'gigpo', lr: 1e-5 });
    const groups = sampleGroups(2, 3);
    store.writeIteration('r1', { iteration: 0, groups, metrics: { loss: 0.25, success: 0.5 } });
    store.writeIteration('r1', { iteration: 1, groups, metrics: { loss: 0.125 } });
    store.close();

    const ro = openStore(file, { readonly: true });
    const [run] = ro.runs();
    expect(run).toMatchObject({ runId: 'r1', config: { estimator: 'gigpo', lr: 1e-5 }, status: 'running' });
    expect(run!.iterations).toBe(2);
    expect(ro.lastCompleteIteration('r1')).toBe(1);
    expect(ro.lastCompleteIteration('nope')).toBeUndefined();

    // Group 0: lengths 1,2,3; group 1: 2,3,1 -> 6 trajectories, 12 steps; won = t even -> 4 of 6.
    const its = ro.iterations('r1');
    expect(its.map((i) => [i.iteration, i.groups, i.trajectories, i.steps])).toEqual([
      [0, 2, 6, 12],
      [1, 2, 6, 12],
    ]);
    expect(its[0]!.successRate).toBeCloseTo(4 / 6, 12);
    expect(its[0]!.meanLength).toBe(2);

    const gs = ro.groups('r1', 0);
    expect(gs.map((g) => [g.groupId, g.taskId, g.taskType, g.seed, g.split])).toEqual([
      ['g0', 'task-0', 'pick_and_place', 42, 'train'],
      ['g1', 'task-1', 'look_at_obj', 43, 'train'],
    ]);
    // Trajectory g0/t1 has 2 steps: rewards -0.5 then -1 (t odd, last) -> return -1.5.
    expect(gs[0]!.trajectories[1]).toEqual({
      trajectoryId: 'it-g0-t1',
      outcome: 'lost',
      won: false,
      length: 2,
      episodeReturn: -1.5,
    });

    const steps = ro.trajectory({ runId: 'r1', iteration: 0, groupId: 'g1', trajectoryId: 'it-g1-t0' });
    const input = groups[1]!.trajectories[0]!.steps;
    expect(steps).toHaveLength(input.length);
    steps.forEach((s, i) => {
      const want = input[i]!;
      expect(s.stepIndex).toBe(i);
      expect(s.role).toBe(want.role);
      expect(s.anchor).toEqual(want.anchor);
      expect(s.promptText).toBe(want.promptText);
      expect(Array.from(s.promptTokens)).toEqual(Array.from(want.promptTokens));
      expect(Array.from(s.responseTokens)).toEqual(Array.from(want.responseTokens));
      expect(s.responseLogprobs).toBeInstanceOf(Float32Array);
      expect(Array.from(s.responseLogprobs)).toEqual(Array.from(Float32Array.from(want.responseLogprobs)));
      expect([s.envReward, s.valid, s.done]).toEqual([want.envReward, want.valid, want.done]);
      expect(s.extras).toEqual(want.extras);
      expect(s.toolCalls).toEqual(want.toolCalls);
      expect(s.advantages).toEqual(want.advantages);
    });

    const rows = ro.trainingRows('r1', 1, 'gigpo');
    expect(rows).toHaveLength(12);
    // Write order: group, trajectory, step.
    expect(rows.slice(0, 4).map((r) => [r.groupId, r.trajectoryId, r.stepIndex])).toEqual([
      ['g0', 'it-g0-t0', 0],
      ['g0', 'it-g0-t1', 0],
      ['g0', 'it-g0-t1', 1],
      ['g0', 'it-g0-t2', 0],
    ]);
    // advantage = 0.5 - t + s/4: g0/t2/s0 -> -1.5.
    expect(rows[3]!.advantage).toBe(-1.5);
    expect(ro.trainingRows('r1', 1, 'hgpo')[0]!.advantage).toBeUndefined();

    expect(ro.metricNames('r1')).toEqual(['loss', 'success']);
    expect(ro.metricSeries('r1', 'loss')).toEqual([
      { iteration: 0, value: 0.25 },
      { iteration: 1, value: 0.125 },
    ]);
    expect(() => ro.createRun('r2')).toThrow(/read-only/);
    ro.close();
  });

  it.skipIf(skip)('adds advantages, metrics and checkpoints to stored iterations', () => {
    const store = openStore(fresh());
    store.createRun('r');
    store.writeIteration('r', { iteration: 3, groups: sampleGroups(1, 2) });
    store.writeAdvantages('r', 3, [
      {
        groupId: 'g0',
        trajectoryId: 'it-g0-t1',
        stepIndex: 1,
        estimator: 'hgpo',
        value: 0.75,
        details: { levels: [1, 2] },
      },
    ]);
    expect(
      store.trajectory({ runId: 'r', iteration: 3, groupId: 'g0', trajectoryId: 'it-g0-t1' })[1]!.advantages,
    ).toEqual([
      { estimator: 'gigpo', value: 0.5 - 1 + 1 / 4, details: { episode: -0.5, step: 0.25 } },
      { estimator: 'hgpo', value: 0.75, details: { levels: [1, 2] } },
    ]);
    // A row naming a missing step fails the whole call, including the rows before it.
    expect(() =>
      store.writeAdvantages('r', 3, [
        { groupId: 'g0', trajectoryId: 'it-g0-t0', stepIndex: 0, estimator: 'rloo', value: 1 },
        { groupId: 'g0', trajectoryId: 'it-g0-t0', stepIndex: 7, estimator: 'rloo', value: 1 },
      ]),
    ).toThrow(/no step 7 of trajectory 'it-g0-t0' in group 'g0'/);
    expect(store.trainingRows('r', 3, 'rloo').filter((r) => r.advantage !== undefined)).toHaveLength(0);
    expect(() =>
      store.writeAdvantages('r', 3, [
        {
          groupId: 'g0',
          trajectoryId: 'it-g0-t0',
          stepIndex: 0,
          estimator: 'rloo',
          value: Number.POSITIVE_INFINITY,
        },
      ]),
    ).toThrow(/advantage 'rloo' of step row \d+ is Infinity; expected a finite number/);

    store.writeMetrics('r', 3, { eval_success: 0.875 });
    expect(() => store.writeMetrics('r', 4, { bad: Number.NaN })).toThrow(
      /metric 'bad' of iteration 4 is NaN/,
    );
    expect(store.resumePoint('r')).toEqual({
      nextIteration: 4,
      lastCompleteIteration: 3,
      checkpoint: undefined,
    });
    expect(store.resumePoint('new')).toEqual({
      nextIteration: 0,
      lastCompleteIteration: undefined,
      checkpoint: undefined,
    });
    store.addCheckpoint('r', 3, 'checkpoints/it3', { loss: 1 });
    // A checkpoint of an iteration that never completed is not a resume point.
    store.addCheckpoint('r', 9, 'checkpoints/it9');
    expect(store.resumePoint('r')).toMatchObject({
      nextIteration: 4,
      checkpoint: { iteration: 3, path: 'checkpoints/it3' },
    });
    expect(store.checkpoints('r')).toMatchObject([
      { iteration: 3, path: 'checkpoints/it3', info: { loss: 1 } },
      { iteration: 9, path: 'checkpoints/it9', info: {} },
    ]);
    store.setRunStatus('r', 'finished');
    expect(store.run('r')!.status).toBe('finished');
    expect(store.check().ok).toBe(true);
    store.close();
  });

  it.skipIf(skip)('refuses bad iterations without writing any of them', () => {
    const store = openStore(fresh());
    expect(() => store.writeIteration('r', { iteration: 0, groups: [] })).toThrow(/no run 'r' in the store/);
    store.createRun('r');
    const groups = sampleGroups(2, 2);
    const bad = structuredClone(groups);
    (bad[1]!.trajectories[1]!.steps[0] as unknown as { responseLogprobs: number[] }).responseLogprobs = [-1];
    expect(() => store.writeIteration('r', { iteration: 0, groups: bad })).toThrow(
      /group 'g1', trajectory 'it-g1-t1', step 0: 1 responseLogprobs for 2 responseTokens/,
    );
    const shadow = structuredClone(groups);
    shadow[0]!.trajectories[0]!.steps[0]!.extras = { anchor: 1 };
    expect(() => store.writeIteration('r', { iteration: 0, groups: shadow })).toThrow(
      /extras key 'anchor' shadows/,
    );
    const nan = structuredClone(groups);
    (nan[0]!.trajectories[1]!.steps[1] as { envReward: number }).envReward = Number.NaN;
    expect(() => store.writeIteration('r', { iteration: 0, groups: nan })).toThrow(
      "group 'g0', trajectory 'it-g0-t1', step 1: envReward is NaN; expected a finite number",
    );
    const order = structuredClone(groups);
    (order[0]!.trajectories[1]!.steps[0] as { stepIndex: number }).stepIndex = 1;
    expect(() => store.writeIteration('r', { iteration: 0, groups: order })).toThrow(
      /has stepIndex 1; expected 0/,
    );
    expect(store.iterations('r')).toEqual([]);
    expect(store.check().counts.steps).toBe(0);

    store.writeIteration('r', { iteration: 0, groups });
    expect(() => store.writeIteration('r', { iteration: 0, groups })).toThrow(
      /iteration 0 of run 'r' is already stored/,
    );
    store.close();
  });
});
