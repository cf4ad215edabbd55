/**
 * Search QA questions (single-hop, bridge, comparison, three-hop) over the generated encyclopedia, and
 * `QASource`.
 */
import { SearchIndex } from '../../tools/search/index.ts';
import { Rng } from '../../util/random.ts';
import { checkKind, type Split, type Task, type TaskGenerator } from '../types.ts';
import {
  type Encyclopedia,
  EncyclopediaConfig,
  type EntitySet,
  generateEncyclopedia,
  slug,
} from './corpus.ts';

export const QUESTION_KINDS = ['single-hop', 'bridge', 'comparison', 'three-hop'] as const;
export type QuestionKind = (typeof QUESTION_KINDS)[number];

/** A search QA task's payload. */
export interface SearchQuestion {
  question: string;
  /** Accepted answers: the canonical one first, then aliases. */
  answers: string[];
  /** Documents holding the facts, in hop order (ids in the corpus). */
  supporting: string[];
  /** The expert's queries, one per hop (absent for a user's questions). */
  queries?: string[];
  /** What the searcher must see on the way: each hop's bridge entity or fact, the answer last. */
  evidence?: string[];
}

export type SearchTask = Task<string, SearchQuestion>;

/** A source of questions over a corpus: the generated encyclopedia or a user's JSONL files. */
export interface QASource extends TaskGenerator<SearchTask> {
  /** The BM25 index over the corpus (built on first use, then shared). */
  index(): SearchIndex;
}

/** The question of a task as the agent sees it (the first observation and anchor). */
export function renderSearchTask(task: SearchTask): string {
  return task.payload.question;
}

const pickTwo = <T>(rng: Rng, items: readonly T[], differ: (a: T, b: T) => boolean): [T, T] => {
  for (;;) {
    const a = rng.pick(items);
    const b = rng.pick(items);
    if (a !== b && differ(a, b)) return [a, b];
  }
};

/**
 * Questions over the generated encyclopedia. A question's entities all come from its split's
 * entity set, so the splits ask about disjoint entities; the corpus holds every split's documents.
 */
export class EncyclopediaQA implements QASource {
  readonly env = 'search';
  readonly kinds = QUESTION_KINDS;
  readonly encyclopedia: Encyclopedia;
  private built: SearchIndex | undefined;

  constructor(config: Partial<EncyclopediaConfig> = {}) {
    this.encyclopedia = generateEncyclopedia(EncyclopediaConfig.parse(config));
  }

  index(): SearchIndex {
    this.built ??= SearchIndex.build(this.encyclopedia.documents);
    return this.built;
  }

  generate(split: Split, seed: number, kind?: string): SearchTask {
    const rng = new Rng(`search:${split}:${seed}`);
    const k = kind === undefined ? rng.pick(QUESTION_KINDS) : checkKind(this.env, QUESTION_KINDS, kind);
    const payload = makeQuestion(this.encyclopedia.splits[split], k, rng);
    return { env: this.env, id: `${this.env}/${split}/${seed}`, kind: k, split, seed, payload };
  }
}

