/**
 * Continuous batching: requests join the running decode batch between steps and leave it when
 * done, and each returns what it would alone (same seed, same tokens; log-probs within 1e-5).
 */
import { describe, expect, it, vi } from 'vitest';
import { modelConfig } from '../../src/policy/model/config.ts';
import { initParams } from '../../src/policy/model/params.ts';
import { Policy } from '../../src/policy/policy.ts';
import {
  ContinuousBatch,
  type Generation,
  type RowRequest,
} from '../../src/policy/runtime/continuous-batch.ts';
import { SlotCache } from '../../src/policy/runtime/slots.ts';
import { Tokenizer } from '../../src/policy/tokenizer/tokenizer.ts';

const tokenizer = Tokenizer.train(
  Array(10).fill(['the cat sat on the mat', 'the dog ate the bone', 'a cat and a dog']).flat(),
  { vocabSize: 300 },
);

function policy(prefixCacheBytes?: number): Policy {
  const config = modelConfig({
    vocabSize: tokenizer.vocabSize,
    width: 32,
    layers: 2,
    heads: 4,
    contextLength: 96,
  });
  return Policy.fromParts(tokenizer, config, initParams(config, 5), { prefixCacheBytes });
}

function request(
  prompt: string,
  seed: number,
  maxNewTokens: number,
  extra: Partial<RowRequest> = {},
): RowRequest {
  return {
    prompt: tokenizer.encode(prompt),
    sampling: { temperature: 1, topK: 0, topP: 1 },
    maxNewTokens,
    stop: [],
    stopTokens: [],
    seed,
    topLogprobs: 0,
    ...extra,
  };
}

function expectSame(a: Generation, b: Generation): void {
  expect(a.tokens).toEqual(b.tokens);
  a.logprobs.forEach((lp, t) => {
    expect(Math.abs(lp - b.logprobs[t]!)).toBeLessThan(1e-5);
  });
}

const prompts = [
  'the cat sat',
  'a dog and a cat sat on the mat',
  'the bone',
  'the dog ate the bone and the cat sat',
];

