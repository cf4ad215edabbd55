/**
 * The prefix cache: generation that reuses cached keys and values gives the tokens and log-probs
 * of generation from scratch (across the G rollouts of a prompt and across a turn boundary), the
 * tree keeps exactly what was inserted, and a long run never grows it past its bound.
 */
import { describe, expect, it } from 'vitest';
import { modelConfig } from '../../src/policy/model/config.ts';
import { initParams } from '../../src/policy/model/params.ts';
import { Policy } from '../../src/policy/policy.ts';
import { kvBytesPerToken, PrefixCache } from '../../src/policy/runtime/prefix-cache.ts';
import { type KvSegment, SlotCache } from '../../src/policy/runtime/slots.ts';
import { Tokenizer } from '../../src/policy/tokenizer/tokenizer.ts';

const texts = [
  'You are in the middle of a room. Looking quickly around you, you see a fridge 1 and a countertop 1.',
  'go to countertop 1. take apple 1 from countertop 1. put apple 1 in/on fridge 1.',
];
const tokenizer = Tokenizer.train(Array(10).fill(texts).flat(), { vocabSize: 320 });
const variants = [
  {},
  { norm: 'rmsnorm', positions: 'rope' },
  // An imported model's features: grouped-query attention (the cache holds kvHeads x headSize).
  {
    norm: 'rmsnorm',
    positions: 'rope',
    kvHeads: 2,
    headSize: 6,
    activation: 'swiglu',
    qkvBias: true,
    qkNorm: true,
    untiedHead: true,
  },
] as const;

/** A policy with the cache on and a copy of it with the cache off: "from scratch". */
function pair(variant: (typeof variants)[number], seed: number): { cached: Policy; scratch: Policy } {
  const config = modelConfig({
    vocabSize: tokenizer.vocabSize,
    width: 32,
    layers: 2,
    heads: 4,
    contextLength: 160,
    ...variant,
  });
  const params = initParams(config, seed);
  return {
    cached: Policy.fromParts(tokenizer, config, params),
    scratch: Policy.fromParts(tokenizer, config, params, { prefixCacheBytes: 0 }),
  };
}

function expectSame(
  a: { tokens: number[]; logprobs: number[] }[],
  b: { tokens: number[]; logprobs: number[] }[],
): void {
  expect(a.map((g) => g.tokens)).toEqual(b.map((g) => g.tokens));
  a.forEach((g, i) => {
    g.logprobs.forEach((lp, t) => {
      expect(Math.abs(lp - b[i]!.logprobs[t]!)).toBeLessThan(1e-5);
    });
  });
}

