import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { englishCorpus } from '../../bench/suites/tokenizer.ts';
import { MAX_WORD_CHARS, pretokenize } from '../../src/policy/tokenizer/pretokenize.ts';
import { SPECIAL_TOKENS, Tokenizer } from '../../src/policy/tokenizer/tokenizer.ts';
import { Rng } from '../../src/util/random.ts';

const utf8 = (s: string) => Array.from(new TextEncoder().encode(s));

/** Every non-overlapping occurrence of `pair`, left to right, replaced by `id` (the reference's own). */
function replacePair(ids: number[], pair: readonly [number, number], id: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < ids.length; i++) {
    if (ids[i] === pair[0] && ids[i + 1] === pair[1]) {
      out.push(id);
      i++;
    } else out.push(ids[i]!);
  }
  return out;
}

/**
 * Textbook BPE training, slow and plain: recount every pair after every merge and take the most
 * frequent (ties: smallest first id, then second id). The real trainer must agree exactly.
 */
function naiveTrain(texts: string[], maxMerges: number, minFrequency: number): [number, number][] {
  const counts = new Map<string, number>();
  for (const t of texts) for (const w of pretokenize(t)) counts.set(w, (counts.get(w) ?? 0) + 1);
  let words = [...counts].map(([w, c]) => ({ ids: utf8(w), c }));
  const merges: [number, number][] = [];
  while (merges.length < maxMerges) {
    const pairs = new Map<string, number>();
    for (const { ids, c } of words) {
      for (let i = 0; i + 1 < ids.length; i++) {
        const k = `${ids[i]},${ids[i + 1]}`;
        pairs.set(k, (pairs.get(k) ?? 0) + c);
      }
    }
    let best: [number, number] | undefined;
    let bestCount = 0;
    for (const [k, c] of pairs) {
      const [a, b] = k.split(',').map(Number) as [number, number];
      if (c > bestCount || (c === bestCount && best && (a < best[0] || (a === best[0] && b < best[1])))) {
        best = [a, b];
        bestCount = c;
      }
    }
    if (!best || bestCount < minFrequency) break;
    const id = 262 + merges.length;
    merges.push(best);
    words = words.map(({ ids, c }) => ({ ids: replacePair(ids, best, id), c }));
  }
  return merges;
}

/** Encode by applying every merge in learned order to each word (the definition of BPE encoding). */
function naiveEncode(merges: readonly (readonly [number, number])[], text: string): number[] {
  const out: number[] = [];
  for (const w of pretokenize(text)) {
    let ids = utf8(w);
    merges.forEach((pair, r) => {
      ids = replacePair(ids, pair, 262 + r);
    });
    out.push(...ids);
  }
  return out;
}

/** A random string of code points drawn from several ranges (no lone surrogates). */
function randomText(rng: Rng, length: number): string {
  const ranges: [number, number][] = [
    [0x00, 0x7f], // ASCII incl. NUL and control characters
    [0x80, 0xff], // Latin-1
    [0x300, 0x36f], // combining marks
    [0x400, 0x4ff], // Cyrillic
    [0x4e00, 0x9fff], // CJK
    [0xe000, 0xf8ff], // private use
    [0x1f300, 0x1faff], // emoji
    [0x10000, 0x10ffff], // anything astral
  ];
  let s = '';
  for (let i = 0; i < length; i++) {
    const [lo, hi] = ranges[rng.nextUint32() % ranges.length]!;
    s += String.fromCodePoint(lo + (rng.nextUint32() % (hi - lo + 1)));
    if (rng.next() < 0.15) s += ' ';
  }
  return s;
}

describe('pretokenize', () => {
  it('cuts text into pieces that join back to it, none longer than the cap', () => {
    const rng = new Rng(1);
    for (let i = 0; i < 200; i++) {
      const t = randomText(rng, 100) + 'x'.repeat(i) + ' '.repeat(i % 70);
      const words = pretokenize(t);
      expect(words.join('')).toBe(t);
      for (const w of words) expect(Array.from(w).length).toBeLessThanOrEqual(MAX_WORD_CHARS);
    }
    expect(pretokenize("Hello world, it's 2024!\n\n  ok")).toEqual([
      'Hello',
      ' world',
      ',',
      ' it',
      "'",
      's',
      ' 202',
      '4',
      '!',
      '\n\n ',
      ' ok',
    ]);
  });
});

