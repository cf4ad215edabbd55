import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { CodeMathEnv, isCorrect } from '../../src/envs/codemath/env.ts';
import { CodeMathExpert, expertProgram } from '../../src/envs/codemath/expert.ts';
import { CodeMathGenerator, type CodeMathTask, PROBLEM_KINDS } from '../../src/envs/codemath/generator.ts';
import { normalizeDigits, normalizeNumber } from '../../src/envs/codemath/numbers.ts';
import { SPLITS } from '../../src/envs/types.ts';
import type { Tool, ToolResult } from '../../src/tools/types.ts';

const gen = new CodeMathGenerator();

// Unit factors written again here, independently of the generator's table.
const FACTORS: Record<string, [bigint, number]> = {
  'kilometers>meters': [1000n, 0],
  'meters>centimeters': [100n, 0],
  'hours>seconds': [3600n, 0],
  'days>hours': [24n, 0],
  'weeks>minutes': [7n * 24n * 60n, 0],
  'kilograms>grams': [1000n, 0],
  'miles>feet': [5280n, 0],
  'feet>inches': [12n, 0],
  'inches>centimeters': [254n, 2],
  'yards>meters': [9144n, 4],
  'pounds>kilograms': [45359237n, 8],
  'US gallons>liters': [3785411784n, 9],
  'grams>kilograms': [1n, 3],
  'milliliters>liters': [1n, 3],
};

/** a/10^s as an exact pair, from "12.5" -> [125n, 1]. */
function dec(text: string): [bigint, number] {
  const [i, f = ''] = text.split('.');
  return [BigInt(i! + f), f.length];
}

/** a == b for decimals given as [units, scale]. */
function decEqual(a: [bigint, number], b: [bigint, number]): boolean {
  const s = Math.max(a[1], b[1]);
  return a[0] * 10n ** BigInt(s - a[1]) === b[0] * 10n ** BigInt(s - b[1]);
}

function digitsValue(digits: string, base: number): bigint {
  let v = 0n;
  for (const c of digits) v = v * BigInt(base) + BigInt(Number.parseInt(c, 36));
  return v;
}

/** The answer recomputed from the question text alone, with methods other than the generator's. */
function checkAgainstQuestion(task: CodeMathTask): void {
  const { question, answer, params } = task.payload;
  switch (params.kind) {
    case 'product': {
      let p = 1n;
      for (const f of params.factors) {
        expect(question).toContain(f);
        p *= BigInt(f);
      }
      expect(answer).toBe(p.toString());
      break;
    }
    case 'sum': {
      const nums = question.match(/\d{2,}/g)!.map(BigInt);
      expect(nums).toHaveLength(params.terms.length);
      expect(answer).toBe(nums.reduce((a, b) => a + b, 0n).toString());
      break;
    }
    case 'percentage': {
      // answer * 100 == percent * of, exactly.
      expect(question).toContain(params.percent);
      expect(question).toContain(params.of);
      const [pu, ps] = dec(params.percent);
      const [ou] = dec(params.of);
      const [au, as] = dec(answer);
      expect(decEqual([au * 100n, as], [pu * ou, ps])).toBe(true);
      break;
    }
    case 'unit': {
      expect(question).toContain(`${params.value} ${params.from}`);
      const [fu, fs] = FACTORS[`${params.from}>${params.to}`]!;
      const [vu, vs] = dec(params.value);
      expect(decEqual(dec(answer), [vu * fu, vs + fs])).toBe(true);
      break;
    }
    case 'base': {
      expect(question).toContain(params.value);
      if (params.direction === 'to') {
        expect(task.payload.answerBase).toBe(params.base);
        expect(digitsValue(answer, params.base)).toBe(BigInt(params.value));
      } else {
        expect(BigInt(answer)).toBe(digitsValue(params.value, params.base));
      }
      break;
    }
    case 'date': {
      const [a, b] = question.match(/\d{4}-\d{2}-\d{2}/g)!;
      expect(Number(answer)).toBe((Date.parse(`${b}T00:00:00Z`) - Date.parse(`${a}T00:00:00Z`)) / 86_400_000);
      break;
    }
    case 'count': {
      let n = 0;
      if (params.variant === 'divisible') {
        for (let i = params.lo; i <= params.hi; i++) if (i % params.k === 0 && i % params.m !== 0) n++;
      } else {
        const all = Array.from({ length: params.n }, (_, i) => i + 1).join('');
        n = all.split(String(params.digit)).length - 1;
      }
      expect(answer).toBe(String(n));
      break;
    }
  }
}

/** A stand-in Tool that evaluates nothing: it replays canned outputs, to test the env's plumbing only. */
function cannedTool(outputs: ToolResult[]): Tool & { resets: number; calls: string[] } {
  const tool = {
    name: 'python',
    description: 'canned',
    schema: z.object({ code: z.string() }),
    limits: { timeMs: 1000, outputChars: 1000 },
    resets: 0,
    calls: [] as string[],
    async execute(input: unknown) {
      tool.calls.push((input as { code: string }).code);
      return outputs.shift()!;
    },
    async reset() {
      tool.resets++;
    },
  };
  return tool;
}

