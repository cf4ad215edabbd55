import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { embed, matmul, tfjsParameters, tfjsReady, tfjsTrain } from '../../bench/policy-tfjs.ts';
import { modelConfig, parameterCount } from '../../src/policy/model/config.ts';

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
