/**
 * The trainable policy: a tokenizer, a transformer and its ONNX Runtime graphs behind one object
 * that generates, scores, updates, saves and exports.
 */
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { z } from 'zod';
import { parseOrThrow } from '../util/zod.ts';
import { type Checkpoint, loadCheckpoint, saveCheckpoint } from './checkpoint/checkpoint.ts';
import {
  type AdapterConfigInput,
  loadNamedAdapters,
  type NamedAdapter,
  saveNamedAdapters,
  storedAdapters,
} from './hf/adapters.ts';
import { type HfSource, isHfFolder, loadHfModel, saveHfModel } from './hf/folder.ts';
import { ADAPTER_CONFIG, loadAdapters, readLoraConfig } from './hf/lora.ts';
import type { HfTokenizer } from './hf/tokenizer.ts';
import { type LoraConfig, type ModelConfig, modelConfig, type PresetName } from './model/config.ts';
import { buildLogitsGraph } from './model/graphs.ts';
import { LossConfig } from './model/loss.ts';
import { initParams, type Params, paramSpecs } from './model/params.ts';
import { ContinuousBatch } from './runtime/continuous-batch.ts';
import {
  type GenerateOptions,
  type Generation,
  generate,
  generateOptions,
  type OnToken,
} from './runtime/generate.ts';
import { ModelRunner, SessionPool, type TokenBatch, type UpdateMetrics } from './runtime/runner.ts';
import { type Device, type PolicyDtype, resolveCompute } from './runtime/session.ts';
import { type PolicyTokenizer, type TemplateMessage, Tokenizer } from './tokenizer/tokenizer.ts';

/** A prompt: plain text, chat messages (templated with a generation prompt), or token ids. */
export type Prompt = string | readonly TemplateMessage[] | readonly number[];

export interface PolicyInit {
  /** A preset name or a model config; its vocabSize is replaced by the tokenizer's. */
  model: PresetName | (Omit<z.input<typeof ModelConfig>, 'vocabSize'> & { vocabSize?: number });
  tokenizer: Tokenizer;
  /** 'cpu' (default) or 'cuda' (falls back to CPU with a hint when CUDA is not installed). */
  device?: string;
  /** Compute precision (see `PolicyRuntimeOptions.dtype`). */
  dtype?: string;
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
  /**
   * Compute precision of generation, scoring and updates (weights stay float32): 'float32'
   * (default), 'float16' or 'bfloat16' (see `PolicyDtype`); falls back to float32 with one message
   * where the device cannot run it.
   */
  dtype?: string;
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
  /**
   * A Hugging Face folder only: named LoRA adapters on one frozen base (an adapter per role), each
   * trainable or frozen (see `AdapterConfig`). A folder saved with adapters loads them without this.
   */
  adapters?: Record<string, AdapterConfigInput>;
  /** With adapters: the one `load` returns (default the base); `policy.adapter(name)` reaches the others. */
  adapter?: string;
}

/**
 * The base and the adapters that share it: one set of base tensors (every member's runner wraps
 * the same arrays) and one session pool (the inference graphs bake the base once and take each
 * adapter's tensors as inputs).
 */
interface AdapterGroup {
  base: Policy;
  members: Map<string, Policy>;
  pool: SessionPool;
  disposed: boolean;
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
  /** The adapter this policy computes with, when it is one of a base's named adapters. */
  readonly adapterName?: string;
  private group?: AdapterGroup;

  private constructor(tokenizer: PolicyTokenizer, runner: ModelRunner, hf?: HfSource, adapterName?: string) {
    this.tokenizer = tokenizer;
    this.config = runner.config;
    this.runner = runner;
    this.hf = hf;
    this.adapterName = adapterName;
    this.batch = new ContinuousBatch(runner, { maxBatch: GENERATE_MAX_BATCH, detokenizer: tokenizer });
  }

  /** Names of the adapters on this policy's base (empty without adapters). */
  get adapterNames(): string[] {
    return this.group ? [...this.group.members.keys()] : [];
  }

  /** The base model of a policy with adapters (itself otherwise). */
  get base(): Policy {
    return this.group?.base ?? this;
  }

  /** A named adapter on this policy's base: a policy of its own that shares the base's tensors and sessions. */
  adapter(name: string): Policy {
    const found = this.group?.members.get(name);
    if (!found) {
      throw new Error(
        this.group
          ? `no adapter '${name}'; this base has ${this.adapterNames.map((n) => `'${n}'`).join(', ')}`
          : `no adapter '${name}': this policy has no named adapters (load it with 'adapters')`,
      );
    }
    return found;
  }

  /** Whether `update` is refused (a frozen adapter, or the base of adapters). */
  get frozen(): boolean {
    return this.runner.frozen;
  }

  /**
   * A frozen copy of a PEFT adapter folder on this policy's base, not one of its named adapters
   * (nothing saves it): e.g. a run's reference, the planner as SFT left it, without a second base.
   */
  async frozenAdapterFrom(dir: string, label = `adapter from '${dir}'`): Promise<Policy> {
    const group = this.group;
    if (!group) throw new Error('frozenAdapterFrom: this policy has no named adapters');
    const lora = await readLoraConfig(dir);
    if (!lora) throw new Error(`'${dir}' has no ${ADAPTER_CONFIG}`);
    const config: ModelConfig = { ...group.base.config, lora };
    const params = new Map(group.base.runner.getParams());
    for (const [k, v] of await loadAdapters(dir, config)) params.set(k, v);
    const runner = new ModelRunner(config, params, group.base.runner.device, {
      dtype: group.base.runner.dtype,
      bakeWeights: group.base.runner.bakeWeights,
      prefixCacheBytes: 0,
      sessions: group.pool,
      frozen: true,
      label,
    });
    return new Policy(this.tokenizer, runner, this.hf);
  }

