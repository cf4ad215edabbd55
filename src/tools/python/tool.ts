/**
 * `python`: runs model-written Python in pyodide inside a worker process taken from a warm pool.
 * Variables persist across the calls of one episode; `reset()` starts the next episode in a fresh
 * interpreter. A call that overruns the time limit kills the worker (and with it the episode's state,
 * which the error says); the next call gets a fresh interpreter.
 */
import { CodeInput } from '../code.ts';
import { errorResult, finishResult } from '../define.ts';
import type { Tool, ToolContext, ToolErrorKind, ToolLimits, ToolResult } from '../types.ts';
import { type PythonPool, sharedPythonPool } from './pool.ts';
import type { PythonWorker } from './worker.ts';

/** How long an idle interpreter may take to answer a ping before it counts as busy (generous: a
 * loaded machine can delay a healthy worker, and a false alarm costs the trajectory its state). */
const PING_MS = 1_000;

export interface PythonToolOptions {
  limits?: Partial<ToolLimits>;
  /** Where interpreters come from; the process-wide shared pool by default. */
  pool?: PythonPool;
}

export class PythonTool implements Tool<typeof CodeInput> {
  readonly name = 'python';
  readonly description =
    'Run Python 3 (standard library only, no network, no files outside memory). Input: {"code": string}. ' +
    'Returns what the code printed (use print); the value of the last expression is not shown. ' +
    'Variables persist between calls in one episode.';
  readonly schema = CodeInput;
  readonly limits: ToolLimits;
  private readonly options: PythonToolOptions;
  private worker?: PythonWorker;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(options: PythonToolOptions = {}) {
    this.limits = { timeMs: 10_000, outputChars: 8_000, ...options.limits };
    this.options = options;
  }

  /** Resolved at first use: a tool made only for its definition (a prompt) starts no interpreter. */
  private get pool(): PythonPool {
    return this.options.pool ?? sharedPythonPool();
  }

  execute(input: CodeInput, ctx: ToolContext = {}): Promise<ToolResult> {
    // One call at a time per episode: the interpreter's state is sequential, like a REPL.
    const run = this.queue.then(() => this.executeNow(input, ctx));
    this.queue = run.catch(() => {});
    return run;
  }

  /** Take an interpreter now, so that the first call does not wait for one. */
  async warm(): Promise<void> {
    this.worker ??= await this.pool.acquire();
  }

  async reset(): Promise<void> {
    await this.queue;
    const worker = this.worker;
    this.worker = undefined;
    if (worker) this.pool.release(worker);
  }

  async close(): Promise<void> {
    await this.reset();
  }

  private async executeNow(input: CodeInput, ctx: ToolContext): Promise<ToolResult> {
    const started = performance.now();
    const parsed = CodeInput.safeParse(input);
    if (!parsed.success) return errorResult('bad_arguments', 'python: expected {"code": string}', started);
    if (ctx.signal?.aborted) return errorResult('aborted', 'the call was aborted before it started', started);
    if (this.worker && !this.worker.alive) this.worker = undefined;
    let note = '';
    if (this.worker?.used && !(await this.worker.ping(PING_MS))) {
      // Code from an earlier call is still running in there: it goes, and so does the state.
      this.worker.kill();
      this.worker = undefined;
      note = 'note: code left running by an earlier call was stopped and the Python state was reset\n';
    }
    try {
      this.worker ??= await this.pool.acquire();
    } catch (err) {
      return errorResult('tool_error', `no Python interpreter available: ${(err as Error).message}`, started);
    }
    const { timeMs, outputChars } = this.limits;
    // The limit counts from the moment the interpreter has the code, not from waiting for one.
    const reply = await this.worker.run(parsed.data.code, timeMs, outputChars, ctx.signal);
    if (reply.status !== 'done') {
      this.worker = undefined;
      const kind: ToolErrorKind = reply.status === 'crashed' ? 'tool_error' : reply.status;
      return errorResult(
        kind,
        `${reply.detail}; the Python state was reset`,
        started,
        note + reply.output,
        outputChars,
      );
    }
    if (reply.fatal) {
      this.worker.kill();
      this.worker = undefined;
    }
    if (reply.error === null) return finishResult(note + reply.output, outputChars, started);
    const lastLine = reply.error.trimEnd().split('\n').at(-1) ?? reply.error;
    const kind: ToolErrorKind = /^MemoryError\b/.test(lastLine) ? 'memory' : 'tool_error';
    const shown = reply.output === '' || reply.output.endsWith('\n') ? reply.output : `${reply.output}\n`;
    const reset = reply.fatal ? '; the Python state was reset' : '';
    return errorResult(kind, `${lastLine}${reset}`, started, note + shown + reply.error, outputChars);
  }
}

export function pythonTool(options: PythonToolOptions = {}): PythonTool {
  return new PythonTool(options);
}
