/** `CodeInput`, the input schema of the code tools (`python`, `javascript`). */
import { z } from 'zod';

/** The input of the code tools (`python`, `javascript`): the source to run. */
export const CodeInput = z.object({ code: z.string() });
export type CodeInput = z.infer<typeof CodeInput>;