describe('code/math tasks', () => {
  it('answers match ground truth recomputed independently from the question (300 per kind)', () => {
    for (const kind of PROBLEM_KINDS) {
      for (let seed = 0; seed < 300; seed++)
        checkAgainstQuestion(gen.generate(SPLITS[seed % 3]!, seed, kind));
    }
  });

  it('is deterministic and splits: seen instances disjoint, valid-unseen phrased differently', () => {
    const again = new CodeMathGenerator();
    const shape = (q: string) => q.replace(/\d+(\.\d+)?/g, '#').replace(/[0-9a-z]+ \(base/g, '# (base');
    const shapes: Record<string, Set<string>> = {
      train: new Set(),
      'valid-seen': new Set(),
      'valid-unseen': new Set(),
    };
    const params: Record<string, Set<string>> = { train: new Set(), 'valid-seen': new Set() };
    for (let seed = 0; seed < 700; seed++) {
      for (const split of SPLITS) {
        const t = gen.generate(split, seed);
        expect(again.generate(split, seed)).toEqual(t);
        if (t.kind === 'base') continue; // base digits mix letters into the text
        shapes[split]!.add(shape(t.payload.question));
        if (split !== 'valid-unseen') params[split]!.add(JSON.stringify(t.payload.params));
      }
    }
    for (const s of shapes['valid-unseen']!) {
      expect(shapes.train!.has(s)).toBe(false);
      expect(shapes['valid-seen']!.has(s)).toBe(false);
    }
    for (const p of params['valid-seen']!) expect(params.train!.has(p)).toBe(false);
    expect(() => gen.generate('train', 0, 'calculus')).toThrow(/unknown task type "calculus"/);
  });

  it('normalizes numeric answers', () => {
    expect(normalizeNumber('1,285,920')).toBe('1285920');
    expect(normalizeNumber(' 759097.560 ')).toBe('759097.56');
    expect(normalizeNumber('$12.50')).toBe('12.5');
    expect(normalizeNumber('The answer is 434.')).toBe('434');
    expect(normalizeNumber('between 3 and 4')).toBeUndefined();
    expect(normalizeNumber('-0.0')).toBe('0');
    expect(normalizeNumber('007')).toBe('7');
    expect(normalizeDigits('0xBEEF', 16)).toBe('beef');
    expect(normalizeDigits('00101', 2)).toBe('101');
    expect(normalizeDigits('129', 8)).toBeUndefined();
  });

  it('plays a trajectory: python output as the anchor, reward on a normalized answer (plumbing, canned tool)', async () => {
    const task = gen.generate('train', 4, 'product');
    const tool = cannedTool([
      { ok: true, output: '42\n', durationMs: 1, truncated: false },
      {
        ok: false,
        output: '',
        error: 'took too long',
        errorKind: 'timeout',
        durationMs: 1,
        truncated: false,
      },
    ]);
    const env = new CodeMathEnv({}, { python: tool });
    expect(await env.reset(4, task)).toBe(task.payload.question);
    expect(tool.resets).toBe(1);
    const [run, answer] = new CodeMathExpert().demonstrate(task).actions;
    const r1 = await env.step(run!);
    expect(tool.calls).toEqual([expertProgram(task.payload.params)]);
    expect(r1).toMatchObject({ observation: '42\n', done: false, info: { valid: true } });
    expect(env.anchor).toBe('42\n');
    expect((await env.step('<python>while True: pass</python>')).observation).toBe(
      'Error (timeout): took too long',
    );
    const pretty = BigInt(task.payload.answer).toLocaleString('en-US');
    const r3 = await env.step(`<answer>${pretty}</answer>`);
    expect(r3).toMatchObject({ reward: 1, done: true, info: { won: true } });
    expect(answer).toBe(`<answer>${task.payload.answer}</answer>`);
    await expect(env.step('<answer>1</answer>')).rejects.toThrow(/finished; call reset\(\) first/);

    await env.reset(4, task);
    expect(tool.resets).toBe(2);
    expect(await env.step('just text')).toMatchObject({ info: { valid: false } });
    expect(await env.step('<answer>12</answer>')).toMatchObject({ reward: 0, info: { won: false } });
    const noTool = new CodeMathEnv({ maxTurns: 1 });
    await noTool.reset(0);
    expect(await noTool.step('<python>print(1)</python>')).toMatchObject({
      observation: 'No Python tool is configured for this env.',
      done: true,
    });
  });

  it('judges base answers by digits and others numerically', () => {
    for (let seed = 0; seed < 200; seed++) {
      const t = gen.generate('train', seed, 'base');
      expect(isCorrect(t.payload.answer.toUpperCase(), t.payload)).toBe(true);
      expect(isCorrect(`${t.payload.answer}1`, t.payload)).toBe(false);
    }
  });
});
