/**
 * How tool-using envs read an agent's action text. An action is one tag pair, as in Search-R1:
 * `<search>query</search>`, `<python>code</python>` or `<answer>text</answer>`; text around the
 * tag (reasoning, say) is ignored, and the first tag wins.
 */

export interface ParsedAction {
  tag: string;
  body: string;
}

/** The first `<tag>body</tag>` of `text` whose tag is in `tags`, or undefined. */
export function parseAction(text: string, tags: readonly string[]): ParsedAction | undefined {
  let best: ParsedAction | undefined;
  let bestAt = Number.POSITIVE_INFINITY;
  for (const tag of tags) {
    const open = text.indexOf(`<${tag}>`);
    if (open < 0 || open >= bestAt) continue;
    const close = text.indexOf(`</${tag}>`, open);
    if (close < 0) continue;
    best = { tag, body: text.slice(open + tag.length + 2, close).trim() };
    bestAt = open;
  }
  return best;
}
