import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CodeMathEnv, isCorrect } from '../../src/envs/codemath/env.ts';
import { CodeMathExpert, expertProgram } from '../../src/envs/codemath/expert.ts';
import { CodeMathGenerator, PROBLEM_KINDS } from '../../src/envs/codemath/generator.ts';
import { SPLITS } from '../../src/envs/types.ts';
import { PythonPool } from '../../src/tools/python/pool.ts';
import { PythonTool } from '../../src/tools/python/tool.ts';

// The real Python sandbox (pyodide). Interpreters take seconds to start, so one pool serves the
// file, and the 50 sample programs share one interpreter; three full trajectories check the env.
let pool: PythonPool;

beforeAll(async () => {
  pool = new PythonPool({ size: 1, announce: false });
  await pool.warm();
});

afterAll(async () => {
  await pool.close();
});

const tool = () => new PythonTool({ pool, limits: { timeMs: 30_000, outputChars: 2_000 } });

describe('code/math expert through the real Python tool', () => {
  it('50 expert programs print the ground-truth answer', async () => {
    const gen = new CodeMathGenerator();
    const python = tool();
    const wrong: string[] = [];
    for (let i = 0; i < 50; i++) {
      const kind = PROBLEM_KINDS[i % PROBLEM_KINDS.length]!;
      const task = gen.generate(SPLITS[i % 3]!, 1000 + i, kind);
      const r = await python.execute({ code: expertProgram(task.payload.params) });
      if (!r.ok || !isCorrect(r.output.trim(), task.payload)) {
        wrong.push(
          `${task.id} ${kind}: got ${JSON.stringify(r.output || r.error)}, want ${task.payload.answer}`,
        );
      }
    }
    await python.close();
    expect(wrong).toEqual([]);
  });

  it('plays full trajectories: the expert runs its program, then answers from the printed value', async () => {
    const env = new CodeMathEnv({}, { python: tool() });
    const expert = new CodeMathExpert();
    for (const [seed, kind] of [
      [7, 'percentage'],
      [8, 'date'],
      [9, 'base'],
    ] as const) {
      const task = env.generator.generate('valid-unseen', seed, kind);
      await env.reset(seed, task);
      const [run] = expert.demonstrate(task).actions;
      const printed = await env.step(run!);
      expect(printed.info.valid).toBe(true);
      expect(env.anchor).toBe(printed.observation);
      // Answer with what Python printed, not with the generator's answer.
      const r = await env.step(`<answer>${printed.observation.trim()}</answer>`);
      expect(r).toMatchObject({ reward: 1, done: true, info: { won: true } });
    }
    await env.close();
  });
});
