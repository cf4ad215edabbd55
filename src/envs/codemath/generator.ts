/**
 * Code/math task generation: problem kinds, phrasings, exact answers (BigInt, scaled decimals) and
 * splits.
 */
import { z } from 'zod';
import { hashSeed, Rng } from '../../util/random.ts';
import { checkKind, type Split, type Task, type TaskGenerator } from '../types.ts';
import { formatDecimal, mulDecimal, parseDecimal } from './numbers.ts';

export const PROBLEM_KINDS = ['product', 'sum', 'percentage', 'unit', 'base', 'date', 'count'] as const;
export type ProblemKind = (typeof PROBLEM_KINDS)[number];

/** The numbers a problem is made of, by kind (the expert writes its code from these). */
export type ProblemParams =
  | { kind: 'product'; factors: string[] }
  | { kind: 'sum'; terms: string[] }
  | { kind: 'percentage'; percent: string; of: string }
  | { kind: 'unit'; value: string; from: string; to: string; factor: string }
  | { kind: 'base'; direction: 'to' | 'from'; value: string; base: number }
  | { kind: 'date'; from: string; to: string }
  | { kind: 'count'; variant: 'divisible'; lo: number; hi: number; k: number; m: number }
  | { kind: 'count'; variant: 'digit'; digit: number; n: number };

export interface MathProblem {
  question: string;
  /** Canonical answer: a decimal number, or digits in `base` for conversions to a base. */
  answer: string;
  answerBase?: number;
  params: ProblemParams;
}

export type CodeMathTask = Task<ProblemKind, MathProblem>;

export const CodeMathConfig = z.object({
  /** Digits of each factor and term of products and sums. */
  digits: z.number().int().min(2).max(60).default(9),
  /** Largest range a counting problem spans (the expert's code loops over it). */
  countRange: z.number().int().min(100).max(10_000_000).default(100_000),
  kinds: z
    .array(z.enum(PROBLEM_KINDS))
    .min(1)
    .default([...PROBLEM_KINDS]),
});
export type CodeMathConfig = z.infer<typeof CodeMathConfig>;

/** Exact unit factors only, so every answer is an exact decimal. */
const UNITS: [string, string, string][] = [
  ['kilometers', 'meters', '1000'],
  ['meters', 'centimeters', '100'],
  ['hours', 'seconds', '3600'],
  ['days', 'hours', '24'],
  ['weeks', 'minutes', '10080'],
  ['kilograms', 'grams', '1000'],
  ['miles', 'feet', '5280'],
  ['feet', 'inches', '12'],
  ['inches', 'centimeters', '2.54'],
  ['yards', 'meters', '0.9144'],
  ['pounds', 'kilograms', '0.45359237'],
  ['US gallons', 'liters', '3.785411784'],
  ['grams', 'kilograms', '0.001'],
  ['milliliters', 'liters', '0.001'],
];

