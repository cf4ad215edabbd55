/**
 * The reference the `policy` bench compares against: the transformer of src/policy/model/config.ts
 * written in @tensorflow/tfjs-core on its WebAssembly backend (the fastest JavaScript training
 * stack that runs here), trained with tfjs's own autodiff and Adam.
 *
 * Same architecture, same parameter names and count (checked against `parameterCount`), and the
 * same logits as the ONNX model for the same weights (test/policy/tfjs.test.ts): tied
 * embedding head, learned positions or RoPE (rotate-half), LayerNorm/RMSNorm (eps 1e-5), fused
 * QKV, causal softmax attention, GELU (tanh) MLP, no linear biases.
 *
 * Two deliberate differences in HOW, not WHAT, both to work around gaps of the wasm backend so
 * the comparison is fair to tfjs rather than to us:
 * - MatMul goes through `matmul` below, whose gradient transposes explicitly and then multiplies:
 *   the backend's MatMul with a transpose flag (what tfjs's own gradient uses) runs 10-50x slower
 *   than a plain one here (measured: 0.2-1 GFLOP/s against 9-18).
 * - The token embedding's gradient is oneHot(ids)^T @ dy, because tfjs's Gather gradient needs
 *   the UnsortedSegmentSum kernel, which the wasm backend does not have.
 *
 * Run alone: `npx tsx bench/policy-tfjs.ts [preset] [batch] [seq] [steps]`.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { getThreadsCount, setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { buildSync } from 'esbuild';
import {
  type ModelConfig,
  modelConfig,
  type PresetName,
  parameterCount,
} from '../src/policy/model/config.ts';
import { Rng } from '../src/util/random.ts';
import { median } from './suite.ts';

const NORM_EPS = 1e-5;
const MASKED = -1e9;

let backendReady: Promise<void> | undefined;

/** Select the wasm backend once, loading its .wasm files from node_modules (never the network). */
export function tfjsReady(): Promise<void> {
  backendReady ??= (async () => {
    const dir = dirname(createRequire(import.meta.url).resolve('@tensorflow/tfjs-backend-wasm/package.json'));
    setWasmPaths(`${dir}/dist/`);
    await registerGradients();
    if (!(await tf.setBackend('wasm'))) throw new Error('tfjs: the wasm backend failed to initialize');
    await tf.ready();
  })();
  return backendReady;
}

/**
 * tfjs-core's CommonJS build (what Node loads) registers no gradients, and the file that does,
 * dist/register_all_gradients.js, is ESM with extension-less imports that Node cannot load. So we
 * bundle it with esbuild (already installed: tsx runs on it) and import the bundle. It carries its
 * own copy of the ops the gradients use, but tfjs keeps its engine and its kernel and gradient
 * registries on globalThis, so the copy registers into, and runs on, the same engine.
 */