function makeQuestion(set: EntitySet, kind: QuestionKind, rng: Rng): SearchQuestion {
  const { towns, people, organizations: orgs, works, regions } = set;
  const phrase = (...options: string[]) => rng.pick(options);
  const person = (i: number) => people[i]!;
  const personAnswers = (i: number) => [person(i).name, person(i).name.split(' ').slice(1).join(' ')];
  const townAnswers = (i: number) => [towns[i]!.name, `${towns[i]!.name} town`];
  const regionAnswers = (i: number) => [regions[i]!.name, `${regions[i]!.name} region`];
  const id = slug;

  switch (kind) {
    case 'single-hop': {
      switch (rng.int(0, 4)) {
        case 0: {
          const p = rng.pick(people);
          const t = towns[p.birthplace]!;
          return {
            question: phrase(`Where was ${p.name} born?`, `In which town was ${p.name} born?`),
            answers: townAnswers(p.birthplace),
            supporting: [id(p.name)],
            queries: [`${p.name} born`],
            evidence: [t.name],
          };
        }
        case 1: {
          const o = rng.pick(orgs);
          return {
            question: phrase(`In which year was ${o.name} founded?`, `When was ${o.name} founded?`),
            answers: [String(o.founded)],
            supporting: [id(o.name)],
            queries: [`${o.name} founded`],
            evidence: [String(o.founded)],
          };
        }
        case 2: {
          const w = rng.pick(works);
          return {
            question: phrase(`Who created ${w.name}?`, `Who is the creator of ${w.name}?`),
            answers: personAnswers(w.creator),
            supporting: [id(w.name)],
            queries: [`${w.name} created`],
            evidence: [person(w.creator).name],
          };
        }
        case 3: {
          const ti = rng.int(0, towns.length - 1);
          const t = towns[ti]!;
          return {
            question: phrase(`In which region is ${t.name}?`, `Which region is ${t.name} in?`),
            answers: regionAnswers(t.region),
            supporting: [id(t.name)],
            queries: [`${t.name} region`],
            evidence: [regions[t.region]!.name],
          };
        }
        default: {
          const p = rng.pick(people);
          return {
            question: phrase(`What did ${p.name} work as?`, `What was the occupation of ${p.name}?`),
            answers: [p.occupation],
            supporting: [id(p.name)],
            queries: [`${p.name} worked`],
            evidence: [p.occupation],
          };
        }
      }
    }
    case 'bridge': {
      switch (rng.int(0, 3)) {
        case 0: {
          const o = rng.pick(orgs);
          const p = person(o.founder);
          return {
            question: phrase(
              `Where was the founder of ${o.name} born?`,
              `In which town was the founder of ${o.name} born?`,
            ),
            answers: townAnswers(p.birthplace),
            supporting: [id(o.name), id(p.name)],
            queries: [`${o.name} founded`, `${p.name} born`],
            evidence: [p.name, towns[p.birthplace]!.name],
          };
        }
        case 1: {
          const w = rng.pick(works);
          const p = person(w.creator);
          return {
            question: phrase(
              `In which year was the creator of ${w.name} born?`,
              `When was the creator of ${w.name} born?`,
            ),
            answers: [String(p.born)],
            supporting: [id(w.name), id(p.name)],
            queries: [`${w.name} created`, `${p.name} born`],
            evidence: [p.name, String(p.born)],
          };
        }
        case 2: {
          const o = rng.pick(orgs);
          const t = towns[o.headquarters]!;
          return {
            question: phrase(
              `In which region is ${o.name} headquartered?`,
              `In which region are the headquarters of ${o.name}?`,
            ),
            answers: regionAnswers(t.region),
            supporting: [id(o.name), id(t.name)],
            queries: [`${o.name} headquartered`, `${t.name} region`],
            evidence: [t.name, regions[t.region]!.name],
          };
        }
        default: {
          const w = rng.pick(works);
          const o = orgs[w.publisher]!;
          return {
            question: phrase(
              `Who founded the publisher of ${w.name}?`,
              `Who was the founder of the organization that published ${w.name}?`,
            ),
            answers: personAnswers(o.founder),
            supporting: [id(w.name), id(o.name)],
            queries: [`${w.name} published`, `${o.name} founded`],
            evidence: [o.name, person(o.founder).name],
          };
        }
      }
    }
    case 'comparison': {
      switch (rng.int(0, 3)) {
        case 0: {
          const [a, b] = pickTwo(rng, orgs, (x, y) => x.founded !== y.founded);
          const first = a.founded < b.founded ? a : b;
          return {
            question: phrase(
              `Which was founded first, ${a.name} or ${b.name}?`,
              `Which is older, ${a.name} or ${b.name}?`,
            ),
            answers: [first.name],
            supporting: [id(a.name), id(b.name)],
            queries: [`${a.name} founded`, `${b.name} founded`],
            evidence: [String(a.founded), String(b.founded)],
          };
        }
        case 1: {
          const [a, b] = pickTwo(rng, people, (x, y) => x.born !== y.born);
          const first = a.born < b.born ? a : b;
          return {
            question: phrase(
              `Who was born first, ${a.name} or ${b.name}?`,
              `Who is older, ${a.name} or ${b.name}?`,
            ),
            answers: [first.name, first.name.split(' ').slice(1).join(' ')],
            supporting: [id(a.name), id(b.name)],
            queries: [`${a.name} born`, `${b.name} born`],
            evidence: [String(a.born), String(b.born)],
          };
        }
        case 2: {
          const [a, b] = pickTwo(rng, works, (x, y) => x.year !== y.year);
          const first = a.year < b.year ? a : b;
          return {
            question: phrase(
              `Which was published first, ${a.name} or ${b.name}?`,
              `Which came out earlier, ${a.name} or ${b.name}?`,
            ),
            answers: [first.name],
            supporting: [id(a.name), id(b.name)],
            queries: [`${a.name} published`, `${b.name} published`],
            evidence: [String(a.year), String(b.year)],
          };
        }
        default: {
          const [a, b] = pickTwo(rng, towns, (x, y) => x.founded !== y.founded);
          const first = a.founded < b.founded ? a : b;
          return {
            question: phrase(
              `Which town was founded first, ${a.name} or ${b.name}?`,
              `Which town is older, ${a.name} or ${b.name}?`,
            ),
            answers: [first.name, `${first.name} town`],
            supporting: [id(a.name), id(b.name)],
            queries: [`${a.name} founded`, `${b.name} founded`],
            evidence: [String(a.founded), String(b.founded)],
          };
        }
      }
    }
    case 'three-hop': {
      switch (rng.int(0, 2)) {
        case 0: {
          const o = rng.pick(orgs);
          const p = person(o.founder);
          const t = towns[p.birthplace]!;
          return {
            question: phrase(
              `In which region was the founder of ${o.name} born?`,
              `The founder of ${o.name} was born in which region?`,
            ),
            answers: regionAnswers(t.region),
            supporting: [id(o.name), id(p.name), id(t.name)],
            queries: [`${o.name} founded`, `${p.name} born`, `${t.name} region`],
            evidence: [p.name, t.name, regions[t.region]!.name],
          };
        }
        case 1: {
          const w = rng.pick(works);
          const o = orgs[w.publisher]!;
          const p = person(o.founder);
          return {
            question: phrase(
              `Where was the founder of the publisher of ${w.name} born?`,
              `In which town was the founder of the organization that published ${w.name} born?`,
            ),
            answers: townAnswers(p.birthplace),
            supporting: [id(w.name), id(o.name), id(p.name)],
            queries: [`${w.name} published`, `${o.name} founded`, `${p.name} born`],
            evidence: [o.name, p.name, towns[p.birthplace]!.name],
          };
        }
        default: {
          const w = rng.pick(works);
          const p = person(w.creator);
          const t = towns[p.birthplace]!;
          return {
            question: phrase(
              `In which region was the creator of ${w.name} born?`,
              `The creator of ${w.name} was born in which region?`,
            ),
            answers: regionAnswers(t.region),
            supporting: [id(w.name), id(p.name), id(t.name)],
            queries: [`${w.name} created`, `${p.name} born`, `${t.name} region`],
            evidence: [p.name, t.name, regions[t.region]!.name],
          };
        }
      }
    }
  }
}
