/**
 * The domain corpus tokenizers are trained on: the envs' task statements, observations, expert
 * actions and instructions plus the agents' prompt tags, so the vocabulary fits the domain and
 * prompts stay short (`stepwise init-policy` and SFT's `domainTokenizer`).
 */
import { renderTools } from '../agents/chat/template.ts';
import { CODEMATH_INSTRUCTIONS } from '../envs/codemath/env.ts';
import { CodeMathExpert } from '../envs/codemath/expert.ts';
import { CodeMathGenerator, renderCodeMathTask } from '../envs/codemath/generator.ts';
import { HOUSEHOLD_INSTRUCTIONS, HouseholdEnv } from '../envs/household/env.ts';
import { HouseholdExpert } from '../envs/household/expert.ts';
import { HouseholdGenerator } from '../envs/household/generator.ts';
import { SEARCH_INSTRUCTIONS } from '../envs/search/env.ts';
import { SearchExpert } from '../envs/search/expert.ts';
import { EncyclopediaQA } from '../envs/search/generator.ts';
import { openAITools } from '../tools/adapters/openai.ts';
import { createTool } from '../tools/registry.ts';

/** The agents' prompt and answer formats, so their tags become single tokens. */
const FORMAT_TEXT = [
  '<think>I should look for the object first.</think><action>go to countertop 1</action>',
  '<search>capital of the region</search><information>...</information><answer>the answer</answer>',
  '<python>print(2 + 2)</python><code>x = 3</code><answer>4</answer>',
  '<tool_call>{"name": "web_search", "arguments": {"query": "who founded it"}}</tool_call>',
  '<tool_call>{"name": "python", "arguments": {"code": "print(1 + 1)"}}</tool_call>',
  'Your admissible actions of the current situation are: [go to cabinet 1, look, inventory].',
  'Sub-goal: Tool: Command: Result: Verdict: STOP CONTINUE Analysis: Context:',
];

/**
 * Text for tokenizer training, deterministic: `tasks` tasks per env from the train split, each with
 * its expert's actions (household: the observations of playing them too).
 */
export async function domainCorpus(tasks = 200): Promise<string[]> {
  const texts = [HOUSEHOLD_INSTRUCTIONS, SEARCH_INSTRUCTIONS, CODEMATH_INSTRUCTIONS, ...FORMAT_TEXT];
  const tools = ['python', 'web_search'].map((name) => createTool(name));
  // Repeated: merges need pairs that recur, and this section opens every tool-using prompt.
  const toolsText = renderTools(openAITools(tools));
  for (let i = 0; i < 50; i++) texts.push(toolsText);
  await Promise.all(tools.map((t) => t.close?.()));

  const household = new HouseholdGenerator();
  const householdExpert = new HouseholdExpert();
  const env = new HouseholdEnv();
  for (let seed = 0; seed < tasks; seed++) {
    const task = household.generate('train', seed);
    texts.push(await env.reset(seed, task));
    texts.push(env.admissibleActions?.().join(', ') ?? '');
    for (const action of householdExpert.demonstrate(task).actions) {
      texts.push(action);
      const r = await env.step(action);
      texts.push(r.observation);
      if (r.done) break;
    }
  }
  const qa = new EncyclopediaQA();
  const searchExpert = new SearchExpert();
  for (let seed = 0; seed < tasks; seed++) {
    const task = qa.generate('train', seed);
    texts.push(task.payload.question, ...searchExpert.demonstrate(task).actions);
  }
  for (const doc of qa.encyclopedia.documents.slice(0, tasks * 2)) texts.push(`${doc.title}\n${doc.text}`);
  const math = new CodeMathGenerator();
  const mathExpert = new CodeMathExpert();
  for (let seed = 0; seed < tasks; seed++) {
    const task = math.generate('train', seed);
    texts.push(renderCodeMathTask(task), ...mathExpert.demonstrate(task).actions);
  }
  return texts;
}
