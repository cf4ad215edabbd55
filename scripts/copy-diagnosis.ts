/**
 * What stops a small policy from copying (issue 14), measured on the search and AgentFlow
 * scenarios' own demonstrations and tokenizers:
 *
 *   npx tsx scripts/copy-diagnosis.ts tokens [search|agentflow]     # copyable tokens, both space modes
 *   npx tsx scripts/copy-diagnosis.ts replies <checkpoint> [n]      # greedy search replies vs the expert's
 *   npx tsx scripts/copy-diagnosis.ts positions <checkpoint>...     # p(expert token) along copied spans
 *   npx tsx scripts/copy-diagnosis.ts sft search|agentflow <dir> ['<json over the scenario>']
 *   npx tsx scripts/copy-diagnosis.ts roles <checkpoint> ['<json over the agentflow scenario>'] [n]
 *
 * `tokens`: for held-out (valid-unseen) expert replies, the share of the reply body's tokens and
 * token pairs that occur in the prompt (what an induction-style copy can reproduce), and the share
 * of body pairs that never occur in training replies (what memorizing cannot), with the tokenizer
 * a fresh policy gets (attached spaces, then separate). `replies`: a search checkpoint's greedy
 * reply accuracy on the expert's own states, by turn (query, answer), on new train-split questions
 * and on valid-unseen ones. `positions`: the mean probability of the expert's token at each position
 * of the query's and the answer's body (teacher-forced), on 100 valid-unseen decisions: where
 * copying breaks down. `sft`: the scenario's SFT alone (iterations 0) with the given overrides,
 * evaluated greedily on 100 questions per split, with its CPU time. `roles`: an AgentFlow
 * checkpoint's greedy exact-reply accuracy per env and module on the expert's own states of n tasks
 * per split (default 50, half search, half code/math), with one wrong reply of each: which module
 * breaks (the json is the one its `sft` run was given, so the tasks are the same).
 */

import { join } from 'node:path';
import flowGrpo from '../scenarios/agentflow-flowgrpo.ts';
import searchIgpo from '../scenarios/search-igpo.ts';
import { Policy } from '../src/policy/policy.ts';
import { parseTrainConfig } from '../src/training/config.ts';
import { makeFamily } from '../src/training/families/index.ts';
import { actionKind, replyAccuracy, sameAction } from '../src/training/families/tool-qa.ts';
import type { Demonstrated } from '../src/training/family.ts';
import { domainTokenizer } from '../src/training/sft.ts';
import { train } from '../src/training/trainer.ts';

const [command = 'tokens', arg, count] = process.argv.slice(2);
const pct = (a: number, b: number) => `${((100 * a) / Math.max(b, 1)).toFixed(1)}%`;
/** `b` over `a`, objects merged key by key (arrays and values replaced). */
const merge = (a: unknown, b: unknown): unknown => {
  if (typeof a !== 'object' || a === null || typeof b !== 'object' || b === null || Array.isArray(b))
    return b;
  const out: Record<string, unknown> = { ...(a as Record<string, unknown>) };
  for (const [k, v] of Object.entries(b)) out[k] = k in out ? merge(out[k], v) : v;
  return out;
};

