/**
 * The `envs` suite: household, search and code/math steps per second (random admissible actions and
 * expert trajectories), generation speed and CPU time.
 */
import { CodeMathGenerator } from '../../src/envs/codemath/generator.ts';
import { TASK_TYPES } from '../../src/envs/household/catalog.ts';
import { HouseholdEnv } from '../../src/envs/household/env.ts';
import { HouseholdExpert } from '../../src/envs/household/expert.ts';
import { SearchEnv } from '../../src/envs/search/env.ts';
import { SearchExpert } from '../../src/envs/search/expert.ts';
import { EncyclopediaQA, QUESTION_KINDS } from '../../src/envs/search/generator.ts';
import { SPLITS } from '../../src/envs/types.ts';
import { Rng } from '../../src/util/random.ts';
import { formatNumber, type Suite } from '../suite.ts';

/** This process's CPU time (user + system), in milliseconds. */
function cpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

/**
 * Calls `f` repeatedly for about `ms` milliseconds of CPU time; returns calls per CPU second.
 * The loop is single-threaded, so on an idle machine this equals calls per wall second; on a
 * busy one (the bench machine is shared) it is the steadier figure.
 */
function rate(ms: number, f: () => void): number {
  let n = 0;
  const t0 = cpuMs();
  let t = t0;
  while (t - t0 < ms) {
    for (let i = 0; i < 100; i++) f();
    n += 100;
    t = cpuMs();
  }
  return (n * 1000) / (t - t0);
}

// People per split for a corpus of about 50,000 documents (entities plus distractors, three splits).
const BIG_CORPUS_PEOPLE = 5400;

