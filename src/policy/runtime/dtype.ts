/**
 * The compute precision a policy generates in, apart from session.ts so a config schema can name
 * it without loading ONNX Runtime.
 */
import { z } from 'zod';

/**
 * Compute precision of a policy's graphs (generation, scoring, the train step's forward and
 * backward): 'float32', or 'float16' / 'bfloat16' with float32 norms, softmaxes, logits and loss.
 * Parameters and AdamW moments stay float32 whatever this is (mixed precision; see
 * docs/ARCHITECTURE.md, "Devices and precision").
 */
export const PolicyDtype = z.enum(['float32', 'float16', 'bfloat16']);
export type PolicyDtype = z.infer<typeof PolicyDtype>;

/** Check a dtype name early, with a message that lists what is accepted. */
export function parseDtype(dtype: string): PolicyDtype {
  const parsed = PolicyDtype.safeParse(dtype);
  if (!parsed.success) {
    throw new Error(`unknown dtype '${dtype}'; expected one of: ${PolicyDtype.options.join(', ')}`);
  }
  return parsed.data;
}
