/**
 * Timing helpers shared by the benchmark suites: wall and CPU time of an async call, and the
 * machine's measured MatMul peak (the denominator of the MFU figures).
 */
import * as ort from 'onnxruntime-node';
import { Graph, matmul } from '../src/policy/graph/index.ts';
import { sessionOptions } from '../src/policy/runtime/session.ts';

/** Wall and CPU milliseconds of an async call. */
export async function timed<T>(f: () => Promise<T>): Promise<{ value: T; ms: number; cpuMs: number }> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const value = await f();
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  return { value, ms, cpuMs: (cpu.user + cpu.system) / 1000 };
}

/**
 * Best fp32 MatMul rate of an n x n x n product with the session options the model uses: GFLOP per
 * wall second and per CPU second (the second is steadier when other processes share the cores).
 */
export async function matmulGflops(n: number, reps: number): Promise<{ wall: number; cpu: number }> {
  const g = new Graph('matmul');
  const a = g.input('a', 'float32', [n, n]);
  const b = g.input('b', 'float32', [n, n]);
  g.output('c', matmul(a, b));
  const session = await ort.InferenceSession.create(g.toOnnx(), sessionOptions('cpu'));
  const data = Float32Array.from({ length: n * n }, (_, i) => ((i * 7919) % 1000) / 1000 - 0.5);
  const feeds = { a: new ort.Tensor('float32', data, [n, n]), b: new ort.Tensor('float32', data, [n, n]) };
  await session.run(feeds);
  let best = Number.POSITIVE_INFINITY;
  let bestCpu = Number.POSITIVE_INFINITY;
  for (let i = 0; i < reps; i++) {
    const t = await timed(() => session.run(feeds));
    best = Math.min(best, t.ms);
    bestCpu = Math.min(bestCpu, t.cpuMs);
  }
  await session.release();
  return { wall: (2 * n ** 3) / best / 1e6, cpu: (2 * n ** 3) / bestCpu / 1e6 };
}
