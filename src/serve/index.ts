/**
 * The OpenAI-compatible server (src/index.ts re-exports these).
 */
export * from './errors.ts';
export { PolicyServer, ServeOptions } from './server.ts';
