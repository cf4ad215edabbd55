// The shared pieces that the estimators' hand-worked tests only reach indirectly.
import { describe, expect, it } from 'vitest';
import { anchorKey, groupPairs } from '../../src/credit/shared.ts';

describe('groupPairs', () => {
  it('numbers distinct pairs by first, then first appearance; skips negative firsts', () => {
    const first = Int32Array.from([1, 0, 1, -1, 0, 1]);
    const second = Int32Array.from([5, 5, 5, 5, 2, 3]);
    const out = new Int32Array(6);
    // bucket 0: rows 1 (0,5) -> 0, 4 (0,2) -> 1; bucket 1: rows 0, 2 (1,5) -> 2, row 5 (1,3) -> 3
    expect(groupPairs(first, second, 2, 6, out)).toBe(4);
    expect(Array.from(out)).toEqual([2, 0, 2, -1, 1, 3]);
  });

  it('may write over its second input', () => {
    const second = Int32Array.from([0, 1, 0]);
    expect(groupPairs(Int32Array.from([0, 0, 0]), second, 1, 2, second)).toBe(2);
    expect(Array.from(second)).toEqual([0, 1, 0]);
  });
});

describe('anchorKey', () => {
  it('is equal for deeply equal anchors and never mixes text with structure', () => {
    expect(anchorKey({ b: [1, { c: 2, d: null }], a: 'x' })).toBe(
      anchorKey({ a: 'x', b: [1, { d: null, c: 2 }] }),
    );
    expect(anchorKey({ a: 1 })).not.toBe(anchorKey('{"a":1}'));
    expect(anchorKey(`\u0000${'{"a":1}'}`)).not.toBe(anchorKey({ a: 1 }));
    expect(anchorKey([1, 2])).not.toBe(anchorKey([2, 1]));
  });
});
