import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OpenAIChatModel, PolicyChatModel } from '../../src/agents/chat/index.ts';
import { type AgentEnv, rollout, runCodeMath, runnerTool } from '../../src/agents/loops/index.ts';
import {
  CodeMathEnv,
  CodeMathGenerator,
  type CodeMathTask,
  expertProgram,
  type Policy,
  PythonPool,
  PythonTool,
  type ToolPolicyInput,
  ToolRunner,
} from '../../src/index.ts';
import { PolicyServer } from '../../src/serve/index.ts';
import { expectPromptsGrow, replies, tinyPolicy } from './loops-helpers.ts';

// The real Python sandbox: one warm interpreter serves the file (they take seconds to start).
let pool: PythonPool;
let policy: Policy | undefined;
beforeAll(async () => {
  pool = new PythonPool({ size: 1, announce: false });
  await pool.warm();
});
afterAll(async () => {
  await policy?.dispose();
  await pool.close();
});

/** A code/math env whose Python calls go through a tool runner (policy + audit), as rollouts make them. */
function makeEnv(policy: ToolPolicyInput = {}): AgentEnv {
  const tools = new ToolRunner([new PythonTool({ pool, limits: { timeMs: 30_000, outputChars: 2_000 } })], {
    policy,
  });
  return { env: new CodeMathEnv({}, { python: runnerTool(tools, 'python') }) as never, tools };
}

const task = new CodeMathGenerator().generate('train', 7) as CodeMathTask;
const program = expertProgram(task.payload.params);

describe('code/math loop', () => {
  it('runs <code> in the sandbox, shows the output to the model, and scores the answer', async () => {
    const { env, tools } = makeEnv();
    const model = replies(
      `<think>compute it</think><code>\n${program}\n</code>`,
      `<answer>${task.payload.answer}</answer>`,
    );
    const t = await runCodeMath(env as never, model, { task, seed: task.seed, tools });
    expect(t.outcome).toBe('won');
    expect(t.episodeReturn).toBe(1);
    const [run, answer] = t.steps;
    expect(run!.action).toBe(`<python>${program}</python>`);
    expect(run!.observation.trim()).toBe(task.payload.answer);
    expect(run!.audit.map((a) => [a.tool, a.ok, JSON.parse(a.arguments).code])).toEqual([
      ['python', true, program],
    ]);
    expect(answer!.extras.answered).toBe(true);
    const second = model.calls[1]!.messages;
    expect(second.map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'user']);
    expect(second[3]).toEqual({ role: 'user', content: run!.observation });
    await env.close?.();
  });

  it('follows python tool calls; a failing program is a valid step whose error the model reads', async () => {
    const { env, tools } = makeEnv();
    const model = replies(
      { text: '', toolCalls: [{ id: 'p1', name: 'python', arguments: '{"code": "x = 6 * 7\\n1 / 0"}' }] },
      { text: '', toolCalls: [{ id: 'p2', name: 'python', arguments: '{"code": "print(x)"}' }] },
      '<answer>42</answer>',
    );
    const t = await runCodeMath(env as never, model, { task, seed: task.seed, tools }, { toolCalling: true });
    const [fail, ok, answer] = t.steps;
    expect(fail!.valid).toBe(true);
    expect(fail!.observation).toMatch(/ZeroDivisionError/);
    expect(fail!.audit.map((a) => [a.ok, a.errorKind])).toEqual([[false, 'tool_error']]);
    // Variables persist across the calls of a trajectory.
    expect(ok!.observation.trim()).toBe('42');
    expect(answer!.action).toBe('<answer>42</answer>');
    expect(t.outcome).toBe(task.payload.answer === '42' ? 'won' : 'answered');
    expect(model.calls[0]!.options.tools?.map((d) => d.function.name)).toEqual(['python']);
    expect(model.calls[1]!.messages.at(-1)).toMatchObject({ role: 'tool', toolCallId: 'p1' });
    await env.close?.();
  });

  it("applies the run's tool policy: a call over budget is denied and audited", async () => {
    const { env, tools } = makeEnv({ callsPerTrajectory: { python: 1 } });
    const model = replies('<code>print(1)</code>', '<code>print(2)</code>', '<answer>0</answer>');
    const t = await runCodeMath(env as never, model, { task, seed: task.seed, tools });
    expect(t.steps[0]!.observation.trim()).toBe('1');
    expect(t.steps[1]!.audit.map((a) => [a.ok, a.errorKind])).toEqual([[false, 'policy_denied']]);
    expect(t.steps[1]!.observation).toMatch(/budget/);
    await env.close?.();
  });

  it('runs on an untrained policy, local and served (stepwise serve through the openai client)', async () => {
    policy = tinyPolicy(3);
    const server = new PolicyServer(policy, { port: 0, modelId: 'tiny' });
    const served = new OpenAIChatModel({ model: 'tiny', baseURL: await server.listen(), apiKey: 'local' });
    const ts = [];
    for (const model of [new PolicyChatModel(policy), served]) {
      ts.push(
        ...(await rollout({
          model,
          tasks: [task],
          groupSize: 2,
          makeEnv: () => makeEnv(),
          loops: { codemath: { maxTurns: 2, sampling: { maxTokens: 16 } } },
        })),
      );
    }
    await server.close();
    expect(ts.map((t) => t.steps[0]!.model)).toEqual([
      'policy:policy',
      'policy:policy',
      'openai:tiny',
      'openai:tiny',
    ]);
    // Locally the conversation grows token for token (the served model re-encodes the text).
    for (const t of ts.slice(0, 2)) expectPromptsGrow(t.steps);
    for (const t of ts) {
      expect(t.steps.length).toBeGreaterThan(0);
      expect(t.steps.length).toBeLessThanOrEqual(2);
      for (const s of t.steps) {
        expect(s.responseTokens.length).toBe(s.responseLogprobs.length);
        expect(s.responseTokens.length).toBeGreaterThan(0);
      }
    }
  });
});
