/**
 * Invented names for the generated encyclopedia, built from syllables and word lists written
 * here (no real-world data), so that nothing the agent finds can come from a model's memory.
 */
import type { Rng } from '../../util/random.ts';

const ONSETS = [
  'b',
  'br',
  'c',
  'd',
  'dr',
  'f',
  'g',
  'gr',
  'h',
  'k',
  'l',
  'm',
  'n',
  'p',
  'r',
  's',
  'st',
  't',
  'th',
  'v',
  'w',
  'z',
  'sk',
  'tr',
  'j',
];
const VOWELS = ['a', 'e', 'i', 'o', 'u', 'ai', 'ei', 'ou', 'ia', 'au'];
const CODAS = ['', '', 'n', 'r', 'l', 's', 'th', 'm', 'nd', 'rk', 'st', 'x', 'v'];
const GIVEN_ENDINGS = ['a', 'o', 'en', 'is', 'an', 'el', 'ia', 'us', 'ine', 'or', 'ette', 'ric'];
const FAMILY_ENDINGS = [
  'son',
  'ley',
  'ford',
  'wick',
  'mann',
  'ard',
  'ton',
  'ez',
  'ski',
  'er',
  'holt',
  'ridge',
];
const TOWN_ENDINGS = [
  'ford',
  'mere',
  'holm',
  'vale',
  'burg',
  'wick',
  'stead',
  'by',
  'port',
  'haven',
  'field',
  'moor',
];
const REGION_ENDINGS = ['ia', 'land', 'mark', 'shire', 'reach', 'ora'];
export const ORG_TYPES = [
  'Institute',
  'Company',
  'Guild',
  'Society',
  'Observatory',
  'Press',
  'Academy',
  'Foundry',
  'Bank',
  'Trading House',
];
const ADJECTIVES = [
  'Silent',
  'Golden',
  'Hollow',
  'Crimson',
  'Distant',
  'Broken',
  'Quiet',
  'Painted',
  'Frozen',
  'Hidden',
  'Last',
  'Little',
  'Burning',
  'Pale',
  'Wandering',
  'Iron',
  'Glass',
  'Velvet',
  'Bitter',
  'Secret',
  'Northern',
  'Endless',
  'Sleeping',
  'Scarlet',
  'Lonely',
  'Winter',
  'Amber',
  'Drifting',
  'Forgotten',
  'Radiant',
];
const NOUNS = [
  'River',
  'Harbor',
  'Lantern',
  'Garden',
  'Mirror',
  'Orchard',
  'Tower',
  'Voyage',
  'Bridge',
  'Meadow',
  'Compass',
  'Letter',
  'Island',
  'Clock',
  'Forest',
  'Window',
  'Crown',
  'Feather',
  'Shadow',
  'Mountain',
  'Song',
  'Field',
  'Storm',
  'Candle',
  'Road',
  'Anchor',
  'Well',
  'Gate',
  'Sparrow',
  'Tide',
  'Lighthouse',
  'Map',
  'Bell',
  'Stone',
  'Mill',
  'Fox',
  'Shore',
  'Hearth',
  'Loom',
  'Comet',
];
export const OCCUPATIONS = [
  'weaver',
  'astronomer',
  'painter',
  'shipwright',
  'composer',
  'cartographer',
  'physician',
  'poet',
  'engineer',
  'merchant',
  'botanist',
  'architect',
];
export const GENRES = ['novel', 'opera', 'painting', 'symphony', 'play', 'atlas', 'treatise', 'film'];

const cap = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);

function syllable(rng: Rng): string {
  return rng.pick(ONSETS) + rng.pick(VOWELS) + rng.pick(CODAS);
}

function stem(rng: Rng, syllables: number): string {
  let s = '';
  for (let i = 0; i < syllables; i++) s += syllable(rng);
  return s;
}

export const givenName = (rng: Rng) => cap(stem(rng, 1) + rng.pick(GIVEN_ENDINGS));
export const familyName = (rng: Rng) => cap(stem(rng, rng.int(1, 2)) + rng.pick(FAMILY_ENDINGS));
export const personName = (rng: Rng) => `${givenName(rng)} ${familyName(rng)}`;
export const townName = (rng: Rng) => cap(stem(rng, rng.int(1, 2)) + rng.pick(TOWN_ENDINGS));
export const regionName = (rng: Rng) => cap(stem(rng, 2) + rng.pick(REGION_ENDINGS));
export const orgName = (rng: Rng) => `${cap(stem(rng, 2))} ${rng.pick(ORG_TYPES)}`;

export function workName(rng: Rng): string {
  switch (rng.int(0, 2)) {
    case 0:
      return `The ${rng.pick(ADJECTIVES)} ${rng.pick(NOUNS)}`;
    case 1:
      return `The ${rng.pick(NOUNS)} of ${townName(rng)}`;
    default:
      return `${rng.pick(ADJECTIVES)} ${rng.pick(NOUNS)} ${rng.pick(['Song', 'Study', 'Suite', 'Tale', 'Variations'])}`;
  }
}

/**
 * A name that shares most of `name` (its first word, or all but the last), for distractor
 * documents: "Oskar Brintley" next to "Oskar Brintson", "Velora Guild" next to "Velora Press".
 */
export function similarName(name: string, type: string, rng: Rng): string {
  const words = name.split(' ');
  switch (type) {
    case 'person':
      return rng.chance(0.5)
        ? `${words[0]} ${familyName(rng)}`
        : `${givenName(rng)} ${words.slice(1).join(' ')}`;
    case 'organization':
      return `${words[0]} ${rng.pick(ORG_TYPES.filter((t) => !name.endsWith(t)))}`;
    case 'work':
      return `${words.slice(0, -1).join(' ')} ${rng.pick(NOUNS.filter((n) => !name.endsWith(n)))}`;
    default: {
      // Towns and regions: keep the stem, change the ending.
      const endings = type === 'town' ? TOWN_ENDINGS : REGION_ENDINGS;
      const ending = endings.find((e) => name.endsWith(e)) ?? '';
      return name.slice(0, name.length - ending.length) + rng.pick(endings.filter((e) => e !== ending));
    }
  }
}