/** Phrasings per kind; the last one of each is held out for valid-unseen. */
const PHRASINGS: Record<ProblemKind, ((p: never) => string)[]> = {
  product: [
    (p: { factors: string[] }) => `What is ${p.factors.join(' × ')}?`,
    (p: { factors: string[] }) => `Compute the product of ${p.factors.join(', ')}.`,
    (p: { factors: string[] }) =>
      `A warehouse stacks ${p.factors[0]} crates, each holding ${p.factors.slice(1).join(' boxes of ')} items. How many items are there in total?`,
  ],
  sum: [
    (p: { terms: string[] }) => `What is ${p.terms.join(' + ')}?`,
    (p: { terms: string[] }) => `Add up these numbers: ${p.terms.join(', ')}.`,
    (p: { terms: string[] }) =>
      `A ledger lists payments of ${p.terms.join(', ')} credits. What do they total?`,
  ],
  percentage: [
    (p: { percent: string; of: string }) => `What is ${p.percent}% of ${p.of}?`,
    (p: { percent: string; of: string }) => `Compute ${p.percent} percent of ${p.of}.`,
    (p: { percent: string; of: string }) =>
      `A town of ${p.of} people votes, and ${p.percent}% of them choose the river bridge. How many votes is that (exactly, decimals allowed)?`,
  ],
  unit: [
    (p: { value: string; from: string; to: string }) => `Convert ${p.value} ${p.from} to ${p.to}.`,
    (p: { value: string; from: string; to: string }) => `How many ${p.to} are there in ${p.value} ${p.from}?`,
    (p: { value: string; from: string; to: string }) => `Express ${p.value} ${p.from} in ${p.to}, exactly.`,
  ],
  base: [
    (p: { direction: string; value: string; base: number }) =>
      p.direction === 'to'
        ? `Write the decimal number ${p.value} in base ${p.base}.`
        : `What is the base-${p.base} number ${p.value} in decimal?`,
    (p: { direction: string; value: string; base: number }) =>
      p.direction === 'to'
        ? `Convert ${p.value} (base 10) to base ${p.base}.`
        : `Convert ${p.value} from base ${p.base} to base 10.`,
    (p: { direction: string; value: string; base: number }) =>
      p.direction === 'to'
        ? `Give the base-${p.base} digits of ${p.value}.`
        : `The digits ${p.value} are a number in base ${p.base}. Which decimal number is it?`,
  ],
  date: [
    (p: { from: string; to: string }) => `How many days are there from ${p.from} to ${p.to}?`,
    (p: { from: string; to: string }) => `Count the days between ${p.from} and ${p.to}.`,
    (p: { from: string; to: string }) =>
      `A voyage leaves on ${p.from} and arrives on ${p.to}. How many days does it last?`,
  ],
  count: [
    (p: { variant: string; lo?: number; hi?: number; k?: number; m?: number; digit?: number; n?: number }) =>
      p.variant === 'divisible'
        ? `How many integers from ${p.lo} to ${p.hi} (inclusive) are divisible by ${p.k} but not by ${p.m}?`
        : `How many times does the digit ${p.digit} appear when writing all integers from 1 to ${p.n}?`,
    (p: { variant: string; lo?: number; hi?: number; k?: number; m?: number; digit?: number; n?: number }) =>
      p.variant === 'divisible'
        ? `Count the numbers between ${p.lo} and ${p.hi}, both included, that are multiples of ${p.k} and not multiples of ${p.m}.`
        : `Count the digit ${p.digit} in the numbers 1, 2, ..., ${p.n} written out in full.`,
    (p: { variant: string; lo?: number; hi?: number; k?: number; m?: number; digit?: number; n?: number }) =>
      p.variant === 'divisible'
        ? `Of the tickets numbered ${p.lo} through ${p.hi}, those divisible by ${p.k} win unless divisible by ${p.m}. How many win?`
        : `A printer numbers pages 1 to ${p.n}. How many times does it print the digit ${p.digit}?`,
  ],
};

/** The problem as the agent sees it (the first observation and anchor). */
export function renderCodeMathTask(task: CodeMathTask): string {
  return task.payload.question;
}

export class CodeMathGenerator implements TaskGenerator<CodeMathTask> {
  readonly env = 'codemath';
  readonly kinds = PROBLEM_KINDS;
  readonly config: CodeMathConfig;

  constructor(config: Partial<CodeMathConfig> = {}) {
    this.config = CodeMathConfig.parse(config);
  }

  /** valid-unseen uses held-out phrasings; train and valid-seen split instances by a hash of the problem. */
  generate(split: Split, seed: number, kind?: string): CodeMathTask {
    const rng = new Rng(`codemath:${split}:${seed}`);
    const forced = kind === undefined ? undefined : checkKind(this.env, this.kinds, kind);
    for (;;) {
      const k = forced ?? rng.pick(this.config.kinds);
      const params = this.params(k, rng);
      const phrasings = PHRASINGS[k];
      const phrasing = split === 'valid-unseen' ? phrasings.length - 1 : rng.int(0, phrasings.length - 2);
      if (split !== 'valid-unseen') {
        const bucket = hashSeed(JSON.stringify(params)) % 10 === 0 ? 'valid-seen' : 'train';
        if (bucket !== split) continue;
      }
      const { answer, answerBase } = solve(params);
      const question = (phrasings[phrasing] as (p: ProblemParams) => string)(params);
      const payload: MathProblem = answerBase
        ? { question, answer, answerBase, params }
        : { question, answer, params };
      return { env: this.env, id: `${this.env}/${split}/${seed}`, kind: k, split, seed, payload };
    }
  }

