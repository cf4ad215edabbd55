/** Shared by the graph tests: run a graph in onnxruntime-node, and check gradients numerically. */
import ort from 'onnxruntime-node';
import {
  type Dim,
  type DType,
  Graph,
  grad,
  mul,
  reduceSum,
  type Tensor,
} from '../../src/policy/graph/index.ts';
import { uniform } from '../../src/util/random.ts';

export type Feed = { dtype: DType; dims: number[]; data: ArrayLike<number> | BigInt64Array };

export function ortTensor(f: Feed): ort.Tensor {
  const { dtype, dims, data } = f;
  if (dtype === 'float64')
    return new ort.Tensor('float64', Float64Array.from(data as ArrayLike<number>), dims);
  if (dtype === 'float32')
    return new ort.Tensor('float32', Float32Array.from(data as ArrayLike<number>), dims);
  if (dtype === 'int64') {
    const a =
      data instanceof BigInt64Array ? data : BigInt64Array.from(data as ArrayLike<number>, (v) => BigInt(v));
    return new ort.Tensor('int64', a, dims);
  }
  if (dtype === 'int32') return new ort.Tensor('int32', Int32Array.from(data as ArrayLike<number>), dims);
  return new ort.Tensor('bool', Uint8Array.from(data as ArrayLike<number>), dims);
}

export async function session(bytes: Uint8Array): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(bytes, { logSeverityLevel: 3, intraOpNumThreads: 1 });
}

/** Runs a session; returns each output as numbers with its dims. */
export async function run(
  s: ort.InferenceSession,
  feeds: Record<string, Feed>,
): Promise<Record<string, { data: number[]; dims: number[] }>> {
  const ins: Record<string, ort.Tensor> = {};
  for (const [k, v] of Object.entries(feeds)) ins[k] = ortTensor(v);
  const outs = await s.run(ins);
  const res: Record<string, { data: number[]; dims: number[] }> = {};
  for (const [k, v] of Object.entries(outs)) {
    res[k] = { data: Array.from(v.data as ArrayLike<number | bigint>, Number), dims: [...v.dims] };
  }
  return res;
}

/** Seeded uniform numbers (mulberry32, the envs' generator), so runs reproduce. */
export const rng = uniform;

function collectOps(t: Tensor, into: Set<string>, seen = new Set<Tensor>()): void {
  if (seen.has(t) || !t.gradFn) return;
  seen.add(t);
  into.add(t.gradFn.op);
  for (const x of t.gradFn.inputs) collectOps(x, into, seen);
}

/**
 * Names of the differentiable ops whose rules a gradCheck of f goes through: f is built on a fresh
 * graph (nothing runs), so a coverage check needs no other test to have run first.
 */
export function opsOf(f: (...xs: Tensor[]) => Tensor, inputs: CheckInput[]): Set<string> {
  const g = new Graph();
  const ops = new Set<string>();
  collectOps(f(...inputs.map((s, i) => g.input(`x${i}`, s.dtype ?? 'float64', s.shape))), ops);
  return ops;
}

export interface CheckOptions {
  seed?: number;
  /** Finite-difference step. */
  h?: number;
}

export interface CheckInput {
  /** Shape in the graph (may be symbolic). */
  shape: Dim[];
  /** Concrete dims fed (defaults to shape when static). */
  dims?: number[];
  /** Values in [lo, hi) (default [-1, 1)). */
  range?: [number, number];
  /** Fixed values instead of random ones. */
  data?: number[];
  /** Not differentiated (e.g. indices or a condition). */
  dtype?: DType;
}

function relError(a: number[], b: number[]): number {
  let diff = 0;
  let na = 0;
  let nb = 0;
  for (let j = 0; j < a.length; j++) {
    diff += (a[j]! - b[j]!) ** 2;
    na += a[j]! ** 2;
    nb += b[j]! ** 2;
  }
  return Math.sqrt(diff) / Math.max(Math.sqrt(na), Math.sqrt(nb), 1e-12);
}

