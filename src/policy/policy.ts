/**
 * The trainable policy: a tokenizer, a transformer and its ONNX Runtime graphs behind one object
 * that generates, scores, updates, saves and exports.
 */
import { writeFile } from 'node:fs/promises';
import type { z } from 'zod';
import { parseOrThrow } from '../util/zod.ts';
import { type Checkpoint, loadCheckpoint, saveCheckpoint } from './checkpoint/checkpoint.ts';
import { type HfSource, isHfFolder, loadHfModel, saveHfModel } from './hf/folder.ts';
import type { HfTokenizer } from './hf/tokenizer.ts';
import { type LoraConfig, type ModelConfig, modelConfig, type PresetName } from './model/config.ts';
import { buildLogitsGraph } from './model/graphs.ts';
import { LossConfig } from './model/loss.ts';
import { initParams, type Params } from './model/params.ts';
import { ContinuousBatch } from './runtime/continuous-batch.ts';
import {
  type GenerateOptions,
  type Generation,
  generate,
  generateOptions,
  type OnToken,
} from './runtime/generate.ts';
import { ModelRunner, type TokenBatch, type UpdateMetrics } from './runtime/runner.ts';
import { type Device, resolveDevice } from './runtime/session.ts';
import { type PolicyTokenizer, type TemplateMessage, Tokenizer } from './tokenizer/tokenizer.ts';

/** A prompt: plain text, chat messages (templated with a generation prompt), or token ids. */
export type Prompt = string | readonly TemplateMessage[] | readonly number[];

export interface PolicyInit {
  /** A preset name or a model config; its vocabSize is replaced by the tokenizer's. */
  model: PresetName | (Omit<z.input<typeof ModelConfig>, 'vocabSize'> & { vocabSize?: number });
  tokenizer: Tokenizer;
  /** 'cpu' (default) or 'cuda' (falls back to CPU with a hint when CUDA is not installed). */
  device?: string;
  /** Seed of the initial weights. */
  seed?: number;
  /**
   * Bake the weights into the inference graphs (default true): faster generation and scoring,
   * at about half a second of rebuilding after each update. Turn off when updates come after
   * every few generated tokens.
   */
  bakeWeights?: boolean;
  /**
   * Bound of the prefix cache (keys and values of prompts seen before, reused by later prompts
   * that start the same way), in bytes; 0 turns it off. Default 256 MiB.
   */
  prefixCacheBytes?: number;
}

/** Runtime options of a policy built from parts or loaded from a checkpoint. */
export interface PolicyRuntimeOptions {
  device?: string;
  bakeWeights?: boolean;
  prefixCacheBytes?: number;
  /** A Hugging Face folder only: train LoRA adapters on the frozen base (see `HfLoadOptions`). */
  lora?: z.input<typeof LoraConfig>;
  /** A Hugging Face folder only: seed of fresh LoRA adapters. */
  seed?: number;
  /**
   * A Hugging Face folder only: the context length (default the smaller of the model's
   * max_position_embeddings and 4096); decode buffers and RoPE tables are sized by it.
   */
  contextLength?: number;
}

/** Most rows `Policy.generate` decodes at once (more prompts join as rows finish). */
const GENERATE_MAX_BATCH = 256;

export class Policy {
  readonly tokenizer: PolicyTokenizer;
  readonly config: ModelConfig;
  readonly runner: ModelRunner;
  /** The running decode batch `generate` calls join (concurrent calls share its steps). */
  readonly batch: ContinuousBatch;
  /** The Hugging Face folder this policy was imported from (`save` then writes such a folder). */
  readonly hf?: HfSource;

  private constructor(tokenizer: PolicyTokenizer, runner: ModelRunner, hf?: HfSource) {
    this.tokenizer = tokenizer;
    this.config = runner.config;
    this.runner = runner;
    this.hf = hf;
    this.batch = new ContinuousBatch(runner, { maxBatch: GENERATE_MAX_BATCH, detokenizer: tokenizer });
  }

  /** A fresh, randomly initialized policy. */
  static create(init: PolicyInit): Policy {
    const base = typeof init.model === 'string' ? modelConfig(init.model) : init.model;
    const config = modelConfig({ ...base, vocabSize: init.tokenizer.vocabSize });
    const device = resolveDevice(init.device ?? 'cpu');
    const runner = new ModelRunner(config, initParams(config, init.seed ?? 0), device, {
      bakeWeights: init.bakeWeights,
      prefixCacheBytes: init.prefixCacheBytes,
    });
    return new Policy(init.tokenizer, runner);
  }

  /** A policy from a tokenizer, a config and parameter values (e.g. a frozen reference copy). */
  static fromParts(
    tokenizer: PolicyTokenizer,
    config: ModelConfig,
    params: Params,
    options: PolicyRuntimeOptions & { hf?: HfSource } = {},
  ): Policy {
    if (config.vocabSize !== tokenizer.vocabSize) {
      throw new Error(
        `config.vocabSize (${config.vocabSize}) does not match the tokenizer's vocabulary (${tokenizer.vocabSize})`,
      );
    }
    const runner = new ModelRunner(config, params, resolveDevice(options.device ?? 'cpu'), {
      bakeWeights: options.bakeWeights,
      prefixCacheBytes: options.prefixCacheBytes,
    });
    return new Policy(tokenizer, runner, options.hf);
  }

