/**
 * The `tfjs` suite: the same transformer's train step in tfjs-core (wasm), the `policy` suite's
 * baseline, with its FLOPs.
 */
import * as tf from '@tensorflow/tfjs-core';
import { modelConfig, parameterCount } from '../../src/policy/model/config.ts';
import { tfjsReady, tfjsTrainStepTimes } from '../policy-tfjs.ts';
import type { Suite } from '../suite.ts';

/** Model FLOPs of one train step: 6 x parameters x tokens, plus attention's 12 x layers x batch x seq^2 x width. */
export function trainStepFlops(preset: 'tiny' | 'small', batch: number, seq: number): number {
  const c = modelConfig(preset);
  return 6 * parameterCount(c) * batch * seq + 12 * c.layers * batch * seq * seq * c.width;
}

export const suite: Suite = {
  name: 'tfjs',
  description:
    'the tfjs-core (wasm backend) reference transformer: train-step time for tiny and small, batch 8 x seq 128',
  quick: false,
  async run(ctx) {
    await tfjsReady();
    // A plain fp32 MatMul, to compare with the figure for this backend.
    const a = tf.randomNormal([256, 256]);
    const b = tf.randomNormal([256, 1024]);
    const times: number[] = [];
    for (let i = 0; i < 23; i++) {
      const t0 = performance.now();
      const c = tf.matMul(a, b);
      c.dataSync();
      c.dispose();
      if (i >= 3) times.push(performance.now() - t0);
    }
    tf.dispose([a, b]);
    const matmulMs = times.sort((x, y) => x - y)[Math.floor(times.length / 2)]!;
    const results: Record<string, number> = {
      tfjs_matmul_256x256x1024_gflops: (2 * 256 * 256 * 1024) / matmulMs / 1e6,
    };
    for (const preset of ['tiny', 'small'] as const) {
      ctx.log(`${preset}: 5 timed steps after 2 warm-up steps`);
      const t = await tfjsTrainStepTimes(modelConfig(preset), 8, 128, 5);
      results[`tfjs_${preset}_step_ms`] = t.wallMs;
      results[`tfjs_${preset}_step_cpu_ms`] = t.cpuMs;
      // Per CPU-second: the backend uses one thread, so this is its rate when it has a core.
      results[`tfjs_${preset}_gflops`] = trainStepFlops(preset, 8, 128) / t.cpuMs / 1e6;
    }
    const report = [
      'tfjs-core 4 on @tensorflow/tfjs-backend-wasm (SIMD, 1 thread: its threaded build needs browser',
      'blob workers, which Node rejects), forward + backward + Adam on masked cross-entropy, median of 5',
      'steps. The reference uses an explicit-transpose MatMul gradient (transposed MatMuls run 10-50x',
      'slower on this backend) and a MatMul-based embedding gradient (no UnsortedSegmentSum on wasm).',
      'FLOPs = 6 x parameters x tokens + 12 x layers x batch x seq^2 x width; `gflops` divides by CPU time. `step_cpu_ms` is the',
      "process's CPU time per step: on an idle machine it equals the wall time (one thread), on a busy",
      'one it is the steadier figure.',
    ].join('\n');
    return { results, report };
  },
};
