/**
 * The graph under construction: `Graph` (inputs, constants, nodes, outputs, serialization of what the
 * outputs need) and `Tensor`, the symbolic value ops take and return.
 */
import { createHash } from 'node:crypto';
import { fromFloat32 } from '../checkpoint/safetensors.ts';
import {
  canonicalDim,
  type Dim,
  formatShape,
  isStatic,
  numericFactor,
  type Shape,
  symbolsOf,
} from './dims.ts';
import type { Attr, ConstData, DType, Node } from './node.ts';
import { encodeModel } from './onnx.ts';

export type FloatDType = 'float32' | 'float64' | 'float16' | 'bfloat16';
export const isFloat = (d: DType): d is FloatDType =>
  d === 'float32' || d === 'float64' || d === 'float16' || d === 'bfloat16';
/** The 16-bit float types: storage and matrix products in half precision (see transformer.ts). */
export const isHalf = (d: DType): d is 'float16' | 'bfloat16' => d === 'float16' || d === 'bfloat16';

/** The ONNX opset every graph is built against; onnxruntime 1.30 supports it fully. */
export const OPSET = 18;

/** Reverse-mode rule of the op that produced a tensor: given dL/dy, the dL/dinput of each input. */
export interface GradFn {
  op: string;
  inputs: Tensor[];
  /** needs[i] tells whether inputs[i] needs a gradient, so rules can skip work; undefined = no gradient. */
  backward(dy: Tensor, needs: boolean[]): (Tensor | undefined)[];
}

/** A symbolic tensor: a named value in a graph, with a dtype and a (possibly symbolic) shape. */
export class Tensor {
  gradFn?: GradFn;
  /**
   * Set on the zero-padded gradient of a static slice: `dy` placed at [begin, end) of `axis`.
   * grad() joins the pieces of a tensor sliced into parts with one Concat instead of Pads and a Sum.
   */
  padOf?: { dy: Tensor; axis: number; begin: number; end: number };
  constructor(
    readonly graph: Graph,
    readonly name: string,
    readonly dtype: DType,
    readonly shape: Shape,
  ) {}
  get rank(): number {
    return this.shape.length;
  }
  toString(): string {
    return `${this.name}: ${this.dtype}${formatShape(this.shape)}`;
  }
}

export type Values = ArrayLike<number> | readonly bigint[] | BigInt64Array;

/** Packs numbers into the little-endian bytes ONNX stores (every platform ORT runs on is little-endian). */
export function toRaw(dtype: DType, values: Values): Uint8Array {
  const n = values.length;
  let arr: ArrayBufferView;
  // A typed array of the right type is copied in one block (baked weights are megabytes); the copy
  // keeps the graph independent of later changes to the caller's array.
  if (dtype === 'float32')
    arr = values instanceof Float32Array ? values.slice() : Float32Array.from(values as ArrayLike<number>);
  else if (dtype === 'float64')
    arr = values instanceof Float64Array ? values.slice() : Float64Array.from(values as ArrayLike<number>);
  else if (isHalf(dtype)) {
    // Rounded to nearest even, the conversion safetensors files are written with.
    const f32 = values instanceof Float32Array ? values : Float32Array.from(values as ArrayLike<number>);
    arr = fromFloat32(f32, dtype === 'float16' ? 'F16' : 'BF16');
  } else if (dtype === 'int32') arr = Int32Array.from(values as ArrayLike<number>);
  else if (dtype === 'int64') {
    const a = new BigInt64Array(n);
    for (let i = 0; i < n; i++) a[i] = BigInt(values[i] as number | bigint);
    arr = a;
  } else arr = Uint8Array.from(values as ArrayLike<number>, (v) => (v ? 1 : 0));
  return new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength);
}

/** Constants up to this size (64 KiB) are de-duplicated. */
const DEDUP_BYTES = 1 << 16;

function constantDigest(raw: Uint8Array): string {
  return raw.byteLength <= 64
    ? Buffer.from(raw).toString('hex')
    : createHash('sha1').update(raw).digest('hex');
}