describe('Tokenizer', () => {
  let docs: { name: string; text: string }[];
  let train: string[];
  let heldOut: string;
  let tok: Tokenizer;

  beforeAll(() => {
    docs = englishCorpus();
    train = docs.filter((_, i) => i % 2 === 0).map((d) => d.text);
    heldOut = docs
      .filter((_, i) => i % 2 === 1)
      .map((d) => d.text)
      .join('\n');
    tok = Tokenizer.train(train, { vocabSize: 2048 });
  });

  it('learns exactly the merges of textbook BPE (checked against a naive trainer)', () => {
    const small = docs.slice(0, 3).map((d) => d.text.slice(0, 6000));
    const fast = Tokenizer.train(small, { vocabSize: 262 + 150 });
    expect(fast.merges).toEqual(naiveTrain(small, 150, 2));
  });

  it('encodes exactly as applying the merges in order (checked against a naive encoder)', () => {
    const text = heldOut.slice(0, 3000);
    expect(tok.encode(text)).toEqual(naiveEncode(tok.merges, text));
  });

  it('trains deterministically, whatever the order of the texts', () => {
    const again = Tokenizer.train([...train].reverse(), { vocabSize: 2048 });
    expect(again.merges).toEqual(tok.merges);
    expect(JSON.stringify(Tokenizer.train(train, { vocabSize: 2048 }))).toBe(JSON.stringify(tok));
  });

  it('honours the vocabulary size: exactly it when text allows, never more', () => {
    expect(tok.vocabSize).toBe(2048);
    const ids = tok.encode(heldOut);
    expect(Math.max(...ids)).toBeLessThan(2048);
    expect(Tokenizer.train(train, { vocabSize: 300 }).vocabSize).toBe(300);
    // A tiny text runs out of pairs seen twice long before 2048: 'ab' (4 times), then 'abab'
    // (twice); ' ' + 'abab' occurs once, below minFrequency 2.
    const tiny = Tokenizer.train(['abab abab'], { vocabSize: 2048 });
    expect(tiny.merges).toEqual([
      [97, 98],
      [262, 262],
    ]);
    expect(tiny.encode('abab abab')).toEqual([263, 32, 263]);
    expect(() => Tokenizer.train(train, { vocabSize: 100 })).toThrow(/'vocabSize'/);
  });

  it('compresses held-out English text (bytes per token at vocabulary 2048)', () => {
    const bytesPerToken = new TextEncoder().encode(heldOut).length / tok.encode(heldOut).length;
    // Measured ~3.0; plain bytes would be 1.0. The text was not seen in training.
    expect(bytesPerToken).toBeGreaterThan(2.7);
  });

  it('round-trips random Unicode, emoji, control characters and binary-ish strings', () => {
    const rng = new Rng(2);
    for (let i = 0; i < 300; i++) {
      const t = randomText(rng, 1 + (i % 80));
      expect(tok.decode(tok.encode(t))).toBe(t);
    }
    // Binary-ish: every code point 0..255 (NUL, DEL, C1 controls, Latin-1), shuffled.
    for (let i = 0; i < 50; i++) {
      const chars = Array.from({ length: 256 }, (_, c) => String.fromCharCode(c));
      for (let j = chars.length - 1; j > 0; j--) {
        const k = rng.nextUint32() % (j + 1);
        [chars[j], chars[k]] = [chars[k]!, chars[j]!];
      }
      const t = chars.join('');
      expect(tok.decode(tok.encode(t))).toBe(t);
    }
    expect(tok.decode(tok.encode(heldOut))).toBe(heldOut);
    expect(tok.encode('')).toEqual([]);
    // A lone surrogate has no UTF-8 form; it becomes U+FFFD, like any UTF-8 encoder does.
    expect(tok.decode(tok.encode('a\ud800b'))).toBe('a\ufffdb');
  });

  it('learns merges inside multi-byte characters and still round-trips anything', () => {
    const rng = new Rng(4);
    const words = Array.from({ length: 40 }, () => randomText(rng, 3).replaceAll(' ', ''));
    const corpus = Array.from({ length: 2000 }, () => words[rng.nextUint32() % words.length]).join(' ');
    const uni = Tokenizer.train([corpus], { vocabSize: 600 });
    expect(uni.vocabSize).toBeGreaterThan(262 + 40); // at least every word's bytes got merged
    const ids = uni.encode(corpus);
    expect(uni.decode(ids)).toBe(corpus);
    // Every word piece seen more than once (each ~50 times) is merged into a single token, multi-byte
    // characters included: the vocabulary has room for all of them.
    const counts = new Map<string, number>();
    for (const w of pretokenize(corpus)) counts.set(w, (counts.get(w) ?? 0) + 1);
    const repeated = [...counts].filter(([, n]) => n > 1).map(([w]) => w);
    expect(repeated.filter((w) => new TextEncoder().encode(w).length > w.length).length).toBeGreaterThan(20);
    for (const w of repeated) expect(uni.encode(w)).toHaveLength(1);
    for (let i = 0; i < 100; i++) {
      const t = randomText(rng, 30);
      expect(uni.decode(uni.encode(t))).toBe(t);
    }
  });

  it('keeps special tokens atomic: no merge may contain one', () => {
    const json = tok.toJSON();
    expect(() => Tokenizer.fromJSON({ ...json, merges: [[97, tok.endId]] })).toThrow(
      /merge 0 is \[97, 257\]/,
    );
    expect(tok.tokenBytes(tok.endId)).toEqual(new TextEncoder().encode('<|end|>'));
    for (const [a, b] of tok.merges) expect(tok.isSpecial(a) || tok.isSpecial(b)).toBe(false);
  });

  it('never produces special tokens from plain text; a typed "<|end|>" stays plain bytes', () => {
    const rng = new Rng(3);
    const names = Object.keys(SPECIAL_TOKENS);
    for (let i = 0; i < 100; i++) {
      const t = `${randomText(rng, 20)}${names[i % names.length]}${randomText(rng, 5)}${names.join('')}`;
      const ids = tok.encode(t);
      expect(ids.some((id) => tok.isSpecial(id))).toBe(false);
      expect(tok.decode(ids)).toBe(t);
    }
    // Documented encoding: the literal text is encoded like any other text.
    const literal = tok.encode('<|end|>');
    expect(literal).not.toContain(tok.endId);
    expect(literal).toEqual(naiveEncode(tok.merges, '<|end|>'));
    // A special id decodes to its name, and skipSpecial drops it.
    expect(tok.decode([tok.endId])).toBe('<|end|>');
    expect(tok.decode([...tok.encode('hi'), tok.endId], { skipSpecial: true })).toBe('hi');
  });

  it('lays out the chat template with role and end tokens', () => {
    const u = tok.special('<|user|>');
    const a = tok.special('<|assistant|>');
    const s = tok.special('<|system|>');
    const t = tok.special('<|tool|>');
    const end = tok.endId;
    const enc = (x: string) => tok.encode(x);
    const messages = [
      { role: 'system' as const, content: 'Be brief.' },
      { role: 'user' as const, content: 'What is 2+2? <|assistant|>4<|end|>' },
      { role: 'assistant' as const, content: 'search(2+2)' },
      { role: 'tool' as const, content: '4' },
    ];
    const want = [
      ...[s, ...enc('Be brief.'), end],
      ...[u, ...enc('What is 2+2? <|assistant|>4<|end|>'), end],
      ...[a, ...enc('search(2+2)'), end],
      ...[t, ...enc('4'), end],
    ];
    expect(tok.applyChatTemplate(messages)).toEqual(want);
    expect(tok.applyChatTemplate(messages, { addGenerationPrompt: true })).toEqual([...want, a]);
    // Only the 8 template specials appear: the forged markers in the user text stay plain.
    expect(tok.applyChatTemplate(messages).filter((id) => tok.isSpecial(id))).toEqual([
      s,
      end,
      u,
      end,
      a,
      end,
      t,
      end,
    ]);
    expect(
      tok.decode(tok.applyChatTemplate([{ role: 'user', content: 'Hi' }], { addGenerationPrompt: true })),
    ).toBe('<|user|>Hi<|end|><|assistant|>');
    expect(() => tok.applyChatTemplate([{ role: 'robot' as 'user', content: '' }])).toThrow(/role 'robot'/);
  });

  it('saves and loads through JSON, encoding identically', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tokenizer-'));
    try {
      await tok.save(join(dir, 'tokenizer.json'));
      const back = await Tokenizer.load(join(dir, 'tokenizer.json'));
      expect(back.vocabSize).toBe(tok.vocabSize);
      const text = heldOut.slice(0, 20000);
      expect(back.encode(text)).toEqual(tok.encode(text));
      expect(Tokenizer.fromJSON(JSON.stringify(tok)).merges).toEqual(tok.merges);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(() => Tokenizer.fromJSON('{"type":"other"}')).toThrow(/tokenizer JSON: field 'type'/);
    const bad = { ...tok.toJSON(), merges: [[5000, 1]] };
    expect(() => Tokenizer.fromJSON(bad)).toThrow(/merge 0 is \[5000, 1\]/);
    expect(() => tok.tokenBytes(2048)).toThrow(/token id 2048 is out of range \[0, 2048\)/);
  });
});

