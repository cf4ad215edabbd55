import onnxProto from 'onnx-proto';
import { describe, expect, it } from 'vitest';
import {
  add,
  causalMask,
  concat,
  Graph,
  gather,
  gatherElements,
  gelu,
  grad,
  layerNorm,
  logSoftmax,
  matmul,
  mul,
  reduceMean,
  reduceSum,
  reshape,
  rmsNorm,
  slice,
  softmax,
  squeeze,
  tanh,
} from '../../src/policy/graph/index.ts';
import { gradCheck, run, session } from './graph-helpers.ts';

describe('graph core', () => {
  it('serializes a graph that onnxruntime-node loads and runs', async () => {
    const g = new Graph();
    const a = g.input('a', 'float32', ['batch', 3]);
    const w = g.constant([1, 2, 3, 4, 5, 6], 'float32', [3, 2]);
    g.output('y', add(matmul(a, w), 1));
    const out = await run(await session(g.toOnnx()), {
      a: { dtype: 'float32', dims: [2, 3], data: [1, 0, 0, 0, 1, 1] },
    });
    expect(out.y!.dims).toEqual([2, 2]);
    expect(out.y!.data).toEqual([2, 3, 8 + 1, 10 + 1]);
  });

  it('names outputs without Identity copies, except for inputs, constants and repeats', async () => {
    const g = new Graph();
    const x = g.input('x', 'float32', [2]);
    const y = mul(x, 2);
    g.output('y', y);
    g.output('y2', y); // same tensor again
    g.output('z', add(y, 1)); // y is also consumed after being renamed
    g.output('xOut', x); // an input
    g.output('c', g.constant([5, 6], 'float32')); // a constant
    expect(opTypes(g).filter((op) => op === 'Identity')).toHaveLength(3);
    const out = await run(await session(g.toOnnx()), { x: { dtype: 'float32', dims: [2], data: [1, 2] } });
    expect(out.y!.data).toEqual([2, 4]);
    expect(out.y2!.data).toEqual([2, 4]);
    expect(out.z!.data).toEqual([3, 5]);
    expect(out.xOut!.data).toEqual([1, 2]);
    expect(out.c!.data).toEqual([5, 6]);
  });

  it('names nodes after their scope, so run-time errors say where they came from', async () => {
    const g = new Graph();
    const a = g.input('a', 'float32', ['n']);
    const b = g.input('b', 'float32', ['m']);
    // Symbolic n and m are assumed different, so the builder would refuse add(a, b); emit raw.
    const y = g.scope('layer3', () =>
      g.scope('attention', () => g.emit('Add', [a, b], {}, { dtype: 'float32', shape: ['n'] })),
    );
    expect(y.name).toMatch(/^layer3\/attention\/Add_\d+$/);
    g.output('y', y);
    const s = await session(g.toOnnx());
    await expect(
      run(s, {
        a: { dtype: 'float32', dims: [2], data: [1, 2] },
        b: { dtype: 'float32', dims: [3], data: [1, 2, 3] },
      }),
    ).rejects.toThrow(/layer3\/attention\/Add/);
  });

  it('de-duplicates constants and prunes nodes no output needs', async () => {
    const g = new Graph();
    const x = g.input('x', 'float32', [2]);
    const c1 = g.constant([1, 2], 'float32');
    const c2 = g.constant([1, 2], 'float32');
    expect(c1).toBe(c2);
    mul(x, 100); // dead
    g.output('y', add(x, c1));
    const bytes = g.toOnnx();
    const text = Buffer.from(bytes).toString('latin1');
    expect(text.includes('Mul')).toBe(false);
  });

  it('gradients of a small MLP match finite differences in float64', async () => {
    const { fd: err } = await gradCheck(
      (x, w1, w2) => logSoftmax(matmul(gelu(matmul(x, w1)), w2)),
      [{ shape: [4, 3] }, { shape: [3, 5] }, { shape: [5, 2] }],
    );
    expect(err).toBeLessThan(1e-6);
  });

  it('accumulates gradients of a tensor used several times (fan-out)', async () => {
    const g = new Graph();
    const x = g.input('x', 'float64', [3]);
    // loss = sum(x*x + tanh(x) + x) -> dloss/dx = 2x + 1 - tanh(x)^2 + 1
    const loss = reduceSum(add(add(mul(x, x), tanh(x)), x));
    const [dx] = grad(loss, [x]);
    g.output('dx', dx!);
    const xs = [0.3, -1.2, 2];
    const out = await run(await session(g.toOnnx()), { x: { dtype: 'float64', dims: [3], data: xs } });
    xs.forEach((v, i) => {
      expect(out.dx!.data[i]).toBeCloseTo(2 * v + 1 - Math.tanh(v) ** 2 + 1, 12);
    });
  });

  it('takes a seed for a non-scalar loss (a vector-Jacobian product)', async () => {
    const g = new Graph();
    const x = g.input('x', 'float64', [3]);
    const seed = g.input('seed', 'float64', [3]);
    g.output('dx', grad(mul(x, x), [x], seed)[0]!);
    const out = await run(await session(g.toOnnx()), {
      x: { dtype: 'float64', dims: [3], data: [1, -2, 3] },
      seed: { dtype: 'float64', dims: [3], data: [1, 10, 100] },
    });
    expect(out.dx!.data).toEqual([2, -40, 600]);
  });

  it('gives zeros for a parameter the loss does not depend on', async () => {
    const g = new Graph();
    const x = g.input('x', 'float32', [2]);
    const unused = g.input('unused', 'float32', ['n', 2]);
    const [, d] = grad(reduceSum(mul(x, x)), [x, unused]);
    g.output('d', d!);
    const out = await run(await session(g.toOnnx()), {
      x: { dtype: 'float32', dims: [2], data: [1, 2] },
      unused: { dtype: 'float32', dims: [3, 2], data: [1, 2, 3, 4, 5, 6] },
    });
    expect(out.d!.dims).toEqual([3, 2]);
    expect(out.d!.data).toEqual([0, 0, 0, 0, 0, 0]);
  });

  it('handles symbolic batch and sequence dims through reshape', async () => {
    const { fd: err } = await gradCheck(
      (x, w) => reduceMean(reshape(matmul(x, w), [-1, 2]), 0),
      [{ shape: ['batch', 'seq', 3], dims: [2, 3, 3] }, { shape: [3, 2] }],
    );
    expect(err).toBeLessThan(1e-6);
  });
});