  private params(kind: ProblemKind, rng: Rng): ProblemParams {
    const big = (digits: number) => {
      let s = String(rng.int(1, 9));
      for (let i = 1; i < digits; i++) s += String(rng.int(0, 9));
      return s;
    };
    const d = this.config.digits;
    switch (kind) {
      case 'product':
        return {
          kind,
          factors: Array.from({ length: rng.int(2, 3) }, () => big(rng.int(Math.max(2, d - 3), d))),
        };
      case 'sum':
        return {
          kind,
          terms: Array.from({ length: rng.int(4, 7) }, () => big(rng.int(Math.max(2, d - 3), d))),
        };
      case 'percentage': {
        const percent = rng.chance(0.5)
          ? String(rng.int(1, 99))
          : `${rng.int(0, 99)}.${rng.int(1, 99)}`.replace(/0$/, '');
        return { kind, percent, of: String(rng.int(100, 9_999_999)) };
      }
      case 'unit': {
        const [from, to, factor] = rng.pick(UNITS);
        const value = rng.chance(0.6) ? String(rng.int(2, 9999)) : `${rng.int(0, 999)}.${rng.int(1, 9)}`;
        return { kind, value, from, to, factor };
      }
      case 'base': {
        const base = rng.pick([2, 3, 5, 7, 8, 12, 16, 36]);
        const n = BigInt(rng.int(50, 2 ** 31 - 1));
        return rng.chance(0.5)
          ? { kind, direction: 'to', value: n.toString(), base }
          : { kind, direction: 'from', value: n.toString(base), base };
      }
      case 'date': {
        const day = () => {
          const y = rng.int(1900, 2100);
          const m = rng.int(1, 12);
          const dd = rng.int(1, daysInMonth(y, m));
          return `${y}-${String(m).padStart(2, '0')}-${String(dd).padStart(2, '0')}`;
        };
        const [a, b] = [day(), day()].sort();
        return { kind, from: a!, to: b! };
      }
      case 'count': {
        const range = this.config.countRange;
        if (rng.chance(0.5)) {
          const lo = rng.int(1, range);
          const k = rng.int(2, 40);
          return {
            kind,
            variant: 'divisible',
            lo,
            hi: lo + rng.int(range / 10, range),
            k,
            m: k * rng.int(2, 7),
          };
        }
        return { kind, variant: 'digit', digit: rng.int(0, 9), n: rng.int(range / 10, range) };
      }
    }
  }
}

function isLeap(y: number): boolean {
  return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
}

function daysInMonth(y: number, m: number): number {
  return [31, isLeap(y) ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m - 1]!;
}

/** Days since 0000-03-01 of a proleptic Gregorian date (the civil-from-days method's inverse). */
function dayNumber(iso: string): number {
  const [y0, m, d] = iso.split('-').map(Number) as [number, number, number];
  const y = m <= 2 ? y0 - 1 : y0;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  return era * 146097 + yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
}

/** The exact answer of a problem. */
export function solve(p: ProblemParams): { answer: string; answerBase?: number } {
  switch (p.kind) {
    case 'product':
      return { answer: p.factors.reduce((acc, f) => acc * BigInt(f), 1n).toString() };
    case 'sum':
      return { answer: p.terms.reduce((acc, t) => acc + BigInt(t), 0n).toString() };
    case 'percentage': {
      const x = mulDecimal(parseDecimal(p.percent), parseDecimal(p.of));
      return { answer: formatDecimal({ units: x.units, scale: x.scale + 2 }) };
    }
    case 'unit':
      return { answer: formatDecimal(mulDecimal(parseDecimal(p.value), parseDecimal(p.factor))) };
    case 'base':
      return p.direction === 'to'
        ? { answer: BigInt(p.value).toString(p.base), answerBase: p.base }
        : { answer: parseInt(p.value, p.base).toString() };
    case 'date':
      return { answer: String(dayNumber(p.to) - dayNumber(p.from)) };
    case 'count': {
      if (p.variant === 'divisible') {
        // Multiples of k in [lo, hi], minus those that are also multiples of m (m is a multiple of k).
        const multiples = (q: number) => Math.floor(p.hi / q) - Math.floor((p.lo - 1) / q);
        return { answer: String(multiples(p.k) - multiples(p.m)) };
      }
      return { answer: String(digitCount(p.digit, p.n)) };
    }
  }
}

/**
 * How often `digit` is written in 1..n, position by position (a loop over all numbers made
 * generation slow): at place value p, the digits to the left cycle `high` times through 0-9,
 * and the current digit adds a partial cycle. Zero is never a leading digit.
 */
export function digitCount(digit: number, n: number): number {
  let count = 0;
  for (let p = 1; p <= n; p *= 10) {
    const high = Math.floor(n / (p * 10));
    const cur = Math.floor(n / p) % 10;
    const low = n % p;
    if (digit === 0) {
      if (high === 0) break;
      count += (high - 1) * p + (cur > 0 ? p : low + 1);
    } else {
      count += high * p + (cur > digit ? p : cur === digit ? low + 1 : 0);
    }
  }
  return count;
}
