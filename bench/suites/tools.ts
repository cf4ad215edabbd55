/**
 * The `tools` suite: sandbox start-up and call latency, pool throughput, how closely the time limit
 * is enforced, and BM25 search speed over a 100k-document index.
 */
import { cpus, loadavg } from 'node:os';
import { JavaScriptTool } from '../../src/tools/javascript/tool.ts';
import { PythonPool } from '../../src/tools/python/pool.ts';
import { PythonTool } from '../../src/tools/python/tool.ts';
import { PythonWorker, startupSnapshot } from '../../src/tools/python/worker.ts';
import { type SearchDocument, SearchIndex } from '../../src/tools/search/index.ts';
import { uniform } from '../../src/util/random.ts';
import type { Suite } from '../suite.ts';
import { median } from '../suite.ts';

/** Seeded uniform numbers (mulberry32, the envs' generator), so runs reproduce. */
const rng = uniform;

/** Documents of 40-80 words drawn Zipf-like from a 20k-word synthetic vocabulary. */
function syntheticCorpus(n: number, seed: number): { docs: SearchDocument[]; vocab: string[] } {
  const rand = rng(seed);
  const syllables = [
    'ka',
    'lo',
    'mi',
    'ne',
    'ru',
    'sa',
    'ti',
    'vo',
    'ze',
    'pa',
    'qui',
    'dor',
    'fen',
    'gal',
    'hum',
  ];
  const vocab: string[] = [];
  for (let i = 0; vocab.length < 20_000; i++) {
    let w = '';
    for (let x = i; ; x = Math.floor(x / syllables.length)) {
      w += syllables[x % syllables.length];
      if (x < syllables.length) break;
    }
    vocab.push(w);
  }
  const word = () => vocab[Math.floor(vocab.length * rand() ** 2.5)]!;
  const docs: SearchDocument[] = [];
  for (let i = 0; i < n; i++) {
    const len = 40 + Math.floor(rand() * 40);
    const words = Array.from({ length: len }, word);
    docs.push({ id: `d${i}`, title: `${word()} ${word()}`, text: `${words.join(' ')}.` });
  }
  return { docs, vocab };
}