describe('shape errors name the op and the shapes', () => {
  const g = new Graph();
  const a = g.input('a', 'float32', [2, 3]);
  const b = g.input('b', 'float32', [4, 5]);
  const s = g.input('s', 'float32', ['batch', 3]);
  const t = g.input('t', 'float32', ['seq', 3]);
  const ids = g.input('ids', 'int64', [2]);

  it.each([
    ['matmul', () => matmul(a, b), /matmul: .*\[2, 3\].*\[4, 5\]/],
    ['add', () => add(a, b), /add: shapes \[2, 3\] and \[4, 5\] do not broadcast/],
    ['symbolic dims', () => add(s, t), /add: shapes \[batch, 3\] and \[seq, 3\] do not broadcast/],
    [
      'reshape',
      () => reshape(a, [4, 2]),
      /reshape: cannot reshape a of shape \[2, 3\] \(6 elements\) to \[4, 2\]/,
    ],
    ['dtype', () => add(a, ids), /add: operands have different dtypes/],
    ['softmax axis', () => softmax(a, 2), /softmax: axis 2 is out of range for a tensor of rank 2/],
    ['concat', () => concat([a, b], 0), /concat: along axis 0 .*float32\[2, 3\], float32\[4, 5\]/],
    ['squeeze', () => squeeze(a, 0), /squeeze: axis 0 of a \[2, 3\] has size 2, expected 1/],
    ['grad of non-scalar', () => grad(a, [a]), /grad: loss must be a scalar \(got shape \[2, 3\]\)/],
    [
      'gather gradient on axis 1',
      () => grad(reduceSum(gather(a, ids, 1)), [a]),
      /gather: the gradient with respect to data is only implemented for axis 0, got 1/,
    ],
    [
      'int gradient',
      () => grad(reduceSum(a), [ids]),
      /grad: cannot differentiate with respect to ids: int64\[2\]/,
    ],
  ])('%s', (_, f, message) => {
    expect(f).toThrow(message);
  });
});

describe('symbolic concat sizes', () => {
  it('names a concat of plain symbols by their sum, so two such concats broadcast', () => {
    const g = new Graph();
    const p = g.input('p', 'float32', ['batch', 'prefixLen']);
    const q = g.input('q', 'float32', ['batch', 'seq']);
    const keys = concat([p, q], 1);
    const bias = concat(
      [g.input('pb', 'float32', [1, 'prefixLen']), g.input('qb', 'float32', [1, 'seq'])],
      1,
    );
    expect(keys.shape).toEqual(['batch', 'prefixLen+seq']);
    expect(add(keys, bias).shape).toEqual(['batch', 'prefixLen+seq']);
    // A product in a size gets a fresh name: 'a*b+c' would read as a product.
    const r = reshape(g.input('r', 'float32', ['batch', 'seq', 2]), ['batch', -1]); // [batch, 2*seq]
    expect(concat([r, q], 1).shape[1]).toMatch(/^concat\d+$/);
  });
});

