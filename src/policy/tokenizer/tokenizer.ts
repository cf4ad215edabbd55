/**
 * A byte-level BPE tokenizer with chat special tokens.
 *
 * Ids:  0..255            the 256 bytes (always present, so any string round-trips)
 *       256..261          special tokens, see SPECIAL_TOKENS
 *       262..vocabSize-1  learned merges, in the order they were learned
 *
 * Special tokens are never produced by `encode`: plain text is always encoded as bytes and merges,
 * so a user who types "<|end|>" gets the 7 characters '<', '|', 'e', ... as ordinary tokens, not
 * the end token. Only `applyChatTemplate` (or code that inserts the ids itself) emits specials.
 * `decode` renders a special token as its name ("<|end|>"), so decoded text alone cannot tell the
 * two apart; look at the ids when that matters.
 *
 * JS strings can hold lone UTF-16 surrogates, which have no UTF-8 encoding; like every UTF-8
 * encoder we turn them into U+FFFD. Every well-formed string round-trips exactly.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { z } from 'zod';
import { parseOrThrow } from '../../util/zod.ts';
import { pretokenize, type SpaceMode } from './pretokenize.ts';
import { learnMerges, mergePair, pairKey, trainMerges } from './train.ts';

/** Special token names and their ids. */
export const SPECIAL_TOKENS = {
  '<|pad|>': 256,
  '<|end|>': 257,
  '<|system|>': 258,
  '<|user|>': 259,
  '<|assistant|>': 260,
  '<|tool|>': 261,
} as const;
export type SpecialToken = keyof typeof SPECIAL_TOKENS;
const FIRST_MERGE_ID = 262;

export type ChatRole = 'system' | 'user' | 'assistant' | 'tool';
/** A tool call of an assistant message; `arguments` is JSON text (OpenAI's form). */
export interface TemplateToolCall {
  name: string;
  arguments: string;
}
/**
 * A message as the chat template renders it: a role and its text (agents' `ChatMessage` adds
 * ids and names). Tool calls are read only by templates that render tools themselves
 * (`PolicyTokenizer.rendersTools`, a Hugging Face model's own template).
 */
export interface TemplateMessage {
  role: ChatRole;
  content: string;
  /**
   * The content's exact token ids, used instead of encoding `content` (an assistant reply as it
   * was sampled, which re-encoding its text need not reproduce), so that a conversation's next
   * prompt extends the previous prompt and reply token for token. A trailing end token is the
   * message's own end.
   */
  tokenIds?: readonly number[];
  toolCalls?: readonly TemplateToolCall[];
}

/** An OpenAI function-tool definition, as a chat template receives it in `tools`. */
export interface TemplateTool {
  type: 'function';
  function: { name: string; description?: string; parameters: Record<string, unknown> };
}

export interface ChatTemplateOptions {
  /** End with the opening of an assistant turn, for the model to continue. */
  addGenerationPrompt?: boolean;
  /** Tools, for templates that render them (`rendersTools`); the built-in template ignores them. */
  tools?: readonly TemplateTool[];
  /**
   * Called with the index of each message whose `tokenIds` the template could not keep (a Hugging
   * Face template that rewrites the content); that message was encoded from its text instead.
   * stepwise's own template always keeps them.
   */
  onReencoded?: (message: number) => void;
}

/**
 * What the policy needs of a tokenizer: stepwise's own byte-level BPE (`Tokenizer`) or a
 * Hugging Face model's (`HfTokenizer` in src/policy/hf).
 */
export interface PolicyTokenizer {
  /** Number of token ids the model's vocabulary has (at least every id the tokenizer makes). */
  readonly vocabSize: number;
  /** The end-of-turn token: ends every assistant message. */
  readonly endId: number;
  /** Tokens generation stops on by default (endId first, then e.g. the model's other EOS ids). */
  readonly stopIds: readonly number[];
  /** The chat template renders `tools` and tool calls itself (else agents put them in the text). */
  readonly rendersTools: boolean;
  encode(text: string): number[];
  decode(ids: Iterable<number>, options?: { skipSpecial?: boolean }): string;
  /** The bytes a token stands for (a special token: the UTF-8 of its text). */
  tokenBytes(id: number): Uint8Array;
  isSpecial(id: number): boolean;
  applyChatTemplate(messages: readonly TemplateMessage[], options?: ChatTemplateOptions): number[];
}
const ROLE_TOKEN: Record<ChatRole, number> = {
  system: SPECIAL_TOKENS['<|system|>'],
  user: SPECIAL_TOKENS['<|user|>'],
  assistant: SPECIAL_TOKENS['<|assistant|>'],
  tool: SPECIAL_TOKENS['<|tool|>'],
};

