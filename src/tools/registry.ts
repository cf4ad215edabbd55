/** The built-in tools by name (`createTool`), for the CLI and for configs that name tools as strings. */
import { builtinSearchIndex } from './builtin-docs.ts';
import { JavaScriptTool } from './javascript/tool.ts';
import { PythonTool } from './python/tool.ts';
import type { SearchIndex } from './search/index.ts';
import type { Tool, ToolLimits } from './types.ts';
import { webSearchTool } from './web-search.ts';

/** The built-in tools by name, for the CLI and for configs that name tools as strings. */
export const TOOL_NAMES = ['web_search', 'python', 'javascript'] as const;
export type ToolName = (typeof TOOL_NAMES)[number];

export interface CreateToolOptions {
  /** web_search's index (default: the small built-in document set). */
  index?: SearchIndex;
  limits?: Partial<ToolLimits>;
}

export function createTool(name: string, options: CreateToolOptions = {}): Tool {
  switch (name) {
    case 'web_search':
      return webSearchTool({ index: options.index ?? builtinSearchIndex(), limits: options.limits }) as Tool;
    case 'python':
      return new PythonTool({ limits: options.limits }) as Tool;
    case 'javascript':
      return new JavaScriptTool({ limits: options.limits }) as Tool;
    default:
      throw new Error(`unknown tool "${name}" (expected one of: ${TOOL_NAMES.join(', ')})`);
  }
}
