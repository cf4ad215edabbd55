/**
 * `ScriptedChatModel`: a ChatModel that replays fixed replies, so gold traces run through the real
 * AgentFlow loop.
 */
import type { ChatMessage, ChatModel, ChatOptions, ChatResult } from '../types.ts';

/**
 * A ChatModel that answers from a script: reply k to call k. It is how gold traces replay through
 * the real AgentFlow loop (every prompt is built, every tool runs, only the replies are fixed), which
 * also yields the prompts that go with each gold reply for supervised warm-starts.
 */
export class ScriptedChatModel implements ChatModel {
  readonly name: string;
  /** The messages of each call so far, in order. */
  readonly calls: ChatMessage[][] = [];
  private next = 0;

  constructor(
    name: string,
    private readonly replies: readonly string[],
  ) {
    this.name = `scripted:${name}`;
  }

  /** Replies not used yet. */
  get remaining(): number {
    return this.replies.length - this.next;
  }

  async chat(messages: readonly ChatMessage[], _options: ChatOptions = {}): Promise<ChatResult> {
    this.calls.push([...messages]);
    if (this.next >= this.replies.length) {
      throw new Error(
        `${this.name}: call ${this.next + 1} but the script has only ${this.replies.length} replies`,
      );
    }
    return { text: this.replies[this.next++]!, finishReason: 'stop' };
  }
}
