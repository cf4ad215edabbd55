/**
 * A user's own corpus and questions, read from two JSON Lines files (one JSON object a line;
 * blank lines are skipped), so the search QA env runs on HotpotQA-style data a user has.
 *
 * documents.jsonl, one document a line:
 *   {"id": "d1", "title": "Velora Harbor", "text": "Velora Harbor is a port town. ..."}
 *   id: unique non-empty string; title: string; text: string.
 *
 * questions.jsonl, one question a line:
 *   {"id": "q1", "question": "Who founded Velora Harbor?", "answers": ["Oskar Brint", "Brint"],
 *    "kind": "bridge", "split": "train", "supporting": ["d1"]}
 *   id: string; question: non-empty string; answers: non-empty array of strings (the first is
 *   canonical, the rest aliases); kind: optional string, default "user" (HotpotQA's "type" fits);
 *   split: optional "train" | "valid-seen" | "valid-unseen", default "train";
 *   supporting: optional array of document ids (checked to exist).
 */
import { z } from 'zod';
import { type SearchDocument, SearchIndex, type SearchIndexOptions } from '../../tools/search/index.ts';
import { Rng } from '../../util/random.ts';
import { readJsonl } from '../jsonl.ts';
import { checkKind, SPLITS, type Split } from '../types.ts';
import type { QASource, SearchTask } from './generator.ts';

export const UserDocument = z.object({
  id: z.string().min(1),
  title: z.string(),
  text: z.string(),
});

export const UserQuestion = z.object({
  id: z.string().min(1),
  question: z.string().min(1),
  answers: z.array(z.string()).min(1),
  kind: z.string().min(1).default('user'),
  split: z.enum(SPLITS).default('train'),
  supporting: z.array(z.string()).default([]),
});
export type UserQuestion = z.infer<typeof UserQuestion>;

/** Questions over a user's corpus; `generate(split, seed)` picks among that split's questions. */
export class UserQA implements QASource {
  readonly env = 'search';
  readonly kinds: readonly string[];
  private built: SearchIndex | undefined;
  private readonly bySplit: Record<Split, UserQuestion[]>;

  constructor(
    readonly documents: SearchDocument[],
    readonly questions: UserQuestion[],
    private readonly indexOptions: Partial<SearchIndexOptions> = {},
  ) {
    const ids = new Set(documents.map((d) => d.id));
    for (const q of questions) {
      for (const s of q.supporting) {
        if (!ids.has(s)) throw new Error(`question ${q.id}: supporting document "${s}" is not in the corpus`);
      }
    }
    this.kinds = [...new Set(questions.map((q) => q.kind))];
    this.bySplit = { train: [], 'valid-seen': [], 'valid-unseen': [] };
    for (const q of questions) this.bySplit[q.split].push(q);
  }

  /** Read documents.jsonl and questions.jsonl (formats above). */
  static fromFiles(
    documentsFile: string,
    questionsFile: string,
    indexOptions: Partial<SearchIndexOptions> = {},
  ): UserQA {
    return new UserQA(
      readJsonl(documentsFile, UserDocument),
      readJsonl(questionsFile, UserQuestion),
      indexOptions,
    );
  }

  index(): SearchIndex {
    this.built ??= SearchIndex.build(this.documents, this.indexOptions);
    return this.built;
  }

  generate(split: Split, seed: number, kind?: string): SearchTask {
    let pool = this.bySplit[split];
    if (kind !== undefined) pool = pool.filter((q) => q.kind === checkKind(this.env, this.kinds, kind));
    if (pool.length === 0)
      throw new Error(`user QA: no ${kind ?? ''} questions in split ${split}`.replace('  ', ' '));
    const q = new Rng(`user:${split}:${seed}`).pick(pool);
    return {
      env: this.env,
      id: `search/user/${q.id}`,
      kind: q.kind,
      split,
      seed,
      payload: { question: q.question, answers: q.answers, supporting: q.supporting },
    };
  }
}
