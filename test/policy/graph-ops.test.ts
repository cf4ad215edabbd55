/**
 * Every differentiable op against central finite differences in float64, through onnxruntime-node:
 * relative error < 1e-6 on random inputs, over several shapes including broadcasting and symbolic
 * dims. Each case also runs in float32 (so both dtypes have kernels for every emitted node) and must
 * agree with float64 to float32 precision. The last test checks that the cases go through every
 * op's rule (it builds them itself, so it also holds when run alone).
 */
import ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import {
  add,
  addN,
  cast,
  causalMask,
  clip,
  concat,
  div,
  exp,
  expand,
  Graph,
  gather,
  gatherElements,
  gelu,
  grad,
  layerNorm,
  log,
  logSoftmax,
  matmul,
  maximum,
  minimum,
  mul,
  neg,
  pow,
  reduceMax,
  reduceMean,
  reduceSum,
  reshape,
  rmsNorm,
  sigmoid,
  slice,
  softmax,
  sqrt,
  squeeze,
  sub,
  type Tensor,
  tanh,
  transpose,
  transposeLast,
  unsqueeze,
  where,
} from '../../src/policy/graph/index.ts';
import { type CheckInput, type CheckOptions, gradCheck, opsOf, ortTensor, rng } from './graph-helpers.ts';

type Case = [name: string, f: (...xs: Tensor[]) => Tensor, inputs: CheckInput[], options?: CheckOptions];

const pos: [number, number] = [0.5, 2];
const int64 = (shape: number[], data: number[]): CheckInput => ({ shape, dtype: 'int64', data });
const bool = (shape: number[], data: number[]): CheckInput => ({ shape, dtype: 'bool', data });

