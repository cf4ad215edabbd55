/**
 * The model's parameters as named host arrays: their names and shapes (one list that every graph,
 * the checkpoint and the optimizer state agree on) and a seeded GPT-2-style initialization.
 */
import { Rng } from '../../util/random.ts';
import { headSize, loraShape, type ModelConfig, mlpWidth, qkvWidth } from './config.ts';

export interface ParamSpec {
  name: string;
  shape: number[];
  /** How a fresh model sets it: normal(0, std), or a constant. */
  init: { kind: 'normal'; std: number } | { kind: 'const'; value: number };
  /** AdamW's weight decay applies to matrices only (not to norm gains/biases), as in GPT-2/nanoGPT. */
  decay: boolean;
  /** Not trained (a LoRA base weight): no gradient, no optimizer state. */
  frozen?: boolean;
}

/** Named parameter arrays in spec order; shapes come from `paramSpecs`. */
export type Params = Map<string, Float32Array>;

function norm(prefix: string, c: ModelConfig): ParamSpec[] {
  const gain: ParamSpec = {
    name: `${prefix}.gain`,
    shape: [c.width],
    init: { kind: 'const', value: 1 },
    decay: false,
  };
  if (c.norm === 'rmsnorm') return [gain];
  return [
    gain,
    { name: `${prefix}.bias`, shape: [c.width], init: { kind: 'const', value: 0 }, decay: false },
  ];
}

/** Every parameter of a config, in a fixed order (the order of graph inputs and of the checkpoint). */
/**
 * Whether a parameter is a norm's gain or bias: half-precision graphs keep these in float32 and run
 * the norm in float32 (see `inFloat32` in transformer.ts).
 */
export function isNormParam(name: string): boolean {
  return /Norm\.(gain|bias)$/.test(name);
}

export function paramSpecs(c: ModelConfig): ParamSpec[] {
  const d = c.width;
  const std = 0.02;
  // Residual output projections are scaled down so the residual stream's variance does not grow
  // with depth (GPT-2's 1/sqrt(2 * layers)).
  const residualStd = std / Math.sqrt(2 * c.layers);
  const specs: ParamSpec[] = [
    { name: 'tokenEmbedding', shape: [c.vocabSize, d], init: { kind: 'normal', std }, decay: true },
  ];
  if (c.positions === 'learned') {
    specs.push({
      name: 'positionEmbedding',
      shape: [c.contextLength, d],
      init: { kind: 'normal', std: 0.01 },
      decay: true,
    });
  }
  const hs = headSize(c);
  const ff = mlpWidth(c);
  const gain = (name: string, size: number): ParamSpec => ({
    name,
    shape: [size],
    init: { kind: 'const', value: 1 },
    decay: false,
  });
  for (let l = 0; l < c.layers; l++) {
    const p = `layers.${l}`;
    specs.push(...norm(`${p}.attnNorm`, c), {
      name: `${p}.qkv`,
      shape: [d, qkvWidth(c)],
      init: { kind: 'normal', std },
      decay: true,
    });
    if (c.qkvBias) {
      specs.push({
        name: `${p}.qkvBias`,
        shape: [qkvWidth(c)],
        init: { kind: 'const', value: 0 },
        decay: false,
      });
    }
    if (c.qkNorm) specs.push(gain(`${p}.qNorm.gain`, hs), gain(`${p}.kNorm.gain`, hs));
    specs.push(
      {
        name: `${p}.attnOut`,
        shape: [c.heads * hs, d],
        init: { kind: 'normal', std: residualStd },
        decay: true,
      },
      ...norm(`${p}.mlpNorm`, c),
      {
        name: `${p}.mlpIn`,
        shape: [d, c.activation === 'swiglu' ? 2 * ff : ff],
        init: { kind: 'normal', std },
        decay: true,
      },
      { name: `${p}.mlpOut`, shape: [ff, d], init: { kind: 'normal', std: residualStd }, decay: true },
    );
  }
  specs.push(...norm('finalNorm', c));
  if (c.untiedHead)
    specs.push({ name: 'head', shape: [c.vocabSize, d], init: { kind: 'normal', std }, decay: true });
  if (!c.lora) return specs;
  for (const s of specs) s.frozen = true;
  for (let l = 0; l < c.layers; l++) {
    for (const t of c.lora.targets) {
      const [fanIn, fanOut] = loraShape(c, t);
      // B = 0: the adapted model starts as the base model (PEFT's default init).
      specs.push(
        {
          name: loraName(l, t, 'A'),
          shape: [fanIn, c.lora.rank],
          init: { kind: 'normal', std: 1 / Math.sqrt(fanIn) },
          decay: true,
        },
        {
          name: loraName(l, t, 'B'),
          shape: [c.lora.rank, fanOut],
          init: { kind: 'const', value: 0 },
          decay: true,
        },
      );
    }
  }
  return specs;
}

/** The parameters the optimizer updates (all of them, or the LoRA adapters only). */
export function trainableSpecs(c: ModelConfig): ParamSpec[] {
  return paramSpecs(c).filter((s) => !s.frozen);
}

/** Name of a LoRA factor: A [in, rank] or B [rank, out] of a target in layer l. */
export function loraName(l: number, target: string, factor: 'A' | 'B'): string {
  return `layers.${l}.lora.${target}.${factor}`;
}

export function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Fresh parameters for a config, identical for identical (config, seed). */
export function initParams(c: ModelConfig, seed = 0): Params {
  // Its own generator (never the sampler's), so how sampling draws can never change a fresh model.
  const rng = new Rng(seed);
  const params: Params = new Map();
  for (const spec of paramSpecs(c)) {
    const a = new Float32Array(elementCount(spec.shape));
    if (spec.init.kind === 'const') a.fill(spec.init.value);
    else for (let i = 0; i < a.length; i++) a[i] = spec.init.std * rng.normal();
    params.set(spec.name, a);
  }
  return params;
}

/** Check that a parameter map matches a config exactly (names and sizes); errors name the culprit. */
export function checkParams(c: ModelConfig, params: Params): void {
  const specs = paramSpecs(c);
  for (const spec of specs) {
    const a = params.get(spec.name);
    if (!a) throw new Error(`parameter '${spec.name}' is missing; expected shape [${spec.shape.join(', ')}]`);
    if (a.length !== elementCount(spec.shape)) {
      throw new Error(
        `parameter '${spec.name}' has ${a.length} values; expected shape [${spec.shape.join(', ')}] = ${elementCount(spec.shape)}`,
      );
    }
  }
  if (params.size !== specs.length) {
    const known = new Set(specs.map((s) => s.name));
    const extra = [...params.keys()].filter((k) => !known.has(k));
    throw new Error(`unexpected parameters for this config: ${extra.join(', ')}`);
  }
}
