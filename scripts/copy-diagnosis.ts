/**
 * What stops a small policy from copying (issue 14), measured on the search and AgentFlow
 * scenarios' own demonstrations and tokenizers:
 *
 *   npx tsx scripts/copy-diagnosis.ts tokens [search|agentflow]     # copyable tokens, both space modes
 *   npx tsx scripts/copy-diagnosis.ts replies <checkpoint> [n]      # greedy search replies vs the expert's
 *
 * `tokens`: for held-out (valid-unseen) expert replies, the share of the reply body's tokens and
 * token pairs that occur in the prompt (what an induction-style copy can reproduce), and the share
 * of body pairs that never occur in training replies (what memorizing cannot), with the tokenizer
 * a fresh policy gets (attached spaces, then separate). `replies`: a search checkpoint's greedy
 * reply accuracy on the expert's own states, by turn (query, answer), on new train-split questions
 * and on valid-unseen ones.
 */

import flowGrpo from '../scenarios/agentflow-flowgrpo.ts';
import searchIgpo from '../scenarios/search-igpo.ts';
import { Policy } from '../src/policy/policy.ts';
import { parseTrainConfig } from '../src/training/config.ts';
import { makeFamily } from '../src/training/families/index.ts';
import { actionKind, replyAccuracy, sameAction } from '../src/training/families/tool-qa.ts';
import { domainTokenizer } from '../src/training/sft.ts';

const [command = 'tokens', arg, count] = process.argv.slice(2);
const pct = (a: number, b: number) => `${((100 * a) / Math.max(b, 1)).toFixed(1)}%`;

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
      const tok = await domainTokenizer(
        config.policy.vocabSize,
        config.policy.tokenizerTasks,
        train,
        await family.tokenizerText?.(),
        spaces,
      );
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
} else {
  throw new Error(
    `usage: copy-diagnosis.ts tokens [search|agentflow] | replies <checkpoint> [n]; got '${command}'`,
  );
}
