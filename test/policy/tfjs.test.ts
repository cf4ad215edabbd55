import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { embed, matmul, tfjsLogits, tfjsParameters, tfjsReady, tfjsTrain } from '../../bench/policy-tfjs.ts';
import { modelConfig, parameterCount } from '../../src/policy/model/config.ts';
import { initParams } from '../../src/policy/model/params.ts';
import { ModelRunner } from '../../src/policy/runtime/runner.ts';
import { Rng } from '../../src/util/random.ts';

describe('tfjs reference transformer (bench)', () => {
  beforeAll(async () => {
    await tfjsReady();
  });

  it('runs on the wasm backend with the same parameter count as the config', () => {
    expect(tf.getBackend()).toBe('wasm');
    for (const preset of ['tiny', 'small'] as const) {
      const c = modelConfig(preset);
      const params = tfjsParameters(c);
      const count = [...params.values()].reduce((n, v) => n + v.size, 0);
      expect(count).toBe(parameterCount(c));
      expect(params.get('layers.0.qkv')!.shape).toEqual([c.width, 3 * c.width]);
      tf.dispose([...params.values()]);
    }
    const rope = modelConfig({ ...modelConfig('tiny'), positions: 'rope', norm: 'rmsnorm' });
    const params = tfjsParameters(rope);
    expect(params.has('positionEmbedding')).toBe(false);
    expect([...params.values()].reduce((n, v) => n + v.size, 0)).toBe(parameterCount(rope));
    tf.dispose([...params.values()]);
  });

  it('computes the same logits as the ONNX model for the same weights (it is the same transformer)', async () => {
    const base = { vocabSize: 97, width: 32, layers: 2, heads: 4, contextLength: 24 };
    for (const variant of [{}, { positions: 'rope' as const, norm: 'rmsnorm' as const }]) {
      const c = modelConfig({ ...base, ...variant });
      const weights = initParams(c, 5);
      // Larger than the init's 0.02 scale, so attention and norms do real work in the comparison.
      const rng = new Rng(6);
      for (const w of weights.values()) for (let i = 0; i < w.length; i++) w[i]! += (rng.next() - 0.5) * 0.5;
      const rows = Array.from({ length: 3 }, () => Array.from({ length: 20 }, () => rng.nextUint32() % 97));
      const runner = new ModelRunner(c, weights);
      const onnx = (await runner.logits(rows)).data;
      await runner.dispose();
      const params = tfjsParameters(c, 0, weights);
      const ours = tfjsLogits(c, params, tf.tensor2d(rows.flat(), [3, 20], 'int32')).dataSync();
      tf.dispose([...params.values()]);
      expect(ours.length).toBe(onnx.length);
      let worst = 0;
      for (let i = 0; i < ours.length; i++) worst = Math.max(worst, Math.abs(ours[i]! - onnx[i]!));
      expect(worst, JSON.stringify(variant)).toBeLessThan(1e-4);
    }
  });

  it("matmul's hand-written gradient equals tfjs's own MatMul gradient", () => {
    const a = tf.randomNormal([2, 3, 5, 4], 0, 1, 'float32', 1);
    const b = tf.randomNormal([2, 3, 4, 6], 0, 1, 'float32', 2);
    const w = tf.randomNormal([2, 3, 5, 6], 0, 1, 'float32', 3);
    const f = (m: (x: tf.Tensor, y: tf.Tensor) => tf.Tensor) => (x: tf.Tensor, y: tf.Tensor) =>
      tf.sum(tf.mul(m(x, y), w));
    const ours = tf.grads(f(matmul))([a, b]);
    const theirs = tf.grads(f((x, y) => tf.matMul(x, y)))([a, b]);
    for (let i = 0; i < 2; i++) {
      const diff = tf.max(tf.abs(tf.sub(ours[i]!, theirs[i]!))).dataSync()[0]!;
      expect(diff).toBeLessThan(1e-5);
    }
  });

  it("embed's gradient scatter-adds dy rows into the looked-up tokens", () => {
    const e = tf.variable(tf.randomNormal([5, 3], 0, 1, 'float32', 4));
    const ids = tf.tensor1d([1, 3, 1, 0], 'int32');
    const dy = [
      [1, 2, 3],
      [4, 5, 6],
      [7, 8, 9],
      [10, 11, 12],
    ];
    const g = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(embed(x as tf.Variable, ids, 5), tf.tensor2d(dy))))(e);
    expect(Array.from(g.dataSync())).toEqual([10, 11, 12, 8, 10, 12, 0, 0, 0, 4, 5, 6, 0, 0, 0]);
    expect(Array.from(embed(e, ids, 5).dataSync())).toEqual(Array.from(tf.gather(e, ids).dataSync()));
  });

  it('starts at loss ln(vocab) and memorizes a batch (loss falls)', async () => {
    const c = modelConfig({ vocabSize: 64, width: 32, layers: 2, heads: 2, contextLength: 64 });
    const { losses, stepMs } = await tfjsTrain(c, 4, 32, 40, { learningRate: 1e-2 });
    // Small random init: the first prediction is nearly uniform over the vocabulary.
    expect(Math.abs(losses[0]! - Math.log(64))).toBeLessThan(0.1);
    expect(losses[39]!).toBeLessThan(0.5 * losses[0]!);
    expect(stepMs.every((ms) => ms > 0)).toBe(true);
    const rope = modelConfig({ ...c, positions: 'rope', norm: 'rmsnorm' });
    const r = await tfjsTrain(rope, 4, 32, 40, { learningRate: 1e-2 });
    expect(r.losses[39]!).toBeLessThan(0.5 * r.losses[0]!);
  });
});
