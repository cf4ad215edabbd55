/**
 * The store's figures for the `credit` suite: insert speed of step rows shaped like policy
 * rollouts (300 prompt tokens, 40 response tokens, their texts and log-probs) and the time to
 * read one training iteration back.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type GroupInput, openStore, type StepInput } from '../src/store/index.ts';

const PROMPT_TOKENS = 300;
const RESPONSE_TOKENS = 40;
export const GROUP_SIZE = 8;
export const STEPS_PER_TRAJECTORY = 25;
export const GROUPS_PER_ITERATION = 32; // 32 x 8 x 25 = 6,400 steps an iteration
const ITERATIONS = 8;

/** A deterministic pseudo-random generator, so every run writes the same bytes. */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const words = [
  'take',
  'apple',
  'from',
  'fridge',
  'go',
  'to',
  'countertop',
  'open',
  'drawer',
  'put',
  'in',
  'on',
];

function text(rand: () => number, tokens: number): string {
  const out: string[] = [];
  for (let i = 0; i < tokens; i++) out.push(words[Math.floor(rand() * words.length)]!);
  return out.join(' ');
}

export function makeIteration(iteration: number): GroupInput[] {
  const rand = lcg(iteration + 1);
  const groups: GroupInput[] = [];
  for (let g = 0; g < GROUPS_PER_ITERATION; g++) {
    const trajectories = [];
    for (let t = 0; t < GROUP_SIZE; t++) {
      const steps: StepInput[] = [];
      for (let s = 0; s < STEPS_PER_TRAJECTORY; s++) {
        const promptTokens = new Int32Array(PROMPT_TOKENS);
        for (let k = 0; k < PROMPT_TOKENS; k++) promptTokens[k] = Math.floor(rand() * 32000);
        const responseTokens = new Int32Array(RESPONSE_TOKENS);
        const responseLogprobs = new Float32Array(RESPONSE_TOKENS);
        for (let k = 0; k < RESPONSE_TOKENS; k++) {
          responseTokens[k] = Math.floor(rand() * 32000);
          responseLogprobs[k] = Math.log(rand() + 1e-6);
        }
        steps.push({
          stepIndex: s,
          role: 'agent',
          anchor: `You are in the kitchen. You see a fridge ${Math.floor(rand() * 4)} and a drawer.`,
          promptText: text(rand, PROMPT_TOKENS),
          promptTokens,
          responseText: text(rand, RESPONSE_TOKENS),
          responseTokens,
          responseLogprobs,
          envReward: s === STEPS_PER_TRAJECTORY - 1 ? 10 : 0,
          valid: rand() > 0.1,
          done: s === STEPS_PER_TRAJECTORY - 1,
        });
      }
      trajectories.push({ trajectoryId: `g${g}-t${t}`, outcome: 'won', won: true, steps });
    }
    groups.push({ groupId: `g${g}`, taskId: `task-${g}`, seed: g, split: 'train', trajectories });
  }
  return groups;
}

export async function benchStore(
  log: (line: string) => void,
): Promise<{ store_insert_rows_per_s: number; store_read_batch_ms: number }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'stepwise-store-bench-'));
  try {
    const file = path.join(dir, 'bench.db');
    const store = openStore(file);
    store.createRun('bench');
    const stepsPerIteration = GROUPS_PER_ITERATION * GROUP_SIZE * STEPS_PER_TRAJECTORY;
    // Two payloads built before the clock starts, written alternately and back to back: the
    // background checkpoint then competes with the writes instead of running in idle gaps.
    const payloads = [makeIteration(0), makeIteration(1)];
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    for (let it = 0; it < ITERATIONS; it++)
      store.writeIteration('bench', { iteration: it, groups: payloads[it % 2]! });
    const writeMs = performance.now() - t0;
    store.close(); // the final checkpoint: every row is in the database file after this
    const totalMs = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    const rows = ITERATIONS * stepsPerIteration;
    const rowsPerS = rows / (totalMs / 1000);
    log(
      `store: ${ITERATIONS} iterations of ${stepsPerIteration} steps: writes ${writeMs.toFixed(0)} ms, ` +
        `with the final checkpoint ${totalMs.toFixed(0)} ms: ${rowsPerS.toFixed(0)} rows/s`,
    );
    // CPU time of all threads (writer + checkpointer): the figure to compare on a busy machine.
    const cpuS = (cpu.user + cpu.system) / 1e6;
    log(`store: ${cpuS.toFixed(2)} s of CPU for the writes: ${(rows / cpuS).toFixed(0)} rows per CPU-second`);

    // Median of several reads of one iteration, as the trainer reads it before an update.
    const reader = openStore(file, { readonly: true });
    const reads: number[] = [];
    for (let r = 0; r < 5; r++) {
      const r0 = performance.now();
      const rows = reader.trainingRows('bench', ITERATIONS - 1 - r);
      reads.push(performance.now() - r0);
      if (rows.length !== stepsPerIteration)
        throw new Error(`read ${rows.length} rows; expected ${stepsPerIteration}`);
    }
    reader.close();
    reads.sort((a, b) => a - b);
    const readMs = reads[Math.floor(reads.length / 2)]!;
    log(
      `store: one iteration (${stepsPerIteration} steps) read back in ${readMs.toFixed(1)} ms (median of 5)`,
    );
    return { store_insert_rows_per_s: rowsPerS, store_read_batch_ms: readMs };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
