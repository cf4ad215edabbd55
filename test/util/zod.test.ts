/** `parseOrThrow`: the one message format for zod errors, and caller-built errors. */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { fieldIssues, parseOrThrow } from '../../src/util/zod.ts';

const Options = z
  .object({ n: z.number().int().min(1), inner: z.object({ name: z.string() }).strict() })
  .strict();

describe('parseOrThrow', () => {
  it('returns the parsed value', () => {
    expect(parseOrThrow(Options, { n: 2, inner: { name: 'a' } }, 'invalid options')).toEqual({
      n: 2,
      inner: { name: 'a' },
    });
  });

  it("throws '<context>: field '<field>': <message>' for the first bad field", () => {
    expect(() => parseOrThrow(Options, { n: 0, inner: { name: 'a' } }, 'invalid options')).toThrow(
      /^invalid options: field 'n': Too small: expected number to be >=1$/,
    );
    expect(() => parseOrThrow(Options, { n: 1, inner: { name: 3 } }, 'tasks.jsonl line 4')).toThrow(
      /^tasks\.jsonl line 4: field 'inner\.name': .*expected string/,
    );
  });

  it('names unknown keys of a strict object, and the value itself without a field', () => {
    expect(() => parseOrThrow(Options, { n: 1, inner: { name: 'a', colour: 1 } }, 'x')).toThrow(
      /^x: field 'inner\.colour': Unrecognized key/,
    );
    expect(() => parseOrThrow(z.number(), 'seven', 'seed')).toThrow(/^seed: Invalid input: expected number/);
  });

  it("builds the caller's own error from the issue", () => {
    class FieldError extends Error {}
    const make = ({ field, message }: { field: string; message: string }) =>
      new FieldError(`${field}|${message}`);
    expect(() => parseOrThrow(Options, { n: 'a' }, make)).toThrow(FieldError);
    expect(() => parseOrThrow(Options, { n: 'a' }, make)).toThrow(/^n\|/);
  });

  it('lists every issue in order', () => {
    const parsed = Options.safeParse({ n: 'a', inner: {} });
    expect(parsed.success).toBe(false);
    if (!parsed.success) expect(fieldIssues(parsed.error).map((i) => i.field)).toEqual(['n', 'inner.name']);
  });
});
