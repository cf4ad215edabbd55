// ONNX Runtime sessions: one place that picks the execution provider and the session options, so
// every graph (train step, prefill, decode, score) runs with the same settings.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { z } from 'zod';

/** Where graphs run. 'cuda' needs onnxruntime-node installed with its CUDA binaries. */
export const Device = z.enum(['cpu', 'cuda']);
export type Device = z.infer<typeof Device>;

// onnxruntime-node's install script is denied in package.json's allowScripts (its default would
// fetch the CUDA provider on every Linux x64 install), so a GPU user runs it by hand.
export const CUDA_INSTALL_HINT =
  'ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install';

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

let warnedFallback = false;

/**
 * The device graphs will really run on. Asking for 'cuda' without the CUDA binaries prints how to
 * install them (once per process) and returns 'cpu', so a run never dies for want of a GPU.
 */
export function resolveDevice(requested: string, warn: (line: string) => void = console.warn): Device {
  const device = parseDevice(requested);
  if (device === 'cuda' && !cudaInstalled()) {
    if (!warnedFallback) {
      warn(
        `stepwise: device 'cuda' requested but onnxruntime-node's CUDA binaries are not installed; ` +
          `install them with \`${CUDA_INSTALL_HINT}\` (needs an NVIDIA GPU and CUDA 12). Running on CPU.`,
      );
      warnedFallback = true;
    }
    return 'cpu';
  }
  return device;
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