const cases: Case[] = [
  // arithmetic with broadcasting
  ['add [2,3]+[3]', add, [{ shape: [2, 3] }, { shape: [3] }]],
  [
    'add [2,1,3]+[4,1] and a number',
    (a, b) => add(add(a, b), 0.5),
    [{ shape: [2, 1, 3] }, { shape: [4, 1] }],
  ],
  ['sub [3,1]-[1,4]', sub, [{ shape: [3, 1] }, { shape: [1, 4] }]],
  ['sub number-[2,2]', (a) => sub(3, a), [{ shape: [2, 2] }]],
  ['mul [2,3]*[2,3]', mul, [{ shape: [2, 3] }, { shape: [2, 3] }]],
  ['mul [2,3,4]*[] scalar tensor', mul, [{ shape: [2, 3, 4] }, { shape: [] }]],
  ['div [2,3]/[3]', div, [{ shape: [2, 3] }, { shape: [3], range: pos }]],
  ['div [4,1]/[1,3]', div, [{ shape: [4, 1] }, { shape: [1, 3], range: pos }]],
  [
    'addN [2,3],[3],[1,1]',
    (a, b, c) => addN([a, b, c]),
    [{ shape: [2, 3] }, { shape: [3] }, { shape: [1, 1] }],
  ],
  ['add symbolic [batch,3]+[3]', add, [{ shape: ['batch', 3], dims: [2, 3] }, { shape: [3] }]],
  // unary
  ['neg', neg, [{ shape: [2, 3] }]],
  ['exp', exp, [{ shape: [2, 3] }]],
  ['log', log, [{ shape: [2, 3], range: pos }]],
  ['sqrt', sqrt, [{ shape: [5], range: pos }]],
  ['pow tensor^tensor', pow, [{ shape: [2, 3], range: pos }, { shape: [3] }]],
  ['pow tensor^number', (a) => pow(a, 3), [{ shape: [2, 3] }]],
  ['tanh', tanh, [{ shape: [3, 4], range: [-2, 2] }]],
  ['sigmoid', sigmoid, [{ shape: [3, 4], range: [-3, 3] }]],
  ['gelu', gelu, [{ shape: [3, 5], range: [-3, 3] }]],
  // selection
  [
    'where [2,3] with broadcast [3]',
    (c, a, b) => where(c, a, b),
    [bool([2, 3], [1, 0, 1, 0, 0, 1]), { shape: [2, 3] }, { shape: [3] }],
  ],
  ['minimum [2,3],[3]', minimum, [{ shape: [2, 3] }, { shape: [3] }]],
  ['maximum [4],[4]', maximum, [{ shape: [4] }, { shape: [4] }]],
  ['clip [-0.5, 0.5]', (a) => clip(a, -0.5, 0.5), [{ shape: [10], range: [-1, 1] }]],
  ['clip min only', (a) => clip(a, 0), [{ shape: [6] }]],
  // Values and step exactly representable in float32, so the round trip loses nothing.
  [
    'cast float64 -> float32 -> float64 (float32 -> float64 -> float32)',
    (a) => cast(mul(cast(a, a.dtype === 'float64' ? 'float32' : 'float64'), 2), a.dtype),
    [{ shape: [2, 3], data: [0.25, -0.5, 0.75, 1, -0.125, 0.0625] }],
    { h: 2 ** -10 },
  ],
  // reductions and softmax
  ['reduceSum all', (a) => reduceSum(a), [{ shape: [2, 3] }]],
  ['reduceSum axis 1 keepdims', (a) => reduceSum(a, 1, { keepdims: true }), [{ shape: [2, 3, 2] }]],
  ['reduceSum axes [0,2]', (a) => reduceSum(a, [0, 2]), [{ shape: [2, 3, 2] }]],
  ['reduceMean axis -1', (a) => reduceMean(a, -1), [{ shape: [3, 4] }]],
  ['reduceMean symbolic axis', (a) => reduceMean(a, 0), [{ shape: ['batch', 3], dims: [4, 3] }]],
  ['reduceMax axis 1', (a) => reduceMax(a, 1), [{ shape: [3, 4] }]],
  ['reduceMax all keepdims', (a) => reduceMax(a, undefined, { keepdims: true }), [{ shape: [2, 3] }]],
  ['softmax last axis', (a) => softmax(a, -1), [{ shape: [3, 4] }]],
  ['softmax axis 0', (a) => softmax(a, 0), [{ shape: [3, 4] }]],
  ['logSoftmax', (a) => logSoftmax(a, -1), [{ shape: [2, 2, 5], range: [-3, 3] }]],
  // shapes
  ['reshape [2,3,4] -> [6,4]', (a) => reshape(a, [6, 4]), [{ shape: [2, 3, 4] }]],
  [
    'reshape symbolic [batch,seq,4] -> [batch*seq, 2, 2]',
    (a) => reshape(a, [-1, 2, 2]),
    [{ shape: ['batch', 'seq', 4], dims: [2, 3, 4] }],
  ],
  ['transpose perm [2,0,1]', (a) => transpose(a, [2, 0, 1]), [{ shape: [2, 3, 4] }]],
  ['transposeLast', transposeLast, [{ shape: [2, 3, 4] }]],
  ['unsqueeze/squeeze', (a) => squeeze(mul(unsqueeze(a, [0, 3]), 2), 0), [{ shape: [2, 3] }]],
  ['expand [3,1] -> [2,3,4]', (a) => expand(a, [2, 3, 4]), [{ shape: [3, 1] }]],
  ['slice static [1:3] axis 1', (a) => slice(a, 1, 1, 3), [{ shape: [2, 5] }]],
  ['slice static negative [-2:]', (a) => slice(a, 0, -2), [{ shape: [4, 2] }]],
  [
    'slice symbolic [1:] and [:-1] line up',
    (a) => mul(slice(a, 1, 1), slice(a, 1, 0, -1)),
    [{ shape: ['batch', 'seq'], dims: [2, 5] }],
  ],
  ['slice symbolic [-2:]', (a) => slice(a, 1, -2), [{ shape: [2, 'seq'], dims: [2, 5] }]],
  [
    'slices that tile an axis (gradient joined by one Concat)',
    (a) => concat([tanh(slice(a, 1, 0, 2)), exp(slice(a, 1, 2, 5)), slice(a, 1, 5)], 1),
    [{ shape: [2, 7] }],
  ],
  [
    'slices with a gap (gradient summed)',
    (a) => mul(slice(a, 0, 0, 2), slice(a, 0, 3, 5)),
    [{ shape: [6, 2] }],
  ],
  ['concat axis 1', (a, b) => concat([a, b, a], 1), [{ shape: [2, 3] }, { shape: [2, 1] }]],
  [
    'concat symbolic axis',
    (a, b) => concat([a, b], 1),
    [{ shape: [2, 'past'], dims: [2, 3] }, { shape: [2, 1] }],
  ],
  [
    'gather rows (embedding, repeated ids)',
    (t, ids) => gather(t, ids),
    [{ shape: [5, 3] }, int64([2, 3], [0, 4, 4, 1, 0, 2])],
  ],
  [
    'gatherElements one per row, last axis, negative index',
    (x, ids) => gatherElements(x, ids, -1),
    [{ shape: [2, 3, 4] }, int64([2, 3, 1], [3, 0, -1, 2, 1, 0])],
  ],
  [
    'gatherElements one per column, axis 0, symbolic rows',
    (x, ids) => gatherElements(x, ids, 0),
    [
      { shape: [3, 'n'], dims: [3, 4] },
      { shape: [1, 'n'], dims: [1, 4], dtype: 'int64', data: [2, 0, 1, 2] },
    ],
  ],
  [
    'gatherElements several per row (scatter-add path)',
    (x, ids) => gatherElements(x, ids, 1),
    [{ shape: [3, 4] }, int64([3, 2], [3, 3, 0, 1, 2, 0])],
  ],
  // matmul
  ['matmul [3,4]@[4,2]', (a, b) => matmul(a, b), [{ shape: [3, 4] }, { shape: [4, 2] }]],
  ['matmul batched [2,3,4]@[2,4,5]', (a, b) => matmul(a, b), [{ shape: [2, 3, 4] }, { shape: [2, 4, 5] }]],
  ['matmul shared weight [2,3,4]@[4,5]', (a, b) => matmul(a, b), [{ shape: [2, 3, 4] }, { shape: [4, 5] }]],
  [
    'matmul broadcast [2,1,3,4]@[3,4,2]',
    (a, b) => matmul(a, b),
    [{ shape: [2, 1, 3, 4] }, { shape: [3, 4, 2] }],
  ],
  [
    'matmul symbolic [batch,seq,4]@[4,3]',
    (a, b) => matmul(a, b),
    [{ shape: ['batch', 'seq', 4], dims: [2, 3, 4] }, { shape: [4, 3] }],
  ],
  [
    'matmul transposeB [2,3,4]@[2,5,4]^T',
    (a, b) => matmul(a, b, { transposeB: true }),
    [{ shape: [2, 3, 4] }, { shape: [2, 5, 4] }],
  ],
  [
    'matmul transposeB tied head [2,3,4]@[6,4]^T',
    (a, b) => matmul(a, b, { transposeB: true }),
    [{ shape: [2, 3, 4] }, { shape: [6, 4] }],
  ],
  [
    'matmul transposeB broadcast [3,4]@[2,5,4]^T',
    (a, b) => matmul(a, b, { transposeB: true }),
    [{ shape: [3, 4] }, { shape: [2, 5, 4] }],
  ],
  // composites
  ['layerNorm', (x, g, b) => layerNorm(x, g, b), [{ shape: [2, 3, 4] }, { shape: [4] }, { shape: [4] }]],
  [
    'layerNorm symbolic [batch, seq, 5]',
    (x, g, b) => layerNorm(x, g, b),
    [{ shape: ['batch', 'seq', 5], dims: [2, 2, 5] }, { shape: [5] }, { shape: [5] }],
  ],
  ['rmsNorm', (x, g) => rmsNorm(x, g), [{ shape: [3, 4] }, { shape: [4] }]],
  [
    'causal attention (static)',
    (q, k, v) => {
      const scores = matmul(q, transposeLast(k));
      return matmul(softmax(where(causalMask(q.graph, 3), scores, -1e9), -1), v);
    },
    [{ shape: [2, 3, 4] }, { shape: [2, 3, 4] }, { shape: [2, 3, 4] }],
  ],
  [
    'causal attention (symbolic, with a cache)',
    (q, k) => softmax(where(causalMask(q.graph, 'seq', 'keys'), matmul(q, transposeLast(k)), -1e9), -1),
    [
      { shape: ['seq', 4], dims: [2, 4] },
      { shape: ['keys', 4], dims: [5, 4] },
    ],
  ],
];