/**
 * A graph under construction. Ops (see ops/) emit nodes into it; `toOnnx()` serializes the part
 * that the declared outputs depend on.
 */
export class Graph {
  readonly nodes: Node[] = [];
  readonly inputs: Tensor[] = [];
  /** Declared outputs: the name the model exposes and the tensor it holds. */
  readonly outputs: { name: string; tensor: Tensor }[] = [];
  readonly initializers = new Map<string, ConstData>();
  private readonly constCache = new Map<string, Tensor>();
  private readonly symbols = new Map<string, { tensor: Tensor; axis: number }>();
  private readonly dimCache = new Map<string, Tensor>();
  private readonly shapeCache = new Map<string, Tensor>();
  private readonly names = new Set<string>();
  /** Element type of every value by name (inputs, constants, node outputs): see `dtypeOf`. */
  private readonly dtypes = new Map<string, DType>();
  private counter = 0;
  private prefix = '';

  constructor(readonly name = 'stepwise') {}

  /**
   * Runs f with the names of the nodes it emits prefixed by `name/` (scopes nest), so ONNX
   * Runtime's error messages and profiles say where a node came from ('layer3/attention/Add_812').
   */
  scope<T>(name: string, f: () => T): T {
    const outer = this.prefix;
    this.prefix = `${outer}${name}/`;
    try {
      return f();
    } finally {
      this.prefix = outer;
    }
  }

  /** A graph input. String dims are symbolic ('batch'); the same name means the same size. */
  input(name: string, dtype: DType, shape: Shape): Tensor {
    this.claim(name);
    const t = new Tensor(this, name, dtype, shape.map(canonicalDim));
    shape.forEach((d, axis) => {
      if (typeof d === 'number') {
        if (!Number.isInteger(d) || d < 0)
          throw new Error(`input '${name}': bad dim ${d} in ${formatShape(shape)}`);
        return;
      }
      if (!/^[A-Za-z_][\w]*$/.test(d)) {
        throw new Error(`input '${name}': symbolic dim '${d}' must be a plain name (letters, digits, _)`);
      }
      if (!this.symbols.has(d)) this.symbols.set(d, { tensor: t, axis });
    });
    this.inputs.push(t);
    this.dtypes.set(name, dtype);
    return t;
  }

  /** Whether the graph has a value of this name (declared outputs may be renamed copies). */
  has(name: string): boolean {
    return this.dtypes.has(name);
  }

  /**
   * The element type of a named value of this graph (an input, a constant or a node's output), so a
   * check can read which precision each node computes in.
   */
  dtypeOf(name: string): DType {
    const d = this.dtypes.get(name);
    if (!d) throw new Error(`dtypeOf: graph '${this.name}' has no value '${name}'`);
    return d;
  }

  /** Declares a graph output. */
  output(name: string, t: Tensor): void {
    if (t.graph !== this) throw new Error(`output '${name}': tensor ${t.name} belongs to another graph`);
    if (this.outputs.some((o) => o.name === name)) throw new Error(`output '${name}' is declared twice`);
    if (t.name !== name) this.claim(name);
    this.outputs.push({ name, tensor: t });
  }

  /** A constant tensor (stored once as an initializer; identical constants share one). */
  constant(values: Values | number, dtype: DType = 'float32', shape?: readonly number[]): Tensor {
    const vals: Values = typeof values === 'number' ? [values] : values;
    const dims = shape ? [...shape] : typeof values === 'number' ? [] : [vals.length];
    const count = dims.reduce((a, b) => a * b, 1);
    if (count !== vals.length) {
      throw new Error(
        `constant: ${vals.length} values do not fill shape ${formatShape(dims)} (${count} elements)`,
      );
    }
    const raw = toRaw(dtype, vals);
    // Small constants (scalars, shapes, axes, tables) repeat a lot and are shared; big ones are
    // baked weights, unique, and not worth hashing.
    const shared = raw.byteLength <= DEDUP_BYTES;
    const key = shared ? `${dtype}|${dims.join(',')}|${constantDigest(raw)}` : '';
    const hit = shared ? this.constCache.get(key) : undefined;
    if (hit) return hit;
    const name = this.fresh('const');
    this.initializers.set(name, { dtype, dims, raw });
    const t = new Tensor(this, name, dtype, dims);
    this.dtypes.set(name, dtype);
    if (shared) this.constCache.set(key, t);
    return t;
  }

