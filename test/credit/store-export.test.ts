// A store export goes through `stepwise credit` unchanged apart from the credit fields, and rows of
// different iterations never share a group even though the store reuses groupIds across iterations.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { creditJsonl, gigpo } from '../../src/credit/index.ts';
import { exportJsonl, type GroupInput, openStore } from '../../src/store/index.ts';
import { expectClose, row } from './helpers.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'stepwise-credit-store-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** One group 'g0' of two trajectories; rewards differ per iteration. */
function group(rewards: number[][]): GroupInput {
  return {
    groupId: 'g0',
    taskId: 'task-0',
    seed: 0,
    split: 'train',
    trajectories: rewards.map((rs, t) => ({
      trajectoryId: `t${t}`,
      outcome: rs.some((r) => r > 0) ? 'won' : 'lost',
      won: rs.some((r) => r > 0),
      steps: rs.map((r, s) => ({
        stepIndex: s,
        role: 'agent',
        anchor: s === 0 ? 'start' : `room ${t}`,
        promptText: 'p',
        promptTokens: [1, 2],
        responseText: 'r',
        responseTokens: [3],
        responseLogprobs: [-0.5],
        envReward: r,
        valid: true,
        done: s === rs.length - 1,
      })),
    })),
  };
}

describe('store export -> credit', () => {
  it('keeps iterations apart and every exported field in place', async () => {
    const store = openStore(path.join(dir, 'runs.db'));
    store.createRun('run');
    store.writeIteration('run', {
      iteration: 0,
      groups: [
        group([
          [0, 10],
          [0, 0],
        ]),
      ],
    });
    store.writeIteration('run', {
      iteration: 1,
      groups: [
        group([
          [0, 0],
          [0, 0, 10],
        ]),
      ],
    });
    let text = '';
    await exportJsonl(store, (chunk) => {
      text += chunk;
    });
    store.close();

    const { output } = creditJsonl(text, 'gigpo');
    const lines = output
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    const input = text
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.length).toBe(9);
    for (let i = 0; i < lines.length; i++) {
      const { advantage, credit, ...rest } = lines[i];
      expect(rest).toEqual(input[i]);
      expect(typeof advantage).toBe('number');
    }
    // each iteration alone, computed from hand-built rows, gives the same advantages
    for (const iteration of [0, 1]) {
      const mine = lines.filter((l) => l.iteration === iteration);
      const alone = gigpo(mine.map((l) => row('g0', l.trajectoryId, l.stepIndex, l.anchor, l.envReward)));
      expectClose(
        mine.map((l) => l.advantage),
        Array.from(alone.advantages),
      );
      // both trajectories of the iteration, and only they, form its group
      expect(alone.diagnostics.groupSize.max).toBe(2);
    }
  });
});
