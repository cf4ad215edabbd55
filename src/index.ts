// stepwise's public API. Each area exports what a user needs from it, in its own block.

// --- policy (src/policy) ---
export {
  decodeSafetensors,
  encodeSafetensors,
  loadSafetensors,
  saveSafetensors,
  type Tensor as SafetensorsTensor,
} from './policy/checkpoint/safetensors.ts';
export {
  Rng,
  type Sampled,
  SamplingOptions,
  StopStrings,
  sampleToken,
  samplingOptions,
} from './policy/runtime/sampling.ts';
export {
  type ChatMessage,
  type ChatRole,
  SPECIAL_TOKENS,
  type SpecialToken,
  Tokenizer,
  TokenizerTrainOptions,
} from './policy/tokenizer/tokenizer.ts';

// --- envs (src/envs) ---

// --- tools (src/tools) ---

// --- store (src/store) ---

// --- credit (src/credit) ---