if (command === 'tokens') {
  const config = parseTrainConfig(arg === 'agentflow' ? flowGrpo : searchIgpo);
  const family = await makeFamily(config);
  try {
    const train = await family.demonstrations(
      Array.from({ length: 200 }, (_, k) => family.task('train', 1_000_000 + k)),
    );
    const held = await family.demonstrations(
      Array.from({ length: 100 }, (_, k) => family.task('valid-unseen', k)),
    );
    for (const spaces of ['attached', 'separate'] as const) {
      const tok = await domainTokenizer({
        ...config.policy,
        demos: train,
        texts: await family.tokenizerText?.(),
        spaces,
      });
      const pairsOf = (ids: readonly number[]) => ids.slice(1).map((id, i) => `${ids[i]},${id}`);
      const trainPairs = new Set(train.flatMap((d) => pairsOf(tok.encode(d.reply))));
      let tokens = 0;
      let tokensIn = 0;
      let pairs = 0;
      let pairsIn = 0;
      let pairsNew = 0;
      let promptTokens = 0;
      for (const d of held) {
        const prompt = tok.applyChatTemplate(d.messages, { addGenerationPrompt: true });
        promptTokens += prompt.length;
        const inPrompt = new Set(prompt);
        const promptPairs = new Set(pairsOf(prompt));
        // the reply's body: what is copied (the tags are fixed text)
        const body = tok.encode(d.reply.replace(/^<[a-z_]+>/, '').replace(/<\/[a-z_]+>$/, ''));
        tokens += body.length;
        tokensIn += body.filter((id) => inPrompt.has(id)).length;
        for (const p of pairsOf(body)) {
          pairs++;
          if (promptPairs.has(p)) pairsIn++;
          if (!trainPairs.has(p)) pairsNew++;
        }
      }
      console.log(
        `${arg ?? 'search'}, spaces ${spaces} (${tok.vocabSize} tokens): reply-body tokens in the prompt ` +
          `${pct(tokensIn, tokens)}, body pairs in the prompt ${pct(pairsIn, pairs)}, body pairs never in a ` +
          `training reply ${pct(pairsNew, pairs)}; mean prompt ${(promptTokens / held.length).toFixed(0)} tokens`,
      );
    }
  } finally {
    await family.close?.();
  }
} else if (command === 'replies' && arg) {
  const n = Number(count ?? 100);
  const family = await makeFamily(parseTrainConfig(searchIgpo));
  const policy = await Policy.load(arg);
  try {
    for (const split of ['train', 'valid-unseen'] as const) {
      const seed0 = split === 'train' ? 3_000_000 : 0; // train seeds SFT never drew
      const demos = await family.demonstrations(
        Array.from({ length: n }, (_, k) => family.task(split, seed0 + k)),
      );
      const r = await replyAccuracy(policy, demos, { maxTokens: 24, kind: actionKind, same: sameAction });
      console.log(
        `${split}: ${pct(r.accuracy, 1)} of ${r.decisions} replies right; ` +
          Object.entries(r.byKind)
            .map(([k, v]) => `${k} ${v.correct}/${v.decisions}`)
            .join(', '),
      );
    }
  } finally {
    await policy.dispose();
    await family.close?.();
  }
} else if (command === 'positions' && arg) {
  const family = await makeFamily(parseTrainConfig(searchIgpo));
  const demos = await family.demonstrations(
    Array.from({ length: 100 }, (_, k) => family.task('valid-unseen', k)),
  );
  for (const checkpoint of process.argv.slice(3)) {
    const policy = await Policy.load(checkpoint);
    const tok = policy.tokenizer;
    for (const tag of ['search', 'answer']) {
      const skip = tok.encode(`<${tag}>`).length;
      const ds = demos.filter((d) => d.reply.startsWith(`<${tag}>`));
      const lps = await policy.scoreBatch(
        ds.map((d) => ({ prompt: d.messages, continuation: [...tok.encode(d.reply), tok.endId] })),
      );
      const sum: number[] = [];
      const n: number[] = [];
      for (const lp of lps) {
        lp.slice(skip, skip + 8).forEach((v, k) => {
          sum[k] = (sum[k] ?? 0) + Math.exp(v);
          n[k] = (n[k] ?? 0) + 1;
        });
      }
      console.log(
        `${checkpoint} ${tag}: mean p(expert token) at body positions 0..7: ` +
          sum.map((x, k) => (x / n[k]!).toFixed(2)).join(' '),
      );
    }
    await policy.dispose();
  }
  await family.close?.();
} else if (command === 'sft' && arg && count) {
  const base = (arg === 'agentflow' ? flowGrpo : searchIgpo) as Record<string, unknown>;
  const over = JSON.parse(process.argv[5] ?? '{}') as Record<string, unknown>;
  const config = merge(
    { ...base, iterations: 0, db: join(count, 'sft.db'), runId: 'sft', eval: { every: 0, tasks: 100 } },
    over,
  );
  const result = await train(config);
  for (const split of ['valid-seen', 'valid-unseen'] as const) {
    const e = result.before[split];
    const byType = Object.entries(e.byType).map(([k, v]) => `${k} ${v.success.toFixed(3)} of ${v.tasks}`);
    console.log(
      `${split}: success ${e.success} of ${e.tasks} (${byType.join(', ')}), invalid ${e.invalidRate.toFixed(3)}, ${JSON.stringify(e.scores)}`,
    );
  }
  console.log(`SFT CPU seconds ${result.sft?.cpuSeconds?.toFixed(0)}`);
} else if (command === 'roles' && arg) {
  const config = parseTrainConfig(merge(flowGrpo, JSON.parse(count ?? '{}')));
  const n = Number(process.argv[5] ?? 50);
  const family = await makeFamily(config);
  const policy = await Policy.load(arg);
  try {
    for (const split of ['valid-unseen', 'valid-seen'] as const) {
      // the evaluation's own tasks (seeds 0..n-1), one replay each so every decision knows its env
      const demos: (Demonstrated & { env: string })[] = [];
      for (let seed = 0; seed < n; seed++) {
        const task = family.task(split, seed);
        for (const d of await family.demonstrations([task])) demos.push({ ...d, env: task.env });
      }
      const kind = (d: Demonstrated) => `${(d as Demonstrated & { env: string }).env}/${d.role}`;
      const same = (got: string, want: string) => got.trim() === want.trim();
      const r = await replyAccuracy(policy, demos, { maxTokens: 96, kind, same });
      console.log(
        `${split}: ${Object.entries(r.byKind)
          .map(([k, v]) => `${k} ${v.correct}/${v.decisions}`)
          .join(', ')}`,
      );
      const shown = new Set<string>();
      for (const d of demos) {
        if (shown.has(kind(d))) continue;
        const [out] = await policy.generate([policy.encodePrompt(d.messages)], {
          temperature: 0,
          maxNewTokens: 96,
        });
        if (same(out!.text ?? '', d.reply)) continue;
        shown.add(kind(d));
        console.log(`  ${kind(d)}: ${JSON.stringify(out!.text)} for ${JSON.stringify(d.reply)}`);
      }
    }
  } finally {
    await policy.dispose();
    await family.close?.();
  }
} else {
  throw new Error(
    `usage: copy-diagnosis.ts tokens [search|agentflow] | replies <checkpoint> [n] | positions <checkpoint>... | sft search|agentflow <dir> [json] | roles <checkpoint> [json] [n]; got '${command}'`,
  );
}
