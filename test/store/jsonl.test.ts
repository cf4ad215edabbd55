import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { exportJsonl, importRows, openStore, parseJsonl, type StepDetail } from '../../src/store/index.ts';
import { sampleGroups } from './sample.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'stepwise-jsonl-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const stepwise = (...args: string[]) =>
  execFileSync(process.execPath, ['bin/stepwise.js', ...args], { cwd: root, encoding: 'utf8' });

/** Every step of a store with typed arrays turned into plain arrays, for deep comparison. */
function snapshot(file: string): unknown[] {
  const s = openStore(file, { readonly: true });
  const plain = (x: StepDetail) => ({
    ...x,
    promptTokens: Array.from(x.promptTokens),
    responseTokens: Array.from(x.responseTokens),
    responseLogprobs: Array.from(x.responseLogprobs),
  });
  const out = [...s.allSteps()].map(plain);
  s.close();
  return out;
}

describe('export and import', () => {
  it('export then re-import (through the CLI) preserves every field', () => {
    const a = path.join(dir, 'a.db');
    const s = openStore(a);
    s.createRun('r1', { estimator: 'gigpo' });
    s.createRun('r2');
    s.writeIteration('r1', { iteration: 0, groups: sampleGroups(3, 3) });
    s.writeIteration('r1', { iteration: 1, groups: sampleGroups(2, 2) });
    s.writeIteration('r2', { iteration: 4, groups: sampleGroups(1, 2) });
    // A trajectory whose stored return is not the env-reward sum must keep it.
    s.writeIteration('r2', {
      iteration: 5,
      groups: [
        {
          ...sampleGroups(1, 1)[0]!,
          trajectories: [{ ...sampleGroups(1, 1)[0]!.trajectories[0]!, episodeReturn: 7.25 }],
        },
      ],
    });
    s.close();

    const jsonl = path.join(dir, 'a.jsonl');
    stepwise('store', 'export', '--db', a, '--format', 'jsonl', '--out', jsonl);
    const lines = readFileSync(jsonl, 'utf8').trim().split('\n');
    // r1: 3 groups x 3 (lengths sum 18) + 2 x 2 (1+2, 2+3 = 8); r2: 1+2 = 3, then 1.
    expect(lines).toHaveLength(18 + 8 + 3 + 1);
    const first = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(Object.keys(first).slice(0, 7)).toEqual([
      'groupId',
      'trajectoryId',
      'stepIndex',
      'anchor',
      'envReward',
      'valid',
      'episodeReturn',
    ]);
    // Extras sit beside the row fields (what `stepwise credit` reads for IGPO).
    expect(first.valueBefore).toBe(-0.5);

    const b = path.join(dir, 'b.db');
    expect(stepwise('store', 'import', '--db', b, '--in', jsonl)).toContain('30 step rows, 4 iterations');
    expect(snapshot(b)).toEqual(snapshot(a));
    // And the export of the copy is byte-identical.
    const jsonl2 = path.join(dir, 'b.jsonl');
    stepwise('store', 'export', '--db', b, '--out', jsonl2);
    expect(readFileSync(jsonl2, 'utf8')).toBe(readFileSync(jsonl, 'utf8'));
  });

  it('imports minimal rows from elsewhere with defaults, in any row order', () => {
    const rows = [
      {
        groupId: 'q1',
        trajectoryId: 'a',
        stepIndex: 1,
        anchor: 'room',
        envReward: 1,
        valid: true,
        won: true,
      },
      {
        groupId: 'q1',
        trajectoryId: 'a',
        stepIndex: 0,
        anchor: 'start',
        envReward: 0,
        valid: false,
        won: true,
      },
      {
        groupId: 'q1',
        trajectoryId: 'b',
        stepIndex: 0,
        anchor: 'start',
        envReward: 0,
        valid: true,
        answered: false,
      },
    ];
    const text = rows.map((r) => JSON.stringify(r)).join('\n');
    const s = openStore(path.join(dir, 'm.db'));
    expect(importRows(s, parseJsonl(text))).toEqual({ runs: ['imported'], iterations: 1, steps: 3 });
    const got = s.trainingRows('imported', 0);
    expect(got.map((r) => [r.trajectoryId, r.stepIndex, r.anchor, r.valid, r.done, r.episodeReturn])).toEqual(
      [
        ['a', 0, 'start', false, false, 1],
        ['a', 1, 'room', true, true, 1],
        ['b', 0, 'start', true, true, 0],
      ],
    );
    expect(s.groups('imported', 0)[0]).toMatchObject({
      taskId: 'q1',
      seed: 0,
      split: 'train',
      taskType: null,
    });
    expect(s.groups('imported', 0)[0]!.trajectories.map((t) => [t.outcome, t.won])).toEqual([
      ['won', true],
      ['unknown', false],
    ]);
    // Unknown fields are kept as extras.
    expect(got[2]!.extras).toEqual({ answered: false });
    expect(s.check().ok).toBe(true);
    s.close();
  });

  it('names the line and field of a malformed row and writes nothing', () => {
    const good = JSON.stringify({
      groupId: 'g',
      trajectoryId: 't',
      stepIndex: 0,
      anchor: 'a',
      envReward: 0,
      valid: true,
    });
    expect(() =>
      parseJsonl(`${good}\n\n{"groupId":"g","trajectoryId":"t","stepIndex":1,"anchor":"a","valid":true}`),
    ).toThrow("line 3: field 'envReward'");
    expect(() => parseJsonl(`${good}\n{not json`)).toThrow(/line 2: not valid JSON/);
    expect(() => parseJsonl(good.replace('"valid":true', '"valid":"yes"'))).toThrow("line 1: field 'valid'");

    // Rows that parse but disagree: the whole import is refused, earlier runs included.
    const s = openStore(path.join(dir, 'x.db'));
    const rows = [
      good,
      JSON.stringify({
        runId: 'other',
        groupId: 'g',
        trajectoryId: 't',
        stepIndex: 0,
        anchor: 'a',
        envReward: 0,
        valid: true,
      }),
      JSON.stringify({
        runId: 'other',
        groupId: 'g',
        trajectoryId: 't',
        stepIndex: 2,
        anchor: 'a',
        envReward: 0,
        valid: true,
      }),
    ].join('\n');
    expect(() => importRows(s, parseJsonl(rows))).toThrow(
      "line 3: field 'stepIndex' is 2; trajectory 't' in group 'g' has no step 1",
    );
    expect(() => importRows(s, parseJsonl([good, good].join('\n')))).toThrow(
      "line 2: field 'stepIndex': step 0 of trajectory 't' in group 'g' appears twice (also line 1)",
    );
    const seeds = [
      good,
      good.replace('"stepIndex":0', '"stepIndex":1').replace('"groupId":"g"', '"groupId":"g","seed":3'),
    ];
    expect(() => importRows(s, parseJsonl(seeds.join('\n')))).toThrow(
      "line 2: field 'seed' is 3 but earlier rows of group 'g' have 0",
    );
    expect(s.runs()).toEqual([]);
    s.close();
  });

  it('the import command reports the bad line and creates nothing', () => {
    const bad = path.join(dir, 'bad.jsonl');
    const ok = { groupId: 'g', trajectoryId: 't', stepIndex: 0, anchor: 'a', envReward: 0, valid: true };
    writeFileSync(
      bad,
      `${JSON.stringify(ok)}\n${JSON.stringify({ ...ok, stepIndex: 1, promptTokens: [1, 2.5] })}\n`,
    );
    const db = path.join(dir, 'never.db');
    let stderr = '';
    try {
      stepwise('store', 'import', '--db', db, '--in', bad);
    } catch (err) {
      stderr = (err as { stderr: string }).stderr;
    }
    expect(stderr).toContain("line 2: field 'promptTokens.1'");
    expect(existsSync(db)).toBe(false);
  });

  it('exports one run or one iteration to a callback', async () => {
    const s = openStore(path.join(dir, 'e.db'));
    s.createRun('r1');
    s.createRun('r2');
    s.writeIteration('r1', { iteration: 0, groups: sampleGroups(1, 1) });
    s.writeIteration('r2', { iteration: 0, groups: sampleGroups(2, 2) });
    let text = '';
    const n = await exportJsonl(
      s,
      (c) => {
        text += c;
      },
      { runId: 'r1' },
    );
    expect(n).toBe(1);
    expect(JSON.parse(text)).toMatchObject({
      runId: 'r1',
      groupId: 'g0',
      trajectoryId: 'it-g0-t0',
      stepIndex: 0,
    });
    // sampleGroups(1, 2) has trajectories of 1 and 2 steps; sampleGroups(2, 2) 1+2 and 2+3.
    s.writeIteration('r2', { iteration: 1, groups: sampleGroups(1, 2) });
    const count = (filter: { runId?: string; iteration?: number }) => exportJsonl(s, () => {}, filter);
    expect(await count({ runId: 'r2', iteration: 1 })).toBe(3);
    expect(await count({ iteration: 0 })).toBe(1 + 8);
    expect(await count({})).toBe(1 + 8 + 3);
    s.close();
  });
});
