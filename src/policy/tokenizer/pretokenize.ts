/**
 * Pre-tokenization: cut text into "words" before BPE, so merges never cross a word boundary and
 * each distinct word is encoded once and cached. The pieces always concatenate back to the input.
 *
 * A word is an optional leading space plus a run of letters (with their combining marks), or of
 * 1-3 digits (so numbers split into digit groups the model can do arithmetic on), or of other
 * symbols; whitespace runs stand alone, except that the last space before a word joins that word.
 */
const WORD = / ?[\p{L}\p{M}]+| ?\p{N}{1,3}| ?[^\s\p{L}\p{M}\p{N}]+|\s+(?!\S)|\s+/gu;

/**
 * The same words with their spaces cut off: a space (or whitespace run) is a word of its own, so a
 * word is the same tokens wherever it stands. With attached spaces " Velora" (in a question) and
 * "Velora" (after "<search>") are unrelated token runs, and a small policy cannot copy a name it
 * never saw from one into the other (issue 14); with separate spaces copying is token for token.
 */
const WORD_SEPARATE = /[\p{L}\p{M}]+|\p{N}{1,3}|[^\s\p{L}\p{M}\p{N}]+|\s+/gu;

/** Where a space before a word goes: into the word (GPT-2 style, the default) or its own word. */
export type SpaceMode = 'attached' | 'separate';

/**
 * Longest word, in code points. Longer runs (base64 blobs, long indentation) are cut into chunks:
 * BPE on one word costs O(length^2), and a cut on code points never splits a UTF-8 character.
 */
export const MAX_WORD_CHARS = 64;

/** Split text into words (see the module comment); `pretokenize(t).join('') === t`. */
export function pretokenize(text: string, spaces: SpaceMode = 'attached'): string[] {
  const words: string[] = [];
  for (const m of text.matchAll(spaces === 'separate' ? WORD_SEPARATE : WORD)) {
    const w = m[0];
    if (w.length <= MAX_WORD_CHARS) {
      words.push(w);
      continue;
    }
    const chars = Array.from(w); // code points, so surrogate pairs stay together
    for (let i = 0; i < chars.length; i += MAX_WORD_CHARS)
      words.push(chars.slice(i, i + MAX_WORD_CHARS).join(''));
  }
  return words;
}
