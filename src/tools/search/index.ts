/**
 * A BM25 full-text index over small documents: the core of the `web_search` tool and of the
 * search QA env. Built once (`SearchIndex.build`), saved as JSON (`save` / `SearchIndex.load`)
 * and queried with `search(query, k)`.
 *
 * Ranking is MiniSearch's scorer set to plain Okapi BM25. MiniSearch scores BM25+ by default
 * (a floor `d` = 0.5 added to every matching term's saturation); we set `d` = 0 so the score
 * is the textbook BM25 with k1 = 1.2, b = 0.75 (the usual defaults, Robertson & Zaragoza 2009).
 * MiniSearch scores each field on its own and sums the fields, the title's score multiplied by
 * `titleBoost`; with one field this is exactly BM25 (MiniSearch's extra coordination factor, the
 * number of matched query terms, is divided out in `search`). One deviation is MiniSearch's: a
 * field's length is counted in distinct terms, not tokens; for short encyclopedia paragraphs the
 * two differ little. Terms are lower-cased words and numbers,
 * without a short list of English stop words so that "the founder of X" ranks on "founder" and "X".
 */
import { readFileSync, writeFileSync } from 'node:fs';
import MiniSearch, { type AsPlainObject } from 'minisearch';
import { z } from 'zod';
import { parseOrThrow } from '../../util/zod.ts';

/** One document to index. `id` must be unique in an index. */
export interface SearchDocument {
  id: string;
  title: string;
  text: string;
}

/** One ranked result. `snippet` is the document's best-matching passage, cut to `snippetChars`. */
export interface SearchHit {
  id: string;
  title: string;
  snippet: string;
  score: number;
}

export const SearchIndexOptions = z.object({
  /** BM25 term-frequency saturation. */
  k1: z.number().positive().default(1.2),
  /** BM25 length normalization (0 = none, 1 = full). */
  b: z.number().min(0).max(1).default(0.75),
  /** Multiplier of the title field's BM25 score (entity names live in titles). */
  titleBoost: z.number().positive().default(2),
  /** Longest snippet, in characters. */
  snippetChars: z.number().int().min(40).default(300),
  /** Drop common English function words from documents and queries. */
  stopWords: z.boolean().default(true),
  /** Score from MiniSearch's posting lists directly (fast); false uses its search (same results). */
  direct: z.boolean().default(true),
});
export type SearchIndexOptions = z.infer<typeof SearchIndexOptions>;

/** The JSON form of an index, as `toJSON` writes it and `fromJSON` reads it. */
export interface SerializedSearchIndex {
  format: 'stepwise-search-index';
  version: 1;
  options: SearchIndexOptions;
  minisearch: AsPlainObject;
}

const SerializedHeader = z.object({
  format: z.literal('stepwise-search-index'),
  version: z.literal(1),
  options: SearchIndexOptions,
  minisearch: z.object({ documentCount: z.number() }).passthrough(),
});

// Function words only: content words such as "born", "founded" or "first" must stay searchable.
const STOP_WORDS = new Set(
  (
    'a an and are as at be been but by did do does for from had has have he her his how i in into is it its ' +
    'of on or she than that the their them then there these they this to was were what when where which ' +
    'who whom whose why will with'
  ).split(' '),
);

const WORD = /[\p{L}\p{N}]+/gu;

const FIELDS = ['title', 'text'] as const;

interface TermWeights {
  docs: Int32Array;
  weights: Float64Array;
}

interface Scored {
  id: string;
  title: string;
  text: string;
  score: number;
}

/** Lower-cased words and numbers of `text`, stop words removed when `stopWords` is set. */
export function searchTerms(text: string, stopWords = true): string[] {
  const words = text.toLowerCase().match(WORD) ?? [];
  return stopWords ? words.filter((w) => !STOP_WORDS.has(w)) : words;
}

export class SearchIndex {
  readonly options: SearchIndexOptions;
  private readonly mini: MiniSearch<SearchDocument>;
  private accumulator = new Float64Array(0);
  private readonly termWeights = new Map<string, TermWeights[]>();

  private constructor(mini: MiniSearch<SearchDocument>, options: SearchIndexOptions) {
    this.mini = mini;
    this.options = options;
  }

  /** Index `docs`. Throws on a duplicate or empty id, naming it. */
  static build(docs: Iterable<SearchDocument>, options: Partial<SearchIndexOptions> = {}): SearchIndex {
    const opts = SearchIndexOptions.parse(options);
    const mini = new MiniSearch<SearchDocument>(miniOptions(opts));
    const seen = new Set<string>();
    let i = 0;
    for (const doc of docs) {
      if (typeof doc.id !== 'string' || doc.id === '') {
        throw new Error(`SearchIndex.build: document ${i} has no id (expected a non-empty string)`);
      }
      if (seen.has(doc.id)) throw new Error(`SearchIndex.build: duplicate document id "${doc.id}"`);
      seen.add(doc.id);
      mini.add({ id: doc.id, title: String(doc.title ?? ''), text: String(doc.text ?? '') });
      i++;
    }
    return new SearchIndex(mini, opts);
  }

