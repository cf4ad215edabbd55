/**
 * Zod errors as stepwise's one message format: `<context>: field '<field>': <message>`, the field being the
 * dotted path of the first issue (or the unknown keys of a strict object; nothing for the value itself).
 */
import type { z } from 'zod';

/** One zod issue as a field and a message; `field` is '' when the value itself is at fault. */
export interface FieldIssue {
  field: string;
  message: string;
}

/** The issues of a zod error as fields and messages, in zod's order. */
export function fieldIssues(error: z.ZodError): FieldIssue[] {
  return error.issues.map((issue) => {
    const path = issue.path.map(String);
    // A strict object's unknown keys sit in `keys`, not in the path: name them as the field.
    if (issue.code === 'unrecognized_keys') path.push(issue.keys.join(', '));
    return { field: path.join('.'), message: issue.message };
  });
}

/** `field '<field>': <message>`, or the bare message when the value itself is at fault. */
export function describeIssue({ field, message }: FieldIssue): string {
  return field ? `field '${field}': ${message}` : message;
}

/**
 * `schema` applied to `input`, or a thrown error naming the first bad field. `context` says what was
 * parsed ("invalid sampling options", "tasks.jsonl line 3") and prefixes the message; a function
 * builds the caller's own error class from the issue instead.
 */
export function parseOrThrow<S extends z.ZodType>(
  schema: S,
  input: unknown,
  context: string | ((issue: FieldIssue) => Error),
): z.output<S> {
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  const issue = fieldIssues(parsed.error)[0]!;
  throw typeof context === 'string' ? new Error(`${context}: ${describeIssue(issue)}`) : context(issue);
}