export const TokenizerTrainOptions = z.object({
  /** Total vocabulary: 256 bytes + 6 specials + merges. Fewer if the text runs out of pairs. */
  vocabSize: z.number().int().min(FIRST_MERGE_ID).max(1048576).default(2048),
  /** A pair must occur at least this often (counting word frequency) to become a merge. */
  minFrequency: z.number().int().min(1).default(2),
  /**
   * 'separate': a space is a token of its own and never part of a word's tokens, so a word is
   * encoded alike after a space or after a tag (what copying a name needs; see pretokenize.ts).
   */
  spaces: z.enum(['attached', 'separate']).default('attached'),
  /**
   * Superword merges learned after the word merges (SuperBPE's second stage: Liu et al., "SuperBPE:
   * Space Travel for Language Models", 2025): BPE again across the words of each line, so a
   * prompt's fixed wording ("Your admissible actions now are: ['") becomes a few tokens. A token
   * holding an ASCII digit never joins one (numbers stay composable). The vocabulary grows by up to
   * this many; 0: none.
   */
  superwords: z.number().int().min(0).default(0),
});
export type TokenizerTrainOptions = z.infer<typeof TokenizerTrainOptions>;

/** The JSON form of a tokenizer (tokenizer.json in a checkpoint). */
const TokenizerJson = z.object({
  type: z.literal('stepwise-byte-bpe'),
  version: z.literal(1),
  specials: z.record(z.string(), z.number().int()),
  merges: z.array(z.tuple([z.number().int().min(0), z.number().int().min(0)])),
  /** Absent in tokenizers saved before the option existed: 'attached'. */
  spaces: z.enum(['attached', 'separate']).optional(),
  /** How many of the last merges are superword merges (across words); absent: 0. */
  superwords: z.number().int().min(0).optional(),
});
export type TokenizerJson = z.infer<typeof TokenizerJson>;

/** Words cached per tokenizer before the cache is cleared (bounds memory on endless new text). */
const CACHE_LIMIT = 100_000;

export class Tokenizer implements PolicyTokenizer {
  readonly rendersTools = false;
  /** Merge rules in order: token FIRST_MERGE_ID + r = merges[r][0] followed by merges[r][1]. */
  readonly merges: readonly (readonly [number, number])[];
  /** pairKey(a, b) -> merged id; a lower id is an earlier merge, i.e. a higher priority. */
  private readonly mergeOf = new Map<number, number>();
  /** The same for the superword merges, which apply across words, after the word merges. */
  private readonly superMergeOf = new Map<number, number>();
  private readonly lineCache = new Map<string, number[]>();
  /** The bytes each token stands for (specials: the UTF-8 of their name). */
  private readonly bytesOf: Uint8Array[] = [];
  private readonly cache = new Map<string, number[]>();
  private readonly encoder = new TextEncoder();

  /** How text is cut into words before BPE (see TokenizerTrainOptions.spaces). */
  readonly spaces: SpaceMode;
  /** How many of the last merges are superword merges (see TokenizerTrainOptions.superwords). */
  readonly superwords: number;

  constructor(
    merges: readonly (readonly [number, number])[],
    options: { spaces?: SpaceMode; superwords?: number } = {},
  ) {
    this.merges = merges;
    this.spaces = options.spaces ?? 'attached';
    this.superwords = options.superwords ?? 0;
    if (this.superwords > merges.length)
      throw new Error(`tokenizer: ${this.superwords} superword merges, but only ${merges.length} merges`);
    const firstSuper = FIRST_MERGE_ID + merges.length - this.superwords;
    for (let b = 0; b < 256; b++) this.bytesOf.push(Uint8Array.of(b));
    for (const name of Object.keys(SPECIAL_TOKENS)) this.bytesOf.push(this.encoder.encode(name));
    merges.forEach(([a, b], r) => {
      const id = FIRST_MERGE_ID + r;
      if (a >= id || b >= id || (a >= 256 && a < FIRST_MERGE_ID) || (b >= 256 && b < FIRST_MERGE_ID)) {
        throw new Error(`tokenizer: merge ${r} is [${a}, ${b}]; expected two earlier non-special tokens`);
      }
      (id < firstSuper ? this.mergeOf : this.superMergeOf).set(pairKey(a, b), id);
      const ba = this.bytesOf[a]!;
      const bb = this.bytesOf[b]!;
      const joined = new Uint8Array(ba.length + bb.length);
      joined.set(ba);
      joined.set(bb, ba.length);
      this.bytesOf.push(joined);
    });
  }

