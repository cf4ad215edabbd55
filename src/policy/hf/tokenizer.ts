/**
 * A Hugging Face model's own tokenizer as a `PolicyTokenizer`: `tokenizer.json` through
 * @huggingface/tokenizers, the chat template (`tokenizer_config.json`'s `chat_template`, or
 * `chat_template.jinja`) through @huggingface/jinja, end-of-turn and EOS ids from
 * `tokenizer_config.json` and `generation_config.json`. Text is encoded the way transformers'
 * `apply_chat_template` does it: the template renders a string (with the model's own special
 * tokens in it), which is tokenized without adding special tokens.
 */
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Template } from '@huggingface/jinja';
import { Tokenizer as HfCoreTokenizer } from '@huggingface/tokenizers';
import type { ChatTemplateOptions, PolicyTokenizer, TemplateMessage } from '../tokenizer/tokenizer.ts';

/** Tokenizer files a folder may hold; all present ones are kept and written back by `save`. */
export const TOKENIZER_FILES = [
  'tokenizer.json',
  'tokenizer_config.json',
  'generation_config.json',
  'special_tokens_map.json',
  'chat_template.jinja',
] as const;

type TokenizerFiles = Partial<Record<(typeof TOKENIZER_FILES)[number], string>>;

/** A special-token field of tokenizer_config.json: a string or an AddedToken-like object. */
function tokenText(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') {
    return (v as { content: string }).content;
  }
  return undefined;
}

/** GPT-2's byte <-> printable character table (byte-level BPE vocabularies spell bytes with it). */
function byteDecoder(): Map<string, number> {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  }
  return new Map(bs.map((b, i) => [String.fromCodePoint(cs[i]!), b]));
}

/** What a spliced message's content is rendered as: a private-use character around its index. */
const marker = (i: number) => `\u{F8FF}stepwise-ids:${i}\u{F8FF}`;
const MARKER = /\u{F8FF}stepwise-ids:(\d+)\u{F8FF}/u;

export class HfTokenizer implements PolicyTokenizer {
  readonly rendersTools = true;
  readonly vocabSize: number;
  readonly endId: number;
  readonly stopIds: readonly number[];
  private readonly core: HfCoreTokenizer;
  private readonly template?: Template;
  private readonly specialIds: Set<number>;
  private readonly specialTokens: Record<string, string>;
  private readonly byteLevel: boolean;
  private readonly bytes = new Map<number, Uint8Array>();
  private readonly byteOf = byteDecoder();
  private readonly encoder = new TextEncoder();

  /**
   * From the files' texts. `modelVocabSize` is the model's vocab_size (often padded above the
   * tokenizer's ids); `dir` only names the source in errors.
   */
  constructor(
    readonly files: TokenizerFiles,
    modelVocabSize: number,
    dir = '',
  ) {
    const parse = (name: keyof TokenizerFiles): Record<string, unknown> => {
      const text = files[name];
      if (text === undefined) return {};
      try {
        return JSON.parse(text);
      } catch (e) {
        throw new Error(`${path.join(dir, name)}: not valid JSON (${(e as Error).message})`);
      }
    };
    if (files['tokenizer.json'] === undefined) throw new Error(`'${dir}' has no tokenizer.json`);
    const json = parse('tokenizer.json');
    const config = parse('tokenizer_config.json');
    const generation = parse('generation_config.json');
    this.core = new HfCoreTokenizer(json, config);
    const decoder = json.decoder as { type?: string; decoders?: { type?: string }[] } | null;
    const pre = json.pre_tokenizer as { type?: string; pretokenizers?: { type?: string }[] } | null;
    this.byteLevel = [decoder, ...(decoder?.decoders ?? []), pre, ...(pre?.pretokenizers ?? [])].some(
      (x) => x?.type === 'ByteLevel',
    );
    const added = (json.added_tokens ?? []) as { id: number; content: string; special?: boolean }[];
    this.specialIds = new Set(added.filter((t) => t.special).map((t) => t.id));
    let maxId = 0;
    for (const id of this.core.get_vocab(true).values()) maxId = Math.max(maxId, id);
    this.vocabSize = Math.max(modelVocabSize, maxId + 1);

    this.specialTokens = {};
    for (const k of ['bos_token', 'eos_token', 'pad_token', 'unk_token']) {
      const t = tokenText(config[k]);
      if (t !== undefined) this.specialTokens[k] = t;
    }
    const idOf = (text: string, field: string): number => {
      const id = this.core.token_to_id(text);
      if (id === undefined) throw new Error(`${dir}: ${field} '${text}' is not a token of tokenizer.json`);
      return id;
    };
    const genEos = generation.eos_token_id;
    const genIds = (Array.isArray(genEos) ? genEos : genEos === undefined ? [] : [genEos]) as number[];
    const eosText = this.specialTokens.eos_token;
    const end = eosText !== undefined ? idOf(eosText, 'tokenizer_config.json eos_token') : genIds[0];
    if (end === undefined) {
      throw new Error(
        `'${dir}': no end token; expected 'eos_token' in tokenizer_config.json or 'eos_token_id' in generation_config.json`,
      );
    }
    this.endId = end;
    this.stopIds = [...new Set([end, ...genIds])];
    const source = files['chat_template.jinja'] ?? (config.chat_template as unknown);
    const templateText = Array.isArray(source)
      ? (source as { name: string; template: string }[]).find((t) => t.name === 'default')?.template
      : (source as string | undefined);
    if (templateText !== undefined) this.template = new Template(templateText);
  }

