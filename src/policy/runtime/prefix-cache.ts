/**
 * A KV cache keyed by token prefix: a radix tree whose edges are runs of token ids carrying those
 * tokens' keys and values (SGLang's RadixAttention; vLLM's automatic prefix caching does the same
 * with hashed blocks). A prompt whose first tokens were seen before (the G rollouts of a task, a
 * trajectory's next turn, the same system prompt) gets their keys and values copied into its
 * decode slot and prefills only the rest.
 *
 * Memory is bounded by `maxTokens` (keys and values of that many positions): inserting evicts the
 * least recently used leaves no running row holds, and whatever still does not fit is not cached.
 * Keys and values depend on the weights, so the owner clears the cache after every update.
 */
import { headSize, kvHeads, type ModelConfig } from '../model/config.ts';
import type { KvSegment, SlotCache } from './slots.ts';

interface Node {
  /** The edge's token ids (empty at the root). */
  tokens: number[];
  /** Their keys and values, per layer [heads, tokens, headSize]. */
  kv: KvSegment;
  children: Map<number, Node>;
  parent: Node | undefined;
  /** Running rows that hold this node (a held node is never evicted). */
  refs: number;
  /** Tick of the last lookup or insertion through this node (LRU order). */
  lastUsed: number;
}

/** A lookup's result: how many tokens are cached and the nodes (each with how many of its tokens) that hold them. */
export interface PrefixMatch {
  length: number;
  path: { node: Node; take: number }[];
}

/** A node of the tree, as handed to `hold` / `unhold`. */
export type PrefixNode = Node;

export interface PrefixCacheStats {
  /** Prompts looked up and their tokens. */
  lookups: number;
  lookupTokens: number;
  /** Prompt tokens found in the cache (reused instead of prefilled). */
  hitTokens: number;
  insertedTokens: number;
  evictedTokens: number;
}

/** Bytes of keys and values one cached position takes in float32. */
export function kvBytesPerToken(c: ModelConfig): number {
  return 2 * c.layers * kvHeads(c) * headSize(c) * 4;
}

export class PrefixCache {
  private readonly root: Node;
  private tick = 0;
  /** Cached positions (sum of the edges' lengths): never above maxTokens. */
  size = 0;
  readonly stats: PrefixCacheStats = {
    lookups: 0,
    lookupTokens: 0,
    hitTokens: 0,
    insertedTokens: 0,
    evictedTokens: 0,
  };

  constructor(
    readonly config: ModelConfig,
    readonly maxTokens: number,
  ) {
    if (!Number.isInteger(maxTokens) || maxTokens < 0) {
      throw new Error(`PrefixCache: maxTokens must be an integer >= 0, got ${maxTokens}`);
    }
    this.root = this.node([], emptySegment(config), undefined);
  }

  /** Bytes of the cached keys and values. */
  get bytes(): number {
    return this.size * kvBytesPerToken(this.config);
  }

  /** The share of looked-up prompt tokens found in the cache. */
  get hitRate(): number {
    return this.stats.lookupTokens === 0 ? 0 : this.stats.hitTokens / this.stats.lookupTokens;
  }

  private node(tokens: number[], kv: KvSegment, parent: Node | undefined): Node {
    return { tokens, kv, children: new Map(), parent, refs: 0, lastUsed: this.tick };
  }

  /**
   * The longest cached prefix of `tokens`, at most `limit` tokens (a prompt keeps at least its
   * last token to prefill: the cache holds keys and values, not logits). Counts in the stats and
   * marks the nodes used.
   */
  match(tokens: readonly number[], limit = tokens.length): PrefixMatch {
    const found = this.walk(tokens, limit);
    const t = ++this.tick;
    for (const { node } of found.path) node.lastUsed = t;
    this.stats.lookups++;
    this.stats.lookupTokens += tokens.length;
    this.stats.hitTokens += found.length;
    return found;
  }

  /** How many tokens `match` would find, without counting or touching anything. */
  peek(tokens: readonly number[], limit = tokens.length): number {
    return this.walk(tokens, limit).length;
  }

  private walk(tokens: readonly number[], limit: number): PrefixMatch {
    const path: PrefixMatch['path'] = [];
    let node = this.root;
    let at = 0;
    while (at < limit) {
      const child = node.children.get(tokens[at]!);
      if (!child) break;
      let take = 0;
      while (take < child.tokens.length && at + take < limit && child.tokens[take] === tokens[at + take])
        take++;
      path.push({ node: child, take });
      at += take;
      if (take < child.tokens.length) break;
      node = child;
    }
    return { length: at, path };
  }

  /** Copy a match's keys and values into positions 0..length-1 of a slot. */
  copyInto(match: PrefixMatch, slots: SlotCache, slot: number): void {
    let at = 0;
    for (const { node, take } of match.path) {
      slots.write(slot, at, node.kv, take);
      at += take;
    }
  }