  /** Learn a tokenizer from texts (deterministic: the same texts give the same tokenizer). */
  static train(texts: Iterable<string>, options: z.input<typeof TokenizerTrainOptions> = {}): Tokenizer {
    const { vocabSize, minFrequency, spaces, superwords } = parseOrThrow(
      TokenizerTrainOptions,
      options,
      'invalid tokenizer options',
    );
    const all = superwords > 0 ? [...texts] : texts;
    const words = new Tokenizer(
      trainMerges(all, {
        firstId: FIRST_MERGE_ID,
        maxMerges: vocabSize - FIRST_MERGE_ID,
        minFrequency,
        spaces,
      }),
      { spaces },
    );
    if (superwords === 0) return words;
    // The second stage: each distinct line as its word-merged tokens, BPE across them.
    const lineCounts = new Map<string, number>();
    for (const text of all)
      for (const line of lines(text)) lineCounts.set(line, (lineCounts.get(line) ?? 0) + 1);
    const digits = new Set<number>();
    for (let id = 0; id < words.vocabSize; id++)
      if (words.tokenBytes(id).some((b) => b >= 48 && b <= 57)) digits.add(id);
    const superMerges = learnMerges(
      [...lineCounts.keys()].map((line) => words.encode(line)),
      [...lineCounts.values()],
      {
        firstId: words.vocabSize,
        maxMerges: superwords,
        minFrequency,
        allow: (a, b) => !digits.has(a) && !digits.has(b),
      },
    );
    return new Tokenizer([...words.merges, ...superMerges], { spaces, superwords: superMerges.length });
  }

  /** Number of token ids (bytes + specials + merges); the model's vocabulary must be this size. */
  get vocabSize(): number {
    return FIRST_MERGE_ID + this.merges.length;
  }

  /** Id of a special token, e.g. `tok.special('<|end|>')`. */
  special(name: SpecialToken): number {
    return SPECIAL_TOKENS[name];
  }

  /** The end token: ends every chat message, so generation stops on it. */
  get endId(): number {
    return SPECIAL_TOKENS['<|end|>'];
  }

  get stopIds(): readonly number[] {
    return [this.endId];
  }

  get padId(): number {
    return SPECIAL_TOKENS['<|pad|>'];
  }

  isSpecial(id: number): boolean {
    return id >= 256 && id < FIRST_MERGE_ID;
  }

  /** Plain text -> ids. Never yields a special token (see the module comment). */
  encode(text: string): number[] {
    if (this.superwords === 0) return this.encodeWords(text);
    const ids: number[] = [];
    for (const line of lines(text)) for (const id of this.encodeLine(line)) ids.push(id);
    return ids;
  }

  /** Each word's tokens (the word merges only), in order. */
  private encodeWords(text: string): number[] {
    const ids: number[] = [];
    for (const word of pretokenize(text, this.spaces)) for (const id of this.encodeWord(word)) ids.push(id);
    return ids;
  }

  /** A line's word tokens, then the superword merges across them (earliest first), cached. */
  private encodeLine(line: string): number[] {
    const hit = this.lineCache.get(line);
    if (hit) return hit;
    const ids = applyMerges(this.encodeWords(line), this.superMergeOf);
    if (this.lineCache.size >= CACHE_LIMIT) this.lineCache.clear();
    this.lineCache.set(line, ids);
    return ids;
  }

  /** BPE on one word, cached: rollouts encode the same prompts thousands of times. */
  private encodeWord(word: string): number[] {
    const hit = this.cache.get(word);
    if (hit) return hit;
    const ids = applyMerges(Array.from(this.encoder.encode(word)), this.mergeOf);
    if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
    this.cache.set(word, ids);
    return ids;
  }

  /** The bytes a token stands for (a special token: the UTF-8 of its name). */
  tokenBytes(id: number): Uint8Array {
    const bytes = this.bytesOf[id];
    if (!bytes) throw new Error(`tokenizer: token id ${id} is out of range [0, ${this.vocabSize})`);
    return bytes;
  }

