/**
 * The running decode batch's keys and values: one slot per row in preallocated host buffers
 * [rows, heads, capacity, headSize] per layer. Unlike the lock-step `KvCache` (left-padded, one
 * length for all), each row keeps its own length, so rows join and leave between decode steps:
 * a row's tokens sit at columns 0..length-1 of its slot, and the active rows are always slots
 * 0..rows-1 (a leaving row's slot is refilled with the last one), so the graphs read a prefix
 * of the buffer in place.
 */
import { headSize, kvHeads, type ModelConfig } from '../model/config.ts';

/** Keys and values of a run of tokens, per layer [heads, tokens, headSize] (a prefix-cache segment). */
export interface KvSegment {
  k: Float32Array[];
  v: Float32Array[];
  tokens: number;
}

export class SlotCache {
  readonly layers: number;
  readonly heads: number;
  readonly headSize: number;
  k: Float32Array[] = [];
  v: Float32Array[] = [];
  /** Rows the buffers have room for. */
  rowCapacity = 0;
  /** Positions each slot has room for (the graphs' `keys` dim). */
  capacity = 0;
  /** Active rows: slots 0..rows-1. */
  rows = 0;
  /** Filled positions of each active slot. */
  lengths: number[] = [];

  constructor(readonly config: ModelConfig) {
    this.layers = config.layers;
    this.heads = kvHeads(config);
    this.headSize = headSize(config);
  }

  /** Bytes held by the buffers. */
  get bytes(): number {
    return 2 * this.layers * this.rowCapacity * this.heads * this.capacity * this.headSize * 4;
  }

  /**
   * Make room for `rows` rows of `capacity` positions, keeping the active rows' contents. A decode
   * step reads every position of the capacity (masked or not), so capacity costs time: with no
   * active row the buffers are laid out for the capacity asked for, rounded up to 8 positions, in
   * the memory of the earlier busy period's buffers when it is large enough (no allocation, no
   * zeroing: positions a row has not filled are masked). Growing while rows are active rounds up
   * to 32 positions and rows to the next power of two, so that rows joining one by one do not
   * reallocate at every step.
   */
  reserve(rows: number, capacity: number): void {
    const ctx = this.config.contextLength;
    if (capacity > ctx) throw new Error(`SlotCache: capacity ${capacity} exceeds the context length ${ctx}`);
    const pow2 = 2 ** Math.ceil(Math.log2(Math.max(1, rows)));
    if (this.rows === 0) {
      const cap = Math.min(ctx, Math.ceil(capacity / 8) * 8);
      const per = this.heads * cap * this.headSize;
      const room = this.k.length > 0 ? Math.floor(this.k[0]!.buffer.byteLength / 4 / per) : 0;
      const fits = room >= pow2;
      const layout = (old: Float32Array | undefined) =>
        fits ? new Float32Array(old!.buffer, 0, room * per) : new Float32Array(pow2 * per);
      this.k = Array.from({ length: this.layers }, (_, l) => layout(this.k[l]));
      this.v = Array.from({ length: this.layers }, (_, l) => layout(this.v[l]));
      this.rowCapacity = fits ? room : pow2;
      this.capacity = cap;
      return;
    }
    if (rows <= this.rowCapacity && capacity <= this.capacity) return;
    const newRows = Math.max(this.rowCapacity, pow2);
    const newCap = Math.max(this.capacity, Math.min(ctx, Math.ceil(capacity / 32) * 32));
    const { heads: H, headSize: hs } = this;
    const grow = (old: Float32Array | undefined) => {
      const next = new Float32Array(newRows * H * newCap * hs);
      if (old) {
        for (let rh = 0; rh < this.rows * H; rh++) {
          next.set(
            old.subarray(rh * this.capacity * hs, rh * this.capacity * hs + this.capacity * hs),
            rh * newCap * hs,
          );
        }
      }
      return next;
    };
    this.k = Array.from({ length: this.layers }, (_, l) => grow(this.k[l]));
    this.v = Array.from({ length: this.layers }, (_, l) => grow(this.v[l]));
    this.rowCapacity = newRows;
    this.capacity = newCap;
  }

  /** Free the buffers (the batch has been idle for a while). */
  release(): void {
    this.k = [];
    this.v = [];
    this.rowCapacity = 0;
    this.capacity = 0;
    this.rows = 0;
    this.lengths = [];
  }

  /** The first `rows` slots from `first` on of one layer's buffer (a view, no copy). */
  view(kind: 'k' | 'v', layer: number, first: number, rows: number): Float32Array {
    const per = this.heads * this.capacity * this.headSize;
    return this[kind][layer]!.subarray(first * per, (first + rows) * per);
  }

  /** Add a row with nothing cached yet; returns its slot. */
  add(): number {
    if (this.rows >= this.rowCapacity) throw new Error('SlotCache: no free slot; reserve first');
    this.lengths.push(0);
    return this.rows++;
  }

  /** Remove the row in `slot`: the last row moves into it. Returns the slot that moved (or -1). */
  remove(slot: number): number {
    const last = this.rows - 1;
    if (slot !== last) {
      const { heads: H, headSize: hs, capacity: cap } = this;
      const n = this.lengths[last]!;
      for (const buf of [...this.k, ...this.v]) {
        for (let h = 0; h < H; h++) {
          const from = (last * H + h) * cap * hs;
          buf.copyWithin((slot * H + h) * cap * hs, from, from + n * hs);
        }
      }
      this.lengths[slot] = n;
    }
    this.lengths.pop();
    this.rows--;
    return slot !== last ? last : -1;
  }

  /** Copy the first `take` tokens of a segment to positions at..at+take-1 of a slot. */
  write(slot: number, at: number, segment: KvSegment, take = segment.tokens): void {
    const { heads: H, headSize: hs, capacity: cap } = this;
    if (at + take > cap) throw new Error(`SlotCache: writing past the slot's ${cap} positions`);
    for (let l = 0; l < this.layers; l++) {
      for (const kind of ['k', 'v'] as const) {
        const src = segment[kind][l]!;
        const dst = this[kind][l]!;
        for (let h = 0; h < H; h++) {
          const from = h * segment.tokens * hs;
          dst.set(src.subarray(from, from + take * hs), ((slot * H + h) * cap + at) * hs);
        }
      }
    }
  }

  /** A copy of positions start..end-1 of a slot, as a segment. */
  read(slot: number, start: number, end: number): KvSegment {
    const { heads: H, headSize: hs, capacity: cap } = this;
    const n = end - start;
    const copy = (buf: Float32Array) => {
      const out = new Float32Array(H * n * hs);
      for (let h = 0; h < H; h++) {
        const from = ((slot * H + h) * cap + start) * hs;
        out.set(buf.subarray(from, from + n * hs), h * n * hs);
      }
      return out;
    };
    return { k: this.k.map(copy), v: this.v.map(copy), tokens: n };
  }
}
