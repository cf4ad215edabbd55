/**
 * Elementwise ops. Each op is written once: the forward emits its ONNX node and infers the shape;
 * the backward (the function passed to `record`) emits the vector-Jacobian product. Binary ops
 * broadcast numpy-style, and their gradients are summed back to each input's shape (unbroadcast).
 * A plain number operand becomes a scalar constant of the other operand's dtype.
 */
import { record } from '../autodiff.ts';
import { broadcastShapes, formatShape, type Shape } from '../dims.ts';
import { isFloat, type Tensor } from '../graph.ts';
import type { DType } from '../node.ts';
import { unbroadcast } from './reduce.ts';

export type Operand = Tensor | number;

function lift(op: string, a: Operand, b: Operand): [Tensor, Tensor] {
  if (typeof a === 'number' && typeof b === 'number')
    throw new Error(`${op}: at least one operand must be a tensor`);
  const ref = (typeof a === 'number' ? b : a) as Tensor;
  const ta = typeof a === 'number' ? ref.graph.scalar(a, ref.dtype) : a;
  const tb = typeof b === 'number' ? ref.graph.scalar(b, ref.dtype) : b;
  if (ta.dtype !== tb.dtype) {
    throw new Error(`${op}: operands have different dtypes: ${ta} and ${tb}; cast one of them first`);
  }
  return [ta, tb];
}

function expectFloat(op: string, ...ts: Tensor[]): void {
  for (const t of ts) if (!isFloat(t.dtype)) throw new Error(`${op}: expected a float tensor, got ${t}`);
}

function binary(
  op: string,
  onnxOp: string,
  a: Operand,
  b: Operand,
  outDtype?: DType,
): [Tensor, Tensor, Tensor] {
  const [ta, tb] = lift(op, a, b);
  const shape = broadcastShapes(op, ta.shape, tb.shape);
  const y = ta.graph.emit(onnxOp, [ta, tb], {}, { dtype: outDtype ?? ta.dtype, shape });
  return [ta, tb, y];
}

function unary(onnxOp: string, x: Tensor, shape: Shape = x.shape): Tensor {
  return x.graph.emit(onnxOp, [x], {}, { dtype: x.dtype, shape });
}

// --- arithmetic -------------------------------------------------------------------------------

export function add(a: Operand, b: Operand): Tensor {
  const [ta, tb, y] = binary('add', 'Add', a, b);
  return record(y, 'add', [ta, tb], (dy) => [unbroadcast(dy, ta.shape), unbroadcast(dy, tb.shape)]);
}

export function sub(a: Operand, b: Operand): Tensor {
  const [ta, tb, y] = binary('sub', 'Sub', a, b);
  return record(y, 'sub', [ta, tb], (dy, needs) => [
    unbroadcast(dy, ta.shape),
    needs[1] ? unbroadcast(neg(dy), tb.shape) : undefined,
  ]);
}

export function mul(a: Operand, b: Operand): Tensor {
  const [ta, tb, y] = binary('mul', 'Mul', a, b);
  return record(y, 'mul', [ta, tb], (dy, needs) => [
    needs[0] ? unbroadcast(mul(dy, tb), ta.shape) : undefined,
    needs[1] ? unbroadcast(mul(dy, ta), tb.shape) : undefined,
  ]);
}

export function div(a: Operand, b: Operand): Tensor {
  const [ta, tb, y] = binary('div', 'Div', a, b);
  return record(y, 'div', [ta, tb], (dy, needs) => {
    const da = needs[0] || needs[1] ? div(dy, tb) : undefined; // d(a/b)/db = -(a/b)/b = -y/b
    return [
      needs[0] ? unbroadcast(da!, ta.shape) : undefined,
      needs[1] ? unbroadcast(neg(mul(da!, y)), tb.shape) : undefined,
    ];
  });
}

/** Sum of several tensors of one dtype (broadcasting); one ONNX Sum node. */
export function addN(ts: Tensor[]): Tensor {
  if (ts.length === 0) throw new Error('addN: needs at least one tensor');
  if (ts.length === 1) return ts[0]!;
  for (const t of ts) if (t.dtype !== ts[0]!.dtype) throw new Error(`addN: mixed dtypes ${ts.join(', ')}`);
  const shape = broadcastShapes('addN', ...ts.map((t) => t.shape));
  const y = ts[0]!.graph.emit('Sum', ts, {}, { dtype: ts[0]!.dtype, shape });
  return record(y, 'addN', ts, (dy) => ts.map((t) => unbroadcast(dy, t.shape)));
}