export const suite: Suite = {
  name: 'tools',
  description: 'python/javascript sandbox latency and throughput, timeout enforcement, BM25 search speed',
  quick: true,
  async run({ log }) {
    const results: Record<string, number> = {};

    // Cold start: spawn to first answer, one interpreter at a time, as the pool starts them (from
    // the start-up snapshot, made once per machine before timing); the median of 3.
    await startupSnapshot();
    const coldStart = async (snapshot: boolean) => {
      const started = performance.now();
      const w = new PythonWorker({
        memoryBytes: 512 * 1024 * 1024,
        startTimeoutMs: 120_000,
        snapshot: snapshot ? startupSnapshot() : undefined,
      });
      const reply = await w.run('pass', 10_000, 100);
      w.kill();
      if (reply.status !== 'done') throw new Error(`cold start call failed: ${JSON.stringify(reply)}`);
      return performance.now() - started;
    };
    const colds: number[] = [];
    for (let i = 0; i < 3; i++) colds.push(await coldStart(true));
    results.python_cold_start_ms = median(colds);
    const withoutSnapshot = await coldStart(false);
    const protection = new PythonPool({ size: 0, announce: false }).protection.level;
    log(
      `python cold start: ${colds.map((c) => c.toFixed(0)).join(', ')} ms; without snapshot ${withoutSnapshot.toFixed(0)} ms (${protection})`,
    );

    const pool = new PythonPool({ size: 2, announce: false });
    await pool.warm();
    const py = new PythonTool({ pool });
    await py.warm();
    for (let i = 0; i < 20; i++) await py.execute({ code: 'x = 1' });
    const warm: number[] = [];
    for (let i = 0; i < 200; i++) {
      const t = performance.now();
      const r = await py.execute({ code: 'x = 1' });
      warm.push(performance.now() - t);
      if (!r.ok) throw new Error(`warm call failed: ${r.error}`);
    }
    results.python_warm_call_ms = median(warm);

    // Pool throughput: one tool per warm interpreter, each calling back to back for ~3 s.
    const tools = [py, new PythonTool({ pool })];
    await Promise.all(tools.map((t) => t.warm()));
    let calls = 0;
    const until = performance.now() + 3_000;
    const t0 = performance.now();
    await Promise.all(
      tools.map(async (t) => {
        while (performance.now() < until) {
          const r = await t.execute({ code: 'print(sum(range(100)))' });
          if (r.ok) calls++;
        }
      }),
    );
    results.python_calls_per_s = calls / ((performance.now() - t0) / 1000);

    // Timeout enforcement: an infinite loop under a 1 s limit; enforced time / limit.
    const limitMs = 1_000;
    const loopTool = new PythonTool({ pool, limits: { timeMs: limitMs } });
    await loopTool.warm();
    const loop = await loopTool.execute({ code: 'while True:\n    pass' });
    if (loop.errorKind !== 'timeout')
      throw new Error(`infinite loop was not stopped by the limit: ${JSON.stringify(loop)}`);
    const pyOvershoot = loop.durationMs / limitMs;
    await Promise.all([...tools, loopTool].map((t) => t.close()));
    await pool.close();

    const js = new JavaScriptTool({ limits: { timeMs: limitMs } });
    await js.warm();
    for (let i = 0; i < 20; i++) await js.execute({ code: 'var x = 1' });
    const jsWarm: number[] = [];
    for (let i = 0; i < 200; i++) {
      const t = performance.now();
      await js.execute({ code: 'var x = 1' });
      jsWarm.push(performance.now() - t);
    }
    results.js_warm_call_ms = median(jsWarm);
    const jsLoop = await js.execute({ code: 'while (true) {}' });
    const jsOvershoot = jsLoop.durationMs / limitMs;
    await js.close();
    // The worse of the two sandboxes.
    results.timeout_overshoot_ratio = Math.max(pyOvershoot, jsOvershoot);
    log(`timeout overshoot: python ${pyOvershoot.toFixed(3)}, javascript ${jsOvershoot.toFixed(3)}`);

    // BM25 over 100k synthetic documents.
    const { docs, vocab } = syntheticCorpus(100_000, 7);
    const b0 = performance.now();
    const index = SearchIndex.build(docs);
    const buildS = (performance.now() - b0) / 1000;
    log(`built a ${index.size}-document index in ${buildS.toFixed(1)} s`);
    const rand = rng(11);
    const queries = Array.from({ length: 500 }, () =>
      Array.from(
        { length: 2 + Math.floor(rand() * 3) },
        () => vocab[Math.floor(vocab.length * rand() ** 2)]!,
      ).join(' '),
    );
    for (const q of queries.slice(0, 20)) index.search(q, 5);
    const q0 = performance.now();
    for (const q of queries) index.search(q, 5);
    results.search_queries_per_s = queries.length / ((performance.now() - q0) / 1000);

    const report = [
      `Load average during the run: ${loadavg()[0]!.toFixed(1)} on ${cpus().length} cores (the machine is shared; latencies include waiting for a core).`,
      `Python cold start is spawn to first answer of one worker (${protection} protection) started from the start-up snapshot, median of 3; without the snapshot it took ${withoutSnapshot.toFixed(0)} ms.`,
      'Warm calls are the median of 200 trivial calls on one warm interpreter (target <= 20 ms).',
      'Pool throughput: 2 tools on 2 warm interpreters calling `print(sum(range(100)))` back to back for 3 s.',
      `Timeout overshoot: enforced time / limit for an infinite loop under a 1 s limit, the worse of python (${pyOvershoot.toFixed(3)}) and javascript (${jsOvershoot.toFixed(3)}); target <= 1.5.`,
      `Search: 500 queries of 2-4 terms drawn uniformly from the vocabulary, top 5, over 100,000 synthetic 40-80-word documents (index built in ${buildS.toFixed(1)} s).`,
    ].join('\n');
    return { results, report };
  },
};
