/** Ops that move data without arithmetic: reshape, transpose, (un)squeeze, expand, slice, concat, gather. */
import { record, zerosLike } from '../autodiff.ts';
import {
  broadcastShapes,
  canonicalDim,
  type Dim,
  dimEquals,
  divDims,
  formatShape,
  normAxis,
  productOf,
  type Shape,
  shapeEquals,
} from '../dims.ts';
import { isHalf, type Tensor } from '../graph.ts';
import { add, cast, equal, less, sub, where } from './elementwise.ts';
import { unbroadcast } from './reduce.ts';

/**
 * New shape with the same elements. Dims may be numbers, symbolic names (products allowed:
 * 'batch*seq') or one -1 (inferred). At run time the target is a constant whenever at most one
 * dim is symbolic (that one is passed as -1), so no Shape ops are emitted for the common cases.
 */
export function reshape(x: Tensor, shape: Shape): Tensor {
  const holes = shape.filter((d) => d === -1).length;
  if (holes > 1) throw new Error(`reshape: at most one -1 allowed in ${formatShape(shape)}`);
  const known = shape.filter((d) => d !== -1);
  let out: Dim[];
  if (holes === 1) {
    const inferred = divDims(productOf(x.shape), productOf(known));
    if (inferred === undefined) {
      throw new Error(
        `reshape: cannot reshape ${x.name} of shape ${formatShape(x.shape)} to ${formatShape(shape)}`,
      );
    }
    out = shape.map((d) => (d === -1 ? inferred : canonicalDim(d)));
  } else {
    out = shape.map(canonicalDim);
    if (!dimEquals(productOf(x.shape), productOf(out))) {
      throw new Error(
        `reshape: cannot reshape ${x.name} of shape ${formatShape(x.shape)} (${productOf(x.shape)} elements) to ${formatShape(shape)} (${productOf(out)} elements)`,
      );
    }
  }
  if (shapeEquals(out, x.shape)) return x;
  const g = x.graph;
  const firstSym = out.findIndex((d) => typeof d !== 'number');
  const target = out.map((d, i) => (i === firstSym ? -1 : d));
  const y = g.emit('Reshape', [x, g.shapeTensor(target)], {}, { dtype: x.dtype, shape: out });
  return record(y, 'reshape', [x], (dy) => [reshape(dy, x.shape)]);
}

/** Permutes axes (reverses them when perm is omitted). */
export function transpose(x: Tensor, perm?: number[]): Tensor {
  const p = perm ?? x.shape.map((_, i) => x.rank - 1 - i);
  const sorted = [...p].sort((a, b) => a - b);
  if (p.length !== x.rank || sorted.some((v, i) => v !== i)) {
    throw new Error(
      `transpose: perm [${p}] is not a permutation of the ${x.rank} axes of ${x.name} ${formatShape(x.shape)}`,
    );
  }
  const y = x.graph.emit('Transpose', [x], { perm: p }, { dtype: x.dtype, shape: p.map((a) => x.shape[a]!) });
  const inverse = p.map((_, i) => p.indexOf(i));
  return record(y, 'transpose', [x], (dy) => [transpose(dy, inverse)]);
}

/** Swaps the last two axes (matrix transpose over a batch). */
export function transposeLast(x: Tensor): Tensor {
  if (x.rank < 2) throw new Error(`transposeLast: needs rank >= 2, got ${x.name} ${formatShape(x.shape)}`);
  const perm = x.shape.map((_, i) => i);
  perm[x.rank - 2] = x.rank - 1;
  perm[x.rank - 1] = x.rank - 2;
  return transpose(x, perm);
}