describe('per-op gradient checks (float64, central differences)', () => {
  for (const [name, f, inputs, options] of cases) {
    it(name, async () => {
      const { fd, float32 } = await gradCheck(f, inputs, options);
      expect(fd).toBeLessThan(1e-6);
      expect(float32).toBeLessThan(1e-4);
    });
  }

  it('covered every differentiable op', () => {
    const all = [
      'add',
      'sub',
      'mul',
      'div',
      'addN',
      'neg',
      'exp',
      'log',
      'sqrt',
      'pow',
      'tanh',
      'sigmoid',
      'gelu',
      'where',
      'minimum',
      'maximum',
      'clip',
      'cast',
      'reduceSum',
      'reduceMean',
      'reduceMax',
      'softmax',
      'logSoftmax',
      'reshape',
      'transpose',
      'unsqueeze',
      'squeeze',
      'expand',
      'slice',
      'concat',
      'gather',
      'gatherElements',
      'matmul',
      'layerNorm',
      'rmsNorm',
    ];
    const covered = new Set(cases.flatMap(([, f, inputs]) => [...opsOf(f, inputs)]));
    expect(all.filter((op) => !covered.has(op))).toEqual([]);
  });
});

describe('embedding gradient', () => {
  // The embedding gradient sums dy over every position holding the same id. On several threads
  // ONNX Runtime's ScatterND-add raced on those repeats (the sum changed from run to run); this
  // checks the sum on a multi-threaded session, repeated, against a float64 sum in JavaScript.
  it('is the same on every run on several threads, and equals the sum over repeated ids', async () => {
    const vocab = 7;
    const width = 48;
    const n = 6000;
    const rand = rng(3);
    const ids = Array.from({ length: n }, () => Math.floor(rand() * vocab));
    const dy = Array.from({ length: n * width }, () => rand() * 2 - 1);
    const g = new Graph();
    const table = g.input('table', 'float32', [vocab, width]);
    const idsIn = g.input('ids', 'int64', ['n']);
    const w = g.input('w', 'float32', ['n', width]);
    const [dTable] = grad(reduceSum(mul(gather(table, idsIn), w)), [table]);
    g.output('dTable', dTable!);
    const s = await ort.InferenceSession.create(g.toOnnx(), { logSeverityLevel: 3, intraOpNumThreads: 4 });
    const feeds = {
      table: ortTensor({ dtype: 'float32', dims: [vocab, width], data: new Array(vocab * width).fill(0) }),
      ids: ortTensor({ dtype: 'int64', dims: [n], data: ids }),
      w: ortTensor({ dtype: 'float32', dims: [n, width], data: dy }),
    };
    const runs: Float32Array[] = [];
    for (let r = 0; r < 6; r++) runs.push((await s.run(feeds)).dTable!.data as Float32Array);
    for (const other of runs.slice(1)) expect(Array.from(other)).toEqual(Array.from(runs[0]!));
    const expected = new Float64Array(vocab * width);
    ids.forEach((id, i) => {
      for (let j = 0; j < width; j++) expected[id * width + j]! += dy[i * width + j]!;
    });
    let worst = 0;
    expected.forEach((e, k) => {
      worst = Math.max(worst, Math.abs(e - runs[0]![k]!) / Math.max(1, Math.abs(e)));
    });
    expect(worst).toBeLessThan(1e-4);
  });
});
