/**
 * The generated encyclopedia: people, towns, regions, organizations and creative works with
 * attributes and relations, rendered as documents. Each split has its own entities (splits are
 * disjoint entity sets); the documents of all splits form one corpus, searched together.
 */
import { z } from 'zod';
import type { SearchDocument } from '../../tools/search/index.ts';
import { Rng } from '../../util/random.ts';
import { SPLITS, type Split } from '../types.ts';
import {
  GENRES,
  OCCUPATIONS,
  orgName,
  personName,
  regionName,
  similarName,
  townName,
  workName,
} from './names.ts';

export const EncyclopediaConfig = z.object({
  seed: z.number().int().default(0),
  /** People per split; organizations and works are half as many, towns a third, regions a fifteenth. */
  people: z.number().int().min(6).default(60),
  /** Share of entities that get a distractor entity with a similar name (its own facts, never asked). */
  distractorRate: z.number().min(0).max(1).default(0.3),
});
export type EncyclopediaConfig = z.infer<typeof EncyclopediaConfig>;

export type EntityType = 'person' | 'town' | 'region' | 'organization' | 'work';

export interface Region {
  name: string;
}
export interface Town {
  name: string;
  region: number;
  founded: number;
  population: number;
}
export interface Person {
  name: string;
  born: number;
  birthplace: number;
  occupation: string;
  /** A town lived in later (a second town in the document, so that "born in" matters). */
  livedIn: number;
}
export interface Organization {
  name: string;
  kind: string;
  founded: number;
  founder: number;
  headquarters: number;
}
export interface Work {
  name: string;
  genre: string;
  year: number;
  creator: number;
  publisher: number;
}

/** One split's entities; relations are indices into the same split's arrays. */
export interface EntitySet {
  split: Split;
  regions: Region[];
  towns: Town[];
  people: Person[];
  organizations: Organization[];
  works: Work[];
  /** Entities with similar names that no question asks about. */
  distractors: { type: EntityType; name: string; text: string }[];
}

export interface Encyclopedia {
  config: EncyclopediaConfig;
  splits: Record<Split, EntitySet>;
  documents: SearchDocument[];
}

/** "a painter", "an opera". */
const withArticle = (word: string) => `${/^[aeiou]/.test(word) ? 'an' : 'a'} ${word}`;

/** Lower-case words joined by '-': a document id from an entity name (names are unique). */
export function slug(name: string): string {
  return name
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '');
}

export function generateEncyclopedia(config: Partial<EncyclopediaConfig> = {}): Encyclopedia {
  const cfg = EncyclopediaConfig.parse(config);
  const used = new Set<string>();
  // Names are unique across the whole corpus (case-insensitively), so a name names one document.
  // A name family can run out (a distractor of "The Silent River" must be "The Silent <noun>"),
  // so after enough tries `unique` gives up and returns undefined.
  const unique = (make: () => string): string | undefined => {
    for (let tries = 0; tries < 200; tries++) {
      const n = make();
      if (!used.has(n.toLowerCase())) {
        used.add(n.toLowerCase());
        return n;
      }
    }
    return undefined;
  };
  const splits = {} as Record<Split, EntitySet>;
  for (const split of SPLITS)
    splits[split] = makeEntities(new Rng(`encyclopedia:${cfg.seed}:${split}`), split, cfg, unique);
  const documents: SearchDocument[] = [];
  for (const split of SPLITS)
    documents.push(...renderDocuments(splits[split], new Rng(`docs:${cfg.seed}:${split}`)));
  return { config: cfg, splits, documents };
}