/** A session computing loss = sum(f(x) * w) and its gradients w.r.t. the float inputs, in `dtype`. */
async function lossAndGrads(
  f: (...xs: Tensor[]) => Tensor,
  inputs: CheckInput[],
  dtype: 'float32' | 'float64',
) {
  const g = new Graph();
  const xs = inputs.map((s, i) => g.input(`x${i}`, s.dtype ?? dtype, s.shape));
  const out = f(...xs);
  // w is a flat input reshaped at run time to the output's shape, which may be symbolic.
  const wFlat = g.input('w', dtype, ['wn']);
  const outShape = g.emit('Shape', [out], {}, { dtype: 'int64', shape: [out.rank] });
  const wt = g.emit('Reshape', [wFlat, outShape], {}, { dtype, shape: out.shape });
  const loss = reduceSum(mul(out, wt));
  const floatIdx = inputs.map((s, i) => (s.dtype === undefined ? i : -1)).filter((i) => i >= 0);
  const grads = grad(
    loss,
    floatIdx.map((i) => xs[i]!),
  );
  g.output('loss', loss);
  for (const [k, d] of grads.entries()) g.output(`g${k}`, d);
  return { s: await session(g.toOnnx()), floatIdx };
}

/**
 * Builds f on float64 inputs, projects its output onto a random tensor w (loss = sum(f(x) * w),
 * which exercises the whole vector-Jacobian product), and compares grad() with central differences.
 * `fd` is the worst relative error over the float inputs, |analytic - numeric| / max(|analytic|,
 * |numeric|) in the 2-norm. The same graph is also built in float32 (every op must have float
 * kernels too); `float32` is its gradients' relative error against the float64 ones.
 */
export async function gradCheck(
  f: (...xs: Tensor[]) => Tensor,
  inputs: CheckInput[],
  { seed = 1, h = 1e-5 }: CheckOptions = {},
): Promise<{ fd: number; float32: number }> {
  const rand = rng(seed);
  const feeds: Record<string, Feed> = {};
  inputs.forEach((spec, i) => {
    const dims = spec.dims ?? (spec.shape as number[]);
    const n = dims.reduce((a, b) => a * b, 1);
    const [lo, hi] = spec.range ?? [-1, 1];
    const data = spec.data ?? Array.from({ length: n }, () => lo + (hi - lo) * rand());
    feeds[`x${i}`] = { dtype: spec.dtype ?? 'float64', dims, data };
  });
  // Pass 1: the output's concrete dims.
  const g1 = new Graph();
  const y1 = f(...inputs.map((s, i) => g1.input(`x${i}`, s.dtype ?? 'float64', s.shape)));
  g1.output('y', y1);
  const { y } = await run(await session(g1.toOnnx()), feeds);
  const w = Array.from({ length: y!.data.length }, () => rand() * 2 - 1);
  feeds.w = { dtype: 'float64', dims: [w.length], data: w };
  // Pass 2: loss and gradients, float64.
  const { s, floatIdx } = await lossAndGrads(f, inputs, 'float64');
  const base = await run(s, feeds);
  let fd = 0;
  for (const [k, i] of floatIdx.entries()) {
    const x = feeds[`x${i}`]!;
    const numeric: number[] = [];
    const data = Array.from(x.data as ArrayLike<number>);
    for (let j = 0; j < data.length; j++) {
      const at = async (v: number) => {
        const d = data.slice();
        d[j] = v;
        return (await run(s, { ...feeds, [`x${i}`]: { ...x, data: d } })).loss!.data[0]!;
      };
      numeric.push(((await at(data[j]! + h)) - (await at(data[j]! - h))) / (2 * h));
    }
    fd = Math.max(fd, relError(base[`g${k}`]!.data, numeric));
  }
  // Pass 3: the same in float32.
  const f32 = await lossAndGrads(f, inputs, 'float32');
  const feeds32: Record<string, Feed> = {};
  for (const [name, feed] of Object.entries(feeds)) {
    feeds32[name] = feed.dtype === 'float64' ? { ...feed, dtype: 'float32' } : feed;
  }
  const low = await run(f32.s, feeds32);
  let float32 = 0;
  for (const k of floatIdx.keys())
    float32 = Math.max(float32, relError(low[`g${k}`]!.data, base[`g${k}`]!.data));
  return { fd, float32 };
}
