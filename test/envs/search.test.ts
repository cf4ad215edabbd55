import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SearchEnv } from '../../src/envs/search/env.ts';
import { SearchExpert } from '../../src/envs/search/expert.ts';
import { EncyclopediaQA, QUESTION_KINDS, type SearchTask } from '../../src/envs/search/generator.ts';
import { exactMatch, normalizeAnswer, wordF1 } from '../../src/envs/search/metrics.ts';
import { UserQA } from '../../src/envs/search/user.ts';
import { SPLITS } from '../../src/envs/types.ts';
import { formatHits, webSearchTool } from '../../src/tools/web-search.ts';

// One source shared by every env here: the corpus and its index are built once.
const source = new EncyclopediaQA();
const docs = new Map(source.encyclopedia.documents.map((d) => [d.id, d]));
const expert = new SearchExpert();

async function transcript(env: SearchEnv, task: SearchTask, actions: string[]) {
  const out = [await env.reset(task.seed, task)];
  for (const a of actions) {
    const r = await env.step(a);
    out.push(r.observation, JSON.stringify(r.info), String(r.reward));
    if (r.done) break;
  }
  return out;
}

/** The year a document gives for a relation ("founded in 1834", "born in X in 1834", "published in 1834"). */
function yearIn(text: string, verb: string): number {
  const m = text.match(new RegExp(`${verb} (?:in [A-Z][a-z]+ )?in (\\d{3,4})`));
  if (!m) throw new Error(`no "${verb}" year in: ${text}`);
  return Number(m[1]);
}