describe('generation with reused keys and values equals generation from scratch', () => {
  for (const variant of variants) {
    it(`across the G rollouts of a prompt and across a turn boundary (${JSON.stringify(variant)})`, async () => {
      const { cached, scratch } = pair(variant, 3);
      expect(scratch.runner.prefixCache).toBeUndefined();
      const prompt = cached.encodePrompt([{ role: 'user', content: texts[0]! }]);
      const G = 4;
      const opts = { maxNewTokens: 12, temperature: 1, seed: 11, stopTokens: [] };

      // G copies of one prompt: one prefill of the prompt, then one token for each other copy.
      const before = { ...cached.batch.stats };
      const group = await cached.generate(Array(G).fill(prompt), opts);
      expect(cached.batch.stats.prefilledTokens - before.prefilledTokens).toBe(prompt.length + G - 1);
      const groupScratch = await scratch.generate(Array(G).fill(prompt), opts);
      expect(scratch.batch.stats.prefilledTokens).toBe(G * prompt.length);
      expectSame(group, groupScratch);
      // Not vacuous: the G rows sampled differently.
      expect(new Set(group.map((g) => g.tokens.join(','))).size).toBeGreaterThan(1);

      // The next turn of rollout 1: its prompt extends the first turn's prompt and reply.
      const turn2 = [
        ...prompt,
        ...group[1]!.tokens,
        ...cached.encodePrompt([{ role: 'user', content: texts[1]! }]),
      ];
      const mid = { ...cached.batch.stats };
      const next = await cached.generate([turn2], { ...opts, seed: 5 });
      // Everything up to the reply's last token came from the cache.
      const reused = prompt.length + group[1]!.tokens.length - 1;
      expect(cached.batch.stats.prefilledTokens - mid.prefilledTokens).toBe(turn2.length - reused);
      const nextScratch = await scratch.generate([turn2], { ...opts, seed: 5 });
      expectSame(next, nextScratch);

      // Both are the log-probs the scoring graph gives the sampled tokens.
      const scored = await scratch.scoreBatch([
        { prompt: turn2, continuation: next[0]!.tokens },
        ...group.map((g) => ({ prompt, continuation: g.tokens })),
      ]);
      expectSame(
        [next[0]!, ...group].map((g, i) => ({ tokens: g.tokens, logprobs: scored[i]! })),
        [next[0]!, ...group],
      );
      await cached.dispose();
      await scratch.dispose();
    });
  }

  it('prefills a prefix shared by different prompts of one admission once (waves)', async () => {
    const { cached, scratch } = pair({}, 6);
    const system = { role: 'system' as const, content: texts[0]! };
    const a = cached.encodePrompt([system, { role: 'user', content: 'take apple 1 from countertop 1.' }]);
    const b = cached.encodePrompt([system, { role: 'user', content: 'put apple 1 in/on fridge 1 now.' }]);
    let shared = 0;
    while (a[shared] === b[shared]) shared++;
    const prompts = [a, b, a, b, a, b];
    const opts = { maxNewTokens: 6, seed: 2, stopTokens: [] };
    const out = await cached.generate(prompts, opts);
    // a once, b's own part once, one token for each of the other four copies.
    expect(cached.batch.stats.prefilledTokens).toBe(a.length + (b.length - shared) + 4);
    expectSame(out, await scratch.generate(prompts, opts));
    await cached.dispose();
    await scratch.dispose();
  });

  it('is cleared by an update (its keys and values belong to the old weights)', async () => {
    const { cached } = pair({}, 4);
    const prompt = cached.encodePrompt('go to countertop 1.');
    await cached.generate([prompt], { maxNewTokens: 4 });
    expect(cached.runner.prefixCache!.size).toBeGreaterThan(0);
    await cached.update([{ tokens: [...prompt, 5], mask: [...prompt.map(() => 0), 1] }], {
      kind: 'sft',
      learningRate: 1e-2,
    });
    expect(cached.runner.prefixCache!.size).toBe(0);
    await cached.dispose();
  });
});

/** A segment whose every value encodes (token position, layer, kind, head, channel). */
function segment(start: number, n: number, layers: number, heads: number, hs: number): KvSegment {
  const make = (l: number, kind: number) => {
    const a = new Float32Array(heads * n * hs);
    for (let h = 0; h < heads; h++)
      for (let t = 0; t < n; t++)
        for (let c = 0; c < hs; c++)
          a[(h * n + t) * hs + c] = (start + t) * 1000 + l * 100 + kind * 50 + h * 8 + c;
    return a;
  };
  return {
    k: Array.from({ length: layers }, (_, l) => make(l, 0)),
    v: Array.from({ length: layers }, (_, l) => make(l, 1)),
    tokens: n,
  };
}