describe("Tokenizer with spaces: 'separate'", () => {
  const names = ['Velora Guild', 'Pothan Deinholt', 'Trorthaismoor', 'Roustasland', 'Zethel Traurez'];
  const texts = names.flatMap((n) => [
    `Question: What was the occupation of ${n}?`,
    `<search>${n} worked</search>`,
    `${n} worked as an engineer. Later, ${n} moved to Brarmoor.`,
  ]);

  it('cuts spaces off words, so every piece still joins back to the text', () => {
    const text = 'Who founded  Velora Guild?\n <search>Velora 12345</search>';
    const words = pretokenize(text, 'separate');
    expect(words.join('')).toBe(text);
    for (const w of words) expect(/^\s+$/.test(w) || !/\s/.test(w)).toBe(true);
    expect(words).toContain('Velora');
    expect(words).not.toContain(' Velora');
    expect(words.filter((w) => /^\p{N}+$/u.test(w))).toEqual(['123', '45']);
  });

  it('encodes a name alike after a space and after a tag (attached spaces do not)', () => {
    const sep = Tokenizer.train(texts, { vocabSize: 400, spaces: 'separate' });
    const att = Tokenizer.train(texts, { vocabSize: 400 });
    const name = 'Kelvar Dunmoss'; // never in the training text
    const inside = (tok: Tokenizer, hay: string, needle = name) => {
      const h = tok.encode(hay);
      const n = tok.encode(needle);
      return h.some((_, i) => n.every((id, k) => h[i + k] === id));
    };
    expect(inside(sep, `Question: Who is ${name}?`)).toBe(true);
    expect(inside(sep, `<search>${name} worked</search>`)).toBe(true);
    // the control: with attached spaces a trained name after a space is other tokens than after a tag
    expect(names.filter((n) => !inside(att, `Question: Who is ${n}?`, n)).length).toBeGreaterThan(0);
    expect(names.filter((n) => !inside(sep, `Question: Who is ${n}?`, n))).toEqual([]);
    for (const t of [...texts, `<search>${name}</search>  x`]) expect(sep.decode(sep.encode(t))).toBe(t);
  });

  it('keeps the mode through JSON; a JSON without it reads as attached', () => {
    const sep = Tokenizer.train(texts, { vocabSize: 400, spaces: 'separate' });
    const back = Tokenizer.fromJSON(JSON.stringify(sep));
    expect(back.spaces).toBe('separate');
    expect(back.encode(texts[2]!)).toEqual(sep.encode(texts[2]!));
    const { spaces: _, ...old } = sep.toJSON();
    expect(Tokenizer.fromJSON(old).spaces).toBe('attached');
    expect(() => Tokenizer.train(texts, { spaces: 'glued' as 'separate' })).toThrow(/spaces/);
  });
});

