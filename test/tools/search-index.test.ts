import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bestPassage, type SearchDocument, SearchIndex, searchTerms } from '../../src/tools/search/index.ts';

const docs: SearchDocument[] = [
  {
    id: 'a',
    title: 'Velora Harbor',
    text: 'Velora Harbor is a port town. It was founded in 1802 by Oskar Brint.',
  },
  {
    id: 'b',
    title: 'Oskar Brint',
    text: 'Oskar Brint was a sailor. Oskar Brint was born in Tamsel. He died at sea.',
  },
  { id: 'c', title: 'Tamsel', text: 'Tamsel is a village on a river. The river floods in spring.' },
  {
    id: 'd',
    title: 'Velora Bay',
    text: 'Velora Bay is a bay near a cape. Ships anchor in the bay in winter.',
  },
  {
    id: 'e',
    title: 'Mirel Cape',
    text: 'Mirel Cape has a lighthouse and a small harbor for boats and ships.',
  },
];

/**
 * Okapi BM25 written from the textbook formula, independently of MiniSearch; a field's length is its
 * number of distinct terms, as MiniSearch measures it.
 */
function referenceScore(
  all: SearchDocument[],
  doc: SearchDocument,
  query: string,
  k1 = 1.2,
  b = 0.75,
  titleBoost = 2,
) {
  const q = searchTerms(query);
  let total = 0;
  for (const [field, boost] of [
    ['title', titleBoost],
    ['text', 1],
  ] as const) {
    const lens = all.map((d) => new Set(searchTerms(d[field])).size);
    const avg = lens.reduce((s, x) => s + x, 0) / all.length;
    const terms = searchTerms(doc[field]);
    for (const t of new Set(q)) {
      const tf = terms.filter((w) => w === t).length;
      if (tf === 0) continue;
      const n = all.filter((d) => searchTerms(d[field]).includes(t)).length;
      const idf = Math.log(1 + (all.length - n + 0.5) / (n + 0.5));
      const len = new Set(terms).size;
      total += boost * idf * ((tf * (k1 + 1)) / (tf + k1 * (1 - b + (b * len) / avg)));
    }
  }
  return total;
}

describe('SearchIndex', () => {
  const index = SearchIndex.build(docs);

  it.each([true, false])('scores with plain BM25 (k1 1.2, b 0.75, title boost 2), direct %s', (direct) => {
    const index = SearchIndex.build(docs, { direct });
    for (const query of ['Oskar Brint born', 'harbor ships', 'Velora']) {
      const hits = index.search(query, 5);
      expect(hits.length).toBeGreaterThan(0);
      for (const h of hits) {
        const doc = docs.find((d) => d.id === h.id)!;
        expect(h.score).toBeCloseTo(referenceScore(docs, doc, query), 6);
      }
      // Best first.
      for (let i = 1; i < hits.length; i++) expect(hits[i - 1]!.score).toBeGreaterThanOrEqual(hits[i]!.score);
    }
  });

  it('ranks the document about an entity first and returns its best passage', () => {
    const [top] = index.search('where was Oskar Brint born?', 3);
    expect(top!.id).toBe('b');
    expect(top!.title).toBe('Oskar Brint');
    expect(top!.snippet).toContain('born in Tamsel');
    expect(index.search('who founded Velora Harbor', 1)[0]!.snippet).toContain(
      'founded in 1802 by Oskar Brint',
    );
  });

  it('gives [] for an empty or stop-word query and rejects a bad k', () => {
    expect(index.search('', 3)).toEqual([]);
    expect(index.search('the of a', 3)).toEqual([]);
    expect(() => index.search('harbor', 0)).toThrow(/k must be a positive integer/);
  });

  it('cuts snippets to snippetChars', () => {
    const long = { id: 'x', title: 'Long', text: `${'word '.repeat(200)}needle.` };
    const small = SearchIndex.build([long, ...docs], { snippetChars: 60 });
    const [hit] = small.search('needle', 1);
    expect(hit!.snippet.length).toBeLessThanOrEqual(60);
    expect(bestPassage('One. Two needle here. Three.', ['needle'], 200)).toBe('Two needle here. Three.');
  });

  it('scores from the posting lists exactly as through MiniSearch search, on a larger corpus', () => {
    // Zipf-like word frequencies, so that queries mix rare and very common terms.
    let state = 12345;
    const rand = () => {
      state = (state * 1103515245 + 12345) % 2147483648;
      return state / 2147483648;
    };
    const vocab = Array.from({ length: 3000 }, (_, i) => `w${i.toString(36)}`);
    const word = () => vocab[Math.floor(vocab.length * rand() ** 3)]!;
    const corpus = Array.from({ length: 3000 }, (_, i) => ({
      id: `d${i}`,
      title: `${word()} ${word()}`,
      text: Array.from({ length: 5 + Math.floor(rand() * 60) }, word).join(' '),
    }));
    const fast = SearchIndex.build(corpus);
    const slow = SearchIndex.build(corpus, { direct: false });
    for (let q = 0; q < 300; q++) {
      const query = Array.from({ length: 1 + Math.floor(rand() * 4) }, word).join(' ');
      const a = fast.search(query, 5);
      const b = slow.search(query, 5);
      expect(a.map((h) => h.score)).toEqual(b.map((h) => expect.closeTo(h.score, 9)));
      // Same documents, up to the order of exact ties.
      const key = (hs: typeof a) => hs.map((h) => `${h.score.toFixed(9)}:${h.id}`).sort();
      expect(key(a)).toEqual(key(b));
    }
  });

  it('rejects duplicate ids', () => {
    expect(() => SearchIndex.build([docs[0]!, docs[0]!])).toThrow(/duplicate document id "a"/);
  });

  it('round-trips through JSON and a file with identical results', () => {
    const dir = mkdtempSync(join(tmpdir(), 'search-index-'));
    try {
      const file = join(dir, 'index.json');
      index.save(file);
      const loaded = SearchIndex.load(file);
      expect(loaded.size).toBe(docs.length);
      for (const q of ['Oskar Brint born', 'harbor ships', 'river']) {
        // Loading may reorder the fields' postings, so sums can differ in the last bit.
        const want = index.search(q, 5).map((h) => ({ ...h, score: expect.closeTo(h.score, 9) }));
        expect(loaded.search(q, 5)).toEqual(want);
      }
      expect(loaded.get('c')).toEqual(docs[2]);
      writeFileSync(file, JSON.stringify({ format: 'other' }));
      expect(() => SearchIndex.load(file)).toThrow(/not a stepwise search index: field 'format'/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
