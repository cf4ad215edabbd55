// Shared by the loops and record tests: a tokenizer fitted to the envs' text and a tiny untrained
// policy on it, so prompts are short enough for the tiny preset's context.

import { codeMathSystemPrompt } from '../../src/agents/prompts/codemath.ts';
import { householdPrompt } from '../../src/agents/prompts/household.ts';
import { searchSystemPrompt } from '../../src/agents/prompts/search.ts';
import { createExpert, HouseholdEnv, HouseholdGenerator, Policy, Tokenizer } from '../../src/index.ts';

/** Household prompts along expert trajectories, plus the other loops' system prompts. */
export function domainTexts(tasks = 40): string[] {
  const texts = [searchSystemPrompt(4), codeMathSystemPrompt(4), '<think> </think> <action> </action>'];
  const generator = new HouseholdGenerator();
  const expert = createExpert('household');
  const env = new HouseholdEnv();
  for (let seed = 0; seed < tasks; seed++) {
    const task = generator.generate('train', seed);
    let observation = env.resetSync(seed, task);
    const history: { observation: string; action: string }[] = [];
    for (const action of expert.demonstrate(task).actions.slice(0, 6)) {
      const [prompt] = householdPrompt({
        task: task.payload.goalText,
        stepCount: history.length,
        history: history.slice(-2),
        observation,
        admissible: env.admissibleActions(),
      });
      texts.push(prompt!.content, `<think>I should ${action}.</think><action>${action}</action>`);
      history.push({ observation, action });
      observation = env.stepSync(action).observation;
    }
  }
  return texts;
}

let cached: Tokenizer | undefined;
export function domainTokenizer(): Tokenizer {
  cached ??= Tokenizer.train(domainTexts(), { vocabSize: 1024 });
  return cached;
}

export function tinyPolicy(seed = 0): Policy {
  return Policy.create({ model: 'tiny', tokenizer: domainTokenizer(), seed });
}
