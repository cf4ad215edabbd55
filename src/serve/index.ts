/**
 * The OpenAI-compatible server (src/index.ts re-exports these).
 */

export type { RolloutSampling } from './chat-completions.ts';
export * from './errors.ts';
export * from './recorder.ts';
export { ReplyCache, replyKey } from './replies.ts';
export { ANCHOR_HEADER, GROUP_HEADER, PolicyServer, ROLLOUT_HEADER, ServeOptions } from './server.ts';
