/**
 * Exact decimals as scaled BigInts (value = units / 10^scale), enough for percentages and unit
 * factors without floating-point error; and the numeric normalization answers are compared by.
 */

export interface Decimal {
  units: bigint;
  scale: number;
}

export function parseDecimal(text: string): Decimal {
  const m = text.match(/^(-?)(\d+)(?:\.(\d+))?$/);
  if (!m) throw new Error(`not a decimal number: "${text}"`);
  const frac = m[3] ?? '';
  const units = BigInt(m[2]! + frac);
  return { units: m[1] ? -units : units, scale: frac.length };
}

export function mulDecimal(a: Decimal, b: Decimal): Decimal {
  return { units: a.units * b.units, scale: a.scale + b.scale };
}

/** Canonical text: no leading zeros, no trailing fractional zeros, no "-0". */
export function formatDecimal(d: Decimal): string {
  const neg = d.units < 0n;
  let digits = (neg ? -d.units : d.units).toString().padStart(d.scale + 1, '0');
  let out = digits;
  if (d.scale > 0) {
    const int = digits.slice(0, digits.length - d.scale);
    const frac = digits.slice(digits.length - d.scale).replace(/0+$/, '');
    out = frac ? `${int}.${frac}` : int;
  }
  digits = out;
  return neg && /[1-9]/.test(digits) ? `-${digits}` : digits;
}

const NUMBER = /-?\d[\d,_]*(?:\.\d+)?/g;

/**
 * The canonical form of a numeric answer, or undefined: commas, underscores, spaces, a leading
 * "$" and a trailing "%" are dropped; if the text is not a bare number but holds exactly one
 * number ("The answer is 434."), that number is taken.
 */
export function normalizeNumber(text: string): string | undefined {
  const bare = text
    .trim()
    .replace(/^\$/, '')
    .replace(/%$/, '')
    .replace(/[,_\s]/g, '');
  const candidates = /^-?\d+(\.\d+)?$/.test(bare) ? [bare] : (text.match(NUMBER) ?? []);
  if (candidates.length !== 1) return undefined;
  const clean = candidates[0]!.replace(/[,_]/g, '');
  return /^-?\d+(\.\d+)?$/.test(clean) ? formatDecimal(parseDecimal(clean)) : undefined;
}

/** Digits in a base (2..36), lower case, without a 0x/0o/0b prefix or leading zeros. */
export function normalizeDigits(text: string, base: number): string | undefined {
  let t = text.trim().toLowerCase().replace(/[\s_]/g, '');
  const prefix = { 16: '0x', 8: '0o', 2: '0b' }[base];
  if (prefix && t.startsWith(prefix)) t = t.slice(2);
  const alphabet = '0123456789abcdefghijklmnopqrstuvwxyz'.slice(0, base);
  if (t === '' || [...t].some((c) => !alphabet.includes(c))) return undefined;
  return t.replace(/^0+(?=.)/, '');
}
