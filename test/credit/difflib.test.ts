import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { codePointLength, ratioUpperBound, similarityRatio } from '../../src/credit/difflib.ts';

// Expected ratios come from CPython's difflib (fixtures/make_difflib_fixtures.py), not from this code.
const fixture = JSON.parse(
  readFileSync(new URL('./fixtures/difflib_ratios.json', import.meta.url), 'utf8'),
) as {
  pairs: Array<{ name: string; a: string; b: string; ratio: number }>;
};

describe('similarityRatio equals difflib.SequenceMatcher(None, a, b).ratio()', () => {
  it('has the fixture set the issue names (short, long, repetitive, unicode, empty)', () => {
    const names = fixture.pairs.map((p) => p.name);
    for (const kind of ['empty', 'short', 'long', 'repetitive', 'unicode', 'random']) {
      expect(names.some((n) => n.includes(kind))).toBe(true);
    }
    // at least one b long enough for autojunk
    expect(fixture.pairs.some((p) => codePointLength(p.b) >= 200)).toBe(true);
  });

  for (const p of fixture.pairs) {
    it(`${p.name} (|a|=${codePointLength(p.a)}, |b|=${codePointLength(p.b)})`, () => {
      // exact equality: the same matches give the same double
      expect(similarityRatio(p.a, p.b)).toBe(p.ratio);
      expect(ratioUpperBound(codePointLength(p.a), codePointLength(p.b))).toBeGreaterThanOrEqual(p.ratio);
    });
  }

  it('counts astral characters as one (Python code points)', () => {
    expect(codePointLength('a😀b')).toBe(3);
    // 'x😀' vs 'y😀': one matching code point of 2 + 2 -> 2*1/4
    expect(similarityRatio('x😀', 'y😀')).toBe(0.5);
  });
});
