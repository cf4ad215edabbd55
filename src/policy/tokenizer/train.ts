/**
 * Byte-level BPE training: start from the 256 byte tokens and repeatedly merge the most frequent
 * adjacent pair inside words, until the vocabulary is full or no pair occurs `minFrequency` times.
 * Superword merges (optional, after the word merges) run the same loop across the words of a line.
 *
 * Written here rather than taken from a library: the well-kept trainer (Hugging Face tokenizers)
 * is a native Rust addon, and the algorithm is short. Counts are kept incrementally (only words
 * that contain the merged pair are recounted) and the best pair comes from a max-heap with lazy
 * deletion, so training on a few MB takes seconds.
 *
 * Deterministic: ties on count go to the smaller pair (first id, then second id), and nothing
 * depends on Map or Set iteration order.
 */
import { pretokenize, type SpaceMode } from './pretokenize.ts';

/** Pair (a, b) as one number; ids stay below 2^20, so the key is exact in a double. */
export const pairKey = (a: number, b: number): number => a * 1048576 + b;

/** Max-heap of (count, key): the largest count first, then the smallest key. */
class PairHeap {
  private counts: number[] = [];
  private keys: number[] = [];

  get size(): number {
    return this.keys.length;
  }

  private above(i: number, j: number): boolean {
    const ci = this.counts[i]!;
    const cj = this.counts[j]!;
    return ci > cj || (ci === cj && this.keys[i]! < this.keys[j]!);
  }

  private swap(i: number, j: number): void {
    [this.counts[i], this.counts[j]] = [this.counts[j]!, this.counts[i]!];
    [this.keys[i], this.keys[j]] = [this.keys[j]!, this.keys[i]!];
  }

  push(count: number, key: number): void {
    this.counts.push(count);
    this.keys.push(key);
    let i = this.keys.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.above(i, parent)) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  pop(): { count: number; key: number } {
    const top = { count: this.counts[0]!, key: this.keys[0]! };
    const lastCount = this.counts.pop()!;
    const lastKey = this.keys.pop()!;
    if (this.keys.length > 0) {
      this.counts[0] = lastCount;
      this.keys[0] = lastKey;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let best = i;
        if (l < this.keys.length && this.above(l, best)) best = l;
        if (r < this.keys.length && this.above(r, best)) best = r;
        if (best === i) break;
        this.swap(i, best);
        i = best;
      }
    }
    return top;
  }
}

/** Replace every non-overlapping (a, b) in ids, left to right, by `merged`. */
export function mergePair(ids: number[], a: number, b: number, merged: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < ids.length; i++) {
    if (i + 1 < ids.length && ids[i] === a && ids[i + 1] === b) {
      out.push(merged);
      i++;
    } else {
      out.push(ids[i]!);
    }
  }
  return out;
}

/**
 * Learn merges from texts. `firstId` is the id the first merge gets (after bytes and special
 * tokens); at most `maxMerges` are learned. Returns the merged pairs in order: merge r makes
 * token `firstId + r` from `[a, b]`.
 */
export function trainMerges(
  texts: Iterable<string>,
  options: { firstId: number; maxMerges: number; minFrequency: number; spaces?: SpaceMode },
): [number, number][] {
  // Distinct words with their counts, in first-seen order.
  const wordCounts = new Map<string, number>();
  for (const text of texts) {
    for (const w of pretokenize(text, options.spaces)) wordCounts.set(w, (wordCounts.get(w) ?? 0) + 1);
  }
  const encoder = new TextEncoder();
  return learnMerges(
    [...wordCounts.keys()].map((w) => Array.from(encoder.encode(w))),
    [...wordCounts.values()],
    options,
  );
}

/**
 * BPE's loop on token sequences: repeatedly merge the most frequent adjacent pair (counting each
 * sequence `freq` times) into a new id, from `firstId` on. `allow(a, b)` false keeps a pair from
 * ever being counted. Returns the merged pairs in order. Mutates `words`.
 */
export function learnMerges(
  words: number[][],
  freq: readonly number[],
  options: {
    firstId: number;
    maxMerges: number;
    minFrequency: number;
    allow?: (a: number, b: number) => boolean;
  },
): [number, number][] {
  const allow = options.allow;
  const pairCount = new Map<number, number>();
  // Words that contained a pair at some point; a word may have lost it since (checked on use).
  const pairWords = new Map<number, number[]>();
  const add = (word: number, ids: number[], sign: 1 | -1, touched: Set<number>) => {
    for (let i = 0; i + 1 < ids.length; i++) {
      if (allow && !allow(ids[i]!, ids[i + 1]!)) continue;
      const key = pairKey(ids[i]!, ids[i + 1]!);
      pairCount.set(key, (pairCount.get(key) ?? 0) + sign * freq[word]!);
      touched.add(key);
      if (sign > 0) {
        const list = pairWords.get(key);
        if (!list) pairWords.set(key, [word]);
        else if (list[list.length - 1] !== word) list.push(word);
      }
    }
  };
  const initial = new Set<number>();
  words.forEach((ids, w) => {
    add(w, ids, 1, initial);
  });
  const heap = new PairHeap();
  for (const key of initial) heap.push(pairCount.get(key)!, key);

  const merges: [number, number][] = [];
  while (merges.length < options.maxMerges && heap.size > 0) {
    const { count, key } = heap.pop();
    if (pairCount.get(key) !== count) continue; // stale entry: the pair's count changed since
    if (count < options.minFrequency) break;
    const a = Math.floor(key / 1048576);
    const b = key % 1048576;
    const merged = options.firstId + merges.length;
    merges.push([a, b]);
    const touched = new Set<number>();
    for (const w of new Set(pairWords.get(key))) {
      const ids = words[w]!;
      const next = mergePair(ids, a, b, merged);
      if (next.length === ids.length) continue;
      add(w, ids, -1, touched);
      add(w, next, 1, touched);
      words[w] = next;
    }
    pairWords.delete(key);
    for (const k of touched) {
      const c = pairCount.get(k)!;
      if (c > 0) heap.push(c, k);
      else pairCount.delete(k);
    }
  }
  return merges;
}
