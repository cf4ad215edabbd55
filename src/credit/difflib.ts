/**
 * Python's `difflib.SequenceMatcher(None, a, b).ratio()`, reimplemented.
 *
 * Why by hand: GiGPO's similarity step groups are defined by this exact number (the reference
 * implementation calls difflib), and no npm package reproduces difflib's autojunk heuristic and
 * tie-breaking. Every branch below mirrors CPython's Lib/difflib.py so that results are equal to
 * the last bit; test/credit/difflib.test.ts checks them against ratios produced by python3.
 *
 * Python indexes strings by code point while JavaScript strings are UTF-16, so both strings are
 * first turned into arrays of code points (an astral character such as an emoji is one element).
 */

/** Code points of a string (Python's view of it). */
function codePoints(s: string): Int32Array {
  const out = new Int32Array(s.length);
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.codePointAt(i)!;
    out[n++] = c;
    if (c > 0xffff) i++;
  }
  return n === s.length ? out : out.slice(0, n);
}

/**
 * The matcher for one pair; `b` is indexed once (b2j) and then searched recursively.
 * With `isjunk = None`, the only "junk" is autojunk's popular set, and popular elements are only
 * removed from b2j: they still extend a match at its ends (CPython's `bjunk` stays empty).
 */
class SequenceMatcher {
  private readonly a: Int32Array;
  private readonly b: Int32Array;
  /** element of b -> ascending positions in b (popular elements removed). */
  private readonly b2j = new Map<number, number[]>();
  // j2len of CPython's find_longest_match as two stamped arrays (previous row / current row)
  // instead of a fresh dict per row: an entry is valid only if its stamp is the row's stamp.
  private lenOld: Int32Array;
  private lenNew: Int32Array;
  private stampOld: Float64Array;
  private stampNew: Float64Array;
  private stamp = 0;

  constructor(a: Int32Array, b: Int32Array) {
    this.a = a;
    this.b = b;
    for (let j = 0; j < b.length; j++) {
      const list = this.b2j.get(b[j]);
      if (list) list.push(j);
      else this.b2j.set(b[j], [j]);
    }
    // autojunk: in a b of 200+ elements, an element occurring more than 1% + 1 times is popular.
    const n = b.length;
    if (n >= 200) {
      const ntest = Math.floor(n / 100) + 1;
      for (const [elt, idxs] of this.b2j) if (idxs.length > ntest) this.b2j.delete(elt);
    }
    this.lenOld = new Int32Array(n + 1);
    this.lenNew = new Int32Array(n + 1);
    this.stampOld = new Float64Array(n + 1).fill(-1);
    this.stampNew = new Float64Array(n + 1).fill(-1);
  }

  /** Longest matching block in a[alo:ahi] and b[blo:bhi]: [i, j, size], earliest i then earliest j. */
  findLongestMatch(alo: number, ahi: number, blo: number, bhi: number): [number, number, number] {
    const { a, b, b2j } = this;
    let besti = alo;
    let bestj = blo;
    let bestsize = 0;
    // A new call must not see the last row of the previous call: skip a stamp.
    this.stamp += 2;
    for (let i = alo; i < ahi; i++) {
      const prevStamp = this.stamp;
      const rowStamp = ++this.stamp;
      // swap rows: what was "new" in the previous i is "old" now
      const tl = this.lenOld;
      this.lenOld = this.lenNew;
      this.lenNew = tl;
      const ts = this.stampOld;
      this.stampOld = this.stampNew;
      this.stampNew = ts;
      const { lenOld, lenNew, stampOld, stampNew } = this;
      const js = b2j.get(a[i]);
      if (js === undefined) continue;
      for (let x = 0; x < js.length; x++) {
        const j = js[x];
        if (j < blo) continue;
        if (j >= bhi) break;
        // positions are shifted by one so that j - 1 = -1 lands on index 0
        const k = (j > 0 && stampOld[j] === prevStamp ? lenOld[j] : 0) + 1;
        lenNew[j + 1] = k;
        stampNew[j + 1] = rowStamp;
        if (k > bestsize) {
          besti = i - k + 1;
          bestj = j - k + 1;
          bestsize = k;
        }
      }
    }
    // Extend the best match by equal elements on each end (popular ones included: bjunk is empty).
    while (besti > alo && bestj > blo && a[besti - 1] === b[bestj - 1]) {
      besti--;
      bestj--;
      bestsize++;
    }
    while (besti + bestsize < ahi && bestj + bestsize < bhi && a[besti + bestsize] === b[bestj + bestsize]) {
      bestsize++;
    }
    return [besti, bestj, bestsize];
  }

  /** Total size of the matching blocks (get_matching_blocks' recursion, as a LIFO queue). */
  matches(): number {
    const queue: Array<[number, number, number, number]> = [[0, this.a.length, 0, this.b.length]];
    let total = 0;
    while (queue.length > 0) {
      const [alo, ahi, blo, bhi] = queue.pop()!;
      const [i, j, k] = this.findLongestMatch(alo, ahi, blo, bhi);
      if (k === 0) continue;
      total += k;
      if (alo < i && blo < j) queue.push([alo, i, blo, j]);
      if (i + k < ahi && j + k < bhi) queue.push([i + k, ahi, j + k, bhi]);
    }
    return total;
  }
}

/**
 * `difflib.SequenceMatcher(None, a, b).ratio()`: `2 * M / (|a| + |b|)` with M the characters in
 * matching blocks (Ratcliff-Obershelp with CPython's autojunk on `b`); 1 for two empty strings.
 */
export function similarityRatio(a: string, b: string): number {
  const ca = codePoints(a);
  const cb = codePoints(b);
  const total = ca.length + cb.length;
  if (total === 0) return 1;
  return (2 * new SequenceMatcher(ca, cb).matches()) / total;
}

/**
 * An upper bound of `similarityRatio` from the lengths alone (difflib's real_quick_ratio), in
 * code points. Computed with the same formula, so `bound < t` proves `ratio < t` exactly.
 */
export function ratioUpperBound(aLength: number, bLength: number): number {
  const total = aLength + bLength;
  return total === 0 ? 1 : (2 * Math.min(aLength, bLength)) / total;
}

/** Length of a string in code points (what Python's len() returns). */
export function codePointLength(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    // a high surrogate followed by a low one is a single code point
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
    n++;
  }
  return n;
}