/** Inserts size-1 axes at `axes` (positions in the output). */
export function unsqueeze(x: Tensor, axes: number | number[]): Tensor {
  const rank = x.rank + (typeof axes === 'number' ? 1 : axes.length);
  const ax = (typeof axes === 'number' ? [axes] : axes)
    .map((a) => normAxis('unsqueeze', a, rank))
    .sort((a, b) => a - b);
  const out: Dim[] = [];
  let k = 0;
  for (let i = 0; i < rank; i++) out.push(ax.includes(i) ? 1 : x.shape[k++]!);
  const g = x.graph;
  const y = g.emit('Unsqueeze', [x, g.constant(ax, 'int64')], {}, { dtype: x.dtype, shape: out });
  return record(y, 'unsqueeze', [x], (dy) => [squeeze(dy, ax)]);
}

/** Removes size-1 axes. */
export function squeeze(x: Tensor, axes: number | number[]): Tensor {
  const ax = (typeof axes === 'number' ? [axes] : axes)
    .map((a) => normAxis('squeeze', a, x.rank))
    .sort((a, b) => a - b);
  for (const a of ax) {
    if (!dimEquals(x.shape[a]!, 1)) {
      throw new Error(
        `squeeze: axis ${a} of ${x.name} ${formatShape(x.shape)} has size ${x.shape[a]}, expected 1`,
      );
    }
  }
  const g = x.graph;
  const out = x.shape.filter((_, i) => !ax.includes(i));
  const y = g.emit('Squeeze', [x, g.constant(ax, 'int64')], {}, { dtype: x.dtype, shape: out });
  return record(y, 'squeeze', [x], (dy) => [unsqueeze(dy, ax)]);
}

/** Broadcasts x to `shape` (numpy rules). */
export function expand(x: Tensor, shape: Shape): Tensor {
  const out = broadcastShapes('expand', x.shape, shape);
  if (shapeEquals(out, x.shape)) return x;
  const g = x.graph;
  const y = g.emit('Expand', [x, g.shapeTensor(shape)], {}, { dtype: x.dtype, shape: out });
  return record(y, 'expand', [x], (dy) => [unbroadcast(dy, x.shape)]);
}

/** `end` when omitted: past the end of any axis (ONNX clamps it, as Python does). */
const END = 2 ** 62;

/**
 * x[..., start:end, ...] along one axis (step 1; negative indices count from the end, as in
 * Python). On a symbolic axis the result keeps a symbolic size: 'seq' sliced [1:] or [:-1] has size
 * 'seq-1' both ways, so the two shifted halves of a sequence line up.
 */
export function slice(x: Tensor, axis: number, start: number, end = END): Tensor {
  const a = normAxis('slice', axis, x.rank);
  const d = x.shape[a]!;
  const g = x.graph;
  let size: Dim;
  let symbolic = false;
  if (typeof d === 'number') {
    const norm = (i: number) => Math.min(Math.max(i < 0 ? i + d : i, 0), d);
    size = Math.max(norm(end) - norm(start), 0);
  } else if (start >= 0 && end >= 0 && end !== END) size = Math.max(end - start, 0);
  else if (start < 0 && end < 0) size = Math.max(end - start, 0);
  else if (start < 0 && end === END) size = -start;
  else if (start === 0 && end === END) return x;
  else {
    // Size d - k with k = start (when end is the end) or start + |end|; a size that is not of that
    // form ([-3:2] of a symbolic axis) gets a fresh name, read from the result at run time.
    const k = start + (end === END ? 0 : -end);
    size = d.includes('*') || start < 0 ? `slice${g.size}` : `${d}-${k}`;
    symbolic = true;
  }
  const out = x.shape.map((e, i) => (i === a ? size : e));
  const y = g.emit(
    'Slice',
    [x, g.constant([start], 'int64'), g.constant([end], 'int64'), g.constant([a], 'int64')],
    {},
    { dtype: x.dtype, shape: out },
  );
  if (symbolic) g.bindSymbol(size as string, y, a);
  return record(y, 'slice', [x], (dy) => {
    // dx = dy padded with zeros back to x's extent along the axis.
    let begin: Tensor | number;
    let after: Tensor | number;
    if (typeof d === 'number') {
      const norm = (i: number) => Math.min(Math.max(i < 0 ? i + d : i, 0), d);
      begin = norm(start);
      after = d - Math.max(norm(end), begin);
    } else {
      begin = start >= 0 ? start : add(g.dim(d), start);
      after = end === END ? 0 : end < 0 ? -end : sub(g.dim(d), end);
    }
    const pieces = (v: Tensor | number) => (typeof v === 'number' ? g.constant([v], 'int64') : v);
    const before = x.shape.map((_, i) => (i === a ? begin : 0));
    const behind = x.shape.map((_, i) => (i === a ? after : 0));
    const all = [...before, ...behind];
    const pads = all.every((v) => typeof v === 'number')
      ? g.constant(all as number[], 'int64')
      : g.emit('Concat', all.map(pieces), { axis: 0 }, { dtype: 'int64', shape: [all.length] });
    const dx = g.emit('Pad', [dy, pads], { mode: 'constant' }, { dtype: dy.dtype, shape: x.shape });
    if (typeof begin === 'number' && typeof after === 'number' && typeof d === 'number') {
      dx.padOf = { dy, axis: a, begin, end: d - after };
    }
    return [dx];
  });
}