describe('continuous batching', () => {
  for (const cacheBytes of [0, undefined]) {
    it(`rows joining and leaving mid-decode return what each would alone (prefix cache ${cacheBytes === 0 ? 'off' : 'on'})`, async () => {
      const p = policy(cacheBytes);
      const lengths = [20, 6, 14, 9];
      const alone: Generation[] = [];
      for (const [i, text] of prompts.entries()) {
        alone.push(
          await new ContinuousBatch(p.runner, { maxBatch: 1 }).submit(request(text, 100 + i, lengths[i]!)),
        );
      }
      // Row 0 starts alone; rows 1..3 arrive one by one while it decodes (after its 2nd, 5th and
      // 8th token), and row 1 leaves before row 0 is done.
      const batch = new ContinuousBatch(p.runner, { maxBatch: 8 });
      const joined: Promise<Generation>[] = [];
      const seenAt: number[] = [];
      const first = batch.submit(
        request(prompts[0]!, 100, lengths[0]!, {
          onToken: () => {
            const n = ++seenAt[0]!;
            const i = [2, 5, 8].indexOf(n) + 1;
            if (i > 0) joined.push(batch.submit(request(prompts[i]!, 100 + i, lengths[i]!)));
          },
        }),
      );
      seenAt[0] = 0;
      const out = [await first, ...(await Promise.all(joined))];
      out.forEach((g, i) => {
        expectSame(g, alone[i]!);
      });
      expect(out.map((g) => g.tokens.length)).toEqual(lengths);
      // One busy period: nobody waited for a batch to finish.
      expect(batch.stats.runs).toBe(1);
      expect(batch.stats.rows).toBe(4);
      // Row 0's 20 tokens took 19 decode steps (20 with the cache on: its prompt, cached by the
      // run alone, left one token to feed, which the first step took instead of a prefill); the
      // others decoded inside them.
      expect(batch.stats.steps).toBe(lengths[0]! - (cacheBytes === 0 ? 1 : 0));
      await p.dispose();
    });
  }

  it('holds at most maxBatch rows; the rest join as rows leave', async () => {
    const p = policy();
    const batch = new ContinuousBatch(p.runner, { maxBatch: 2 });
    let most = 0;
    const out = await Promise.all(
      prompts.map((text, i) =>
        batch.submit(
          request(text, i, 3 + 2 * i, {
            onToken: () => {
              most = Math.max(most, batch.load.active);
            },
          }),
        ),
      ),
    );
    expect(most).toBe(2);
    expect(out.map((g) => g.tokens.length)).toEqual([3, 5, 7, 9]);
    expect(batch.stats.runs).toBe(1);
    for (const [i, text] of prompts.entries()) {
      expectSame(
        out[i]!,
        await new ContinuousBatch(p.runner, { maxBatch: 1 }).submit(request(text, i, 3 + 2 * i)),
      );
    }
    await p.dispose();
  });

  it("feeds a cached prompt's last token to a decode step instead of prefilling it", async () => {
    const p = policy();
    const alone: Generation[] = [];
    for (const [i, text] of prompts.entries()) {
      alone.push(await new ContinuousBatch(p.runner, { maxBatch: 1 }).submit(request(text, 7 + i, 8)));
    }
    // Every prompt is now cached but for its last token (the cache keeps keys and values, not
    // logits): the four rows start decoding with no prefill at all, and sample what they did alone.
    const extend = vi.spyOn(p.runner, 'extend');
    const work = { ...p.runner.work };
    const batch = new ContinuousBatch(p.runner, { maxBatch: 4 });
    const out = await Promise.all(prompts.map((text, i) => batch.submit(request(text, 7 + i, 8))));
    expect(extend).not.toHaveBeenCalled();
    out.forEach((g, i) => {
      expectSame(g, alone[i]!);
    });
    expect(batch.stats).toMatchObject({ prefills: 0, steps: 8, prefilledTokens: 4 });
    // The fed prompt tokens count as prefilled work, the rest as decoded.
    expect(p.runner.work.prefilledTokens - work.prefilledTokens).toBe(4);
    expect(p.runner.work.decodedTokens - work.decodedTokens).toBe(4 * 7);
    extend.mockRestore();
    await p.dispose();
  });

  it('lays slot buffers out for each busy period in the memory of the last one, and grows them while rows run', () => {
    const config = modelConfig({ vocabSize: 50, width: 16, layers: 2, heads: 2, contextLength: 256 });
    const slots = new SlotCache(config);
    slots.reserve(3, 37); // idle: 4 rows (a power of two) of 40 positions (a multiple of 8)
    expect([slots.rowCapacity, slots.capacity]).toEqual([4, 40]);
    const memory = slots.k[0]!.buffer;
    for (let b = 0; b < 3; b++) slots.add();
    for (let b = 2; b >= 0; b--) slots.remove(b);
    // Idle again: a shorter capacity (a decode step reads every position of it) in the same
    // memory, which holds 6 rows of 24 positions.
    slots.reserve(2, 20);
    expect([slots.rowCapacity, slots.capacity]).toEqual([6, 24]);
    expect(slots.k[0]!.buffer).toBe(memory);
    expect(slots.v[1]!.length).toBe(6 * 2 * 24 * 8);
    // A longer one than the memory holds for 2 rows: new buffers.
    slots.reserve(2, 100);
    expect([slots.rowCapacity, slots.capacity]).toEqual([2, 104]);
    expect(slots.k[0]!.buffer).not.toBe(memory);
    // With a row active the capacity only grows, to a multiple of 32, keeping the row's contents.
    slots.add();
    slots.lengths[0] = 3;
    slots.k[1]![5] = 7;
    slots.reserve(1, 10);
    expect(slots.capacity).toBe(104);
    slots.reserve(3, 130);
    expect([slots.rowCapacity, slots.capacity]).toEqual([4, 160]);
    expect(slots.k[1]![5]).toBe(7);
  });

  it('drops a row aborted mid-decode; the others finish', async () => {
    const p = policy();
    const batch = new ContinuousBatch(p.runner, { maxBatch: 4 });
    const controller = new AbortController();
    let seen = 0;
    const aborted = batch.submit(
      request(prompts[0]!, 1, 30, {
        signal: controller.signal,
        onToken: () => {
          if (++seen === 3) controller.abort(new Error('client went away'));
        },
      }),
    );
    const kept = batch.submit(request(prompts[1]!, 2, 10));
    await expect(aborted).rejects.toThrow('client went away');
    expect(seen).toBe(3);
    expect((await kept).tokens).toHaveLength(10);
    expect(batch.load).toEqual({ active: 0, waiting: 0 });
    await p.dispose();
  });

  it('refuses bad requests with a message naming the problem', async () => {
    const p = policy();
    const batch = new ContinuousBatch(p.runner, { maxBatch: 4 });
    await expect(batch.submit(request('', 0, 4))).rejects.toThrow(/is empty/);
    await expect(batch.submit({ ...request('the cat', 0, 4), prompt: Array(96).fill(3) })).rejects.toThrow(
      /96 tokens; the context is 96/,
    );
    await expect(batch.submit({ ...request('the cat', 0, 4), stop: ['x'] })).rejects.toThrow(/detokenizer/);
    expect(() => new ContinuousBatch(p.runner, { maxBatch: 0 })).toThrow(/maxBatch must be an integer >= 1/);
    await p.dispose();
  });
});