  /**
   * Restore a policy saved with `save` (weights, config, tokenizer and optimizer state), or import
   * a Hugging Face model folder (config.json with model_type llama, qwen2 or qwen3, safetensors
   * weights, tokenizer.json and its chat template).
   */
  static async load(dir: string, options: PolicyRuntimeOptions = {}): Promise<Policy> {
    if (isHfFolder(dir)) {
      const m = await loadHfModel(dir, {
        contextLength: options.contextLength,
        lora: options.lora,
        seed: options.seed,
      });
      const runner = new ModelRunner(m.config, m.params, resolveDevice(options.device ?? 'cpu'), {
        bakeWeights: options.bakeWeights,
        prefixCacheBytes: options.prefixCacheBytes,
      });
      if (m.optimizer) runner.setOptimizerState(m.optimizer, m.step);
      return new Policy(m.tokenizer, runner, m.source);
    }
    if (options.lora)
      throw new Error(`lora: '${dir}' is not a Hugging Face folder; LoRA needs a pretrained base`);
    if (options.contextLength !== undefined) {
      throw new Error(
        `contextLength: '${dir}' is a stepwise checkpoint, whose context length its config fixes`,
      );
    }
    const ckpt = await loadCheckpoint(dir);
    if (ckpt.tokenizerJson === undefined) throw new Error(`checkpoint '${dir}' has no tokenizer.json`);
    const runner = new ModelRunner(ckpt.config, ckpt.params, resolveDevice(options.device ?? 'cpu'), {
      bakeWeights: options.bakeWeights,
      prefixCacheBytes: options.prefixCacheBytes,
    });
    if (ckpt.optimizer) runner.setOptimizerState(ckpt.optimizer, ckpt.step);
    return new Policy(Tokenizer.fromJSON(ckpt.tokenizerJson), runner);
  }

  get device(): Device {
    return this.runner.runningOn ?? this.runner.device;
  }

  /** Prompt -> token ids. Chat messages get the chat template with a trailing assistant tag. */
  encodePrompt(prompt: Prompt): number[] {
    if (typeof prompt === 'string') return this.tokenizer.encode(prompt);
    if (prompt.length > 0 && typeof prompt[0] === 'number') return [...(prompt as readonly number[])];
    return this.tokenizer.applyChatTemplate(prompt as readonly TemplateMessage[], {
      addGenerationPrompt: true,
    });
  }

  /**
   * Sample a continuation of each prompt. Generation stops at the end token (unless `stopTokens`
   * says otherwise), a stop string, `maxNewTokens` or the context length. `options.rows` sets
   * sampling options per row; `onToken` sees each token as it is sampled. The prompts join the
   * policy's continuous batch, and prompt prefixes seen before come from the prefix cache.
   */
  async generate(
    prompts: readonly Prompt[],
    options: z.input<typeof GenerateOptions> = {},
    onToken?: OnToken,
  ): Promise<Generation[]> {
    const opts = generateOptions({ stopTokens: [...this.tokenizer.stopIds], ...options });
    return generate(
      this.batch,
      prompts.map((p) => this.encodePrompt(p)),
      opts,
      onToken,
    );
  }

  /** Teacher-forced log-probs of `continuation` after `prompt`, one per continuation token. */
  async score(prompt: Prompt, continuation: readonly number[]): Promise<number[]> {
    return (await this.scoreBatch([{ prompt, continuation }]))[0]!;
  }

  /** `score` for many pairs in one batch. */
  async scoreBatch(
    pairs: readonly { prompt: Prompt; continuation: readonly number[] }[],
  ): Promise<number[][]> {
    const rows = pairs.map((p) => {
      const prompt = this.encodePrompt(p.prompt);
      if (prompt.length === 0) throw new Error('score: the prompt is empty; expected at least one token');
      return { prompt, tokens: [...prompt, ...p.continuation] };
    });
    const { logprobs } = await this.runner.score(rows.map((r) => r.tokens));
    return rows.map((r, i) => Array.from(logprobs[i]!.subarray(r.prompt.length)));
  }

  /** One optimizer step on a token batch with the RL loss (default) or the SFT loss. */
  async update(batch: TokenBatch, loss: z.input<typeof LossConfig> = {}): Promise<UpdateMetrics> {
    const metrics = await this.runner.update(batch, parseOrThrow(LossConfig, loss, 'invalid loss config'));
    if (metrics.skipped) {
      console.warn(
        `stepwise: update skipped: the loss (${metrics.loss}) or the gradient norm (${metrics.gradNorm}) is not finite; ` +
          'parameters and optimizer state are unchanged',
      );
    }
    return metrics;
  }

  checkpoint(): Checkpoint {
    return {
      config: this.config,
      params: this.runner.getParams(),
      tokenizerJson:
        this.tokenizer instanceof Tokenizer ? JSON.stringify(this.tokenizer.toJSON()) : undefined,
      optimizer: this.runner.getOptimizerState(),
      step: this.runner.step,
    };
  }

  /**
   * Write a checkpoint folder: model.safetensors, config.json, tokenizer.json (+ optimizer state).
   * An imported model is written as a Hugging Face folder again (float32 weights, its tokenizer
   * files), which `load` and transformers both read.
   */
  async save(dir: string): Promise<void> {
    if (this.hf) {
      await saveHfModel(dir, {
        config: this.config,
        params: this.runner.getParams(),
        tokenizer: this.tokenizer as HfTokenizer,
        source: this.hf,
        optimizer: this.runner.getOptimizerState(),
        step: this.runner.step,
      });
      return;
    }
    await saveCheckpoint(dir, this.checkpoint());
  }

  /**
   * Write a standalone ONNX model (weights inside): input `ids` int64 [batch, seq], output `logits`
   * float32 [batch, seq, vocab], causal, positions 0..seq-1. Plain onnxruntime runs it.
   */
  async exportOnnx(path: string): Promise<void> {
    await writeFile(path, buildLogitsGraph(this.config, 'float32', this.runner.getParams()).toOnnx());
  }

  async dispose(): Promise<void> {
    await this.runner.dispose();
  }
}
