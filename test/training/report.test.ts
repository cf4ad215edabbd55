/** The `--summary` JSON: task counts, Wilson intervals and the paired after-minus-before difference. */
import { describe, expect, it } from 'vitest';
import type { EvalResult } from '../../src/training/context.ts';
import { resultTable, summaryJson } from '../../src/training/report.ts';
import { pairedBootstrap, wilson } from '../../src/training/stats.ts';
import type { TrainResult } from '../../src/training/trainer.ts';

function evaluation(
  split: EvalResult['split'],
  outcomes: number[] | undefined,
  tasks: number,
  wins: number,
): EvalResult {
  return {
    split,
    tasks,
    success: wins / tasks,
    meanReturn: 0,
    invalidRate: 0,
    byType: {},
    scores: {},
    ...(outcomes ? { outcomes } : {}),
  };
}

function result(before: number[] | undefined, after: number[]): TrainResult {
  const n = after.length;
  const wins = (xs: number[] | undefined, fallback: number) =>
    xs ? xs.reduce((a, b) => a + b, 0) : fallback;
  return {
    before: {
      'valid-seen': evaluation('valid-seen', undefined, n, 1),
      'valid-unseen': evaluation('valid-unseen', before, n, wins(before, 2)),
    },
    after: {
      'valid-seen': evaluation('valid-seen', undefined, n, 2),
      'valid-unseen': evaluation('valid-unseen', after, n, wins(after, 0)),
    },
  } as unknown as TrainResult;
}

describe('summaryJson', () => {
  // 200 paired tasks: 40 won before; after, 30 of those still won and 50 newly won
  const before = Array.from({ length: 200 }, (_, i) => (i < 40 ? 1 : 0));
  const after = Array.from({ length: 200 }, (_, i) => (i < 30 || (i >= 40 && i < 90) ? 1 : 0));

  it('gives each side its task count and Wilson interval, and the paired difference on valid-unseen', () => {
    const json = summaryJson(result(before, after));
    expect(json.before).toMatchObject({ success: 0.2, tasks: 200, ci95: wilson(40, 200) });
    expect(json.after).toMatchObject({ success: 0.4, tasks: 200, ci95: wilson(80, 200) });
    expect(json.before.validSeen.ci95).toEqual(wilson(1, 200));
    const d = pairedBootstrap(before, after);
    expect(json.difference).toEqual({ value: d.value, ci95: d.ci95, tasks: 200 });
    expect(json.difference!.value).toBeCloseTo(0.2, 12);
    expect(json.difference!.ci95[0]).toBeGreaterThan(0);
  });

  it('has no difference when a side was read back from the store without per-task outcomes', () => {
    expect(summaryJson(result(undefined, after)).difference).toBeNull();
  });
});

describe('resultTable', () => {
  it('shows each overall rate with its interval and task count, and the paired difference below', () => {
    const before = Array.from({ length: 200 }, (_, i) => (i < 40 ? 1 : 0));
    const after = Array.from({ length: 200 }, (_, i) => (i < 30 || (i >= 40 && i < 90) ? 1 : 0));
    const table = resultTable(result(before, after));
    const [lo, hi] = wilson(40, 200).map((x) => (100 * x).toFixed(1));
    expect(table).toContain(`20.0% [${lo},${hi}] n=200`);
    const d = pairedBootstrap(before, after);
    expect(table).toContain(
      `valid-unseen after - before: +20.0 points, 95% interval [+${(100 * d.ci95[0]).toFixed(1)}, +${(100 * d.ci95[1]).toFixed(1)}] (paired bootstrap, 200 tasks)`,
    );
    // Without per-task outcomes on one side there is no pairing, so no difference line.
    expect(resultTable(result(undefined, after))).not.toContain('after - before');
  });
});
