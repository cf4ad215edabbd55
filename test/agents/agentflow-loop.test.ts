import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { runAgentFlow, ScriptedChatModel } from '../../src/agents/agentflow/index.ts';
import type { ChatMessage, ChatModel, ChatResult } from '../../src/agents/types.ts';
import { defineTool, ToolFailure } from '../../src/tools/define.ts';
import { ToolRunner } from '../../src/tools/policy.ts';

// A real in-process tool: the loop's contract with tools is the Tool interface, and this one
// computes its answer so the memory can be checked against an independent value.
const adder = defineTool({
  name: 'add',
  description: 'Adds two integers. Input: {"a": int, "b": int}.',
  schema: z.object({ a: z.number().int(), b: z.number().int() }),
  run: async ({ a, b }) => String(a + b),
});

const plan = (tool: string, subGoal = 'add the numbers', context = '2 and 3') =>
  `<sub_goal>${subGoal}</sub_goal><tool>${tool}</tool><context>${context}</context>`;
const call = (args: unknown, name = 'add') =>
  `<tool_call>${JSON.stringify({ name, arguments: args })}</tool_call>`;

function modules(script: {
  planner: string[];
  executor: string[];
  verifier: string[];
  generator?: string[];
}) {
  return {
    analyzer: new ScriptedChatModel('analyzer', ['The query needs one addition.']),
    planner: new ScriptedChatModel('planner', script.planner),
    executor: new ScriptedChatModel('executor', script.executor),
    verifier: new ScriptedChatModel('verifier', script.verifier),
    generator: new ScriptedChatModel('generator', script.generator ?? ['<answer>5</answer>']),
  };
}