/** Joins tensors along an axis; the other dims must agree. */
export function concat(ts: Tensor[], axis: number): Tensor {
  if (ts.length === 0) throw new Error('concat: needs at least one tensor');
  const first = ts[0]!;
  const a = normAxis('concat', axis, first.rank);
  for (const t of ts) {
    const ok =
      t.dtype === first.dtype &&
      t.rank === first.rank &&
      t.shape.every((d, i) => i === a || dimEquals(d, first.shape[i]!));
    if (!ok) {
      throw new Error(
        `concat: along axis ${a} all tensors need the same dtype and other dims; got ${ts.map((x) => `${x.dtype}${formatShape(x.shape)}`).join(', ')}`,
      );
    }
  }
  if (ts.length === 1) return first;
  const g = first.graph;
  const sizes = ts.map((t) => t.shape[a]!);
  // Sums of plain symbols keep a name ('prefixLen+seq'), so that two concats of the same sizes
  // (keys, and the attention bias built for them) broadcast against each other.
  const total = sizes.every((s) => typeof s === 'number')
    ? (sizes as number[]).reduce((p, q) => p + q, 0)
    : sizes.every((s) => typeof s === 'number' || !/[*+]/.test(s))
      ? sizes.join('+')
      : `concat${g.size}`;
  const y = g.emit(
    'Concat',
    ts,
    { axis: a },
    { dtype: first.dtype, shape: first.shape.map((d, i) => (i === a ? total : d)) },
  );
  if (typeof total === 'string') g.bindSymbol(total, y, a);
  return record(y, 'concat', ts, (dy) =>
    g.emitMulti(
      'Split',
      [dy, g.shapeTensor(sizes)],
      { axis: a },
      ts.map((t) => ({ dtype: t.dtype, shape: t.shape })),
    ),
  );
}

function expectIndices(op: string, t: Tensor): void {
  if (t.dtype !== 'int64' && t.dtype !== 'int32')
    throw new Error(`${op}: indices must be int64 or int32, got ${t}`);
}

/**
 * Picks slices of x along `axis` by index (an embedding lookup is gather(table, ids)). The gradient
 * with respect to x scatters-adds dy back (repeated ids accumulate); it is implemented for axis 0.
 *
 * Why ScatterElements and not ScatterND: ONNX Runtime's CPU ScatterND with reduction 'add' splits
 * the updates across threads, and repeated ids (every embedding batch has them) then race, so the
 * embedding gradient differed from run to run by up to 2e-2 relative (onnxruntime issues 18048,
 * 23396). ScatterElements along axis 0, with each id repeated across the row, accumulates in one
 * pass and gives the same sum every run.
 */
