/**
 * A pool of warm Python workers. Starting pyodide takes seconds, so the pool keeps `size` started
 * interpreters waiting; a tool takes one for an episode and throws it away after (an interpreter
 * that ran agent code is never reused by another episode). Several tools share one pool.
 */
import { z } from 'zod';
import { detectProtection, type Protection } from './sandbox.ts';
import { PythonWorker, startupSnapshot, whileAlive } from './worker.ts';

export const PythonPoolOptions = z.object({
  /** Warm interpreters kept waiting. */
  size: z.number().int().min(0).default(2),
  /** WebAssembly memory cap per interpreter (bytes). */
  memoryBytes: z
    .number()
    .int()
    .min(64 * 1024 * 1024)
    .default(512 * 1024 * 1024),
  startTimeoutMs: z.number().int().positive().default(60_000),
  /** Start interpreters from a memory snapshot of a fresh one (made once per machine): ~3x faster. */
  snapshot: z.boolean().default(true),
  /**
   * Warn (stderr, once per process, when the first interpreter is handed out) if only in-process
   * hardening protects it; with bubblewrap there is nothing to warn about.
   */
  announce: z.boolean().default(true),
  /**
   * Keep interpreters that ran code (up to `size` idle): only for code the caller wrote itself,
   * such as an expert's programs replayed for demonstrations, where a fresh interpreter per
   * episode would cost a process start (about a second) for a program that runs in milliseconds.
   * Variables of earlier episodes stay defined, so that code must not read what it did not set.
   */
  reuse: z.boolean().default(false),
  /**
   * Interpreters handed out and alive at once. Each is a process of about 100-250 MB held for a
   * whole episode, and a batched rollout or evaluation runs hundreds of episodes at once (300
   * AgentFlow code tasks once took the machine's 24 GB), so past this an `acquire` waits until
   * an episode gives one back or one dies.
   */
  maxActive: z.number().int().min(1).default(16),
});
export type PythonPoolOptions = z.input<typeof PythonPoolOptions>;

export class PythonPool {
  readonly options: z.output<typeof PythonPoolOptions>;
  readonly protection: Protection;
  private idle: PythonWorker[] = [];
  private closed = false;
  /** Handed out and not yet given back or dead: at most `maxActive`. */
  private readonly out = new Set<PythonWorker>();
  /** Acquires that hold a slot while their interpreter starts (counted against `maxActive`). */
  private starting = 0;
  /** Acquires waiting for a free slot, woken one per slot freed. */
  private waiters: (() => void)[] = [];

  /** Interpreters handed out and alive now. */
  get active(): number {
    return this.out.size;
  }

  constructor(options: PythonPoolOptions = {}) {
    this.options = PythonPoolOptions.parse(options);
    this.protection = detectProtection();
    this.refill();
  }

  /** A started interpreter; waits for one when none is warm yet. */
  async acquire(): Promise<PythonWorker> {
    if (this.options.announce && this.protection.level !== 'bubblewrap' && !warned) {
      warned = true;
      console.error(`stepwise: ${this.protection.summary}`);
    }
    while (this.out.size + this.starting >= this.options.maxActive) {
      if (this.closed) throw new Error('PythonPool.acquire: the pool is closed');
      await new Promise<void>((wake) => this.waiters.push(wake));
    }
    this.starting++;
    try {
      const worker = await this.start();
      this.out.add(worker);
      // A tool drops a worker it killed (a timeout, a fatal error) without giving it back.
      void worker.died.then(() => this.free(worker));
      return worker;
    } finally {
      this.starting--;
      // A start that failed leaves its slot free.
      if (this.out.size + this.starting < this.options.maxActive) this.waiters.shift()?.();
    }
  }

  /** A started interpreter: a warm one, or a new one (a second failed start in a row throws). */
  private async start(): Promise<PythonWorker> {
    let failures = 0;
    for (;;) {
      if (this.closed) throw new Error('PythonPool.acquire: the pool is closed');
      this.idle = this.idle.filter((w) => w.alive);
      const worker = this.idle.shift() ?? this.spawn();
      // A reusing pool grows by the workers given back; a spare started now would be killed on
      // the next release (the idle list is full then).
      if (!this.options.reuse) this.refill();
      try {
        await whileAlive(worker.ready);
        if (worker.alive) return worker;
      } catch (err) {
        // One failed start can be bad luck (a start-up timeout under load); two in a row is a fault.
        if (++failures >= 2) throw err;
      }
    }
  }

  /** Give a worker back: kept if it never ran code (or the pool reuses them), killed otherwise. */
  release(worker: PythonWorker): void {
    this.free(worker);
    const clean = !worker.used || this.options.reuse;
    if (!this.closed && worker.alive && clean && this.idle.length < this.options.size) {
      this.idle.push(worker);
    } else worker.kill();
    if (!this.options.reuse) this.refill();
  }

  /** Wait until `size` interpreters are warm (for benchmarks and tests). */
  async warm(): Promise<void> {
    this.refill();
    await whileAlive(Promise.all(this.idle.map((w) => w.ready)));
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const w of this.idle) w.kill();
    this.idle = [];
    for (const wake of this.waiters.splice(0)) wake();
  }

  private free(worker: PythonWorker): void {
    if (this.out.delete(worker)) this.waiters.shift()?.();
  }

  private spawn(): PythonWorker {
    return new PythonWorker({
      memoryBytes: this.options.memoryBytes,
      startTimeoutMs: this.options.startTimeoutMs,
      snapshot: this.options.snapshot ? startupSnapshot() : undefined,
    });
  }

  /** Start workers until `size` are warm or warming. `idle` holds both: acquire awaits `ready`. */
  private refill(): void {
    if (this.closed) return;
    this.idle = this.idle.filter((w) => w.alive);
    while (this.idle.length < this.options.size) this.idle.push(this.spawn());
  }
}

let shared: PythonPool | undefined;
/** The weak-protection warning is given once per process, whatever the number of pools. */
let warned = false;

/** The process-wide pool behind `pythonTool()`s that are not given their own. */
export function sharedPythonPool(options?: PythonPoolOptions): PythonPool {
  shared ??= new PythonPool(options);
  return shared;
}

/** Close the shared pool (tests, CLI exit). */
export async function closeSharedPythonPool(): Promise<void> {
  await shared?.close();
  shared = undefined;
}
