// `stepwise credit` run as a user runs it: a child process over real files.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CreditLineError, creditJsonl } from '../../src/credit/index.ts';
import { expectClose } from './helpers.ts';

const root = path.resolve(import.meta.dirname, '../..');
const dir = mkdtempSync(path.join(os.tmpdir(), 'stepwise-credit-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function stepwise(...args: string[]) {
  const r = spawnSync(process.execPath, [path.join(root, 'bin/stepwise.js'), 'credit', ...args], {
    cwd: dir,
    encoding: 'utf8',
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const jsonl = (rows: object[]) => `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`;

// The GiGPO batch of gigpo.test.ts: a: X, Y with rewards 0, 1; b: X, Z with rewards 0, 0.
const rows = [
  { groupId: 'g', trajectoryId: 'a', stepIndex: 0, anchor: 'X', envReward: 0, valid: true, text: 'go to X' },
  { groupId: 'g', trajectoryId: 'a', stepIndex: 1, anchor: 'Y', envReward: 1, valid: true },
  { groupId: 'g', trajectoryId: 'b', stepIndex: 0, anchor: 'X', envReward: 0, valid: true },
  { groupId: 'g', trajectoryId: 'b', stepIndex: 1, anchor: 'Z', envReward: 0, valid: false },
];

describe('stepwise credit (CLI)', () => {
  it('writes every input line, in order, with advantage and credit added', () => {
    const input = path.join(dir, 'rows.jsonl');
    // a blank line in the middle is skipped
    writeFileSync(input, `${jsonl(rows.slice(0, 2))}\n${jsonl(rows.slice(2))}`);
    const out = path.join(dir, 'out.jsonl');
    const r = stepwise(
      '--estimator',
      'gigpo',
      '--in',
      input,
      '--out',
      out,
      '--gamma',
      '0.5',
      '--mode',
      'mean_norm',
      '--no-penalty',
    );
    expect(r.code, r.stderr).toBe(0);
    const lines = readFileSync(out, 'utf8')
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.length).toBe(4);
    // the input fields are untouched, extra fields included
    for (let i = 0; i < 4; i++) expect(lines[i]).toMatchObject(rows[i]);
    // hand-worked (gigpo.test.ts): A_E = [.5, .5, -.5, -.5], A_S = [.25, 0, -.25, 0]
    expectClose(
      lines.map((l) => l.advantage),
      [0.75, 0.5, -0.75, -0.5],
    );
    expect(lines[0].credit).toEqual({
      episode: 0.5,
      step: 0.25,
      return: 0.5,
      stepGroup: 0,
      stepGroupSize: 2,
      penalty: 0,
    });
    expect(r.stdout).toContain('gigpo over 4 rows');
  });

  it("applies each estimator's defaults and the penalty flags", () => {
    const input = path.join(dir, 'rows2.jsonl');
    writeFileSync(input, jsonl(rows));
    const out = path.join(dir, 'out2.jsonl');
    // --penalty 0.5 on GRPO, mean_norm: scores [1, 1, 0, -0.5], mean 0.375
    const r = stepwise(
      '--estimator',
      'grpo',
      '--in',
      input,
      '--out',
      out,
      '--penalty',
      '0.5',
      '--mode',
      'mean_norm',
    );
    expect(r.code, r.stderr).toBe(0);
    const adv = readFileSync(out, 'utf8')
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l).advantage);
    expectClose(adv, [0.625, 0.625, -0.375, -0.875]);
  });

  it('a malformed line fails with its line number and field, and writes nothing', () => {
    const input = path.join(dir, 'bad.jsonl');
    writeFileSync(input, jsonl([rows[0], rows[1], { ...rows[2], envReward: 'lots' }, rows[3]]));
    const out = path.join(dir, 'never.jsonl');
    const r = stepwise('--estimator', 'gigpo', '--in', input, '--out', out);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/line 3: field 'envReward': .*expected number/);
    expect(existsSync(out)).toBe(false);
    // an existing output stays as it was
    writeFileSync(out, 'old\n');
    expect(stepwise('--estimator', 'gigpo', '--in', input, '--out', out).code).not.toBe(0);
    expect(readFileSync(out, 'utf8')).toBe('old\n');
  });

  it('refuses an option the estimator does not have, naming it', () => {
    const r = stepwise('--estimator', 'gigpo', '--in', 'x', '--out', 'y', '--history', '3');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('option --history does not apply to estimator gigpo (it applies to: hgpo)');
  });
});

describe('creditJsonl (what the CLI runs)', () => {
  const text = jsonl(rows);

  it('names the line and field of every kind of bad input', () => {
    const bad = (t: string, estimator: 'gigpo' | 'igpo' | 'hgpo' = 'gigpo') => {
      try {
        creditJsonl(t, estimator);
      } catch (err) {
        expect(err).toBeInstanceOf(CreditLineError);
        return (err as Error).message;
      }
      throw new Error('expected a failure');
    };
    expect(bad(`${text}{not json\n`)).toMatch(/^line 5: not valid JSON/);
    expect(bad(`${text}[1, 2]\n`)).toMatch(/^line 5: expected a JSON object/);
    const { anchor: _, ...noAnchor } = rows[1];
    expect(bad(jsonl([rows[0], noAnchor]))).toBe("line 2: field 'anchor': missing (required in every row)");
    expect(bad(jsonl([rows[0], { ...rows[1], stepIndex: -1 }]))).toMatch(/^line 2: field 'stepIndex'/);
    expect(bad(jsonl([rows[0], { ...rows[1], valid: 'yes' }]))).toMatch(/^line 2: field 'valid'/);
    // found by the estimator, reported by line: duplicate step, IGPO's per-turn value
    expect(bad(jsonl([rows[0], rows[2], { ...rows[1], stepIndex: 0 }]))).toMatch(
      /^line 3: field 'stepIndex': duplicate stepIndex 0/,
    );
    expect(bad(text, 'igpo')).toBe("line 1: field 'valueBefore': missing; expected a finite number");
  });

  it('gives every estimator its ALGORITHMS.md defaults', () => {
    // gigpo and hgpo discount with 0.95: R(a, step 0) = 0 + 0.95 * 1
    for (const e of ['gigpo', 'hgpo'] as const) {
      const first = JSON.parse(creditJsonl(text, e).output.split('\n')[0]);
      expect(first.credit.return).toBeCloseTo(0.95, 12);
    }
    // hgpo's levels: H = 2 -> k = 0..3 in the details; base group off -> level 0 is null
    const h = JSON.parse(creditJsonl(text, 'hgpo').output.split('\n')[0]);
    expect(h.credit.level.length).toBe(4);
    expect(h.credit.level[0]).toBeNull();
  });
});