  /** A scalar constant of a dtype. */
  scalar(value: number, dtype: DType): Tensor {
    return this.constant(value, dtype, []);
  }

  /**
   * Emits one ONNX node with a single output of the given dtype and shape and returns it. Ops call
   * this; users call the op functions.
   */
  emit(
    opType: string,
    inputs: (Tensor | undefined)[],
    attrs: Record<string, Attr>,
    out: { dtype: DType; shape: Shape },
  ): Tensor {
    for (const t of inputs) {
      if (t && t.graph !== this) throw new Error(`${opType}: input ${t.name} belongs to another graph`);
    }
    const name = this.fresh(opType);
    const y = new Tensor(this, name, out.dtype, out.shape.map(canonicalDim));
    this.dtypes.set(name, out.dtype);
    this.nodes.push({
      opType,
      name,
      inputs: inputs.map((t) => t?.name ?? ''),
      outputs: [name],
      attrs,
    });
    return y;
  }

  /** Like emit, for ops with several outputs (Split). */
  emitMulti(
    opType: string,
    inputs: (Tensor | undefined)[],
    attrs: Record<string, Attr>,
    outs: { dtype: DType; shape: Shape }[],
  ): Tensor[] {
    const name = this.fresh(opType);
    const ys = outs.map((o, i) => new Tensor(this, `${name}_${i}`, o.dtype, o.shape.map(canonicalDim)));
    for (const y of ys) {
      this.names.add(y.name);
      this.dtypes.set(y.name, y.dtype);
    }
    this.nodes.push({
      opType,
      name,
      inputs: inputs.map((t) => t?.name ?? ''),
      outputs: ys.map((y) => y.name),
      attrs,
    });
    return ys;
  }

  /**
   * Names a run-time size that no input declares (e.g. the length of a slice of a symbolic axis):
   * its value is read from axis `axis` of `t` when needed. Returns the name.
   */
  bindSymbol(name: string, t: Tensor, axis: number): string {
    if (!this.symbols.has(name)) this.symbols.set(name, { tensor: t, axis });
    return name;
  }

  /** A 1-D int64 tensor holding dim d at run time (a constant when d is a number). */
  dim(d: Dim): Tensor {
    d = canonicalDim(d);
    if (typeof d === 'number') return this.constant([d], 'int64');
    const hit = this.dimCache.get(d);
    if (hit) return hit;
    let acc: Tensor | undefined;
    for (const sym of symbolsOf(d)) {
      const src = this.symbols.get(sym);
      if (!src) throw new Error(`symbolic dim '${sym}' has no source: no graph input declares it`);
      let t = this.dimCache.get(sym);
      if (!t) {
        t = this.emit(
          'Shape',
          [src.tensor],
          { start: src.axis, end: src.axis + 1 },
          { dtype: 'int64', shape: [1] },
        );
        this.dimCache.set(sym, t);
      }
      acc = acc ? this.emit('Mul', [acc, t], {}, { dtype: 'int64', shape: [1] }) : t;
    }
    const coef = numericFactor(d);
    if (coef !== 1)
      acc = this.emit('Mul', [acc!, this.constant([coef], 'int64')], {}, { dtype: 'int64', shape: [1] });
    this.dimCache.set(d, acc!);
    return acc!;
  }