  /** A fresh, randomly initialized policy. */
  static create(init: PolicyInit): Policy {
    const base = typeof init.model === 'string' ? modelConfig(init.model) : init.model;
    const config = modelConfig({ ...base, vocabSize: init.tokenizer.vocabSize });
    const { device, dtype } = resolveCompute(init);
    const runner = new ModelRunner(config, initParams(config, init.seed ?? 0), device, {
      dtype,
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
    const { device, dtype } = resolveCompute(options);
    const runner = new ModelRunner(config, params, device, {
      dtype,
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
    if (isHfFolder(dir) && (options.adapters || (await storedAdapters(dir)))) {
      return Policy.loadWithAdapters(dir, options);
    }
    if (options.adapters || options.adapter !== undefined) {
      throw new Error(
        `adapters: '${dir}' ${isHfFolder(dir) ? 'has no named adapters' : 'is not a Hugging Face folder'}; ` +
          'named adapters need a pretrained base',
      );
    }
    if (isHfFolder(dir)) {
      const m = await loadHfModel(dir, {
        contextLength: options.contextLength,
        lora: options.lora,
        seed: options.seed,
      });
      const { device, dtype } = resolveCompute(options);
      const runner = new ModelRunner(m.config, m.params, device, {
        dtype,
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
    const { device, dtype } = resolveCompute(options);
    const runner = new ModelRunner(ckpt.config, ckpt.params, device, {
      dtype,
      bakeWeights: options.bakeWeights,
      prefixCacheBytes: options.prefixCacheBytes,
    });
    if (ckpt.optimizer) runner.setOptimizerState(ckpt.optimizer, ckpt.step);
    return new Policy(Tokenizer.fromJSON(ckpt.tokenizerJson), runner);
  }

  /** A Hugging Face base with named adapters: one base in memory, a `Policy` per adapter. */
  private static async loadWithAdapters(dir: string, options: PolicyRuntimeOptions): Promise<Policy> {
    if (options.lora) {
      throw new Error("lora and adapters: give one; 'adapters' names several LoRA adapters on one base");
    }
    if (existsSync(path.join(dir, ADAPTER_CONFIG))) {
      throw new Error(
        `${dir} has a single LoRA adapter (${ADAPTER_CONFIG}); merge it (stepwise merge) before adding named adapters`,
      );
    }
    const m = await loadHfModel(dir, { contextLength: options.contextLength });
    const named = await loadNamedAdapters(dir, m.config, options.adapters, options.seed);
    const { device, dtype } = resolveCompute(options);
    const pool = new SessionPool();
    const runnerOptions = (frozen: boolean, label: string) => ({
      dtype,
      bakeWeights: options.bakeWeights,
      prefixCacheBytes: options.prefixCacheBytes,
      sessions: pool,
      frozen,
      label,
    });
    const base = new Policy(
      m.tokenizer,
      new ModelRunner(m.config, m.params, device, runnerOptions(true, 'the base of named adapters')),
      m.source,
    );
    const group: AdapterGroup = { base, members: new Map(), pool, disposed: false };
    base.group = group;
    for (const a of named) {
      // The base's arrays themselves (ORT tensors wrap them without a copy) plus the adapter's.
      const params: Params = new Map(m.params);
      for (const [k, v] of a.params) params.set(k, v);
      const runner = new ModelRunner(
        a.config,
        params,
        device,
        runnerOptions(!a.trainable, `adapter '${a.name}'`),
      );
      if (a.optimizer) runner.setOptimizerState(a.optimizer, a.step);
      const member = new Policy(m.tokenizer, runner, m.source, a.name);
      member.group = group;
      group.members.set(a.name, member);
    }
    return options.adapter === undefined ? base : base.adapter(options.adapter);
  }

  get device(): Device {
    return this.runner.runningOn ?? this.runner.device;
  }

  /** The precision the graphs run in (float32 where the device could not run the one asked). */
  get dtype(): PolicyDtype {
    return this.runner.runningDtype;
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
    if (this.group) {
      await this.saveGroup(dir);
      return;
    }
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

  /** The base once, in its stored dtype (it never changes), and one PEFT folder per adapter. */
  private async saveGroup(dir: string): Promise<void> {
    const { base, members } = this.group!;
    await saveHfModel(
      dir,
      {
        config: base.config,
        params: base.runner.getParams(),
        tokenizer: base.tokenizer as HfTokenizer,
        source: base.hf!,
      },
      { dtype: base.hf!.dtype },
    );
    const adapters: NamedAdapter[] = [...members].map(([name, p]) => {
      const all = p.runner.getParams();
      const own: Params = new Map();
      for (const s of paramSpecs(p.config)) if (!s.frozen) own.set(s.name, all.get(s.name)!);
      return {
        name,
        config: p.config,
        params: own,
        trainable: !p.frozen,
        optimizer: p.runner.getOptimizerState(),
        step: p.runner.step,
      };
    });
    await saveNamedAdapters(dir, adapters, String(base.hf!.rawConfig._name_or_path ?? ''));
  }

  /**
   * Write a standalone ONNX model (weights inside): input `ids` int64 [batch, seq], output `logits`
   * float32 [batch, seq, vocab], causal, positions 0..seq-1. Plain onnxruntime runs it.
   */
  async exportOnnx(path: string): Promise<void> {
    await writeFile(path, buildLogitsGraph(this.config, 'float32', this.runner.getParams()).toOnnx());
  }

  /** Release the sessions. A policy with adapters releases its whole group (base and every adapter). */
  async dispose(): Promise<void> {
    if (!this.group) {
      await this.runner.dispose();
      return;
    }
    if (this.group.disposed) return;
    this.group.disposed = true;
    await this.group.pool.dispose();
  }
}
