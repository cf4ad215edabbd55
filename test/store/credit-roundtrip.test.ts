// The store as the estimators' source and sink: rows read from it go into GiGPO unchanged, and
// the advantages (with their details) go back next to their steps.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { gigpo, rowDetails } from '../../src/credit/index.ts';
import { importRows, openStore, parseJsonl, type StepInput } from '../../src/store/index.ts';
import { sampleGroups } from './sample.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const stepwise = (...args: string[]) =>
  execFileSync(process.execPath, ['bin/stepwise.js', ...args], { cwd: root, encoding: 'utf8' });

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

it('store export | stepwise credit | store import --estimator keeps the advantages', () => {
  const a = path.join(dir, 'a.db');
  const store = openStore(a);
  store.createRun('r');
  store.writeIteration('r', { iteration: 0, groups: sampleGroups(2, 4) });
  store.close();
  const exported = path.join(dir, 'rows.jsonl');
  const credited = path.join(dir, 'credited.jsonl');
  stepwise('store', 'export', '--db', a, '--out', exported);
  stepwise('credit', '--estimator', 'gigpo', '--in', exported, '--out', credited);

  const b = openStore(path.join(dir, 'b.db'));
  importRows(b, parseJsonl(readFileSync(credited, 'utf8')), { estimator: 'gigpo-cli' });
  // The same advantages as GiGPO run in-process over the rows of the original store.
  const ro = openStore(a, { readonly: true });
  const expected = gigpo(ro.trainingRows('r', 0)).advantages;
  ro.close();
  const rows = b.trainingRows('r', 0, 'gigpo-cli');
  expect(rows).toHaveLength(expected.length);
  rows.forEach((row, i) => {
    expect(row.advantage).toBeCloseTo(expected[i]!, 12);
  });
  // `advantage` and `credit` became an advantage record, not extras; the sample's own extras stay.
  expect(Object.keys(rows[0]!.extras).sort()).toEqual(['note', 'valueBefore']);
  const [first] = b.trajectory({ runId: 'r', iteration: 0, groupId: 'g0', trajectoryId: 'it-g0-t0' });
  expect(first!.advantages.map((x) => x.estimator)).toEqual(['gigpo', 'gigpo-cli']);
  b.close();
});
