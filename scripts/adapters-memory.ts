/**
 * What an adapter per role saves (issue 15, point 4): four role policies on one random-init
 * Llama-shaped base (hidden 512, 8 layers, 8 heads, 4 KV heads, MLP 1408: 23M parameters, 91 MB
 * in float32), as one base with four named adapters or as four separate LoRA policies, each
 * loading and generating 8 tokens once. Prints the process's RSS growth and the wall time.
 *
 *   npx tsx scripts/adapters-memory.ts write <dir>            # the base folder
 *   npx tsx scripts/adapters-memory.ts group|separate <dir>   # one measurement (a fresh process each)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fromFloat32, type SafetensorsTensor } from '../src/policy/checkpoint/safetensors.ts';
import { writeHfTensors } from '../src/policy/hf/weights.ts';
import { Policy } from '../src/policy/policy.ts';
import { Rng } from '../src/util/random.ts';
import { tinyTokenizerFiles } from '../test/policy/hf-fixtures.ts';

const [mode, dir] = process.argv.slice(2);
if (!dir || !['write', 'group', 'separate'].includes(mode ?? '')) {
  throw new Error('usage: adapters-memory.ts write|group|separate <dir>');
}

async function writeBase(): Promise<void> {
  mkdirSync(dir!, { recursive: true });
  const [d, L, H, KV, hd, ff, V] = [512, 8, 8, 4, 64, 1408, 272];
  const config = {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    vocab_size: V,
    hidden_size: d,
    intermediate_size: ff,
    num_hidden_layers: L,
    num_attention_heads: H,
    num_key_value_heads: KV,
    max_position_embeddings: 512,
    hidden_act: 'silu',
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    tie_word_embeddings: true,
    torch_dtype: 'float32',
  };
  writeFileSync(path.join(dir!, 'config.json'), JSON.stringify(config, null, 2));
  const rng = new Rng(1);
  const tensors: Record<string, SafetensorsTensor> = {};
  const put = (name: string, shape: number[], value: () => number) => {
    const a = Float32Array.from({ length: shape.reduce((x, y) => x * y, 1) }, value);
    tensors[name] = { dtype: 'F32', shape, data: fromFloat32(a, 'F32') };
  };
  const normal = () => 0.02 * rng.normal();
  put('model.embed_tokens.weight', [V, d], normal);
  for (let l = 0; l < L; l++) {
    const p = `model.layers.${l}`;
    put(`${p}.input_layernorm.weight`, [d], () => 1);
    put(`${p}.post_attention_layernorm.weight`, [d], () => 1);
    put(`${p}.self_attn.q_proj.weight`, [H * hd, d], normal);
    put(`${p}.self_attn.k_proj.weight`, [KV * hd, d], normal);
    put(`${p}.self_attn.v_proj.weight`, [KV * hd, d], normal);
    put(`${p}.self_attn.o_proj.weight`, [d, H * hd], normal);
    put(`${p}.mlp.gate_proj.weight`, [ff, d], normal);
    put(`${p}.mlp.up_proj.weight`, [ff, d], normal);
    put(`${p}.mlp.down_proj.weight`, [d, ff], normal);
  }
  put('model.norm.weight', [d], () => 1);
  await writeHfTensors(dir!, tensors);
  for (const [name, text] of Object.entries(tinyTokenizerFiles())) writeFileSync(path.join(dir!, name), text);
}

if (mode === 'write') {
  await writeBase();
} else {
  const lora = { rank: 8, alpha: 16 };
  const roles = ['planner', 'executor', 'verifier', 'generator'];
  const rss = () => process.memoryUsage().rss / 2 ** 20;
  const prompt = [[{ role: 'user' as const, content: 'hello there, how are you' }]];
  const before = rss();
  const started = performance.now();
  const alive: Policy[] = []; // kept, so that nothing is collected before the measurement
  if (mode === 'group') {
    const base = await Policy.load(dir, { adapters: Object.fromEntries(roles.map((r) => [r, lora])) });
    alive.push(base);
    for (const r of roles) await base.adapter(r).generate(prompt, { maxNewTokens: 8, temperature: 0 });
  } else {
    for (const _ of roles) {
      const p = await Policy.load(dir, { lora });
      alive.push(p);
      await p.generate(prompt, { maxNewTokens: 8, temperature: 0 });
    }
  }
  const seconds = (performance.now() - started) / 1000;
  console.log(
    `${mode}: rss grew ${(rss() - before).toFixed(0)} MiB, ${seconds.toFixed(1)} s for ${roles.length} role policies`,
  );
  for (const p of alive) await p.dispose();
}