export const suite: Suite = {
  name: 'envs',
  description:
    'household stepping, BM25 search over 50k documents, expert and random success, task generation',
  quick: true,
  async run(ctx) {
    // Household: random admissible play on one thread, resets included.
    const env = new HouseholdEnv();
    const rng = new Rng(1);
    let seed = 0;
    env.resetSync(seed);
    const household_steps_per_s = rate(3000, () => {
      const r = env.stepSync(rng.pick(env.admissibleActions()));
      if (r.done) env.resetSync(++seed);
    });
    ctx.log(`household: ${formatNumber(household_steps_per_s)} steps/s over ${seed} trajectories`);

    // Household expert and random play, per task type, over all three splits.
    const expert = new HouseholdExpert();
    const perType: { type: string; expert: number; random: number; randomSteps: number }[] = [];
    const perTask = 300;
    for (const type of TASK_TYPES) {
      let expertWins = 0;
      let randomWins = 0;
      let randomSteps = 0;
      for (let s = 0; s < perTask; s++) {
        const task = env.generator.generate(SPLITS[s % 3]!, s, type);
        env.resetSync(s, task);
        let won = false;
        for (const a of expert.demonstrate(task).actions) won = env.stepSync(a).info.won;
        if (won) expertWins++;
        env.resetSync(s, task);
        for (;;) {
          const r = env.stepSync(rng.pick(env.admissibleActions()));
          randomSteps++;
          if (r.done) {
            if (r.info.won) randomWins++;
            break;
          }
        }
      }
      perType.push({
        type,
        expert: expertWins / perTask,
        random: randomWins / perTask,
        randomSteps: randomSteps / perTask,
      });
    }
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const expert_success_household = mean(perType.map((p) => p.expert));
    const random_success_household = mean(perType.map((p) => p.random));

    // Search: a ~50k-document encyclopedia, BM25 over it, the expert's queries.
    let t0 = performance.now();
    const big = new EncyclopediaQA({ people: BIG_CORPUS_PEOPLE, seed: 1 });
    const genMs = performance.now() - t0;
    t0 = performance.now();
    const index = big.index();
    const indexMs = performance.now() - t0;
    const docs = big.encyclopedia.documents.length;
    ctx.log(
      `search: ${docs} documents generated in ${formatNumber(genMs)} ms, indexed in ${formatNumber(indexMs)} ms`,
    );
    const queries: { q: string; gold: string }[] = [];
    for (let s = 0; queries.length < 2000; s++) {
      const t = big.generate(SPLITS[s % 3]!, s);
      for (const [i, q] of t.payload.queries!.entries()) queries.push({ q, gold: t.payload.supporting[i]! });
    }
    let qi = 0;
    const search_queries_per_s = rate(3000, () => {
      index.search(queries[qi++ % queries.length]!.q, 3);
    });
    const top3 =
      queries.filter((x) => index.search(x.q, 3).some((h) => h.id === x.gold)).length / queries.length;

    const searchEnv = new SearchEnv({}, { source: big });
    const searchExpert = new SearchExpert();
    const perKind: { kind: string; success: number }[] = [];
    for (const kind of QUESTION_KINDS) {
      let ok = 0;
      const n = 250;
      for (let s = 0; s < n; s++) {
        const task = big.generate(SPLITS[s % 3]!, s, kind);
        await searchEnv.reset(s, task);
        const seen: string[] = [];
        let won = false;
        for (const a of searchExpert.demonstrate(task).actions) {
          const r = await searchEnv.step(a);
          seen.push(r.observation);
          won = r.info.won;
        }
        // Success counts only if the searches showed every bridge fact and the answer.
        if (won && task.payload.evidence!.every((e) => seen.join('\n').includes(e))) ok++;
      }
      perKind.push({ kind, success: ok / n });
    }
    const expert_success_search = mean(perKind.map((p) => p.success));

    // Task generation, default configs, round robin over the three generators.
    const small = new EncyclopediaQA();
    const codemath = new CodeMathGenerator();
    const gens = [
      { name: 'household', make: (s: number) => env.generator.generate('train', s) },
      { name: 'search', make: (s: number) => small.generate('train', s) },
      { name: 'codemath', make: (s: number) => codemath.generate('train', s) },
    ];
    const perGen = gens.map((g) => {
      let s = 0;
      return { name: g.name, rate: rate(1500, () => g.make(s++)) };
    });
    // Tasks per second when the three are generated in turn (harmonic mean of the three rates).
    const generate_tasks_per_s = 3 / perGen.reduce((a, g) => a + 1 / g.rate, 0);

    const report = [
      '| household task type | expert success | random success | random mean steps |',
      '|---|---|---|---|',
      ...perType.map(
        (p) =>
          `| ${p.type} | ${formatNumber(p.expert)} | ${formatNumber(p.random)} | ${formatNumber(p.randomSteps)} |`,
      ),
      '',
      `Household: default world (8 receptacles, 5 objects besides the goal's), ${perTask} tasks per type over the three splits; random play picks uniformly among the admissible commands until the 50-step limit. Rates (steps, queries, tasks per second) are per second of this process's CPU time, one thread, so that a busy machine does not skew them.`,
      '',
      '| question kind | expert success (50k corpus) |',
      '|---|---|',
      ...perKind.map((p) => `| ${p.kind} | ${formatNumber(p.success)} |`),
      '',
      `Search: ${docs} documents (generated in ${formatNumber(genMs / 1000)} s, BM25-indexed with MiniSearch in ${formatNumber(indexMs / 1000)} s); top-3 results, queries are the expert's. The gold document is in the top 3 for ${formatNumber(top3 * 100)}% of them. Expert success requires the answer and every bridge fact to appear in the search results it saw.`,
      '',
      `Task generation (tasks/s, default configs): ${perGen.map((g) => `${g.name} ${formatNumber(g.rate)}`).join(', ')}; \`generate_tasks_per_s\` is their harmonic mean (the rate when generating the three in turn).`,
      '',
      'For scale: the real ALFWorld steps through TextWorld in Python. An ALFWorld user measured about 10 to 15 steps per second for `AlfredTWEnv` with random admissible actions, batch size 1 ([alfworld/alfworld#23](https://github.com/alfworld/alfworld/issues/23), 2021; figure as reported there, not measured here).',
    ].join('\n');

    return {
      results: {
        household_steps_per_s,
        search_queries_per_s,
        expert_success_household,
        expert_success_search,
        random_success_household,
        generate_tasks_per_s,
      },
      report,
    };
  },
};