describe('runAgentFlow', () => {
  it('runs analysis, a turn through the tool, the verifier and the generator, in that order', async () => {
    const m = modules({
      planner: [plan('add')],
      executor: [call({ a: 2, b: 3 })],
      verifier: ['<verdict>STOP</verdict>'],
    });
    const runner = new ToolRunner([adder]);
    const r = await runAgentFlow('What is 2 + 3?', m, { tools: runner });
    expect(r.steps.map((s) => `${s.role}:${s.turn}`)).toEqual([
      'analyzer:0',
      'planner:1',
      'executor:1',
      'verifier:1',
      'generator:2',
    ]);
    expect(r.stopReason).toBe('verifier_stop');
    expect(r.answer).toBe('5');
    expect(r.analysis).toBe('The query needs one addition.');
    expect(r.memory).toEqual([
      {
        turn: 1,
        tool: 'add',
        subGoal: 'add the numbers',
        command: 'add({"a":2,"b":3})',
        result: String(2 + 3),
        truncated: false,
        ok: true,
      },
    ]);
    // The executor step carries the audit record of the call it caused.
    const exec = r.steps.find((s) => s.role === 'executor')!;
    expect(exec.toolCalls?.map((a) => [a.tool, a.arguments, a.ok])).toEqual([['add', '{"a":2,"b":3}', true]]);
    expect(runner.audit).toHaveLength(1);
    // Later modules read the memory: the verifier's and generator's prompts hold the tool result.
    expect(m.verifier.calls[0]!.at(-1)!.content).toContain('command: add({"a":2,"b":3})\nresult: 5');
    expect(m.generator.calls[0]!.at(-1)!.content).toContain('result: 5');
    // The planner's prompt names the tool with its description and the turn budget.
    expect(m.planner.calls[0]!.at(-1)!.content).toContain('- add: Adds two integers.');
    expect(m.planner.calls[0]!.at(-1)!.content).toContain('Turn 1 of 4.');
  });

  it('records an unparsable plan, an unknown tool and bad tool calls as steps, never crashing', async () => {
    const m = modules({
      planner: [
        'I would like to add them.',
        plan('calculator'),
        plan('add'),
        plan('add'),
        plan('add'),
        plan('add'),
      ],
      executor: [
        'no call here',
        '<tool_call>{"name": "add", "arguments": {"a": 2,</tool_call>',
        call({ a: 2, b: 'three' }),
        call({ a: 2, b: 3 }, 'multiply'),
      ],
      verifier: Array(6).fill('<verdict>CONTINUE</verdict>'),
    });
    const r = await runAgentFlow('What is 2 + 3?', m, { tools: [adder], config: { maxTurns: 6 } });
    const results = r.memory.map((x) => x.result);
    expect(results[0]).toMatch(/^could not parse the plan/);
    expect(results[1]).toBe('tool not found: "calculator" (available: add)');
    expect(results[2]).toMatch(/^could not parse the tool call: expected <tool_call>/);
    expect(results[3]).toMatch(/^could not parse the tool call: tool call is not valid JSON/);
    expect(results[4]).toMatch(/^invalid arguments: add: argument `b`:/);
    expect(results[5]).toBe('tool call names "multiply" but the planner chose "add"');
    expect(r.memory.every((x) => !x.ok)).toBe(true);
    // Invalid plans are marked on the planner's step (the sample the planner is trained on).
    const planners = r.steps.filter((s) => s.role === 'planner');
    expect(planners.map((s) => s.valid)).toEqual([false, false, true, true, true, true]);
    expect(planners[1]!.error).toContain('tool not found');
    const executors = r.steps.filter((s) => s.role === 'executor');
    expect(executors).toHaveLength(4);
    expect(executors.every((s) => !s.valid && s.toolCalls === undefined)).toBe(true);
    expect(r.stopReason).toBe('turn_limit');
    expect(r.turns).toBe(6);
    expect(r.answer).toBe('5');
  });

  it('stops at the turn limit and lets the generator answer', async () => {
    const m = modules({
      planner: Array(3).fill(plan('add')),
      executor: Array(3).fill(call({ a: 1, b: 1 })),
      verifier: ['more please', 'CONTINUE', '<verdict>continue</verdict>'],
      generator: ['The answer is 2.'],
    });
    const r = await runAgentFlow('q', m, { tools: [adder], config: { maxTurns: 3 } });
    expect(r.turns).toBe(3);
    expect(r.stopReason).toBe('turn_limit');
    expect(m.planner.remaining).toBe(0);
    const verdicts = r.steps.filter((s) => s.role === 'verifier');
    // An unreadable verdict continues and is marked invalid; bare and lower-case words are read.
    expect(verdicts.map((s) => s.valid)).toEqual([false, true, true]);
    // The generator forgot its tags: no answer, an invalid step.
    expect(r.answer).toBeUndefined();
    expect(r.steps.at(-1)!.valid).toBe(false);
  });

  it('cuts long tool results in the memory and says so', async () => {
    const long = defineTool({
      name: 'long',
      description: 'Prints a lot.',
      schema: z.object({}),
      run: async () => 'x'.repeat(5000),
    });
    const m = modules({ planner: [plan('long')], executor: [call({}, 'long')], verifier: ['STOP'] });
    const r = await runAgentFlow('q', m, { tools: [long], config: { memoryChars: 200 } });
    expect(r.memory[0]!.result.length).toBe(200);
    expect(r.memory[0]!.truncated).toBe(true);
    expect(r.memory[0]!.result).toContain('[output truncated');
  });

  it('ends the turns at the wall-clock limit even when a model ignores its signal', async () => {
    // A planner that never answers: only the loop's own deadline can end the trajectory.
    const stuck: ChatModel = { name: 'stuck', chat: () => new Promise<ChatResult>(() => {}) };
    const m = { ...modules({ planner: [], executor: [], verifier: [] }), planner: stuck };
    const r = await runAgentFlow('q', m, { tools: [adder], config: { timeLimitMs: 200 } });
    expect(r.stopReason).toBe('time_limit');
    expect(r.turns).toBe(1);
    expect(r.steps.map((s) => s.role)).toEqual(['analyzer', 'generator']);
    expect(r.answer).toBe('5');
  });

  it('ends the turns when the caller aborts (a deadline of its own), the generator still answering', async () => {
    const stuck: ChatModel = { name: 'stuck', chat: () => new Promise<ChatResult>(() => {}) };
    const m = {
      ...modules({ planner: [plan('add')], executor: [call({ a: 1, b: 1 })], verifier: [] }),
      verifier: stuck,
    };
    const controller = new AbortController();
    const run = runAgentFlow('q', m, { tools: [adder], signal: controller.signal });
    // Abort once the tool has run and the verifier hangs.
    while (m.executor.calls.length === 0) await new Promise((r) => setTimeout(r, 5));
    setTimeout(() => controller.abort(), 20);
    const r = await run;
    expect(r.stopReason).toBe('time_limit');
    expect(r.memory.map((x) => x.result)).toEqual(['2']);
    expect(r.answer).toBe('5');
  });

  it('aborts a tool that overruns the wall-clock limit', async () => {
    const slow = defineTool({
      name: 'slow',
      description: 'Waits for its signal.',
      schema: z.object({}),
      limits: { timeMs: 60_000 },
      run: (_input, { signal }) =>
        new Promise<string>((_resolve, reject) =>
          signal.addEventListener('abort', () => reject(signal.reason)),
        ),
    });
    const m = modules({ planner: [plan('slow')], executor: [call({}, 'slow')], verifier: [] });
    const r = await runAgentFlow('q', m, { tools: [slow], config: { timeLimitMs: 300 } });
    expect(r.stopReason).toBe('time_limit');
    expect(r.memory[0]).toMatchObject({ tool: 'slow', ok: false });
    expect(r.memory[0]!.result).toMatch(/^Error \(aborted\)/);
    expect(m.verifier.calls).toHaveLength(0);
  });

  it('survives a model that throws: the turns end with model_error and the generator still answers', async () => {
    const broken: ChatModel = {
      name: 'broken',
      chat: async (_messages: readonly ChatMessage[]) => {
        throw new Error('context overflow');
      },
    };
    const m = {
      ...modules({ planner: [plan('add')], executor: [call({ a: 1, b: 2 })], verifier: [] }),
      verifier: broken,
    };
    const r = await runAgentFlow('q', m, { tools: [adder] });
    expect(r.stopReason).toBe('model_error');
    expect(r.errors).toEqual(['context overflow']);
    expect(r.memory[0]!.result).toBe('3');
    expect(r.answer).toBe('5');
  });

  it('uses structured tool calls when the executor model returns them', async () => {
    const native: ChatModel = {
      name: 'native',
      chat: async () => ({
        text: '',
        toolCalls: [{ id: 'c1', name: 'add', arguments: '{"a": 40, "b": 2}' }],
        finishReason: 'tool_calls',
      }),
    };
    const m = { ...modules({ planner: [plan('add')], executor: [], verifier: ['STOP'] }), executor: native };
    const r = await runAgentFlow('q', m, { tools: [adder], config: { nativeToolCalls: true } });
    expect(r.memory[0]).toMatchObject({ command: 'add({"a":40,"b":2})', result: '42', ok: true });
  });

  it('records tool errors and policy denials in the memory and goes on to the next turn', async () => {
    const failing = defineTool({
      name: 'fail',
      description: 'Always fails.',
      schema: z.object({}),
      run: async () => {
        throw new ToolFailure('disk on fire', 'tool_error', 'partial output');
      },
    });
    const m = modules({
      planner: [plan('fail'), plan('add'), plan('add')],
      executor: [call({}, 'fail'), call({ a: 1, b: 2 }), call({ a: 3, b: 4 })],
      verifier: ['CONTINUE', 'CONTINUE', 'STOP'],
    });
    // The run's tool policy allows one call of `add` per trajectory.
    const runner = new ToolRunner([failing, adder], { policy: { callsPerTrajectory: { add: 1 } } });
    const r = await runAgentFlow('q', m, { tools: runner });
    expect(r.memory.map((x) => [x.tool, x.ok, x.result])).toEqual([
      ['fail', false, 'Error (tool_error): disk on fire\npartial output'],
      ['add', true, '3'],
      ['add', false, 'Error (policy_denied): call budget of "add" is used up (1 per trajectory)'],
    ]);
    expect(runner.audit.map((a) => [a.tool, a.ok, a.errorKind])).toEqual([
      ['fail', false, 'tool_error'],
      ['add', true, undefined],
      ['add', false, 'policy_denied'],
    ]);
    // The executor's replies were well formed: a failing tool is not the executor's fault.
    expect(r.steps.filter((s) => s.role === 'executor').every((s) => s.valid)).toBe(true);
    expect(r.stopReason).toBe('verifier_stop');
  });
});
