/**
 * ONNX Runtime sessions: one place that picks the execution provider and the session options, so
 * every graph (train step, prefill, decode, score) runs with the same settings.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { z } from 'zod';
import { type PolicyDtype, parseDtype } from './dtype.ts';

export { PolicyDtype, parseDtype } from './dtype.ts';

/** Where graphs run. 'cuda' needs onnxruntime-node installed with its CUDA binaries. */
export const Device = z.enum(['cpu', 'cuda']);
export type Device = z.infer<typeof Device>;

export const CUDA_INSTALL_HINT = 'ONNXRUNTIME_NODE_INSTALL=cuda12 npm ci';

/** Check a device name early, with a message that lists what is accepted. */
export function parseDevice(device: string): Device {
  const parsed = Device.safeParse(device);
  if (!parsed.success) {
    throw new Error(`unknown device '${device}'; expected one of: ${Device.options.join(', ')}`);
  }
  return parsed.data;
}

/** The folder holding onnxruntime-node's native binding (its CUDA provider library lands there). */
function bindingFolder(): string {
  const require = createRequire(import.meta.url);
  const pkg = path.dirname(require.resolve('onnxruntime-node/package.json'));
  return path.join(pkg, 'bin', 'napi-v6', process.platform, process.arch);
}

/** Whether the CUDA provider's shared library was installed next to the binding. */
export function cudaInstalled(): boolean {
  const lib =
    process.platform === 'win32' ? 'onnxruntime_providers_cuda.dll' : 'libonnxruntime_providers_cuda.so';
  return existsSync(path.join(bindingFolder(), lib));
}

/**
 * What ONNX Runtime's CPU provider does with a half type, measured with onnxruntime-node 1.30 by
 * building one-node graphs of every op the transformer uses: float16 graphs load and run (ops
 * without a float16 CPU kernel get casts to float32 inserted around them), at about float32's
 * CPU cost (no speed-up: the point of float16 is a GPU); bfloat16 graphs do not load (no CPU
 * kernel for MatMul, Add, Mul, ... in bfloat16).
 */
export const CPU_DTYPES: readonly PolicyDtype[] = ['float32', 'float16'];

const warned = new Set<string>();

/** Print a fallback line once per process: a run with many runners says it once. */
function warnOnce(line: string, warn: (line: string) => void): void {
  if (warned.has(line)) return;
  warned.add(line);
  warn(line);
}

/**
 * The device and compute precision graphs will really run with. Asking for 'cuda' without the CUDA
 * binaries, or for a dtype the CPU provider cannot run, prints ONE line (once per process) saying
 * what was asked, what runs instead and how to get it, so a run never dies for want of a GPU.
 */
export function resolveCompute(
  requested: { device?: string; dtype?: string },
  warn: (line: string) => void = console.warn,
): { device: Device; dtype: PolicyDtype } {
  const device = parseDevice(requested.device ?? 'cpu');
  const dtype = parseDtype(requested.dtype ?? 'float32');
  const runs: Device = device === 'cuda' && !cudaInstalled() ? 'cpu' : device;
  const runsIn: PolicyDtype = runs === 'cpu' && !CPU_DTYPES.includes(dtype) ? 'float32' : dtype;
  if (runs === device && runsIn === dtype) return { device, dtype };
  const asked = dtype === 'float32' ? `device '${device}'` : `device '${device}' with dtype '${dtype}'`;
  const why =
    runs !== device
      ? "onnxruntime-node's CUDA binaries are not installed"
      : `ONNX Runtime's CPU provider has no ${dtype} kernels`;
  const instead = runsIn === dtype ? `on CPU` : `on CPU in ${runsIn}`;
  warnOnce(
    `stepwise: ${asked} requested but ${why}; running ${instead}. ` +
      `For ${dtype === 'float32' ? 'the GPU' : `${dtype} on a GPU`}: \`${CUDA_INSTALL_HINT}\` ` +
      `(needs an NVIDIA GPU and CUDA 12) and --device cuda.`,
    warn,
  );
  return { device: runs, dtype: runsIn };
}

/** The device graphs will really run on (`resolveCompute` of a float32 run). */
export function resolveDevice(requested: string, warn: (line: string) => void = console.warn): Device {
  return resolveCompute({ device: requested }, warn).device;
}

/**
 * A half-precision graph that would not load (an op without a kernel of that type on the device
 * the session landed on): say so once and let the caller rebuild it in float32.
 */
export function warnDtypeFallback(
  dtype: PolicyDtype,
  device: Device,
  error: unknown,
  warn: (line: string) => void = console.warn,
): void {
  warnOnce(
    `stepwise: dtype '${dtype}' requested but its graph does not load on ${device.toUpperCase()} ` +
      `(${(error as Error).message.split('\n')[0]}); running in float32.` +
      (device === 'cpu' ? ` For ${dtype} on a GPU: \`${CUDA_INSTALL_HINT}\` and --device cuda.` : ''),
    warn,
  );
}

/**
 * Session options for training and inference graphs. Full graph optimization fuses the
 * decomposed LayerNorm/GELU/MatMul+Transpose patterns the graph builder emits; intra-op threads =
 * cores, one inter-op thread (the graphs are a single chain of big ops, parallel branches are few).
 * Worker threads block instead of spinning between ops: measured on a busy 2-core machine, a decode
 * step took 5 ms without spinning and 39 ms with it (a spinning pool waits on descheduled threads).
 */
export function sessionOptions(device: Device): ort.InferenceSession.SessionOptions {
  return {
    executionProviders: device === 'cuda' ? ['cuda', 'cpu'] : ['cpu'],
    graphOptimizationLevel: 'all',
    intraOpNumThreads: os.availableParallelism(),
    interOpNumThreads: 1,
    executionMode: 'sequential',
    enableCpuMemArena: true,
    enableMemPattern: true,
    extra: { session: { 'intra_op.allow_spinning': '0', 'inter_op.allow_spinning': '0' } },
  };
}

/**
 * Create a session from ONNX model bytes on a device. If the CUDA provider fails to load (a broken
 * install, no GPU), say so and fall back to CPU rather than fail the run.
 */
export async function createSession(
  model: Uint8Array,
  device: Device,
  warn: (line: string) => void = console.warn,
): Promise<{ session: ort.InferenceSession; device: Device }> {
  if (device === 'cuda') {
    try {
      return { session: await ort.InferenceSession.create(model, sessionOptions('cuda')), device };
    } catch (e) {
      warn(
        `stepwise: the CUDA provider failed to load (${(e as Error).message.split('\n')[0]}); ` +
          `reinstall with \`${CUDA_INSTALL_HINT}\`. Running on CPU.`,
      );
    }
  }
  return { session: await ort.InferenceSession.create(model, sessionOptions('cpu')), device: 'cpu' };
}