  /** Read the tokenizer files of a Hugging Face folder. */
  static async fromFolder(dir: string, modelVocabSize: number): Promise<HfTokenizer> {
    const files: TokenizerFiles = {};
    for (const name of TOKENIZER_FILES) {
      const p = path.join(dir, name);
      if (existsSync(p)) files[name] = await readFile(p, 'utf8');
    }
    return new HfTokenizer(files, modelVocabSize, dir);
  }

  /** Write the tokenizer files as they were read. */
  async save(dir: string): Promise<void> {
    for (const [name, text] of Object.entries(this.files)) await writeFile(path.join(dir, name), text);
  }

  /** Text -> ids; the model's special tokens written in the text are recognized (as in transformers). */
  encode(text: string): number[] {
    return this.core.encode(text, { add_special_tokens: false }).ids;
  }

  decode(ids: Iterable<number>, options: { skipSpecial?: boolean } = {}): string {
    return this.core.decode([...ids], { skip_special_tokens: options.skipSpecial ?? false });
  }

  isSpecial(id: number): boolean {
    return this.specialIds.has(id);
  }

  tokenBytes(id: number): Uint8Array {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
      throw new Error(`tokenizer: token id ${id} is out of range [0, ${this.vocabSize})`);
    }
    let b = this.bytes.get(id);
    if (b) return b;
    const token = this.core.id_to_token(id);
    if (token === undefined)
      b = new Uint8Array(0); // an id of the model's padded vocabulary
    else if (this.specialIds.has(id) || this.core.get_added_tokens_decoder().has(id))
      b = this.encoder.encode(token);
    else if (this.byteLevel) {
      const chars = [...token];
      b = chars.every((ch) => this.byteOf.has(ch))
        ? Uint8Array.from(chars, (ch) => this.byteOf.get(ch)!)
        : this.encoder.encode(token);
    } else {
      // SentencePiece-style vocabularies: '▁' is a space, <0xNN> a byte (byte fallback).
      const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(token);
      b = m
        ? Uint8Array.of(Number.parseInt(m[1]!, 16))
        : this.encoder.encode(token.replaceAll('\u2581', ' '));
    }
    this.bytes.set(id, b);
    return b;
  }

  /** The chat template's text for these messages (what `applyChatTemplate` tokenizes). */
  renderChat(messages: readonly TemplateMessage[], options: ChatTemplateOptions = {}): string {
    if (!this.template) {
      throw new Error('this tokenizer has no chat_template (tokenizer_config.json or chat_template.jinja)');
    }
    const msgs = messages.map((m) => {
      const out: Record<string, unknown> = { role: m.role, content: m.content };
      const extra = m as TemplateMessage & { toolCallId?: string; name?: string };
      if (m.toolCalls && m.toolCalls.length > 0) {
        out.tool_calls = m.toolCalls.map((c) => {
          let args: unknown = c.arguments;
          try {
            args = JSON.parse(c.arguments);
          } catch {
            // Not JSON: the template gets the text as it was.
          }
          return { type: 'function', function: { name: c.name, arguments: args } };
        });
      }
      if (extra.toolCallId) out.tool_call_id = extra.toolCallId;
      if (extra.name) out.name = extra.name;
      return out;
    });
    return this.template.render({
      messages: msgs,
      ...(options.tools && options.tools.length > 0 ? { tools: options.tools } : {}),
      add_generation_prompt: options.addGenerationPrompt ?? false,
      ...this.specialTokens,
    });
  }

  /**
   * The template's ids. An assistant message with `tokenIds` contributes exactly those ids where
   * the template puts its content (a trailing end token stands for the template's own end of the
   * turn): the template renders a marker as that message's content, the text between markers is
   * encoded piece by piece and the ids go in between. Since every piece before a reply ends where
   * the generation prompt ended, a conversation's next prompt extends the previous prompt and the
   * reply as sampled, token for token.
   *
   * That needs the template to write the content verbatim as one span. It is checked per message,
   * on this call's rendering: the marker must appear once, rendering the reply's own text instead
   * must give the marker's rendering with the text in its place (a template that rewrites the
   * content, e.g. Qwen3's dropping of `<think>` blocks from earlier turns, fails this), and, when
   * the ids end with the end token, the template's text after the content must start with that
   * token. A message that fails is rendered from its text as without ids (`onReencoded` hears of
   * it). The ids carry the reply's tool calls as the model wrote them, so a spliced message's
   * `toolCalls` are not rendered again.
   */
  applyChatTemplate(messages: readonly TemplateMessage[], options: ChatTemplateOptions = {}): number[] {
    const spliced = messages.flatMap((m, i) =>
      m.role === 'assistant' && m.tokenIds && m.tokenIds.length > 0 ? [i] : [],
    );
    if (spliced.length === 0) return this.encode(this.renderChat(messages, options));
    const endText = this.core.id_to_token(this.endId) ?? '';
    const ownEnd = (ids: readonly number[]) => ids.at(-1) === this.endId;
    const body = (ids: readonly number[]) => (ownEnd(ids) ? ids.slice(0, -1) : ids);
    const marked = (keep: ReadonlySet<number>): TemplateMessage[] =>
      // Spread: a tool message's id and name (ChatMessage's fields) reach the template too.
      messages.map((m, i) =>
        keep.has(i) ? { ...m, content: marker(i), toolCalls: undefined } : { ...m, tokenIds: undefined },
      );
    const all = new Set(spliced);
    const probe = this.renderChat(marked(all), options);
    const texts = new Map(spliced.map((i) => [i, this.decode(body(messages[i]!.tokenIds!))]));
    /** The marker once, and the template's text after the content starts with an own end token. */
    const placed = (i: number): boolean => {
      const parts = probe.split(marker(i));
      return parts.length === 2 && (!ownEnd(messages[i]!.tokenIds!) || parts[1]!.startsWith(endText));
    };
    const verbatim = (which: readonly number[]): boolean => {
      const asText = marked(all);
      let expected = probe;
      for (const i of which) {
        asText[i] = { ...asText[i]!, content: texts.get(i)! };
        expected = expected.split(marker(i)).join(texts.get(i)!);
      }
      return this.renderChat(asText, options) === expected;
    };
    // One rendering checks every message at once (a growing conversation has many); only when
    // that fails is each message checked alone.
    const keep = new Set<number>();
    if (spliced.every(placed) && verbatim(spliced)) for (const i of spliced) keep.add(i);
    else for (const i of spliced) if (placed(i) && verbatim([i])) keep.add(i);
    for (const i of spliced) if (!keep.has(i)) options.onReencoded?.(i);
    const rendered = keep.size === all.size ? probe : this.renderChat(marked(keep), options);
    const out: number[] = [];
    // split with a capturing group: text, message index, text, message index, ..., text
    const pieces = rendered.split(MARKER);
    let cut = false;
    for (let k = 0; k < pieces.length; k++) {
      if (k % 2 === 1) {
        const ids = messages[Number(pieces[k])]!.tokenIds!;
        out.push(...ids);
        cut = ownEnd(ids);
        continue;
      }
      const text = cut ? pieces[k]!.slice(endText.length) : pieces[k]!;
      if (text.length > 0) out.push(...this.encode(text));
      cut = false;
    }
    return out;
  }
}
