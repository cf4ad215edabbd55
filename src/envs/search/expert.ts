/** The search QA expert: one search per hop, then the canonical answer. */
import type { Demonstration, Expert } from '../types.ts';
import type { SearchTask } from './generator.ts';

/**
 * The search QA expert: one search per hop, with the query naming the hop's entity and relation
 * ("Velora Guild founded"), then the canonical answer. For a user's questions (no hop queries)
 * it searches the question itself.
 */
export class SearchExpert implements Expert<SearchTask> {
  demonstrate(task: SearchTask): Demonstration {
    const queries = task.payload.queries ?? [task.payload.question];
    return {
      actions: [
        ...queries.map((q) => `<search>${q}</search>`),
        `<answer>${task.payload.answers[0]}</answer>`,
      ],
    };
  }
}