  /** Number of indexed documents. */
  get size(): number {
    return this.mini.documentCount;
  }

  /** The `k` best documents for `query`, best first. An empty or all-stop-word query gives []. */
  search(query: string, k = 5): SearchHit[] {
    if (!Number.isInteger(k) || k < 1)
      throw new Error(`SearchIndex.search: k must be a positive integer, got ${k}`);
    const terms = [...new Set(searchTerms(query, this.options.stopWords))];
    if (terms.length === 0) return [];
    const internals = this.options.direct ? postings(this.mini) : undefined;
    const top = internals ? this.scoreDirect(internals, terms, k) : this.scoreWithMiniSearch(terms, k);
    return top.map((r) => ({
      id: r.id,
      title: r.title,
      snippet: bestPassage(r.text, terms, this.options.snippetChars),
      score: r.score,
    }));
  }

  /**
   * Top k through MiniSearch's own search. It multiplies each score by the number of query terms
   * the document matched (a coordination factor); dividing that out leaves plain BM25.
   */
  private scoreWithMiniSearch(terms: string[], k: number): Scored[] {
    const top: Scored[] = [];
    for (const r of this.mini.search(terms.join(' '))) {
      const score = r.score / Math.max(1, r.queryTerms.length);
      insertTop(top, k, { id: String(r.id), title: r.title as string, text: r.text as string, score });
    }
    return top;
  }

  /**
   * The same BM25 scores, summed straight from MiniSearch's posting lists. MiniSearch's search
   * builds a result object for every matching document and sorts them all, which costs ~100 ms
   * when a query holds a term in a third of 50k documents ("born"). The index never changes
   * after build, so each term's per-document BM25 weights are computed once, on its first query,
   * into typed arrays; a query then adds them up and keeps the top k.
   */
  private scoreDirect(ix: Postings, terms: string[], k: number): Scored[] {
    if (this.accumulator.length < ix.nextId) this.accumulator = new Float64Array(ix.nextId);
    const acc = this.accumulator;
    const touched: number[] = [];
    for (const term of terms) {
      for (const { docs, weights } of this.weights(ix, term)) {
        for (let i = 0; i < docs.length; i++) {
          const doc = docs[i]!;
          if (acc[doc] === 0) touched.push(doc);
          acc[doc]! += weights[i]!;
        }
      }
    }
    const best: { doc: number; score: number }[] = [];
    for (const doc of touched) {
      const score = acc[doc]!;
      acc[doc] = 0;
      if (best.length === k && score <= best[k - 1]!.score) continue;
      let at = best.length;
      while (at > 0 && best[at - 1]!.score < score) at--;
      best.splice(at, 0, { doc, score });
      if (best.length > k) best.pop();
    }
    return best.map(({ doc, score }) => {
      const stored = ix.storedFields.get(doc)!;
      return {
        id: String(ix.documentIds.get(doc)),
        title: stored.title as string,
        text: stored.text as string,
        score,
      };
    });
  }

  /** Per field holding `term`: its documents and each one's BM25 weight for the term. */
  private weights(ix: Postings, term: string): TermWeights[] {
    let cached = this.termWeights.get(term);
    if (cached) return cached;
    const { k1, b, titleBoost } = this.options;
    const n = ix.documentCount;
    cached = [];
    for (const [fieldId, postings] of ix.index.get(term) ?? []) {
      const boost = fieldId === ix.titleField ? titleBoost : 1;
      const idf = Math.log(1 + (n - postings.size + 0.5) / (postings.size + 0.5));
      const avg = ix.avgFieldLength[fieldId]!;
      const docs = new Int32Array(postings.size);
      const weights = new Float64Array(postings.size);
      let i = 0;
      for (const [doc, tf] of postings) {
        const length = ix.fieldLength.get(doc)![fieldId]!;
        docs[i] = doc;
        weights[i++] = (boost * idf * (tf * (k1 + 1))) / (tf + k1 * (1 - b + (b * length) / avg));
      }
      cached.push({ docs, weights });
    }
    this.termWeights.set(term, cached);
    return cached;
  }

  /** The stored document with this id, if any. */
  get(id: string): SearchDocument | undefined {
    const stored = this.mini.getStoredFields(id);
    if (!stored) return undefined;
    return { id, title: stored.title as string, text: stored.text as string };
  }

