/**
 * Shapes with symbolic dimensions.
 *
 * A dimension is a number (static) or a string naming a size known only at run time ('batch',
 * 'seq'). Products of dimensions stay symbolic in a canonical form: a numeric factor and the sorted
 * symbol names joined by '*', e.g. 'batch*seq' or '4*batch'. That is enough algebra for the reshapes
 * a transformer does ([B, T, D] -> [B*T, D] and back) without a general symbolic engine.
 *
 * Different symbol names are assumed to be different sizes, and a symbolic dim is assumed not to be
 * 1; broadcasting a symbolic dim against a different one is an error, not a run-time surprise.
 */

export type Dim = number | string;
export type Shape = readonly Dim[];

interface Factored {
  coef: number;
  syms: string[];
}

function factor(d: Dim): Factored {
  if (typeof d === 'number') return { coef: d, syms: [] };
  let coef = 1;
  const syms: string[] = [];
  for (const part of d.split('*')) {
    if (/^\d+$/.test(part)) coef *= Number(part);
    else syms.push(part);
  }
  return { coef, syms: syms.sort() };
}

function unfactor({ coef, syms }: Factored): Dim {
  if (syms.length === 0) return coef;
  const sorted = [...syms].sort().join('*');
  return coef === 1 ? sorted : `${coef}*${sorted}`;
}

/** Canonical form of a dim ('seq*batch' -> 'batch*seq', '1*seq' -> 'seq'). */
export function canonicalDim(d: Dim): Dim {
  return unfactor(factor(d));
}

export function isStatic(shape: Shape): shape is readonly number[] {
  return shape.every((d) => typeof d === 'number');
}

export function dimEquals(a: Dim, b: Dim): boolean {
  return canonicalDim(a) === canonicalDim(b);
}

export function shapeEquals(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => dimEquals(d, b[i]!));
}

export function mulDims(a: Dim, b: Dim): Dim {
  const fa = factor(a);
  const fb = factor(b);
  return unfactor({ coef: fa.coef * fb.coef, syms: [...fa.syms, ...fb.syms] });
}

export function productOf(shape: Shape): Dim {
  return shape.reduce<Dim>((acc, d) => mulDims(acc, d), 1);
}

/** a / b when it divides exactly (numbers divide, symbols cancel); undefined otherwise. */
export function divDims(a: Dim, b: Dim): Dim | undefined {
  const fa = factor(a);
  const fb = factor(b);
  if (fb.coef === 0 || fa.coef % fb.coef !== 0) return undefined;
  const syms = [...fa.syms];
  for (const s of fb.syms) {
    const i = syms.indexOf(s);
    if (i < 0) return undefined;
    syms.splice(i, 1);
  }
  return unfactor({ coef: fa.coef / fb.coef, syms });
}

/** Base symbol names a dim is made of ('4*batch*seq' -> ['batch', 'seq']). */
export function symbolsOf(d: Dim): string[] {
  return factor(d).syms;
}

export function numericFactor(d: Dim): number {
  return factor(d).coef;
}

export function formatShape(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}

/**
 * Numpy-style broadcast of several shapes; throws naming the op and the shapes when they do not
 * broadcast.
 */
export function broadcastShapes(op: string, ...shapes: Shape[]): Dim[] {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    let d: Dim = 1;
    for (const s of shapes) {
      const k = s.length - rank + i;
      if (k < 0) continue;
      const e = s[k]!;
      if (dimEquals(e, 1)) continue;
      if (dimEquals(d, 1)) d = canonicalDim(e);
      else if (!dimEquals(d, e)) {
        throw new Error(
          `${op}: shapes ${shapes.map(formatShape).join(' and ')} do not broadcast (dim ${i} of the result: ${d} vs ${e})`,
        );
      }
    }
    out.push(d);
  }
  return out;
}

/** Normalizes a possibly negative axis against a rank, with an error naming the op. */
export function normAxis(op: string, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank) {
    throw new Error(`${op}: axis ${axis} is out of range for a tensor of rank ${rank}`);
  }
  return a;
}