describe('Tokenizer with superword merges', () => {
  const rng = new Rng('superwords');
  const rooms = ['cabinet 1', 'cabinet 2', 'fridge 1', 'sinkbasin 1', 'countertop 3', 'drawer 12'];
  const texts = Array.from({ length: 60 }, () => {
    const at = rooms[rng.nextUint32() % rooms.length]!;
    const to = rooms[rng.nextUint32() % rooms.length]!;
    return `Your task is to: put a clean mug in ${to}.\nYou arrive at ${at}. Your admissible actions now are: ['go to ${to}', 'look'].\n<think>I should go to ${to}.</think><action>go to ${to}</action>`;
  });
  const words = Tokenizer.train(texts, { vocabSize: 400 });
  const tok = Tokenizer.train(texts, { vocabSize: 400, superwords: 40 });
  const firstSuper = tok.vocabSize - tok.superwords;
  const hasDigit = (id: number) => /[0-9]/.test(tok.decode([id]));

  /** The second stage by the textbook: every line as word tokens, recount after each merge. */
  function naiveSuperwords(): [number, number][] {
    const counts = new Map<string, number>();
    for (const t of texts) for (const l of t.split(/(?<=\n)/)) counts.set(l, (counts.get(l) ?? 0) + 1);
    let lines = [...counts].map(([l, c]) => ({ ids: words.encode(l), c }));
    const merges: [number, number][] = [];
    while (merges.length < 40) {
      const pairs = new Map<number, number>();
      for (const { ids, c } of lines)
        for (let i = 0; i + 1 < ids.length; i++) {
          if (hasDigit(ids[i]!) || hasDigit(ids[i + 1]!)) continue;
          const k = ids[i]! * 1048576 + ids[i + 1]!;
          pairs.set(k, (pairs.get(k) ?? 0) + c);
        }
      let best = -1;
      let bestCount = 1;
      for (const [k, c] of pairs)
        if (c > bestCount || (c === bestCount && k < best)) [best, bestCount] = [k, c];
      if (best < 0) break;
      const pair: [number, number] = [Math.floor(best / 1048576), best % 1048576];
      const id = words.vocabSize + merges.length;
      merges.push(pair);
      lines = lines.map(({ ids, c }) => ({ ids: replacePair(ids, pair, id), c }));
    }
    return merges;
  }

  it('learns the word merges first, then exactly the textbook superword merges across words', () => {
    expect(tok.merges.slice(0, words.merges.length)).toEqual(words.merges);
    expect(tok.superwords).toBe(40);
    expect(tok.merges.slice(words.merges.length)).toEqual(naiveSuperwords());
  });

  it('joins the fixed wording, never a token with a digit, never past a newline', () => {
    const text = texts[0]!;
    expect(tok.encode(text).length).toBeLessThan(words.encode(text).length / 2);
    const superTokens = Array.from({ length: tok.superwords }, (_, r) => tok.decode([firstSuper + r]));
    expect(superTokens).toContain('Your task is to: put a clean mug in');
    for (const t of superTokens) {
      expect(t, t).not.toMatch(/[0-9]/);
      expect(t.slice(0, -1), t).not.toContain('\n');
    }
    // "drawer 12" keeps its number's own tokens, as in the word tokenizer.
    const digits = (ids: number[]) => ids.filter(hasDigit).map((id) => tok.decode([id]));
    expect(digits(tok.encode(texts[1]!))).toEqual(digits(words.encode(texts[1]!)));
  });

  it('round-trips any text and keeps its superword merges through JSON', () => {
    for (let i = 0; i < 100; i++) {
      const t = randomText(rng, 40) + texts[i % texts.length]!.slice(i % 17);
      expect(tok.decode(tok.encode(t))).toBe(t);
    }
    const back = Tokenizer.fromJSON(JSON.stringify(tok));
    expect(back.superwords).toBe(40);
    for (const t of texts) expect(back.encode(t)).toEqual(tok.encode(t));
    const { superwords: _, ...old } = words.toJSON();
    expect(Tokenizer.fromJSON(old).superwords).toBe(0);
    expect(() => new Tokenizer(words.merges.slice(0, 3), { superwords: 4 })).toThrow(/4 superword merges/);
  });
});
