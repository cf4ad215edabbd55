/**
 * What a graph is made of, as ONNX serializes it: element types, nodes and their attributes
 * (ints, floats, strings, tensors), constant data, and a value's name, type and shape. Shared by
 * the builder (`graph.ts`) and the serializer (`onnx.ts`), which import it rather than each other.
 */
import type { Shape } from './dims.ts';

/**
 * Element types a graph tensor can have. float64 is for gradient checks; training runs in float32;
 * float16 and bfloat16 are the half-precision compute of the inference graphs (see `PolicyDtype`).
 */
export type DType = 'float32' | 'float64' | 'float16' | 'bfloat16' | 'int64' | 'int32' | 'bool';

/** A float-valued attribute (plain numbers in `attrs` are ints). */
export class FloatAttr {
  constructor(readonly value: number) {}
}
export const float = (v: number) => new FloatAttr(v);

/** A tensor-valued attribute (ConstantOfShape's value). */
export class TensorAttr {
  constructor(readonly data: ConstData) {}
}

export type Attr = number | number[] | string | FloatAttr | TensorAttr;

export interface ConstData {
  dtype: DType;
  dims: number[];
  raw: Uint8Array;
}

export interface Node {
  opType: string;
  name: string;
  inputs: string[];
  outputs: string[];
  attrs: Record<string, Attr>;
}

/** A graph input or output as the serializer sees it (a `Tensor` is one). */
export interface ValueInfo {
  name: string;
  dtype: DType;
  shape: Shape;
}