async function registerGradients(): Promise<void> {
  const entry = createRequire(import.meta.url).resolve(
    '@tensorflow/tfjs-core/dist/register_all_gradients.js',
  );
  const bundle = buildSync({
    entryPoints: [entry],
    bundle: true,
    format: 'esm',
    platform: 'node',
    write: false,
  });
  const dir = mkdtempSync(join(tmpdir(), 'stepwise-tfjs-'));
  try {
    const file = join(dir, 'register_all_gradients.mjs');
    writeFileSync(file, bundle.outputFiles[0]!.text);
    await import(pathToFileURL(file).href);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The model's parameters as tfjs variables, by the names the ONNX model uses. */
export function tfjsParameters(
  c: ModelConfig,
  seed = 0,
  values?: ReadonlyMap<string, Float32Array>,
): Map<string, tf.Variable> {
  const rng = new Rng(seed);
  const params = new Map<string, tf.Variable>();
  /** Given values (e.g. the ONNX model's, to compare the two) win over the initializer. */
  const given = (name: string, shape: number[]): tf.Tensor | undefined => {
    const v = values?.get(name);
    if (!values) return undefined;
    if (!v) throw new Error(`tfjsParameters: no value for parameter '${name}'`);
    return tf.tensor(v, shape);
  };
  const normal = (name: string, shape: number[], std: number) => {
    const init = given(name, shape) ?? tf.randomNormal(shape, 0, std, 'float32', rng.nextUint32());
    params.set(name, tf.variable(init, true));
  };
  const constant = (name: string, shape: number[], value: number) => {
    params.set(name, tf.variable(given(name, shape) ?? tf.fill(shape, value), true));
  };
  const normParams = (prefix: string) => {
    constant(`${prefix}.gain`, [c.width], 1);
    if (c.norm === 'layernorm') constant(`${prefix}.bias`, [c.width], 0);
  };
  const d = c.width;
  const std = 0.02;
  normal('tokenEmbedding', [c.vocabSize, d], std);
  if (c.positions === 'learned') normal('positionEmbedding', [c.contextLength, d], std);
  for (let l = 0; l < c.layers; l++) {
    const p = `layers.${l}`;
    normParams(`${p}.attnNorm`);
    normal(`${p}.qkv`, [d, 3 * d], std);
    normal(`${p}.attnOut`, [d, d], std / Math.sqrt(2 * c.layers));
    normParams(`${p}.mlpNorm`);
    normal(`${p}.mlpIn`, [d, c.mlpRatio * d], std);
    normal(`${p}.mlpOut`, [c.mlpRatio * d, d], std / Math.sqrt(2 * c.layers));
  }
  normParams('finalNorm');
  let count = 0;
  for (const v of params.values()) count += v.size;
  if (count !== parameterCount(c)) {
    throw new Error(`tfjs model has ${count} parameters but parameterCount(config) is ${parameterCount(c)}`);
  }
  return params;
}

/** Swap the last two axes. */
function transposeLast(x: tf.Tensor): tf.Tensor {
  const perm = x.shape.map((_, i) => i);
  [perm[x.rank - 2], perm[x.rank - 1]] = [perm[x.rank - 1]!, perm[x.rank - 2]!];
  return tf.transpose(x, perm);
}

/** a @ b with a gradient that never asks the backend for a transposed MatMul (see above). */
export const matmul = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const [a, b, save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
  save([a, b]);
  return {
    value: tf.matMul(a, b),
    gradFunc: (dy: tf.Tensor, [sa, sb]: tf.Tensor[]) => [
      tf.matMul(dy, transposeLast(sb!)),
      tf.matMul(transposeLast(sa!), dy),
    ],
  };
}) as (a: tf.Tensor, b: tf.Tensor) => tf.Tensor;

/** embedding[ids] for flat int32 ids, with the scatter-add gradient written as a MatMul. */
export function embed(embedding: tf.Variable, ids: tf.Tensor1D, vocab: number): tf.Tensor {
  const lookup = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => ({
    value: tf.gather(args[0] as tf.Tensor, ids),
    gradFunc: (dy: tf.Tensor) => tf.matMul(tf.transpose(tf.oneHot(ids, vocab)), dy),
  })) as (e: tf.Tensor) => tf.Tensor;
  return lookup(embedding);
}

function norm(c: ModelConfig, params: Map<string, tf.Variable>, prefix: string, x: tf.Tensor): tf.Tensor {
  const gain = params.get(`${prefix}.gain`)!;
  if (c.norm === 'rmsnorm') {
    return tf.mul(tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), NORM_EPS))), gain);
  }
  const centered = tf.sub(x, tf.mean(x, -1, true));
  const variance = tf.mean(tf.square(centered), -1, true);
  return tf.add(
    tf.mul(tf.mul(centered, tf.rsqrt(tf.add(variance, NORM_EPS))), gain),
    params.get(`${prefix}.bias`)!,
  );
}

/** GELU, tanh form: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
function gelu(x: tf.Tensor): tf.Tensor {
  const inner = tf.mul(tf.add(x, tf.mul(tf.mul(tf.square(x), x), 0.044715)), Math.sqrt(2 / Math.PI));
  return tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(inner), 1));
}

/** RoPE (rotate-half) on [batch, heads, seq, headSize] for positions 0..seq-1. */
function rope(x: tf.Tensor4D, hs: number): tf.Tensor {
  const seq = x.shape[2];
  const half = hs / 2;
  const cos = new Float32Array(seq * half);
  const sin = new Float32Array(seq * half);
  for (let pos = 0; pos < seq; pos++) {
    for (let i = 0; i < half; i++) {
      const angle = pos / 10000 ** ((2 * i) / hs);
      cos[pos * half + i] = Math.cos(angle);
      sin[pos * half + i] = Math.sin(angle);
    }
  }
  const cosT = tf.tensor2d(cos, [seq, half]);
  const sinT = tf.tensor2d(sin, [seq, half]);
  const [x1, x2] = tf.split(x, 2, -1) as [tf.Tensor, tf.Tensor];
  return tf.concat(
    [tf.sub(tf.mul(x1, cosT), tf.mul(x2, sinT)), tf.add(tf.mul(x1, sinT), tf.mul(x2, cosT))],
    -1,
  );
}