describe('PrefixCache', () => {
  const config = modelConfig({ vocabSize: 50, width: 16, layers: 2, heads: 2, contextLength: 64 });
  const hs = 8;

  it('returns the keys and values inserted for each position, through edge splits', () => {
    const cache = new PrefixCache(config, 1000);
    const read = (s: number, e: number) => segment(s, e - s, 2, 2, hs);
    cache.insert([1, 2, 3, 4, 5, 6], read);
    cache.insert([1, 2, 3, 9, 9], read); // splits [1..6] after 3
    cache.insert([1, 2], read); // splits again after 2
    expect(cache.size).toBe(8);
    expect(cache.countTokens()).toBe(8);
    const m = cache.match([1, 2, 3, 9, 9, 7]);
    expect(m.length).toBe(5);
    const slots = new SlotCache(config);
    slots.reserve(1, 8);
    cache.copyInto(m, slots, slots.add());
    expect(Array.from(slots.read(0, 0, 5).k[1]!)).toEqual(Array.from(segment(0, 5, 2, 2, hs).k[1]!));
    expect(Array.from(slots.read(0, 0, 5).v[0]!)).toEqual(Array.from(segment(0, 5, 2, 2, hs).v[0]!));
    expect(cache.match([1, 2, 3, 4, 5, 6], 4).length).toBe(4);
    expect(cache.match([7]).length).toBe(0);
  });

  it('evicts least recently used leaves that no running row holds, and never exceeds its bound', () => {
    const cache = new PrefixCache(config, 10);
    const read = (s: number, e: number) => segment(s, e - s, 2, 2, hs);
    const held = cache.insert([1, 2, 3, 4], read);
    cache.hold(held);
    cache.insert([5, 6, 7], read);
    cache.insert([8, 9], read);
    cache.match([5, 6, 7]); // 5,6,7 is now more recent than 8,9
    cache.insert([10, 11, 12], read); // needs 2 more positions: 8,9 goes, not the held 1..4
    expect(cache.size).toBeLessThanOrEqual(10);
    expect(cache.match([8, 9]).length).toBe(0);
    expect(cache.match([1, 2, 3, 4]).length).toBe(4);
    expect(cache.match([5, 6, 7]).length).toBe(3);
    // Held nodes fill the bound: what does not fit is cut, never the bound exceeded.
    cache.insert([20, 21, 22, 23, 24, 25, 26, 27, 28], read);
    expect(cache.size).toBeLessThanOrEqual(10);
    expect(cache.match([1, 2, 3, 4]).length).toBe(4);
    cache.unhold(held);
    expect(() => new PrefixCache(config, -1)).toThrow(/maxTokens must be an integer >= 0/);
  });

  it('stays within its bound over a long run of generation, and keeps reusing', async () => {
    const config = modelConfig({
      vocabSize: tokenizer.vocabSize,
      width: 32,
      layers: 2,
      heads: 4,
      contextLength: 160,
    });
    // Smaller than what 4 running rows hold at once, so the bound also cuts insertions short.
    const maxTokens = 48;
    const policy = Policy.fromParts(tokenizer, config, initParams(config, 9), {
      prefixCacheBytes: maxTokens * kvBytesPerToken(config),
    });
    const cache = policy.runner.prefixCache!;
    expect(cache.maxTokens).toBe(maxTokens);
    const words = ['fridge', 'apple', 'countertop', 'room', 'take', 'put', 'go to'];
    let peak = 0;
    for (let round = 0; round < 30; round++) {
      // Trajectories that grow turn by turn, and a stream of new ones: far more than the bound.
      const prompts = Array.from({ length: 4 }, (_, i) =>
        policy.encodePrompt(
          Array.from(
            { length: 4 + (round % 5) },
            (_, t) => `${words[(round + i + t) % words.length]} ${round + i}`,
          ).join('. '),
        ),
      );
      await policy.generate(prompts, { maxNewTokens: 8, seed: round });
      peak = Math.max(peak, cache.size);
      expect(cache.size).toBeLessThanOrEqual(maxTokens);
      expect(cache.countTokens()).toBe(cache.size);
    }
    expect(cache.stats.insertedTokens).toBeGreaterThan(3 * maxTokens);
    expect(cache.stats.evictedTokens).toBeGreaterThan(0);
    expect(cache.stats.hitTokens).toBeGreaterThan(0);
    expect(peak).toBeGreaterThan(maxTokens / 2);
    await policy.dispose();
  });
});
