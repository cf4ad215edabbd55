/**
 * stepwise's ONNX graph builder and reverse-mode autodiff. See README.md in this folder.
 */
export { grad, zerosLike } from './autodiff.ts';
export type { Dim, Shape } from './dims.ts';
export { formatShape } from './dims.ts';
export { type FloatDType, Graph, isFloat, isHalf, OPSET, Tensor } from './graph.ts';
export { causalMask, layerNorm, rmsNorm } from './nn.ts';
export { type DType, float } from './node.ts';
export * from './ops/elementwise.ts';
export { matmul } from './ops/matmul.ts';
export * from './ops/reduce.ts';
export * from './ops/shape.ts';
export {
  type AdamWArgs,
  AdamWConfig,
  type AdamWResult,
  adamw,
  allFinite,
  clipByGlobalNorm,
  globalNorm,
  type TrainStepArgs,
  type TrainStepResult,
  trainStep,
} from './optim.ts';
