/**
 * The `tokenizer` suite: BPE training and encoding speed and compression on real English
 * (@types/node's doc comments).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { Tokenizer } from '../../src/policy/tokenizer/tokenizer.ts';
import type { Suite } from '../suite.ts';
import { median } from '../suite.ts';

/**
 * Real English without shipping or downloading any: the documentation comments of @types/node
 * (a pinned dev dependency, ~700 KB of prose from the Node.js docs), one text per module, code
 * examples and @tags dropped. Sorted by file name so every machine gets the same corpus.
 */
export function englishCorpus(): { name: string; text: string }[] {
  const dir = dirname(createRequire(import.meta.url).resolve('@types/node/package.json'));
  return readdirSync(dir)
    .filter((f) => f.endsWith('.d.ts'))
    .sort()
    .map((name) => {
      const lines: string[] = [];
      let inCode = false;
      for (const line of readFileSync(`${dir}/${name}`, 'utf8').split('\n')) {
        const m = /^\s*\* ?(.*)$/.exec(line);
        if (!m) continue;
        const t = m[1]!;
        if (t.startsWith('```')) inCode = !inCode;
        else if (!inCode && !t.startsWith('@')) lines.push(t);
      }
      return { name, text: lines.join('\n') };
    })
    .filter((d) => d.text.length > 0);
}

export const suite: Suite = {
  name: 'tokenizer',
  description: 'byte-level BPE: training time, held-out compression, encode throughput (cold and cached)',
  quick: true,
  async run(ctx) {
    const docs = englishCorpus();
    const train = docs.filter((_, i) => i % 2 === 0).map((d) => d.text);
    const heldOut = docs
      .filter((_, i) => i % 2 === 1)
      .map((d) => d.text)
      .join('\n');
    const heldOutBytes = Buffer.byteLength(heldOut);
    ctx.log(`corpus: ${train.join('').length} chars to train, ${heldOutBytes} bytes held out`);

    let t0 = performance.now();
    const tok = Tokenizer.train(train, { vocabSize: 2048 });
    const trainS = (performance.now() - t0) / 1000;

    // Cold: a fresh tokenizer (empty word cache) encodes the held-out text once.
    const cold = Tokenizer.fromJSON(tok.toJSON());
    t0 = performance.now();
    const ids = cold.encode(heldOut);
    const coldS = (performance.now() - t0) / 1000;

    // Cached: the same text again, as in rollouts where prompts repeat. Median of 5 runs.
    const warm = [];
    const warmCpu = [];
    for (let i = 0; i < 5; i++) {
      t0 = performance.now();
      const cpu0 = process.cpuUsage();
      cold.encode(heldOut);
      warm.push((performance.now() - t0) / 1000);
      const cpu = process.cpuUsage(cpu0);
      warmCpu.push((cpu.user + cpu.system) / 1e6);
    }

    // A ~300-token prompt encoded many times, the rollout pattern the issue names.
    const prompt = heldOut.slice(0, 1000);
    const promptTokens = cold.encode(prompt).length;
    const reps = 5000;
    t0 = performance.now();
    for (let i = 0; i < reps; i++) cold.encode(prompt);
    const promptUs = ((performance.now() - t0) / reps) * 1000;

    const results = {
      vocab_size: tok.vocabSize,
      train_s: trainS,
      train_chars: train.join('').length,
      heldout_bytes: heldOutBytes,
      heldout_bytes_per_token: heldOutBytes / ids.length,
      encode_cold_tokens_per_s: ids.length / coldS,
      encode_cached_tokens_per_s: ids.length / median(warm),
      encode_cached_tokens_per_cpu_s: ids.length / median(warmCpu),
      prompt_tokens: promptTokens,
      prompt_encode_us: promptUs,
    };
    const report = [
      'Corpus: the documentation comments of `@types/node` (English prose from the Node.js docs),',
      'modules alternately used for training and held out. `cold` = empty word cache; `cached` = the',
      'same text again (rollouts re-encode the same prompts); `per_cpu_s` divides by process CPU time',
      '(steadier on a busy machine). `prompt_encode_us`: one ~1000-character prompt encoded 5000 times.',
    ].join('\n');
    return { results, report };
  },
};