export function neg(x: Tensor): Tensor {
  return record(unary('Neg', x), 'neg', [x], (dy) => [neg(dy)]);
}

export function exp(x: Tensor): Tensor {
  expectFloat('exp', x);
  const y = unary('Exp', x);
  return record(y, 'exp', [x], (dy) => [mul(dy, y)]);
}

export function log(x: Tensor): Tensor {
  expectFloat('log', x);
  return record(unary('Log', x), 'log', [x], (dy) => [div(dy, x)]);
}

export function sqrt(x: Tensor): Tensor {
  expectFloat('sqrt', x);
  const y = unary('Sqrt', x);
  return record(y, 'sqrt', [x], (dy) => [div(mul(dy, 0.5), y)]);
}

/** a ** b. The exponent's gradient (y * log a) is only emitted when b needs one. */
export function pow(a: Operand, b: Operand): Tensor {
  const [ta, tb, y] = binary('pow', 'Pow', a, b);
  expectFloat('pow', ta);
  return record(y, 'pow', [ta, tb], (dy, needs) => [
    needs[0] ? unbroadcast(mul(dy, mul(tb, pow(ta, sub(tb, 1)))), ta.shape) : undefined,
    needs[1] ? unbroadcast(mul(dy, mul(y, log(ta))), tb.shape) : undefined,
  ]);
}

export function tanh(x: Tensor): Tensor {
  expectFloat('tanh', x);
  const y = unary('Tanh', x);
  return record(y, 'tanh', [x], (dy) => [mul(dy, sub(1, mul(y, y)))]);
}

export function sigmoid(x: Tensor): Tensor {
  expectFloat('sigmoid', x);
  const y = unary('Sigmoid', x);
  return record(y, 'sigmoid', [x], (dy) => [mul(dy, mul(y, sub(1, y)))]);
}

const GELU_C = Math.sqrt(2 / Math.PI);
const GELU_K = 0.044715;

/**
 * GELU, tanh form: 0.5 x (1 + tanh(c (x + k x^3))), c = sqrt(2/pi), k = 0.044715, computed as the
 * equal x * sigmoid(u) with u = 2c (x + k x^3) (because 0.5 (1 + tanh(z)) = sigmoid(2z)). An op of
 * its own, with one hand-written derivative, because it runs on the widest activation of the MLP:
 * 4 multiplies forward and 7 elementwise ops backward instead of twice that through primitive rules.
 */
export function gelu(x: Tensor): Tensor {
  expectFloat('gelu', x);
  const x2 = mul(x, x);
  const s = sigmoid(mul(x, add(mul(x2, 2 * GELU_C * GELU_K), 2 * GELU_C)));
  const y = mul(x, s);
  // dy/dx = s + x s (1 - s) u' = s + (y - y s) (2c + 6ck x^2)
  return record(y, 'gelu', [x], (dy) => {
    const du = add(mul(x2, 6 * GELU_C * GELU_K), 2 * GELU_C);
    return [mul(dy, add(mul(sub(y, mul(y, s)), du), s))];
  });
}

// --- selection ------------------------------------------------------------------------------

/** cond ? a : b, broadcasting all three. cond is bool and gets no gradient. */
export function where(cond: Tensor, a: Operand, b: Operand): Tensor {
  if (cond.dtype !== 'bool') throw new Error(`where: condition must be bool, got ${cond}`);
  const [ta, tb] = lift('where', a, b);
  const shape = broadcastShapes('where', cond.shape, ta.shape, tb.shape);
  const y = cond.graph.emit('Where', [cond, ta, tb], {}, { dtype: ta.dtype, shape });
  return record(y, 'where', [cond, ta, tb], (dy, needs) => [
    undefined,
    needs[1] ? unbroadcast(where(cond, dy, 0), ta.shape) : undefined,
    needs[2] ? unbroadcast(where(cond, 0, dy), tb.shape) : undefined,
  ]);
}

