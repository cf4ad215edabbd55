// Every scenario's exported config is a valid TrainConfig (what `stepwise train scenarios/<file>`
// reads). agentflow-openai is left out: building its config starts a server (and, on a fresh
// machine, trains the checkpoint it serves); test/training/agentflow.test.ts runs that setting.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { parseTrainConfig } from '../../src/training/config.ts';

const dir = join(import.meta.dirname, '..', '..', 'scenarios');
const files = readdirSync(dir).filter(
  (f) => f.endsWith('.ts') && f !== 'agentflow-openai.ts' && f !== 'langchain-agent.ts',
);

it('the issues name eight scenarios, all present', () => {
  expect(readdirSync(dir).sort()).toEqual(
    [
      'agentflow-flowgrpo.ts',
      'agentflow-openai.ts',
      'household-gigpo.ts',
      'household-grpo.ts',
      'household-hgpo.ts',
      'langchain-agent.ts',
      'search-gigpo.ts',
      'search-igpo.ts',
    ].sort(),
  );
});

it.each(files)('%s exports a valid config whose estimator its name says', async (file) => {
  const mod = (await import(join(dir, file))) as { default: unknown };
  const config = parseTrainConfig(mod.default);
  const estimator = file.replace(/\.ts$/, '').split('-').at(-1)!.replace('flowgrpo', 'flow-grpo');
  expect(config.estimator).toBe(estimator);
  expect(config.db).toMatch(/^runs\//);
});

it('langchain-agent.ts exports a valid served config and its agent function', async () => {
  const mod = (await import(join(dir, 'langchain-agent.ts'))) as { default: unknown; agent: unknown };
  const config = parseTrainConfig(mod.default);
  expect([config.agent, config.estimator]).toEqual(['served', 'gigpo']);
  expect(typeof mod.agent).toBe('function');
});
