/**
 * `web_search`: top-k documents for a query, from a local BM25 index by default or from a
 * provider a user plugs in (their own live search API). Nothing reaches the network unless a
 * user passes a provider that does.
 */
import { z } from 'zod';
import { defineTool, ToolFailure } from './define.ts';
import type { SearchHit, SearchIndex } from './search/index.ts';
import type { Tool, ToolLimits } from './types.ts';

export const WebSearchInput = z.object({
  query: z.string().min(1, 'expected a non-empty query'),
  k: z.number().int().min(1).max(50).optional(),
});
export type WebSearchInput = z.infer<typeof WebSearchInput>;

/** Where results come from. `search` may ignore `signal`; the tool's deadline still holds. */
export interface SearchProvider {
  /** Shown in the tool description and in errors. */
  name: string;
  search(query: string, k: number, signal: AbortSignal): Promise<SearchHit[]>;
}

/** A provider over a local `SearchIndex` (the default). */
export function indexProvider(index: SearchIndex): SearchProvider {
  return { name: 'local index', search: async (query, k) => index.search(query, k) };
}

export const HttpSearchProviderOptions = z.object({
  /** Endpoint; `{query}` and `{k}` in it are replaced by the URL-encoded query and k. */
  url: z.string().url(),
  /** Extra request headers (an API key, say). */
  headers: z.record(z.string(), z.string()).default({}),
  /** Field of the JSON response that holds the result list (dot path, '' = the response itself). */
  resultsPath: z.string().default('results'),
  /** Field names of one result. */
  titleField: z.string().default('title'),
  snippetField: z.string().default('snippet'),
  idField: z.string().default('url'),
});
export type HttpSearchProviderOptions = z.input<typeof HttpSearchProviderOptions>;

/**
 * A provider for a live search API that answers a GET with JSON. Not enabled anywhere by
 * default: a user constructs it with their own endpoint and key.
 */
export function httpSearchProvider(options: HttpSearchProviderOptions): SearchProvider {
  const o = HttpSearchProviderOptions.parse(options);
  return {
    name: new URL(o.url.replace(/[{}]/g, '')).host,
    async search(query, k, signal) {
      const url = o.url.replaceAll('{query}', encodeURIComponent(query)).replaceAll('{k}', String(k));
      const response = await fetch(url, { headers: o.headers, signal });
      if (!response.ok) throw new ToolFailure(`search API answered HTTP ${response.status}`);
      const body: unknown = await response.json();
      const list = o.resultsPath === '' ? body : pick(body, o.resultsPath);
      if (!Array.isArray(list)) {
        throw new ToolFailure(`search API response has no list at "${o.resultsPath || '(root)'}"`);
      }
      return list.slice(0, k).map((item, i) => ({
        id: String(pick(item, o.idField) ?? i),
        title: String(pick(item, o.titleField) ?? ''),
        snippet: String(pick(item, o.snippetField) ?? ''),
        score: list.length - i,
      }));
    },
  };
}

function pick(value: unknown, path: string): unknown {
  let v = value;
  for (const key of path.split('.')) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string, unknown>)[key];
  }
  return v;
}

export interface WebSearchOptions {
  /** A local index; ignored when `provider` is given. */
  index?: SearchIndex;
  provider?: SearchProvider;
  /** Results when the input gives no k. */
  defaultK?: number;
  limits?: Partial<ToolLimits>;
}

/** Results as the agent reads them: numbered, title then snippet. */
export function formatHits(hits: SearchHit[]): string {
  if (hits.length === 0) return 'No results.';
  return hits.map((h, i) => `[${i + 1}] ${h.title}\n${h.snippet}`).join('\n\n');
}

export function webSearchTool(options: WebSearchOptions): Tool<typeof WebSearchInput> {
  const provider = options.provider ?? (options.index ? indexProvider(options.index) : undefined);
  if (!provider) throw new Error('webSearchTool: give an `index` (a SearchIndex) or a `provider`');
  const defaultK = options.defaultK ?? 5;
  return defineTool({
    name: 'web_search',
    description:
      'Search the document collection. Input: {"query": string, "k"?: number of results (default ' +
      `${defaultK})}. Returns the best-matching documents, each with its title and a snippet.`,
    schema: WebSearchInput,
    limits: { timeMs: 5_000, outputChars: 4_000, ...options.limits },
    async run(input, { signal }) {
      return formatHits(await provider.search(input.query, input.k ?? defaultK, signal));
    },
  });
}
