/** The benchmark suites by name, each loaded lazily. */
import type { Suite } from '../suite.ts';

/**
 * Every benchmark suite, by name. Each issue adds its own file under bench/suites and one line
 * here; suites load lazily so that one suite's heavy imports never slow another.
 */
export const suites: Record<string, () => Promise<Suite>> = {
  tokenizer: async () => (await import('./tokenizer.ts')).suite,
  tfjs: async () => (await import('./tfjs.ts')).suite,
  policy: async () => (await import('./policy.ts')).suite,
  graph: async () => (await import('./graph.ts')).suite,
  credit: async () => (await import('./credit.ts')).suite,
  envs: async () => (await import('./envs.ts')).suite,
  tools: async () => (await import('./tools.ts')).suite,
  agents: async () => (await import('./agents.ts')).suite,
  viewer: async () => (await import('./viewer.ts')).suite,
  trainer: async () => (await import('./trainer.ts')).suite,
  learning: async () => (await import('./learning.ts')).suite,
  distributed: async () => (await import('./distributed.ts')).suite,
  hf: async () => (await import('./hf.ts')).suite,
};
