/**
 * AgentFlow: planner, executor, verifier and generator around an evolving memory (src/index.ts re-exports this).
 */
export * from './config.ts';
export * from './episode.ts';
export * from './gold.ts';
export * from './household.ts';
export * from './loop.ts';
export * from './memory.ts';
export * from './prompts.ts';
export * from './scripted.ts';
