/**
 * The ChatModel backends (src/index.ts re-exports these).
 */
export * from './batcher.ts';
export * from './langchain-chat-model.ts';
export * from './openai-chat-model.ts';
export * from './policy-chat-model.ts';
export * from './template.ts';
