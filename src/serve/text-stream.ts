/**
 * Turning a row's tokens into streamed text: bytes are decoded incrementally (a character may span
 * tokens), the end token is not text, and text that might be the start of a stop string is held
 * back until it is known not to be one, so a client never receives text the final answer cuts.
 */
import type { PolicyTokenizer } from '../policy/tokenizer/tokenizer.ts';

export class TextStream {
  private readonly decoder = new TextDecoder('utf-8');
  private text = '';
  private emitted = 0;
  private readonly holdBack: number;

  constructor(
    private readonly tokenizer: PolicyTokenizer,
    private readonly stop: readonly string[],
  ) {
    this.holdBack = Math.max(0, ...stop.map((s) => s.length - 1));
  }

  /** Add a token; returns the text that is now safe to send ('' when none). */
  push(token: number): string {
    if (this.tokenizer.stopIds.includes(token)) return '';
    this.text += this.decoder.decode(this.tokenizer.tokenBytes(token), { stream: true });
    let safe = this.text.length - this.holdBack;
    for (const s of this.stop) {
      const at = this.text.indexOf(s);
      if (at >= 0) safe = Math.min(safe, at);
    }
    return this.take(safe);
  }

  /** The rest of the final text (the generation's text, cut before any stop string). */
  finish(finalText: string): string {
    const rest = finalText.slice(this.emitted);
    this.emitted = finalText.length;
    return rest;
  }

  private take(upTo: number): string {
    if (upTo <= this.emitted) return '';
    const piece = this.text.slice(this.emitted, upTo);
    this.emitted = upTo;
    return piece;
  }
}