  /**
   * Ids -> text. Invalid UTF-8 (e.g. a cut-off multi-byte character) becomes U+FFFD. Special
   * tokens appear as their names unless `skipSpecial` is set.
   */
  decode(ids: Iterable<number>, options: { skipSpecial?: boolean } = {}): string {
    const parts: Uint8Array[] = [];
    let length = 0;
    for (const id of ids) {
      if (options.skipSpecial && this.isSpecial(id)) continue;
      const b = this.tokenBytes(id);
      parts.push(b);
      length += b.length;
    }
    const all = new Uint8Array(length);
    let at = 0;
    for (const p of parts) {
      all.set(p, at);
      at += p.length;
    }
    return new TextDecoder('utf-8').decode(all);
  }

  /**
   * Messages -> ids. Layout, with no separators beyond the special tokens:
   *
   *   <|system|>You are ...<|end|><|user|>Hi<|end|><|assistant|>Hello!<|end|><|tool|>...<|end|>
   *
   * and, with `addGenerationPrompt`, a trailing `<|assistant|>` for the model to continue; its
   * reply ends with `<|end|>`, the stop token. Each content is encoded on its own with `encode`,
   * so a message can never forge a role or end token.
   */
  applyChatTemplate(messages: readonly TemplateMessage[], options: ChatTemplateOptions = {}): number[] {
    const ids: number[] = [];
    for (const [i, m] of messages.entries()) {
      const role = ROLE_TOKEN[m.role];
      if (role === undefined) {
        throw new Error(
          `applyChatTemplate: message ${i} has role '${m.role}'; expected system, user, assistant or tool`,
        );
      }
      ids.push(role);
      if (m.tokenIds) {
        for (const id of m.tokenIds) ids.push(id);
        if (m.tokenIds.at(-1) !== this.endId) ids.push(this.endId);
        continue;
      }
      for (const id of this.encode(m.content)) ids.push(id);
      ids.push(this.endId);
    }
    if (options.addGenerationPrompt) ids.push(ROLE_TOKEN.assistant);
    return ids;
  }

  toJSON(): TokenizerJson {
    return {
      type: 'stepwise-byte-bpe',
      version: 1,
      specials: { ...SPECIAL_TOKENS },
      merges: this.merges.map(([a, b]) => [a, b]),
      // written only when not the default, so older readers still load default tokenizers
      ...(this.spaces === 'separate' ? { spaces: this.spaces } : {}),
      ...(this.superwords > 0 ? { superwords: this.superwords } : {}),
    };
  }

  /** From `toJSON()`'s object or its JSON text. */
  static fromJSON(json: string | unknown): Tokenizer {
    const raw = typeof json === 'string' ? JSON.parse(json) : json;
    const data = parseOrThrow(TokenizerJson, raw, 'tokenizer JSON');
    for (const [name, id] of Object.entries(SPECIAL_TOKENS)) {
      if (data.specials[name] !== id) {
        throw new Error(
          `tokenizer JSON: special token '${name}' has id ${data.specials[name]}; expected ${id}`,
        );
      }
    }
    return new Tokenizer(data.merges, { spaces: data.spaces, superwords: data.superwords });
  }

  async save(path: string): Promise<void> {
    await writeFile(path, JSON.stringify(this.toJSON()));
  }

  static async load(path: string): Promise<Tokenizer> {
    return Tokenizer.fromJSON(await readFile(path, 'utf8'));
  }
}

/** Apply the earliest-learned merge present, until none applies (the order training used). */
function applyMerges(ids: number[], mergeOf: ReadonlyMap<number, number>): number[] {
  while (ids.length > 1) {
    let best = -1;
    let a = 0;
    let b = 0;
    for (let i = 0; i + 1 < ids.length; i++) {
      const m = mergeOf.get(pairKey(ids[i]!, ids[i + 1]!));
      if (m !== undefined && (best < 0 || m < best)) {
        best = m;
        a = ids[i]!;
        b = ids[i + 1]!;
      }
    }
    if (best < 0) break;
    ids = mergePair(ids, a, b, best);
  }
  return ids;
}

/** Text cut after each newline: the spans superword merges stay inside. Joins back to the text. */
function lines(text: string): string[] {
  return text.split(/(?<=\n)/).filter((l) => l.length > 0);
}
