/**
 * Constrained decoding to a list of choices: once the text (prompt and generated) ends with `open`, the next
 * tokens must spell one of `options` followed by `close`, token for token as the tokenizer encodes
 * `option + close`; before and after that span the row samples freely. The household loop uses it
 * to choose among the admissible commands (`<action>...</action>`), so a sampled action is never a
 * command the env cannot execute (issue 14: 27% of the strong start's rollout steps were such
 * no-ops).
 *
 * Why the standalone encoding is the in-context one: pre-tokenization cuts a word at every change
 * between letters, digits and symbols, and BPE never merges across words, so an option that starts
 * with a letter or digit after a tag ending in a symbol (`>`) is encoded the same wherever it stands.
 * `ChoiceConstraint` checks that the open tag ends with a symbol and the options start with a letter
 * or digit and refuses others.
 *
 * A constrained token is sampled from the model's distribution renormalised over the allowed
 * tokens; the log-prob a row records stays the model's own (temperature 1, all tokens), as for
 * temperature, top-k and top-p (sampling.ts): it is the number the scoring graph reproduces, so the
 * rollout's log-probs still serve as PPO's behaviour log-probs (docs/ARCHITECTURE.md, "Choosing
 * among the admissible commands").
 */
import { z } from 'zod';

/** What a row's text between `open` and `close` may be. */
export const Choices = z.strictObject({
  open: z.string().min(1),
  close: z.string().min(1),
  options: z.array(z.string().min(1)).min(1),
});
export type Choices = z.infer<typeof Choices>;

/** What the constraint needs of a tokenizer. */
export interface ChoiceTokenizer {
  encode(text: string): number[];
  tokenBytes(id: number): Uint8Array;
}

interface TrieNode {
  next: Map<number, TrieNode>;
  /** Tokens of the allowed continuations, in id order (what `allowed` returns). */
  ids: Uint32Array;
}

const SYMBOL_END = /[^\s\p{L}\p{M}\p{N}]$/u;
const WORD_START = /^[\p{L}\p{M}\p{N}]/u;

/** The token trie of `options`, each followed by `close`. */
function buildTrie(options: readonly string[], close: string, tok: ChoiceTokenizer): TrieNode {
  const root: TrieNode = { next: new Map(), ids: new Uint32Array() };
  for (const option of new Set(options)) {
    let node = root;
    for (const id of tok.encode(option + close)) {
      let child = node.next.get(id);
      if (!child) {
        child = { next: new Map(), ids: new Uint32Array() };
        node.next.set(id, child);
      }
      node = child;
    }
  }
  const seal = (node: TrieNode) => {
    node.ids = Uint32Array.from([...node.next.keys()].sort((a, b) => a - b));
    for (const child of node.next.values()) seal(child);
  };
  seal(root);
  return root;
}

/**
 * One row's constraint, fed every token the row generates (`push`); `allowed()` is the set of
 * tokens the next one must come from, or undefined while the row is free.
 */
export class ChoiceConstraint {
  private readonly root: TrieNode;
  private readonly decoder = new TextDecoder('utf-8');
  /** The decoded text's tail, long enough to hold `open`. */
  private tail = '';
  /** Inside the span: the trie node reached so far. */
  private node: TrieNode | undefined;

  constructor(
    readonly choices: Choices,
    private readonly tok: ChoiceTokenizer,
  ) {
    const { open, options } = choices;
    if (!SYMBOL_END.test(open)) {
      throw new Error(
        `choices: open "${open}" must end with a symbol such as ">" (options are encoded on their own)`,
      );
    }
    const bad = options.find((o) => !WORD_START.test(o));
    if (bad !== undefined) {
      throw new Error(
        `choices: option "${bad}" must start with a letter or digit (it is encoded on its own)`,
      );
    }
    this.root = buildTrie(options, choices.close, tok);
  }

  /** Start from a prompt: one that ends with `open` puts the first generated token inside the span. */
  prime(prompt: readonly number[]): this {
    // Every token is at least one byte, so the last open.length tokens hold the tail.
    let ends = false;
    for (const id of prompt.slice(-this.choices.open.length)) ends = this.see(id);
    if (ends) this.node = this.root;
    return this;
  }

  /** The tokens the next token must be one of (sorted ids), or undefined when any token may follow. */
  allowed(): Uint32Array | undefined {
    return this.node?.ids;
  }

  /** Account for a generated token. */
  push(token: number): void {
    if (this.node) {
      const child = this.node.next.get(token);
      if (!child) throw new Error(`choices: token ${token} is not one of the allowed continuations`);
      // A leaf ends the span (every option ends with `close`); the row is free again.
      this.node = child.ids.length > 0 ? child : undefined;
      this.tail = '';
      return;
    }
    if (this.see(token)) this.node = this.root;
  }

  /** Add a free token's text to the tail; true when the text now ends with `open`. */
  private see(token: number): boolean {
    const open = this.choices.open;
    const text = this.tail + this.decoder.decode(this.tok.tokenBytes(token), { stream: true });
    this.tail = text.slice(-open.length);
    return this.tail === open;
  }
}

/**
 * Keep only `allowed` logits (the others -Infinity), into `out` (reused across calls); the sampler
 * then draws from the model's distribution renormalised over them.
 */
export function maskLogits(logits: Float32Array, allowed: Uint32Array, out?: Float32Array): Float32Array {
  const masked = out && out.length === logits.length ? out : new Float32Array(logits.length);
  masked.fill(Number.NEGATIVE_INFINITY);
  for (const id of allowed) masked[id] = logits[id]!;
  return masked;
}