describe('graph size', () => {
  it('joins the gradients of slices that tile an axis with a Concat, not Pads', () => {
    const g = new Graph();
    const x = g.input('x', 'float32', [2, 'seq', 12]);
    const parts = [slice(x, -1, 0, 4), slice(x, -1, 4, 8), slice(x, -1, 8)];
    const loss = reduceSum(mul(mul(parts[0]!, parts[1]!), parts[2]!));
    g.output('dx', grad(loss, [x])[0]!);
    const ops = opTypes(g);
    expect(ops).not.toContain('Pad');
    expect(ops).not.toContain('Sum');
  });

  it("differentiates a target token's log-prob with a compare and a Where, not a scatter", () => {
    const g = new Graph();
    const logits = g.input('logits', 'float32', ['batch', 'seq', 16]);
    const targets = g.input('targets', 'int64', ['batch', 'seq', 1]);
    const loss = reduceSum(gatherElements(logSoftmax(logits, -1), targets, -1));
    g.output('d', grad(loss, [logits])[0]!);
    expect(opTypes(g)).not.toContain('ScatterElements');
  });

  it('emits no Shape ops for reshapes with one symbolic dim', () => {
    const g = new Graph();
    const x = g.input('x', 'float32', ['batch', 4, 6]);
    const y = reshape(reshape(x, [-1, 6]), ['batch', 2, 12]);
    g.output('dx', grad(reduceSum(mul(y, y)), [x])[0]!);
    // The one Shape is the full reduction's backward, which expands to y's run-time shape.
    expect(opTypes(g).filter((op) => op === 'Shape' || op === 'Concat')).toEqual(['Shape']);
  });
});

/** ONNX op types of the serialized model's nodes (toOnnx keeps only what the outputs need). */
function opTypes(g: Graph): string[] {
  return (onnxProto.onnx.ModelProto.decode(g.toOnnx()).graph?.node ?? []).map((n) => n.opType ?? '');
}

describe('composite ops compute what they claim (float64, against JS formulas)', () => {
  const xs = [-2.5, -1, -0.3, 0, 0.4, 1.7];

  it('gelu is the tanh form', async () => {
    const g = new Graph();
    g.output('y', gelu(g.input('x', 'float64', [6])));
    const { y } = await run(await session(g.toOnnx()), { x: { dtype: 'float64', dims: [6], data: xs } });
    const ref = xs.map((x) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3))));
    for (const [i, v] of y!.data.entries()) expect(v).toBeCloseTo(ref[i]!, 14);
  });

  it.each(['float64', 'float32'] as const)(
    'layerNorm and rmsNorm normalize the last axis (%s)',
    async (dtype) => {
      const g = new Graph();
      const x = g.input('x', dtype, [2, 3]);
      const gain = g.constant([1, 2, 3], dtype);
      const bias = g.constant([0.5, 0, -0.5], dtype);
      g.output('ln', layerNorm(x, gain, bias, 1e-5));
      g.output('rms', rmsNorm(x, gain, 1e-6));
      const { ln, rms } = await run(await session(g.toOnnx()), { x: { dtype, dims: [2, 3], data: xs } });
      const digits = dtype === 'float64' ? 12 : 5;
      for (let r = 0; r < 2; r++) {
        const row = xs.slice(3 * r, 3 * r + 3);
        const mean = row.reduce((a, b) => a + b) / 3;
        const variance = row.reduce((a, b) => a + (b - mean) ** 2, 0) / 3;
        const ms = row.reduce((a, b) => a + b * b, 0) / 3;
        for (const [i, v] of row.entries()) {
          const lnRef = ((v - mean) / Math.sqrt(variance + 1e-5)) * (i + 1) + [0.5, 0, -0.5][i]!;
          expect(ln!.data[3 * r + i]).toBeCloseTo(lnRef, digits);
          expect(rms!.data[3 * r + i]).toBeCloseTo((v / Math.sqrt(ms + 1e-6)) * (i + 1), digits);
        }
      }
    },
  );

  it('causalMask lets query i see keys j <= i + (keys - queries), static and symbolic', async () => {
    const expected = (q: number, k: number) =>
      Array.from({ length: q * k }, (_, n) => (n % k <= Math.floor(n / k) + k - q ? 1 : 0));
    const g = new Graph();
    g.output('static', causalMask(g, 2, 4));
    const q = g.input('q', 'float32', ['queries']);
    const k = g.input('k', 'float32', ['keys']);
    g.output('symbolic', causalMask(q.graph, q.shape[0]!, k.shape[0]!));
    const out = await run(await session(g.toOnnx()), {
      q: { dtype: 'float32', dims: [3], data: [0, 0, 0] },
      k: { dtype: 'float32', dims: [5], data: [0, 0, 0, 0, 0] },
    });
    expect(out.static!.data).toEqual(expected(2, 4));
    expect(out.symbolic!.dims).toEqual([3, 5]);
    expect(out.symbolic!.data).toEqual(expected(3, 5));
  });
});