describe('search QA', () => {
  it('is deterministic: the same config, split and seed give the same corpus, question and transcript', async () => {
    const again = new EncyclopediaQA();
    expect(again.encyclopedia.documents).toEqual(source.encyclopedia.documents);
    const a = new SearchEnv({}, { source });
    const b = new SearchEnv({}, { source: again });
    for (let seed = 0; seed < 20; seed++) {
      const task = source.generate('train', seed);
      expect(again.generate('train', seed)).toEqual(task);
      const actions = [...expert.demonstrate(task).actions.slice(0, -1), '<answer>nobody</answer>'];
      expect(await transcript(b, task, actions)).toEqual(await transcript(a, task, actions));
    }
  });

  it('the expert answers 1000 questions of every kind, seeing the bridge facts and the answer in the results', async () => {
    const env = new SearchEnv({}, { source });
    for (const kind of QUESTION_KINDS) {
      let solved = 0;
      for (let seed = 0; seed < 1000; seed++) {
        const task = source.generate(SPLITS[seed % 3]!, seed, kind);
        await env.reset(seed, task);
        const seen: string[] = [];
        let last = { reward: 0, done: false, info: { won: false } } as Awaited<ReturnType<SearchEnv['step']>>;
        for (const a of expert.demonstrate(task).actions) {
          last = await env.step(a);
          seen.push(last.observation);
        }
        const visible = task.payload.evidence!.every((e) => seen.join('\n').includes(e));
        if (last.done && last.info.won && last.reward === 1 && visible) solved++;
      }
      expect({ kind, solved }).toEqual({ kind, solved: 1000 });
    }
  });

  it('every question is answerable from the corpus, checked on the documents themselves', () => {
    for (let seed = 0; seed < 600; seed++) {
      const task = source.generate(SPLITS[seed % 3]!, seed);
      const { supporting, answers, question } = task.payload;
      const texts = supporting.map((id) => {
        const d = docs.get(id);
        expect(d, `supporting document ${id}`).toBeDefined();
        return d!.text;
      });
      if (task.kind === 'comparison') {
        // The answer is the entity whose document gives the earlier year.
        const verb = /^Who/.test(question)
          ? 'born'
          : /published|came out/.test(question)
            ? 'published'
            : 'founded';
        const [ya, yb] = texts.map((t) => yearIn(t, verb));
        expect(ya).not.toBe(yb);
        const earlier = docs.get(supporting[ya! < yb! ? 0 : 1]!)!.title;
        expect(exactMatch(earlier, answers)).toBe(1);
      } else {
        // Each hop's document names the next hop's entity; the last one states the answer.
        for (let i = 0; i + 1 < supporting.length; i++)
          expect(texts[i]).toContain(docs.get(supporting[i + 1]!)!.title);
        expect(texts.at(-1)).toContain(answers[0]);
        // The question names the first hop's entity.
        expect(question).toContain(docs.get(supporting[0]!)!.title);
      }
    }
  });

  it('BM25 ranks the gold document in the top 3 for at least 90% of the expert queries', () => {
    const index = source.index();
    let hits = 0;
    let total = 0;
    for (let seed = 0; seed < 1000; seed++) {
      const task = source.generate(SPLITS[seed % 3]!, seed);
      task.payload.queries!.forEach((q, i) => {
        total++;
        if (index.search(q, 3).some((h) => h.id === task.payload.supporting[i])) hits++;
      });
    }
    expect(hits / total).toBeGreaterThanOrEqual(0.9);
  });

  it('splits ask about disjoint entity sets', () => {
    const sets = source.encyclopedia.splits;
    const names = (s: (typeof SPLITS)[number]) => {
      const e = sets[s];
      return new Set(
        [...e.people, ...e.towns, ...e.regions, ...e.organizations, ...e.works].map((x) => x.name),
      );
    };
    const asked = Object.fromEntries(SPLITS.map((s) => [s, new Set<string>()])) as Record<
      string,
      Set<string>
    >;
    for (let seed = 0; seed < 600; seed++) {
      for (const split of SPLITS) {
        for (const id of source.generate(split, seed).payload.supporting) asked[split]!.add(id);
      }
    }
    for (const a of SPLITS) {
      for (const b of SPLITS) {
        if (a === b) continue;
        for (const n of names(a)) expect(names(b).has(n)).toBe(false);
        for (const id of asked[a]!) expect(asked[b]!.has(id)).toBe(false);
      }
    }
  });

  it('scores answers by normalized exact match and word-set F1', () => {
    expect(normalizeAnswer('  The Velora-Harbor! ')).toBe('velora harbor');
    expect(exactMatch('the velora harbor.', ['Velora Harbor'])).toBe(1);
    expect(exactMatch('Velora', ['Velora Harbor'])).toBe(0);
    expect(wordF1('Velora', ['Velora Harbor'])).toBeCloseTo(2 / 3, 10);
    expect(wordF1('Velora Bay', ['Velora Harbor', 'Velora Bay'])).toBe(1);
    expect(wordF1('nothing here', ['Velora Harbor'])).toBe(0);
  });

  it('rewards F1 when asked, limits turns, rejects malformed actions and finished trajectories', async () => {
    const task = source.generate('train', 3, 'bridge');
    const f1env = new SearchEnv({ reward: 'f1' }, { source });
    await f1env.reset(3, task);
    const partial = `${task.payload.answers[0]} extra words`;
    const r = await f1env.step(`<think>hmm</think><answer>${partial}</answer>`);
    expect(r.reward).toBeCloseTo(wordF1(partial, task.payload.answers), 10);
    expect(r.info).toMatchObject({ won: false, em: 0 });
    await expect(f1env.step('<answer>x</answer>')).rejects.toThrow(/finished; call reset\(\) first/);

    const env = new SearchEnv({}, { source });
    expect(await env.reset(3, task)).toBe(task.payload.question);
    expect(env.anchor).toBe(task.payload.question);
    const bad = await env.step('I think the answer is somewhere');
    expect(bad.info.valid).toBe(false);
    const results: string[] = [];
    for (let i = 0; i < 3; i++) {
      const s = await env.step(`<search>${task.payload.queries![0]}</search>`);
      expect(env.anchor).toBe(s.observation);
      results.push(s.observation);
      expect(s.done).toBe(i === 2);
    }
    const hits = source.index().search(task.payload.queries![0]!, 3);
    expect(results[0]).toBe(formatHits(hits));
    expect(() => source.generate('train', 0, 'four-hop')).toThrow(/unknown task type "four-hop"/);
  });

  it("uses an injected web_search tool (the tools area's, over the same index)", async () => {
    const env = new SearchEnv({}, { source, search: webSearchTool({ index: source.index(), defaultK: 2 }) });
    const task = source.generate('valid-seen', 1, 'single-hop');
    await env.reset(1, task);
    const r = await env.step(`<search>${task.payload.queries![0]}</search>`);
    const hits = source.index().search(task.payload.queries![0]!, 2);
    expect(r.observation).toBe(formatHits(hits));
    expect(r.observation).toContain(task.payload.evidence![0]!);
  });

  describe('user corpus from JSON Lines', () => {
    const dir = mkdtempSync(join(tmpdir(), 'user-qa-'));
    const docsFile = join(dir, 'documents.jsonl');
    const qFile = join(dir, 'questions.jsonl');
    writeFileSync(
      docsFile,
      [
        { id: 'd1', title: 'Velora Harbor', text: 'Velora Harbor was founded in 1802 by Oskar Brint.' },
        { id: 'd2', title: 'Oskar Brint', text: 'Oskar Brint was born in Tamsel in 1770.' },
        { id: 'd3', title: 'Tamsel', text: 'Tamsel is a village on the river Aun.' },
      ]
        .map((d) => JSON.stringify(d))
        .join('\n'),
    );
    writeFileSync(
      qFile,
      `${JSON.stringify({ id: 'q1', question: 'Where was the founder of Velora Harbor born?', answers: ['Tamsel'], kind: 'bridge', supporting: ['d1', 'd2'] })}\n\n${JSON.stringify({ id: 'q2', question: 'Who founded Velora Harbor?', answers: ['Oskar Brint', 'Brint'], split: 'valid-seen' })}\n`,
    );

    it('reads documents and questions and plays them', async () => {
      const user = UserQA.fromFiles(docsFile, qFile);
      expect(user.kinds).toEqual(['bridge', 'user']);
      const env = new SearchEnv({ split: 'valid-seen' }, { source: user });
      expect(await env.reset(0)).toBe('Who founded Velora Harbor?');
      const s = await env.step('<search>Velora Harbor founded</search>');
      expect(s.observation).toContain('[1] Velora Harbor\nVelora Harbor was founded in 1802 by Oskar Brint.');
      expect((await env.step('<answer>Brint</answer>')).reward).toBe(1);
      expect(user.generate('train', 5).payload.answers).toEqual(['Tamsel']);
    });

    it('names the file, line and field of a malformed line', () => {
      const bad = join(dir, 'bad.jsonl');
      writeFileSync(
        bad,
        `${JSON.stringify({ id: 'q1', question: 'Q?', answers: ['A'] })}\n${JSON.stringify({ id: 'q2', question: 'Q?', answers: 'A' })}\n`,
      );
      expect(() => UserQA.fromFiles(docsFile, bad)).toThrow(
        /bad\.jsonl line 2: field 'answers': .*expected array/,
      );
      writeFileSync(bad, '{"id": "q1", "question": "Q?", "answers": ["A"]}\n{"id": "q2", oops}\n');
      expect(() => UserQA.fromFiles(docsFile, bad)).toThrow(/bad\.jsonl line 2: not valid JSON/);
      writeFileSync(bad, '{"id": "q1", "question": "Q?", "answers": ["A"], "split": "test"}\n');
      expect(() => UserQA.fromFiles(docsFile, bad)).toThrow(/bad\.jsonl line 1: field 'split'/);
      writeFileSync(bad, '{"id": "q1", "question": "Q?", "answers": ["A"], "supporting": ["d9"]}\n');
      expect(() => UserQA.fromFiles(docsFile, bad)).toThrow(/supporting document "d9" is not in the corpus/);
      writeFileSync(bad, '{"id": "d1", "title": "T"}\n');
      expect(() => UserQA.fromFiles(bad, qFile)).toThrow(/bad\.jsonl line 1: field 'text'/);
    });

    afterAll(() => rmSync(dir, { recursive: true, force: true }));
  });
});
