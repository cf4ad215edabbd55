// The store as the estimators' source and sink: rows read from it go into GiGPO unchanged, and
// the advantages (with their details) go back next to their steps.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { gigpo, rowDetails } from '../../src/credit/index.ts';
import { openStore, type StepInput } from '../../src/store/index.ts';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'stepwise-store-credit-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const step = (envReward: number): StepInput => ({
  stepIndex: 0,
  role: 'agent',
  anchor: 'You are in the kitchen.',
  promptText: 'p',
  promptTokens: [1],
  responseText: 'r',
  responseTokens: [2],
  responseLogprobs: [-0.5],
  envReward,
  valid: true,
  done: true,
});

it('stored rows feed GiGPO and its advantages are stored back', () => {
  const store = openStore(path.join(dir, 's.db'));
  store.createRun('r');
  store.writeIteration('r', {
    iteration: 0,
    groups: [
      {
        groupId: 'g',
        taskId: 't',
        seed: 1,
        split: 'train',
        trajectories: [
          { trajectoryId: 'won', outcome: 'won', won: true, steps: [step(1)] },
          { trajectoryId: 'lost', outcome: 'lost', won: false, steps: [step(0)] },
        ],
      },
    ],
  });
  const rows = store.trainingRows('r', 0);
  const result = gigpo(rows);
  store.writeAdvantages(
    'r',
    0,
    rows.map((row, i) => ({
      groupId: row.groupId,
      trajectoryId: row.trajectoryId,
      stepIndex: row.stepIndex,
      estimator: 'gigpo',
      value: result.advantages[i]!,
      details: rowDetails(result.details, i),
    })),
  );
  // By hand: episode scores S = [1, 0]: mean 0.5, std_s = sqrt(0.5) -> A_E = +-0.5 / (0.70710678 + 1e-6)
  // = +-0.70710578. Both steps share the anchor, R = [1, 0] -> A_S the same; A = A_E + A_S = +-1.41421156.
  const back = store.trainingRows('r', 0, 'gigpo');
  expect(back.map((r) => r.trajectoryId)).toEqual(['won', 'lost']);
  expect(back[0]!.advantage).toBeCloseTo(1.41421156, 7);
  expect(back[1]!.advantage).toBeCloseTo(-1.41421156, 7);
  const [detail] = store.trajectory({ runId: 'r', iteration: 0, groupId: 'g', trajectoryId: 'won' });
  expect(detail!.advantages[0]!.details).toEqual(rowDetails(result.details, 0));
  expect(store.check()).toMatchObject({ ok: true, findings: [] });
  store.close();
});
