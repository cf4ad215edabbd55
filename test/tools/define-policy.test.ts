import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineTool, ToolFailure, truncate } from '../../src/tools/define.ts';
import { ToolRunner } from '../../src/tools/policy.ts';
import type { AuditRecord } from '../../src/tools/types.ts';

const echo = defineTool({
  name: 'echo',
  description: 'repeats text',
  schema: z.object({ text: z.string(), times: z.number().int().min(1).default(1) }),
  limits: { timeMs: 200, outputChars: 50 },
  async run({ text, times }) {
    if (text === 'fail') throw new ToolFailure('asked to fail', 'tool_error', 'partial');
    if (text === 'throw') throw new Error('unexpected');
    return text.repeat(times);
  },
});

const sleeper = defineTool({
  name: 'sleep',
  description: 'waits',
  schema: z.object({ ms: z.number() }),
  limits: { timeMs: 100 },
  // Ignores its signal on purpose: the deadline must hold anyway.
  run: ({ ms }) => new Promise((resolve) => setTimeout(() => resolve('woke'), ms)),
});

describe('defineTool', () => {
  it('validates arguments and applies schema defaults', async () => {
    expect(await echo.execute({ text: 'ab', times: 2 })).toMatchObject({
      ok: true,
      output: 'abab',
      truncated: false,
    });
    expect((await echo.execute({ text: 'x' })).output).toBe('x');
    const bad = await echo.execute({ text: 3 } as never);
    expect(bad).toMatchObject({ ok: false, errorKind: 'bad_arguments' });
    expect(bad.error).toContain('echo: argument `text`');
  });

  it('turns failures into results and truncates long output', async () => {
    expect(await echo.execute({ text: 'fail' })).toMatchObject({
      ok: false,
      errorKind: 'tool_error',
      error: 'asked to fail',
      output: 'partial',
    });
    expect(await echo.execute({ text: 'throw' })).toMatchObject({
      ok: false,
      errorKind: 'tool_error',
      error: 'Error: unexpected',
    });
    const long = await echo.execute({ text: '0123456789', times: 20 });
    expect(long.truncated).toBe(true);
    expect(long.output.length).toBeLessThanOrEqual(50);
    expect(long.output.startsWith('0123')).toBe(true);
  });

  it('answers at the deadline even when the work ignores it, and honours aborts', async () => {
    const r = await sleeper.execute({ ms: 5_000 });
    expect(r).toMatchObject({ ok: false, errorKind: 'timeout' });
    const controller = new AbortController();
    const pending = sleeper.execute({ ms: 5_000 }, { signal: controller.signal });
    controller.abort();
    expect(await pending).toMatchObject({ ok: false, errorKind: 'aborted' });
  });

  it('truncate says how much was cut', () => {
    const t = truncate('x'.repeat(1000), 100);
    expect(t.truncated).toBe(true);
    expect(t.text.length).toBeLessThanOrEqual(100);
    expect(t.text).toMatch(/more characters\]$/);
    expect(truncate('short', 100)).toEqual({ text: 'short', truncated: false });
  });
});

describe('ToolRunner: policy and audit', () => {
  it('enforces the allow list, budgets and argument size, and audits every call', async () => {
    const records: AuditRecord[] = [];
    const runner = new ToolRunner([echo, sleeper], {
      policy: {
        allowed: ['echo'],
        callsPerTrajectory: { echo: 2 },
        maxArgumentChars: 40,
        maxOutputChars: 10,
      },
      onAudit: (r) => records.push(r),
    });
    expect(runner.allowedTools.map((t) => t.name)).toEqual(['echo']);
    const a = await runner.call('echo', { text: 'hello world, hello', times: 1 });
    expect(a).toMatchObject({ ok: true, truncated: true });
    expect(a.output.length).toBeLessThanOrEqual(10);
    expect(await runner.call('sleep', { ms: 1 })).toMatchObject({ ok: false, errorKind: 'policy_denied' });
    expect(await runner.call('missing', {})).toMatchObject({ ok: false, errorKind: 'policy_denied' });
    expect(await runner.call('echo', { text: 'y'.repeat(100) })).toMatchObject({
      ok: false,
      errorKind: 'policy_denied',
    });
    expect(await runner.call('echo', { text: 3 })).toMatchObject({ ok: false, errorKind: 'bad_arguments' });
    const over = await runner.call('echo', { text: 'z' });
    expect(over).toMatchObject({ ok: false, errorKind: 'policy_denied' });
    expect(over.error).toContain('budget');

    expect(records).toEqual(runner.audit);
    expect(records.map((r) => [r.tool, r.ok, r.errorKind ?? null])).toEqual([
      ['echo', true, null],
      ['sleep', false, 'policy_denied'],
      ['missing', false, 'policy_denied'],
      ['echo', false, 'policy_denied'],
      ['echo', false, 'bad_arguments'],
      ['echo', false, 'policy_denied'],
    ]);
    expect(records[0]).toMatchObject({
      arguments: '{"text":"hello world, hello","times":1}',
      truncated: true,
      outputChars: a.output.length,
    });
    expect(records[3]!.arguments.length).toBe(40);
    expect(records.every((r) => r.startedAt > 0 && r.durationMs >= 0)).toBe(true);

    await runner.reset();
    expect(runner.audit).toEqual([]);
    expect(await runner.call('echo', { text: 'again' })).toMatchObject({ ok: true, output: 'again' });
  });

  it('applies a total budget and rejects a policy naming a missing tool', async () => {
    const runner = new ToolRunner([echo], { policy: { totalCallsPerTrajectory: 1 } });
    expect((await runner.call('echo', { text: 'a' })).ok).toBe(true);
    expect(await runner.call('echo', { text: 'b' })).toMatchObject({ errorKind: 'policy_denied' });
    expect(() => new ToolRunner([echo], { policy: { allowed: ['python'] } })).toThrow(/no such tool/);
  });
});