  /**
   * Hold a node (a running row's deepest cached node) so that eviction leaves it. Holding the
   * deepest node protects its ancestors too: only leaves are evicted, and they are not leaves.
   */
  hold(node: Node | undefined): void {
    if (node) node.refs++;
  }

  unhold(node: Node | undefined): void {
    if (node) node.refs--;
  }

  /**
   * Cache `tokens`, whose keys and values `read(start, end)` returns (a copy of positions
   * start..end-1). Only the part not cached yet is read. Returns the deepest node now holding a
   * prefix of `tokens` (all of it, unless the bound cut it short), for `hold`.
   */
  insert(tokens: readonly number[], read: (start: number, end: number) => KvSegment): Node | undefined {
    const t = ++this.tick;
    let node = this.root;
    let at = 0;
    while (at < tokens.length) {
      const child = node.children.get(tokens[at]!);
      if (!child) break;
      let same = 0;
      while (
        same < child.tokens.length &&
        at + same < tokens.length &&
        child.tokens[same] === tokens[at + same]
      )
        same++;
      const partial = same < child.tokens.length;
      // A partial edge is split so that the shared part becomes a node of its own.
      node = partial ? this.split(child, same) : child;
      node.lastUsed = t;
      at += same;
      if (partial) break;
    }
    if (at < tokens.length) {
      // Hold the node we attach to while making room, so eviction cannot take it.
      this.hold(node);
      const room = this.makeRoom(tokens.length - at);
      this.unhold(node);
      if (room > 0) {
        const leaf = this.node(tokens.slice(at, at + room), read(at, at + room), node);
        node.children.set(tokens[at]!, leaf);
        this.size += room;
        this.stats.insertedTokens += room;
        node = leaf;
      }
    }
    return node === this.root ? undefined : node;
  }

  /** Split `node` after `at` tokens; returns the new upper node (the old one keeps the tail). */
  private split(node: Node, at: number): Node {
    const parent = node.parent!;
    const { head, tail } = splitSegment(node.kv, at, kvHeads(this.config));
    // Holders keep holding the lower node, which stays below `upper`: no counts move.
    const upper = this.node(node.tokens.slice(0, at), head, parent);
    upper.lastUsed = node.lastUsed;
    parent.children.set(upper.tokens[0]!, upper);
    node.tokens = node.tokens.slice(at);
    node.kv = tail;
    node.parent = upper;
    upper.children.set(node.tokens[0]!, node);
    return upper;
  }

  /**
   * Evict least recently used unheld leaves until `want` more tokens fit; returns how many do
   * (less than `want` when held nodes fill the bound).
   */
  private makeRoom(want: number): number {
    while (this.size + want > this.maxTokens) {
      const victim = this.lruLeaf();
      if (!victim) break;
      victim.parent!.children.delete(victim.tokens[0]!);
      this.size -= victim.tokens.length;
      this.stats.evictedTokens += victim.tokens.length;
    }
    return Math.max(0, Math.min(want, this.maxTokens - this.size));
  }

  private lruLeaf(): Node | undefined {
    let best: Node | undefined;
    const stack = [...this.root.children.values()];
    while (stack.length > 0) {
      const n = stack.pop()!;
      if (n.children.size > 0) stack.push(...n.children.values());
      else if (n.refs === 0 && (!best || n.lastUsed < best.lastUsed)) best = n;
    }
    return best;
  }

  /** Forget everything (the weights changed). Held nodes are simply dropped with the tree. */
  clear(): void {
    this.root.children.clear();
    this.size = 0;
  }

  /** Cached positions counted by walking the tree (tests check it against `size`). */
  countTokens(): number {
    let n = 0;
    const stack = [...this.root.children.values()];
    while (stack.length > 0) {
      const node = stack.pop()!;
      n += node.tokens.length;
      stack.push(...node.children.values());
    }
    return n;
  }
}

function emptySegment(c: ModelConfig): KvSegment {
  return {
    k: Array.from({ length: c.layers }, () => new Float32Array(0)),
    v: Array.from({ length: c.layers }, () => new Float32Array(0)),
    tokens: 0,
  };
}

/** Cut a segment [heads, n, headSize] per layer into its first `at` tokens and the rest. */
function splitSegment(s: KvSegment, at: number, heads: number): { head: KvSegment; tail: KvSegment } {
  const n = s.tokens;
  const cut = (buf: Float32Array, from: number, to: number) => {
    const hs = buf.length / (heads * n);
    const out = new Float32Array(heads * (to - from) * hs);
    for (let h = 0; h < heads; h++) {
      out.set(buf.subarray((h * n + from) * hs, (h * n + to) * hs), h * (to - from) * hs);
    }
    return out;
  };
  return {
    head: { k: s.k.map((b) => cut(b, 0, at)), v: s.v.map((b) => cut(b, 0, at)), tokens: at },
    tail: { k: s.k.map((b) => cut(b, at, n)), v: s.v.map((b) => cut(b, at, n)), tokens: n - at },
  };
}