/** Logits [batch * seq, vocab] for int32 ids [batch, seq] (positions 0..seq-1 in every row). */
export function tfjsLogits(c: ModelConfig, params: Map<string, tf.Variable>, ids: tf.Tensor2D): tf.Tensor2D {
  const [b, t] = ids.shape;
  const d = c.width;
  const hs = d / c.heads;
  const embedding = params.get('tokenEmbedding')!;
  let x = tf.reshape(embed(embedding, tf.reshape(ids, [b * t]) as tf.Tensor1D, c.vocabSize), [b, t, d]);
  if (c.positions === 'learned') x = tf.add(x, tf.slice(params.get('positionEmbedding')!, [0, 0], [t, d]));
  const causal = tf.mul(tf.sub(1, tf.linalg.bandPart(tf.ones([t, t]), -1, 0)), MASKED);
  const heads = (y: tf.Tensor) =>
    tf.transpose(tf.reshape(y, [b, t, c.heads, hs]), [0, 2, 1, 3]) as tf.Tensor4D;
  for (let l = 0; l < c.layers; l++) {
    const p = `layers.${l}`;
    const h = tf.reshape(norm(c, params, `${p}.attnNorm`, x), [b * t, d]);
    const qkv = matmul(h, params.get(`${p}.qkv`)!);
    let q: tf.Tensor = heads(tf.mul(tf.slice(qkv, [0, 0], [b * t, d]), 1 / Math.sqrt(hs)));
    let k: tf.Tensor = heads(tf.slice(qkv, [0, d], [b * t, d]));
    const v = heads(tf.slice(qkv, [0, 2 * d], [b * t, d]));
    if (c.positions === 'rope') {
      q = rope(q as tf.Tensor4D, hs);
      k = rope(k as tf.Tensor4D, hs);
    }
    const att = tf.softmax(tf.add(matmul(q, transposeLast(k)), causal));
    const merged = tf.reshape(tf.transpose(matmul(att, v), [0, 2, 1, 3]), [b * t, d]);
    x = tf.add(x, tf.reshape(matmul(merged, params.get(`${p}.attnOut`)!), [b, t, d]));
    const m = tf.reshape(norm(c, params, `${p}.mlpNorm`, x), [b * t, d]);
    const mlp = matmul(gelu(matmul(m, params.get(`${p}.mlpIn`)!)), params.get(`${p}.mlpOut`)!);
    x = tf.add(x, tf.reshape(mlp, [b, t, d]));
  }
  const final = tf.reshape(norm(c, params, 'finalNorm', x), [b * t, d]);
  return matmul(final, transposeLast(embedding)) as tf.Tensor2D; // tied head
}

/**
 * Masked mean cross-entropy of predicting `targets` at every position of `ids`: the SFT loss,
 * and the same forward/backward work as the RL loss (which adds elementwise terms on top).
 */
export function tfjsLoss(
  c: ModelConfig,
  params: Map<string, tf.Variable>,
  ids: tf.Tensor2D,
  targets: tf.Tensor2D,
  mask: tf.Tensor2D,
): tf.Scalar {
  const [b, t] = ids.shape;
  const logits = tfjsLogits(c, params, ids);
  // Pick log p(target) with a one-hot product (no Gather gradient on wasm, as above).
  const picked = tf.sum(
    tf.mul(tf.logSoftmax(logits), tf.oneHot(tf.reshape(targets, [b * t]), c.vocabSize)),
    -1,
  );
  const m = tf.reshape(mask, [b * t]);
  return tf.div(tf.neg(tf.sum(tf.mul(picked, m))), tf.maximum(tf.sum(m), 1)) as tf.Scalar;
}

