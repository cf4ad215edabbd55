/** `EnvPool`: steps many envs at once, with a bound on the steps in flight. */
import { checkConcurrency, mapConcurrent } from '../util/concurrent.ts';
import type { Env, StepResult, Task } from './types.ts';

/**
 * Steps many envs at once. Each call sends one action per env and awaits them together, so that
 * envs waiting on tools (a Python run, a search) overlap; `concurrency` bounds how many steps are
 * in flight (each tool-using env may hold a worker). Envs given no action (undefined) are skipped,
 * which is how finished envs sit out the rest of a batch.
 */
export class EnvPool<T extends Task = Task> {
  readonly envs: Env<T>[];
  private readonly concurrency: number;
  private readonly finished: boolean[];

  constructor(envs: Env<T>[], options: { concurrency?: number } = {}) {
    if (envs.length === 0) throw new Error('EnvPool: needs at least one env');
    checkConcurrency(options.concurrency, 'EnvPool');
    this.envs = envs;
    this.concurrency = options.concurrency ?? envs.length;
    this.finished = envs.map(() => false);
  }

  /** `size` envs from a factory (one env, and so one tool instance, per slot). */
  static create<T extends Task>(
    size: number,
    make: (i: number) => Env<T>,
    options?: { concurrency?: number },
  ) {
    return new EnvPool(
      Array.from({ length: size }, (_, i) => make(i)),
      options,
    );
  }

  get size(): number {
    return this.envs.length;
  }

  /** Which envs have finished their trajectory since their last reset. */
  get done(): readonly boolean[] {
    return this.finished;
  }

  /** Reset every env: one `{ seed, task? }` per env (a group shares task and seed). */
  async reset(starts: { seed: number; task?: T }[]): Promise<string[]> {
    this.checkLength(starts.length, 'reset');
    const out = await this.map(starts, (s, i) => this.envs[i]!.reset(s.seed, s.task));
    this.finished.fill(false);
    return out as string[];
  }

  /** One action per env (undefined: skip that env). Results line up with the envs. */
  async step(actions: (string | undefined)[]): Promise<(StepResult | undefined)[]> {
    this.checkLength(actions.length, 'step');
    return this.map(actions, async (a, i) => {
      if (a === undefined) return undefined;
      const r = await this.envs[i]!.step(a);
      if (r.done) this.finished[i] = true;
      return r;
    });
  }

  anchors(): string[] {
    return this.envs.map((e) => e.anchor);
  }

  /** Each env's admissible actions, or undefined where the world has none. */
  admissibleActions(): (string[] | undefined)[] {
    return this.envs.map((e) => e.admissibleActions?.());
  }

  async close(): Promise<void> {
    await Promise.all(this.envs.map((e) => e.close?.()));
  }

  private checkLength(n: number, what: string): void {
    if (n !== this.envs.length)
      throw new Error(`EnvPool.${what}: got ${n} items for ${this.envs.length} envs`);
  }

  private map<I, O>(items: I[], f: (item: I, i: number) => Promise<O>): Promise<O[]> {
    return mapConcurrent(items, f, this.concurrency);
  }
}
