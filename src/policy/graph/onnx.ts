/**
 * ONNX serialization through the protobufjs classes of the `onnx-proto` package (no hand-written
 * protobuf). That package's schema is ONNX 1.10 (IR version 8), which already describes opset 18.
 */
import onnxProto from 'onnx-proto';
import {
  type Attr,
  type ConstData,
  type DType,
  FloatAttr,
  type Node,
  TensorAttr,
  type ValueInfo,
} from './node.ts';

const { onnx } = onnxProto;

const IR_VERSION = 8;

const ELEM_TYPE: Record<DType, number> = {
  float32: onnx.TensorProto.DataType.FLOAT,
  float64: onnx.TensorProto.DataType.DOUBLE,
  float16: onnx.TensorProto.DataType.FLOAT16,
  bfloat16: onnx.TensorProto.DataType.BFLOAT16,
  int64: onnx.TensorProto.DataType.INT64,
  int32: onnx.TensorProto.DataType.INT32,
  bool: onnx.TensorProto.DataType.BOOL,
};

export interface ModelParts {
  name: string;
  opset: number;
  nodes: Node[];
  inputs: ValueInfo[];
  outputs: ValueInfo[];
  initializers: (ConstData & { name: string })[];
}

function tensorProto(name: string, c: ConstData): onnxProto.onnx.ITensorProto {
  return { name, dataType: ELEM_TYPE[c.dtype], dims: c.dims, rawData: c.raw };
}

function attribute(name: string, a: Attr): onnxProto.onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (a instanceof FloatAttr) return { name, type: T.FLOAT, f: a.value };
  if (a instanceof TensorAttr) return { name, type: T.TENSOR, t: tensorProto('', a.data) };
  if (typeof a === 'string') return { name, type: T.STRING, s: new TextEncoder().encode(a) };
  if (Array.isArray(a)) return { name, type: T.INTS, ints: a };
  return { name, type: T.INT, i: a as number };
}

function valueInfo(t: ValueInfo): onnxProto.onnx.IValueInfoProto {
  return {
    name: t.name,
    type: {
      tensorType: {
        elemType: ELEM_TYPE[t.dtype],
        shape: {
          // Composite symbolic dims ('batch*seq') are left unnamed: they are ours, not ORT's.
          dim: t.shape.map((d) =>
            typeof d === 'number' ? { dimValue: d } : /^[A-Za-z_]\w*$/.test(d) ? { dimParam: d } : {},
          ),
        },
      },
    },
  };
}

export function encodeModel(m: ModelParts): Uint8Array {
  const model = onnx.ModelProto.create({
    irVersion: IR_VERSION,
    producerName: 'stepwise',
    opsetImport: [{ domain: '', version: m.opset }],
    graph: {
      name: m.name,
      node: m.nodes.map((n) => ({
        name: n.name,
        opType: n.opType,
        input: n.inputs,
        output: n.outputs,
        attribute: Object.entries(n.attrs).map(([k, v]) => attribute(k, v)),
      })),
      input: m.inputs.map(valueInfo),
      output: m.outputs.map(valueInfo),
      initializer: m.initializers.map((i) => tensorProto(i.name, i)),
    },
  });
  return onnx.ModelProto.encode(model).finish();
}