  toJSON(): SerializedSearchIndex {
    return {
      format: 'stepwise-search-index',
      version: 1,
      options: this.options,
      minisearch: this.mini.toJSON(),
    };
  }

  static fromJSON(json: unknown): SearchIndex {
    const header = parseOrThrow(SerializedHeader, json, 'SearchIndex.fromJSON: not a stepwise search index');
    const opts = header.options;
    const mini = MiniSearch.loadJS<SearchDocument>(
      (json as SerializedSearchIndex).minisearch,
      miniOptions(opts),
    );
    return new SearchIndex(mini, opts);
  }

  /** Write the index as JSON to `file`. */
  save(file: string): void {
    writeFileSync(file, JSON.stringify(this));
  }

  /** Read an index written by `save`. */
  static load(file: string): SearchIndex {
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(file, 'utf8'));
    } catch (err) {
      throw new Error(`SearchIndex.load: cannot read ${file}: ${(err as Error).message}`);
    }
    return SearchIndex.fromJSON(json);
  }
}

/** Keeps `top` the best `k` entries, best first. */
function insertTop(top: Scored[], k: number, entry: Scored): void {
  if (top.length === k && entry.score <= top[k - 1]!.score) return;
  let at = top.length;
  while (at > 0 && top[at - 1]!.score < entry.score) at--;
  top.splice(at, 0, entry);
  if (top.length > k) top.pop();
}

/** The parts of a MiniSearch index that BM25 needs (its protected fields, stable across 7.x). */
interface Postings {
  index: { get(term: string): Map<number, Map<number, number>> | undefined };
  documentCount: number;
  nextId: number;
  fieldLength: Map<number, number[]>;
  avgFieldLength: number[];
  documentIds: Map<number, unknown>;
  storedFields: Map<number, Record<string, unknown>>;
  titleField: number;
}

/** MiniSearch's posting lists, or undefined if this MiniSearch version lays them out differently. */
function postings(mini: MiniSearch<SearchDocument>): Postings | undefined {
  const m = mini as unknown as Record<string, unknown>;
  const index = m._index as Postings['index'] | undefined;
  const fieldIds = m._fieldIds as Record<string, number> | undefined;
  if (!index || typeof index.get !== 'function' || !fieldIds || !(m._fieldLength instanceof Map))
    return undefined;
  return {
    index,
    documentCount: m._documentCount as number,
    nextId: m._nextId as number,
    fieldLength: m._fieldLength as Map<number, number[]>,
    avgFieldLength: m._avgFieldLength as number[],
    documentIds: m._documentIds as Map<number, unknown>,
    storedFields: m._storedFields as Map<number, Record<string, unknown>>,
    titleField: fieldIds.title!,
  };
}

function miniOptions(opts: SearchIndexOptions) {
  return {
    fields: [...FIELDS],
    storeFields: [...FIELDS],
    tokenize: (text: string) => searchTerms(text, opts.stopWords),
    // searchTerms already lower-cases; identity keeps MiniSearch from re-processing.
    processTerm: (term: string) => term,
    searchOptions: {
      boost: { title: opts.titleBoost },
      bm25: { k: opts.k1, b: opts.b, d: 0 },
    },
  };
}

/**
 * The passage of `text` that shares the most distinct terms with the query: sentences are scored
 * by distinct query terms (ties: more occurrences, then earlier), and the best one is extended
 * with the following sentences up to `maxChars`. Hand-written because MiniSearch only ranks.
 */
export function bestPassage(text: string, queryTerms: string[], maxChars: number): string {
  const sentences =
    text
      .match(/[^.!?\n]+(?:[.!?]+|$)/g)
      ?.map((s) => s.trim())
      .filter(Boolean) ?? [];
  if (sentences.length === 0) return cut(text.trim(), maxChars);
  const wanted = new Set(queryTerms);
  let best = 0;
  let bestKey = [-1, -1];
  sentences.forEach((s, i) => {
    const words = searchTerms(s, false).filter((w) => wanted.has(w));
    const key = [new Set(words).size, words.length];
    if (key[0]! > bestKey[0]! || (key[0] === bestKey[0] && key[1]! > bestKey[1]!)) {
      best = i;
      bestKey = key;
    }
  });
  let passage = sentences[best]!;
  for (let i = best + 1; i < sentences.length; i++) {
    const next = `${passage} ${sentences[i]}`;
    if (next.length > maxChars) break;
    passage = next;
  }
  return cut(passage, maxChars);
}

function cut(s: string, maxChars: number): string {
  return s.length <= maxChars ? s : `${s.slice(0, maxChars - 1).trimEnd()}…`;
}