export function gather(x: Tensor, indices: Tensor, axis = 0): Tensor {
  expectIndices('gather', indices);
  const a = normAxis('gather', axis, x.rank);
  const out = [...x.shape.slice(0, a), ...indices.shape, ...x.shape.slice(a + 1)];
  const g = x.graph;
  const y = g.emit('Gather', [x, indices], { axis: a }, { dtype: x.dtype, shape: out });
  return record(y, 'gather', [x, indices], (dy) => {
    if (a !== 0)
      throw new Error(`gather: the gradient with respect to data is only implemented for axis 0, got ${a}`);
    const row = x.shape.slice(1);
    const width = row.length === 0 ? 1 : productOf(row);
    if (typeof width !== 'number')
      throw new Error(
        `gather: the gradient needs the row shape of data to be static, got ${formatShape(x.shape)}`,
      );
    const n = productOf(indices.shape);
    const table = [x.shape[0]!, width];
    const flat = (t: Tensor, shape: Shape) =>
      g.emit('Reshape', [t, g.constant([-1, shape[1] as number], 'int64')], {}, { dtype: t.dtype, shape });
    // A half-precision table's gradient is summed in float32: ONNX Runtime's CPU ScatterElements
    // has no float16 kernel for reduction 'add' (it fails at run time, not at load), and an
    // embedding row that sums thousands of token gradients loses them in float16 anyway.
    const acc = isHalf(x.dtype) ? 'float32' : x.dtype;
    const rows = flat(cast(dy, acc), [n, width]);
    const ids = flat(indices, [n, 1]);
    const idsPerEntry = g.emit(
      'Expand',
      [ids, g.constant([1, width], 'int64')],
      {},
      { dtype: indices.dtype, shape: [n, width] },
    );
    const zeros = flat(zerosLike(x, acc), table);
    const summed = g.emit(
      'ScatterElements',
      [zeros, idsPerEntry, rows],
      { axis: 0, reduction: 'add' },
      { dtype: acc, shape: table },
    );
    const dx = g.emit('Reshape', [summed, g.shapeTensor(x.shape)], {}, { dtype: acc, shape: x.shape });
    return [cast(dx, x.dtype), undefined];
  });
}

/**
 * out[i][j] = x[i][indices[i][j]] along `axis` (indices has x's rank): picks one entry per position,
 * e.g. the log-prob of each target token. The gradient scatters-adds dy back.
 */
export function gatherElements(x: Tensor, indices: Tensor, axis = -1): Tensor {
  expectIndices('gatherElements', indices);
  const a = normAxis('gatherElements', axis, x.rank);
  if (indices.rank !== x.rank) {
    throw new Error(
      `gatherElements: indices must have the rank of data; got data ${formatShape(x.shape)} and indices ${formatShape(indices.shape)}`,
    );
  }
  const g = x.graph;
  const y = g.emit('GatherElements', [x, indices], { axis: a }, { dtype: x.dtype, shape: indices.shape });
  return record(y, 'gatherElements', [x, indices], (dy) => {
    const d = x.shape[a]!;
    const onePerRow =
      typeof d === 'number' &&
      dimEquals(indices.shape[a]!, 1) &&
      indices.shape.every((e, i) => i === a || dimEquals(e, x.shape[i]!));
    if (!onePerRow) {
      const zeros = zerosLike(x);
      return [
        g.emit(
          'ScatterElements',
          [zeros, indices, dy],
          { axis: a, reduction: 'add' },
          { dtype: x.dtype, shape: x.shape },
        ),
        undefined,
      ];
    }
    // One index per row (a target token's log-prob): dx = (index == position) ? dy : 0. A compare
    // and a Where are an order of magnitude faster in ONNX Runtime than scattering into zeros.
    const positions = g.constant(
      Array.from({ length: d }, (_, i) => i),
      indices.dtype,
      x.shape.map((_, i) => (i === a ? d : 1)),
    );
    const idx = where(less(indices, 0), add(indices, d), indices); // negative indices count from the end
    return [where(equal(idx, positions), dy, 0), undefined];
  });
}
