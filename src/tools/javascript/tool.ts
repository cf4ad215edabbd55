/**
 * `javascript`: runs model-written JavaScript in QuickJS compiled to WebAssembly, inside a worker
 * thread. The guest has the language built-ins and a captured `console`, nothing of the host: no
 * `process`, `require`, `fetch`, timers or file system exist in there. Memory and stack are capped
 * by QuickJS's allocator; time by its interrupt handler, and, because a long native builtin (a
 * huge `Array.fill`, say) never consults that handler, by terminating the worker thread at a hard
 * deadline. Node's `vm` module is not used: it shares the host's heap and is not a security boundary.
 */
import { Worker } from 'node:worker_threads';
import { CodeInput } from '../code.ts';
import { errorResult, finishResult } from '../define.ts';
import type { Tool, ToolContext, ToolLimits, ToolResult } from '../types.ts';

export interface JavaScriptOptions {
  limits?: Partial<ToolLimits>;
  /** QuickJS heap cap (bytes). */
  memoryBytes?: number;
  /** QuickJS stack cap (bytes); deep recursion fails with a stack overflow error. Kept well below
   * the host thread's own stack, or the host engine overflows first. */
  stackBytes?: number;
}

/** The hard deadline, as a multiple of the time limit (the bound is 1.5). */
const HARD_DEADLINE_FACTOR = 1.25;

interface Reply {
  id: number;
  /** A piece of output streamed while the call runs (not a final reply). */
  printed?: string;
  ok: boolean;
  output: string;
  error?: string;
  kind?: 'timeout' | 'memory' | 'tool_error';
}

/** One JavaScript sandbox: globals persist across calls until `reset()` (a new episode). */
export class JavaScriptTool implements Tool<typeof CodeInput> {
  readonly name = 'javascript';
  readonly description =
    'Run JavaScript (ES2023, no Node or browser APIs). Input: {"code": string}. Returns what the code ' +
    'printed with console.log; the value of the last expression is not shown. Variables persist ' +
    'between calls in one episode.';
  readonly schema = CodeInput;
  readonly limits: ToolLimits;
  private readonly memoryBytes: number;
  private readonly stackBytes: number;
  private worker?: { thread: Worker; ready: Promise<void> };
  private pending = new Map<number, (reply: Reply) => void>();
  /** Output of the running call as streamed, for when the thread has to be terminated. */
  private streaming: { id: number; text: string[] } = { id: 0, text: [] };
  private nextId = 1;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(options: JavaScriptOptions = {}) {
    this.limits = { timeMs: 5_000, outputChars: 8_000, ...options.limits };
    this.memoryBytes = options.memoryBytes ?? 64 * 1024 * 1024;
    this.stackBytes = options.stackBytes ?? 256 * 1024;
  }

  /** Start the worker now instead of on the first call. */
  async warm(): Promise<void> {
    await this.thread().ready;
  }

  execute(input: CodeInput, ctx: ToolContext = {}): Promise<ToolResult> {
    // One call at a time per sandbox: the guest's state is sequential, like a REPL.
    const run = this.queue.then(() => this.executeNow(input, ctx));
    this.queue = run.catch(() => {});
    return run;
  }

  private async executeNow(input: CodeInput, ctx: ToolContext): Promise<ToolResult> {
    const started = performance.now();
    const parsed = CodeInput.safeParse(input);
    if (!parsed.success)
      return errorResult('bad_arguments', 'javascript: expected {"code": string}', started);
    if (ctx.signal?.aborted) return errorResult('aborted', 'the call was aborted before it started', started);
    const worker = this.thread();
    await worker.ready;
    const id = this.nextId++;
    this.streaming = { id, text: [] };
    const { timeMs, outputChars } = this.limits;
    const reply = await new Promise<Reply | 'deadline' | 'aborted'>((resolve) => {
      const hard = setTimeout(() => resolve('deadline'), timeMs * HARD_DEADLINE_FACTOR);
      const onAbort = () => resolve('aborted');
      ctx.signal?.addEventListener('abort', onAbort, { once: true });
      this.pending.set(id, (r) => {
        clearTimeout(hard);
        ctx.signal?.removeEventListener('abort', onAbort);
        resolve(r);
      });
      worker.thread.postMessage({ id, code: parsed.data.code, timeMs, outputChars });
    });
    if (reply === 'deadline' || reply === 'aborted') {
      this.pending.delete(id);
      await this.kill();
      // Start the next worker now, so the next call does not pay for it.
      this.thread();
      const printed = this.streaming.text.join('');
      return reply === 'deadline'
        ? errorResult(
            'timeout',
            `timed out after ${timeMs} ms; the JavaScript state was reset`,
            started,
            printed,
            outputChars,
          )
        : errorResult(
            'aborted',
            'the call was aborted; the JavaScript state was reset',
            started,
            printed,
            outputChars,
          );
    }
    if (reply.ok) return finishResult(reply.output, outputChars, started);
    return errorResult(
      reply.kind ?? 'tool_error',
      reply.error ?? 'failed',
      started,
      reply.output,
      outputChars,
    );
  }

  async reset(): Promise<void> {
    if (!this.worker) return;
    const id = this.nextId++;
    await new Promise<void>((resolve) => {
      this.pending.set(id, () => resolve());
      this.worker?.thread.postMessage({ type: 'reset', id });
    });
  }

  async close(): Promise<void> {
    await this.kill();
  }

  private thread(): { thread: Worker; ready: Promise<void> } {
    if (this.worker) return this.worker;
    const thread = new Worker(new URL('./worker.mjs', import.meta.url), {
      workerData: { memoryBytes: this.memoryBytes, stackBytes: this.stackBytes },
      // The guest lives in WebAssembly memory; the thread's own JS heap only holds the glue.
      resourceLimits: { maxOldGenerationSizeMb: 128 },
      stdout: true,
      stderr: true,
    });
    thread.unref();
    const ready = new Promise<void>((resolve, reject) => {
      thread.once('error', reject);
      thread.on('message', (msg: Reply | { ready: true }) => {
        if ('ready' in msg) return resolve();
        if (msg.printed !== undefined) {
          if (msg.id === this.streaming.id) this.streaming.text.push(msg.printed);
          return;
        }
        this.pending.get(msg.id)?.(msg);
        this.pending.delete(msg.id);
      });
    });
    thread.on('exit', () => {
      if (this.worker?.thread === thread) this.worker = undefined;
    });
    this.worker = { thread, ready };
    return this.worker;
  }

  private async kill(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    if (worker) await worker.thread.terminate();
  }
}

export function javascriptTool(options: JavaScriptOptions = {}): JavaScriptTool {
  return new JavaScriptTool(options);
}