  /** A 1-D int64 tensor holding a shape at run time; a constant when the shape is static. */
  shapeTensor(shape: Shape): Tensor {
    if (isStatic(shape)) return this.constant(shape, 'int64');
    const key = shape.map(canonicalDim).join(',');
    const hit = this.shapeCache.get(key);
    if (hit) return hit;
    // Runs of static dims become one constant; each symbolic dim is its (cached) Shape slice.
    const parts: Tensor[] = [];
    let run: number[] = [];
    for (const d of shape) {
      if (typeof d === 'number') run.push(d);
      else {
        if (run.length) parts.push(this.constant(run, 'int64'));
        run = [];
        parts.push(this.dim(d));
      }
    }
    if (run.length) parts.push(this.constant(run, 'int64'));
    const t =
      parts.length === 1
        ? parts[0]!
        : this.emit('Concat', parts, { axis: 0 }, { dtype: 'int64', shape: [shape.length] });
    this.shapeCache.set(key, t);
    return t;
  }

  /** x's shape as a 1-D int64 tensor at run time: a constant when static, else one Shape node. */
  shapeOf(x: Tensor): Tensor {
    if (isStatic(x.shape)) return this.constant(x.shape, 'int64');
    const key = `of:${x.name}`;
    let t = this.shapeCache.get(key);
    if (!t) {
      t = this.emit('Shape', [x], {}, { dtype: 'int64', shape: [x.rank] });
      this.shapeCache.set(key, t);
    }
    return t;
  }

  /**
   * Serializes the nodes the outputs depend on into ONNX model bytes. An output's producing node
   * writes straight into the output's name (an Identity would copy the whole tensor, and a train step
   * outputs every parameter and both moments); Identity is only used for an output that is a graph
   * input, a constant, or a tensor already exposed under another name.
   */
  toOnnx(): Uint8Array {
    if (this.outputs.length === 0) {
      throw new Error('toOnnx: the graph has no outputs; declare them with output()');
    }
    const producer = new Map<string, Node>();
    for (const n of this.nodes) for (const o of n.outputs) producer.set(o, n);
    const keep = new Set<Node>();
    const usedInits = new Set<string>();
    const stack = this.outputs.map((o) => o.tensor.name);
    const seen = new Set<string>();
    while (stack.length) {
      const name = stack.pop()!;
      if (!name || seen.has(name)) continue;
      seen.add(name);
      const n = producer.get(name);
      if (n) {
        if (!keep.has(n)) {
          keep.add(n);
          stack.push(...n.inputs);
        }
      } else if (this.initializers.has(name)) usedInits.add(name);
    }
    const rename = new Map<string, string>();
    const identities: Node[] = [];
    for (const o of this.outputs) {
      const src = o.tensor.name;
      if (src === o.name) continue;
      if (producer.has(src) && !rename.has(src) && !this.outputs.some((p) => p.name === src)) {
        rename.set(src, o.name);
      } else {
        identities.push({
          opType: 'Identity',
          name: `Identity_${o.name}`,
          inputs: [src],
          outputs: [o.name],
          attrs: {},
        });
      }
    }
    const r = (name: string) => rename.get(name) ?? name;
    const nodes = [...this.nodes.filter((n) => keep.has(n)), ...identities].map((n) => ({
      ...n,
      inputs: n.inputs.map(r),
      outputs: n.outputs.map(r),
    }));
    return encodeModel({
      name: this.name,
      opset: OPSET,
      nodes,
      inputs: this.inputs,
      outputs: this.outputs.map((o) => new Tensor(this, o.name, o.tensor.dtype, o.tensor.shape)),
      initializers: [...usedInits].map((name) => ({ name, ...this.initializers.get(name)! })),
    });
  }

  /** Number of nodes emitted so far (toOnnx serializes only those the outputs need). */
  get size(): number {
    return this.nodes.length;
  }

  private claim(name: string): void {
    if (this.names.has(name)) throw new Error(`tensor name '${name}' is already used in this graph`);
    this.names.add(name);
  }

  private fresh(prefix: string): string {
    let name: string;
    do name = `${this.prefix}${prefix}_${this.counter++}`;
    while (this.names.has(name));
    this.names.add(name);
    return name;
  }
}