export interface TfjsRun {
  /** Loss before each step. */
  losses: number[];
  /** Wall time of each step (forward + backward + Adam), ms. */
  stepMs: number[];
  /**
   * CPU time of each step, ms (user + system of this process). The backend runs on one thread,
   * so on an idle machine this is the wall time; on a busy one it is the steadier figure.
   */
  stepCpuMs: number[];
}

/**
 * Train on one fixed random batch for `steps` Adam steps. Data: random token ids, targets = the
 * next token of the same row (so the batch can be memorized), loss on the second half of each row
 * (as RL trains on the response after a prompt).
 */
export async function tfjsTrain(
  config: ModelConfig,
  batch: number,
  seq: number,
  steps: number,
  options: { learningRate?: number; seed?: number } = {},
): Promise<TfjsRun> {
  await tfjsReady();
  if (seq > config.contextLength)
    throw new Error(`seq ${seq} is over the context length ${config.contextLength}`);
  const rng = new Rng(options.seed ?? 0);
  const tokens = Int32Array.from({ length: batch * (seq + 1) }, () => rng.nextUint32() % config.vocabSize);
  const idsData = new Int32Array(batch * seq);
  const targetData = new Int32Array(batch * seq);
  const maskData = new Float32Array(batch * seq);
  for (let r = 0; r < batch; r++) {
    for (let i = 0; i < seq; i++) {
      idsData[r * seq + i] = tokens[r * (seq + 1) + i]!;
      targetData[r * seq + i] = tokens[r * (seq + 1) + i + 1]!;
      maskData[r * seq + i] = i >= seq / 2 ? 1 : 0;
    }
  }
  const params = tfjsParameters(config, options.seed ?? 0);
  const ids = tf.tensor2d(idsData, [batch, seq], 'int32');
  const targets = tf.tensor2d(targetData, [batch, seq], 'int32');
  const mask = tf.tensor2d(maskData, [batch, seq]);
  const optimizer = tf.train.adam(options.learningRate ?? 1e-3);
  const varList = [...params.values()];
  const run: TfjsRun = { losses: [], stepMs: [], stepCpuMs: [] };
  try {
    for (let s = 0; s < steps; s++) {
      const t0 = performance.now();
      const cpu0 = process.cpuUsage();
      const loss = optimizer.minimize(() => tfjsLoss(config, params, ids, targets, mask), true, varList)!;
      const value = (await loss.data())[0]!; // waits for the step to finish
      run.stepMs.push(performance.now() - t0);
      const cpu = process.cpuUsage(cpu0);
      run.stepCpuMs.push((cpu.user + cpu.system) / 1000);
      run.losses.push(value);
      loss.dispose();
    }
  } finally {
    optimizer.dispose();
    tf.dispose([ids, targets, mask, ...varList]);
  }
  return run;
}

/** Median ms of one forward + backward + Adam step (after 2 warm-up steps). */
export async function tfjsTrainStepMs(
  config: ModelConfig,
  batch: number,
  seq: number,
  steps: number,
): Promise<number> {
  const { stepMs } = await tfjsTrain(config, batch, seq, steps + 2);
  return median(stepMs.slice(2));
}

/** Median wall and CPU ms of a step (after 2 warm-up steps), for reports. */
export async function tfjsTrainStepTimes(
  config: ModelConfig,
  batch: number,
  seq: number,
  steps: number,
): Promise<{ wallMs: number; cpuMs: number }> {
  const run = await tfjsTrain(config, batch, seq, steps + 2);
  return { wallMs: median(run.stepMs.slice(2)), cpuMs: median(run.stepCpuMs.slice(2)) };
}

// Run alone: print the median step time for a preset.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [preset = 'tiny', batch = '8', seq = '128', steps = '5'] = process.argv.slice(2);
  const c = modelConfig(preset as PresetName);
  await tfjsReady();
  const t = await tfjsTrainStepTimes(c, Number(batch), Number(seq), Number(steps));
  console.log(
    `tfjs (wasm, ${getThreadsCount()} thread): ${preset} (${parameterCount(c)} parameters), batch ${batch} x seq ${seq}: ` +
      `${t.wallMs.toFixed(1)} ms/step wall, ${t.cpuMs.toFixed(1)} ms CPU`,
  );
}
