/**
 * Answer scoring of search QA (the usual open-domain QA normalization): lower case, no
 * punctuation, no articles (a, an, the), single spaces; exact match and word-set F1, each the
 * best over the accepted answers.
 */

export function normalizeAnswer(text: string): string {
  return text
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s]/gu, ' ')
    .replace(/\b(a|an|the)\b/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
}

export function exactMatch(prediction: string, answers: readonly string[]): number {
  const p = normalizeAnswer(prediction);
  return answers.some((a) => normalizeAnswer(a) === p) ? 1 : 0;
}

/** F1 of the sets of words of prediction and answer. */
export function wordF1(prediction: string, answers: readonly string[]): number {
  const p = new Set(normalizeAnswer(prediction).split(' ').filter(Boolean));
  let best = 0;
  for (const answer of answers) {
    const g = new Set(normalizeAnswer(answer).split(' ').filter(Boolean));
    let common = 0;
    for (const w of p) if (g.has(w)) common++;
    if (common === 0) continue;
    const precision = common / p.size;
    const recall = common / g.size;
    best = Math.max(best, (2 * precision * recall) / (precision + recall));
  }
  return best;
}
