/**
 * The tools area's public API (src/index.ts re-exports it).
 */
export * from './adapters/langchain.ts';
export * from './adapters/openai.ts';
export { BUILTIN_DOCUMENTS, builtinSearchIndex } from './builtin-docs.ts';
export * from './code.ts';
export * from './define.ts';
export * from './javascript/tool.ts';
export * from './policy.ts';
export * from './python/pool.ts';
export { detectProtection, type Protection, type ProtectionLevel } from './python/sandbox.ts';
export * from './python/tool.ts';
export * from './registry.ts';
export * from './types.ts';
export * from './web-search.ts';