/** Elementwise minimum; on ties the gradient goes to a. */
export function minimum(a: Operand, b: Operand): Tensor {
  const [ta, tb, y] = binary('minimum', 'Min', a, b);
  return record(y, 'minimum', [ta, tb], (dy, needs) => {
    const pickA = lessOrEqual(ta, tb);
    return [
      needs[0] ? unbroadcast(where(pickA, dy, 0), ta.shape) : undefined,
      needs[1] ? unbroadcast(where(pickA, 0, dy), tb.shape) : undefined,
    ];
  });
}

/** Elementwise maximum; on ties the gradient goes to a. */
export function maximum(a: Operand, b: Operand): Tensor {
  const [ta, tb, y] = binary('maximum', 'Max', a, b);
  return record(y, 'maximum', [ta, tb], (dy, needs) => {
    const pickA = greaterOrEqual(ta, tb);
    return [
      needs[0] ? unbroadcast(where(pickA, dy, 0), ta.shape) : undefined,
      needs[1] ? unbroadcast(where(pickA, 0, dy), tb.shape) : undefined,
    ];
  });
}

/** Clamps x to [min, max] (either bound may be omitted); the gradient is zero where clamped. */
export function clip(x: Tensor, min?: number, max?: number): Tensor {
  expectFloat('clip', x);
  const g = x.graph;
  const lo = min === undefined ? undefined : g.scalar(min, x.dtype);
  const hi = max === undefined ? undefined : g.scalar(max, x.dtype);
  const y = g.emit('Clip', [x, lo, hi], {}, { dtype: x.dtype, shape: x.shape });
  return record(y, 'clip', [x], (dy) => {
    let inside: Tensor | undefined;
    if (lo) inside = greaterOrEqual(x, lo);
    if (hi) inside = inside ? and(inside, lessOrEqual(x, hi)) : lessOrEqual(x, hi);
    return [inside ? where(inside, dy, 0) : dy];
  });
}

/** Converts dtype. Float-to-float casts pass the gradient through (cast back); others stop it. */
export function cast(x: Tensor, dtype: DType): Tensor {
  if (x.dtype === dtype) return x;
  const to = { float32: 1, float64: 11, float16: 10, bfloat16: 16, int64: 7, int32: 6, bool: 9 }[dtype];
  const y = x.graph.emit('Cast', [x], { to }, { dtype, shape: x.shape });
  if (!isFloat(x.dtype) || !isFloat(dtype)) return y;
  return record(y, 'cast', [x], (dy) => [cast(dy, x.dtype)]);
}

/** The same values with no gradient flowing back through them. */
export function stopGradient(x: Tensor): Tensor {
  return x.graph.emit('Identity', [x], {}, { dtype: x.dtype, shape: x.shape });
}

// --- comparisons and logic (no gradients) --------------------------------------------------------

const compare = (op: string, onnxOp: string) => (a: Operand, b: Operand) =>
  binary(op, onnxOp, a, b, 'bool')[2];

export const equal = compare('equal', 'Equal');
export const less = compare('less', 'Less');
export const lessOrEqual = compare('lessOrEqual', 'LessOrEqual');
export const greater = compare('greater', 'Greater');
export const greaterOrEqual = compare('greaterOrEqual', 'GreaterOrEqual');

function logic(op: string, onnxOp: string, a: Tensor, b: Tensor): Tensor {
  if (a.dtype !== 'bool' || b.dtype !== 'bool')
    throw new Error(`${op}: expected bool tensors, got ${a} and ${b}`);
  return binary(op, onnxOp, a, b)[2];
}
export const and = (a: Tensor, b: Tensor) => logic('and', 'And', a, b);
export const or = (a: Tensor, b: Tensor) => logic('or', 'Or', a, b);

export function not(x: Tensor): Tensor {
  if (x.dtype !== 'bool') throw new Error(`not: expected a bool tensor, got ${x}`);
  return unary('Not', x);
}

/** True where x is neither NaN nor +-Inf. */
export function finite(x: Tensor): Tensor {
  expectFloat('finite', x);
  const g = x.graph;
  const nan = g.emit('IsNaN', [x], {}, { dtype: 'bool', shape: x.shape });
  const inf = g.emit('IsInf', [x], {}, { dtype: 'bool', shape: x.shape });
  return not(or(nan, inf));
}

/** Error helper shared by ops: "op: expected ..., got shape [..]". */
export function shapeError(op: string, what: string, t: Tensor): Error {
  return new Error(`${op}: ${what}, got ${t.name} with shape ${formatShape(t.shape)}`);
}
