import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { CodeMathEnv } from '../../src/envs/codemath/env.ts';
import { HouseholdEnv } from '../../src/envs/household/env.ts';
import { createEnv, createExpert, ENV_NAMES, renderTask } from '../../src/envs/index.ts';
import { readTasks, writeTasks } from '../../src/envs/jsonl.ts';
import { EnvPool } from '../../src/envs/pool.ts';
import { EncyclopediaQA } from '../../src/envs/search/generator.ts';
import type { Task } from '../../src/envs/types.ts';
import type { Tool } from '../../src/tools/types.ts';
import { Rng } from '../../src/util/random.ts';

const dir = mkdtempSync(join(tmpdir(), 'envs-pool-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('env pool', () => {
  it('steps many household envs like stepping each alone', async () => {
    const pool = EnvPool.create(8, () => new HouseholdEnv());
    const solo = Array.from({ length: 8 }, () => new HouseholdEnv());
    // Two groups of four: same task and seed inside a group.
    const starts = Array.from({ length: 8 }, (_, i) => ({ seed: i < 4 ? 1 : 2 }));
    const first = await pool.reset(starts);
    expect(first).toEqual(starts.map((s, i) => solo[i]!.resetSync(s.seed)));
    expect(pool.anchors()).toEqual(first);
    const rng = new Rng(3);
    for (let t = 0; t < 60 && !pool.done.every(Boolean); t++) {
      const actions = pool.admissibleActions().map((adm, i) => (pool.done[i] ? undefined : rng.pick(adm!)));
      const results = await pool.step(actions);
      results.forEach((r, i) => {
        if (actions[i] === undefined) expect(r).toBeUndefined();
        else expect(r).toEqual(solo[i]!.stepSync(actions[i]!));
      });
    }
    expect(pool.done.every(Boolean)).toBe(true);
    await expect(pool.step(['look'])).rejects.toThrow(/got 1 items for 8 envs/);
  });

  it('overlaps tool calls, up to the concurrency bound', async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    // A real (if trivial) Python-free tool: it evaluates `print(<integer expression>)` with BigInt after a tick.
    const makeTool = (): Tool => ({
      name: 'python',
      description: 'integer printer',
      schema: z.object({ code: z.string() }),
      limits: { timeMs: 1000, outputChars: 100 },
      async execute(input) {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        await new Promise((r) => setTimeout(r, 5));
        inFlight--;
        const m = (input as { code: string }).code.match(/print\((\d+) \* (\d+)\)/);
        const output = m ? `${BigInt(m[1]!) * BigInt(m[2]!)}\n` : '';
        return { ok: m !== null, output, durationMs: 5, truncated: false };
      },
    });
    for (const concurrency of [6, 2]) {
      maxInFlight = 0;
      const pool = EnvPool.create(6, () => new CodeMathEnv({ kinds: ['product'] }, { python: makeTool() }), {
        concurrency,
      });
      await pool.reset(Array.from({ length: 6 }, (_, i) => ({ seed: i })));
      const tasks = pool.envs.map((e) => e.task!);
      const programs = tasks.map(
        (t) =>
          `print(${(t.payload as { params: { factors: string[] } }).params.factors.slice(0, 2).join(' * ')})`,
      );
      const rs = await pool.step(programs.map((p) => `<python>${p}</python>`));
      expect(maxInFlight).toBe(concurrency);
      for (const r of rs) expect(r!.observation).toMatch(/^\d+\n$/);
    }
  });

  it('creates envs and experts by name, renders tasks, and rejects unknown names', async () => {
    const source = new EncyclopediaQA({ people: 12 });
    for (const name of ENV_NAMES) {
      const env = createEnv(name, { deps: { source } });
      const first = await env.reset(5);
      expect(first).toBe(renderTask(env.task!));
      // Instructions name the action forms a prompt must teach.
      expect(env.instructions).toMatch(name === 'household' ? /go to cabinet 1/ : /<answer>/);
      expect(createExpert(name).demonstrate(env.task!).actions.length).toBeGreaterThan(0);
    }
    expect(() => createEnv('chess')).toThrow(
      /unknown env "chess" \(expected one of: household, search, codemath\)/,
    );
  });

  it('writes and reads task files, failing clearly on malformed ones', () => {
    const env = new HouseholdEnv();
    const tasks: Task[] = [0, 1, 2].map((s) => env.generator.generate('train', s));
    const file = join(dir, 'tasks.jsonl');
    writeTasks(file, tasks);
    expect(readTasks(file)).toEqual(tasks);
    const bad = join(dir, 'bad.jsonl');
    writeFileSync(bad, `${JSON.stringify(tasks[0])}\n${JSON.stringify({ ...tasks[1], seed: 'one' })}\n`);
    expect(() => readTasks(bad)).toThrow(/bad\.jsonl line 2: field 'seed': .*expected number/);
    writeFileSync(bad, `${JSON.stringify({ ...tasks[0], kind: 'make_coffee' })}\n`);
    expect(() => readTasks(bad)).toThrow(
      /task 1 \(household\/train\/0\): household: unknown task type "make_coffee"/,
    );
  });
});
