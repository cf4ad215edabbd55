/**
 * Token-exact prompts despite re-tokenization. A client sends the server's own replies back as
 * assistant messages, but re-serialized: LangChain and the OpenAI SDK rebuild `tool_calls`
 * (arguments re-stringified, keys or spacing changed, call ids kept or not) and may trim or turn
 * null content into ''. Re-encoding that text would train on ids the policy never sampled. So the
 * server remembers every reply it produced under a normalized key (content with whitespace runs
 * collapsed and trimmed; each tool call's name and arguments parsed and re-serialized with sorted
 * keys), and a prompt's assistant message with the same key gets the reply's recorded ids. Keys
 * are looked up in the request's rollout first, then among all replies; an assistant message
 * without a match (written by the client, or older than the cache) is re-encoded from its text,
 * and counted as `reencoded` in the response and the recorded step.
 */

import type { PolicyChatModel } from '../agents/chat/policy-chat-model.ts';
import type { ChatMessage, ChatToolCall, ChatToolDefinition } from '../agents/types.ts';
import type { PolicyTokenizer } from '../policy/tokenizer/tokenizer.ts';

/** JSON with object keys sorted at every level, so that equal values give equal text. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

const normalizeText = (text: string | null | undefined) => (text ?? '').replace(/\s+/g, ' ').trim();

function normalizeArguments(args: string): string {
  try {
    return canonicalJson(JSON.parse(args));
  } catch {
    return normalizeText(args);
  }
}

/** The key an assistant message is matched by: its normalized content and tool calls (ids left out). */
export function replyKey(
  content: string | null | undefined,
  toolCalls: readonly ChatToolCall[] = [],
): string {
  return JSON.stringify([
    normalizeText(content),
    toolCalls.map((c) => [c.name, normalizeArguments(c.arguments)]),
  ]);
}

/** Replies this server produced, by key: the ids of the assistant message after its role token. */
export class ReplyCache {
  private readonly entries = new Map<string, number[]>();

  /** `limit`: replies kept (the oldest are forgotten first). */
  constructor(private readonly limit = 10_000) {}

  get size(): number {
    return this.entries.size;
  }

  /** Remembers a reply: `ids` are what follows `<|assistant|>` (the end token included). */
  add(key: string, ids: number[], rollout?: string): void {
    for (const k of rollout === undefined ? [`*${key}`] : [`*${key}`, `${rollout}\u0000${key}`]) {
      this.entries.delete(k);
      this.entries.set(k, ids);
    }
    while (this.entries.size > this.limit) this.entries.delete(this.entries.keys().next().value!);
  }

  find(key: string, rollout?: string): number[] | undefined {
    return (
      (rollout !== undefined ? this.entries.get(`${rollout}\u0000${key}`) : undefined) ??
      this.entries.get(`*${key}`)
    );
  }
}

/** A prompt's ids, and how many assistant messages were re-encoded for want of a recorded reply. */
export interface PromptIds {
  ids: number[];
  reencoded: number;
}

/**
 * The chat template of `messages` (+ tools) with a generation prompt, as the model's `promptTokens`
 * makes it, with each assistant message found in `cache` carrying its recorded ids (`tokenIds`),
 * which the template splices in where the message's content goes. A message counts as re-encoded
 * when no reply of the server's matches it, or when the model's template could not keep its ids.
 */
export function promptIds(
  model: { promptTokens: PolicyChatModel['promptTokens'] },
  messages: readonly ChatMessage[],
  tools: readonly ChatToolDefinition[],
  cache: ReplyCache,
  rollout?: string,
): PromptIds {
  let reencoded = 0;
  const withIds = messages.map((m): ChatMessage => {
    if (m.role !== 'assistant') return m;
    const recorded = cache.find(replyKey(m.content, m.toolCalls), rollout);
    if (!recorded) {
      reencoded++;
      return m;
    }
    return { ...m, tokenIds: recorded };
  });
  const ids = model.promptTokens(withIds, {
    tools: [...tools],
    onReencoded: () => {
      reencoded++;
    },
  });
  return { ids, reencoded };
}

/** The ids a reply adds to a later prompt: its forced opening, the sampled ids, and the end token. */
export function replyIds(
  tok: PolicyTokenizer,
  opening: readonly number[],
  sampled: readonly number[],
): number[] {
  const ids = [...opening, ...sampled];
  if (ids.at(-1) !== tok.endId) ids.push(tok.endId);
  return ids;
}