function makeEntities(
  rng: Rng,
  split: Split,
  cfg: EncyclopediaConfig,
  unique: (m: () => string) => string | undefined,
): EntitySet {
  const named = (make: () => string) => {
    const n = unique(make);
    if (n === undefined) throw new Error('encyclopedia: ran out of names; lower `people`');
    return n;
  };
  const nPeople = cfg.people;
  const nOrgs = Math.max(3, Math.floor(nPeople / 2));
  const nWorks = Math.max(3, Math.floor(nPeople / 2));
  const nTowns = Math.max(4, Math.floor(nPeople / 3));
  const nRegions = Math.max(2, Math.floor(nPeople / 15));
  const regions = Array.from({ length: nRegions }, () => ({ name: named(() => regionName(rng)) }));
  const towns = Array.from({ length: nTowns }, (_, i) => ({
    name: named(() => townName(rng)),
    // Every region gets a town before any gets a second.
    region: i < nRegions ? i : rng.int(0, nRegions - 1),
    founded: rng.int(900, 1700),
    population: rng.int(2, 900) * 100,
  }));
  const people = Array.from({ length: nPeople }, () => {
    const birthplace = rng.int(0, nTowns - 1);
    return {
      name: named(() => personName(rng)),
      born: rng.int(1700, 1990),
      birthplace,
      occupation: rng.pick(OCCUPATIONS),
      livedIn: (birthplace + rng.int(1, nTowns - 1)) % nTowns,
    };
  });
  // Each person founds at most one organization, so "the founder of X" and its inverse are functions.
  const founders = rng.shuffle(people.map((_, i) => i)).slice(0, nOrgs);
  const organizations = founders.map((founder) => ({
    name: named(() => orgName(rng)),
    kind: '',
    founded: Math.min(2020, people[founder]!.born + rng.int(20, 60)),
    founder,
    headquarters: rng.int(0, nTowns - 1),
  }));
  for (const o of organizations) o.kind = o.name.split(' ').slice(1).join(' ').toLowerCase();
  const works = Array.from({ length: nWorks }, () => {
    const creator = rng.int(0, nPeople - 1);
    return {
      name: named(() => workName(rng)),
      genre: rng.pick(GENRES),
      year: Math.min(2024, people[creator]!.born + rng.int(18, 70)),
      creator,
      publisher: rng.int(0, nOrgs - 1),
    };
  });

  const set: EntitySet = { split, regions, towns, people, organizations, works, distractors: [] };
  const all: [EntityType, string][] = [
    ...people.map((p) => ['person', p.name] as [EntityType, string]),
    ...towns.map((t) => ['town', t.name] as [EntityType, string]),
    ...organizations.map((o) => ['organization', o.name] as [EntityType, string]),
    ...works.map((w) => ['work', w.name] as [EntityType, string]),
  ];
  for (const [type, name] of all) {
    if (!rng.chance(cfg.distractorRate)) continue;
    const similar = unique(() => similarName(name, type, rng));
    if (similar === undefined) continue;
    set.distractors.push({ type, name: similar, text: distractorText(type, similar, set, rng) });
  }
  return set;
}

/** A distractor's own facts, written like a real entry (years and places of the same split). */
function distractorText(type: EntityType, name: string, set: EntitySet, rng: Rng): string {
  const town = rng.pick(set.towns).name;
  const year = rng.int(900, 1990);
  switch (type) {
    case 'person':
      return `${name} was born in ${town} in ${year}. ${name} worked as ${withArticle(rng.pick(OCCUPATIONS))}.`;
    case 'organization':
      return `${name} was founded in ${year} by ${rng.pick(set.people).name}. ${name} is headquartered in ${town}.`;
    case 'work':
      return `${name} is ${withArticle(rng.pick(GENRES))} created by ${rng.pick(set.people).name}. ${name} was published in ${year}.`;
    default:
      return `${name} lies in the region of ${rng.pick(set.regions).name}. ${name} was founded in ${year}.`;
  }
}

function renderDocuments(set: EntitySet, rng: Rng): SearchDocument[] {
  const { regions, towns, people, organizations, works } = set;
  const docs: SearchDocument[] = [];
  const add = (title: string, paragraphs: string[]) =>
    docs.push({ id: slug(title), title, text: paragraphs.join('\n') });
  regions.forEach((r, ri) => {
    const its = towns.filter((t) => t.region === ri).map((t) => t.name);
    add(r.name, [`${r.name} is a region. Its towns include ${its.join(', ')}.`]);
  });
  for (const t of towns) {
    add(t.name, [
      `${t.name} lies in the region of ${regions[t.region]!.name}. ${t.name} was founded in ${t.founded}.`,
      `About ${t.population} people live in ${t.name}.`,
    ]);
  }
  people.forEach((p, pi) => {
    const paragraphs = [
      `${p.name} was born in ${towns[p.birthplace]!.name} in ${p.born}. ${p.name} worked as ${withArticle(p.occupation)}.`,
      `Later, ${p.name} moved to ${towns[p.livedIn]!.name}.`,
    ];
    const org = organizations.find((o) => o.founder === pi);
    if (org) paragraphs.push(`${p.name} started ${org.name}.`);
    const made = works.filter((w) => w.creator === pi);
    if (made.length > 0)
      paragraphs.push(`${p.name} is remembered for ${made.map((w) => w.name).join(' and ')}.`);
    add(p.name, rng.chance(0.5) ? paragraphs : [paragraphs[0]!, ...paragraphs.slice(2), paragraphs[1]!]);
  });
  organizations.forEach((o, oi) => {
    const published = works.filter((w) => w.publisher === oi).map((w) => w.name);
    add(o.name, [
      `${o.name} is ${withArticle(o.kind)}. ${o.name} was founded in ${o.founded} by ${people[o.founder]!.name}.`,
      `${o.name} is headquartered in ${towns[o.headquarters]!.name}.`,
      ...(published.length > 0 ? [`Its catalogue includes ${published.join(', ')}.`] : []),
    ]);
  });
  for (const w of works) {
    add(w.name, [
      `${w.name} is ${withArticle(w.genre)} created by ${people[w.creator]!.name}.`,
      `${w.name} was published in ${w.year} by ${organizations[w.publisher]!.name}.`,
    ]);
  }
  for (const d of set.distractors) add(d.name, [d.text]);
  return docs;
}
