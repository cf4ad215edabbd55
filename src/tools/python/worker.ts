/** One pyodide interpreter in its own (sandboxed) process, which the host can kill at any time. */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import {
  detectProtection,
  type Protection,
  type SnapshotMode,
  snapshotFile,
  workerCommand,
} from './sandbox.ts';

export interface PythonWorkerOptions {
  /** Cap of the interpreter's WebAssembly memory (bytes); beyond it Python raises MemoryError. */
  memoryBytes: number;
  /** How long the interpreter may take to start before the worker is given up. */
  startTimeoutMs: number;
  /** A start-up snapshot to start from (see `startupSnapshot`); awaited before spawning. */
  snapshot?: Promise<string | undefined>;
}

export type RunReply =
  | { status: 'done'; output: string; error: string | null; fatal: boolean }
  | {
      status: 'timeout' | 'aborted' | 'crashed';
      detail: string /** printed before it stopped */;
      output: string;
    };

type Message =
  | { ready: true; loadMs: number }
  | { id: number; output: string; error: string | null; fatal: boolean };

const STDERR_TAIL = 2_000;

export class PythonWorker {
  readonly ready: Promise<void>;
  readonly protection: Protection;
  /** Milliseconds from spawn to the interpreter accepting code. */
  startMs = Number.NaN;
  /** True once code ran in it: it then holds an episode's state and is never handed to another. */
  used = false;
  /** Settles once the worker is dead (killed, crashed or exited): its process is gone or going. */
  readonly died: Promise<void>;
  private markDied!: () => void;
  private child?: ChildProcess;
  private dead = false;
  private exitNote = '';
  private stderrTail = '';
  private nextId = 1;
  private waiting?: { id: number; resolve: (reply: RunReply) => void };
  private pongs = new Map<number, () => void>();
  /** What the running call printed so far, as the worker streams it (for calls that get killed). */
  private streamed: Buffer[] = [];
  private streamedBytes = 0;
  private streamCap = 0;

  constructor(options: PythonWorkerOptions) {
    this.died = new Promise<void>((resolve) => {
      this.markDied = resolve;
    });
    this.protection = detectProtection();
    this.ready = (options.snapshot ?? Promise.resolve(undefined)).then((file) =>
      this.start(options, file ? { load: file } : undefined),
    );
    // Callers that never await `ready` must not see an unhandled rejection.
    this.ready.catch(() => {});
  }

  private start(options: PythonWorkerOptions, snapshot: SnapshotMode): Promise<void> {
    if (this.dead) return Promise.reject(new Error('python worker was killed before it started'));
    const pages = Math.max(256, Math.floor(options.memoryBytes / 65_536));
    const nodeFlags = [
      `--wasm-max-mem-pages=${pages}`,
      '--max-old-space-size=256',
      '--disallow-code-generation-from-strings',
      '--no-warnings',
    ];
    const { command, args, env } = workerCommand(this.protection, nodeFlags, snapshot);
    const spawned = performance.now();
    // detached: the worker leads its own process group, so a kill reaches anything it started.
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe', 'ipc'], detached: true });
    this.child = child;
    (child.stdout as { unref?: () => void } | null)?.unref?.();
    child.stdout?.on('data', (d: Buffer) => {
      if (this.streamedBytes >= this.streamCap) return;
      const kept = d.subarray(0, this.streamCap - this.streamedBytes);
      this.streamed.push(kept);
      this.streamedBytes += kept.length;
    });
    live.add(this);
    child.on('exit', () => live.delete(this));
    // An idle worker must not keep the host process alive; a call in flight holds its own timer.
    child.unref();
    (child.channel as { unref?: () => void } | undefined)?.unref?.();
    (child.stderr as { unref?: () => void } | null)?.unref?.();
    child.stderr?.on('data', (d: Buffer) => {
      this.stderrTail = (this.stderrTail + d.toString()).slice(-STDERR_TAIL);
    });
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.kill();
        reject(new Error(`python worker did not start within ${options.startTimeoutMs} ms`));
      }, options.startTimeoutMs);
      // Warming spares must not hold the host open; whoever awaits `ready` does (`whileAlive`).
      timer.unref();
      child.on('message', (msg: Message) => {
        if ('pong' in msg) {
          const id = (msg as { pong: number }).pong;
          this.pongs.get(id)?.();
          this.pongs.delete(id);
        } else if ('ready' in msg) {
          clearTimeout(timer);
          this.startMs = performance.now() - spawned;
          resolve();
        } else if (this.waiting?.id === msg.id) {
          const { resolve: done } = this.waiting;
          this.waiting = undefined;
          done({ status: 'done', output: msg.output, error: msg.error, fatal: msg.fatal });
        }
      });
      child.on('error', (err) => {
        clearTimeout(timer);
        reject(new Error(`python worker could not be started: ${err.message}`));
      });
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        this.dead = true;
        this.markDied();
        this.exitNote = signal ? `killed by ${signal}` : `exited with code ${code}`;
        reject(new Error(`python worker ${this.exitNote} while starting: ${this.stderrTail.trim()}`));
        this.waiting?.resolve({
          status: 'crashed',
          detail: `python worker ${this.exitNote}`,
          output: this.printed(),
        });
        this.waiting = undefined;
      });
    });
  }

  get alive(): boolean {
    return !this.dead;
  }

  /**
   * Runs `code`; on the deadline or an abort the process is killed (its state is gone) and the
   * reply says so. One call at a time.
   */
  async run(code: string, timeMs: number, outputChars: number, signal?: AbortSignal): Promise<RunReply> {
    await whileAlive(this.ready);
    if (this.dead) return { status: 'crashed', detail: `python worker ${this.exitNote}`, output: '' };
    if (this.waiting) throw new Error('PythonWorker.run: a call is already running in this worker');
    this.used = true;
    this.streamed = [];
    this.streamedBytes = 0;
    this.streamCap = outputChars * 4 + 4;
    const id = this.nextId++;
    return new Promise<RunReply>((resolve) => {
      const finish = (reply: RunReply) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        resolve(reply);
      };
      const stop = async (status: 'timeout' | 'aborted', detail: string) => {
        this.waiting = undefined;
        this.kill();
        await this.drain();
        finish({ status, detail, output: this.printed() });
      };
      const timer = setTimeout(() => void stop('timeout', `timed out after ${timeMs} ms`), timeMs);
      const onAbort = () => void stop('aborted', 'the call was aborted');
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiting = { id, resolve: finish };
      this.child?.send({ type: 'run', id, code, outputChars });
    });
  }

  /**
   * True when the worker answers within `timeoutMs`. A worker that ran code earlier and does not
   * answer is still busy with something that code scheduled to outlive its call.
   */
  async ping(timeoutMs: number): Promise<boolean> {
    await whileAlive(this.ready);
    if (this.dead) return false;
    const id = this.nextId++;
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        this.pongs.delete(id);
        resolve(false);
      }, timeoutMs);
      this.pongs.set(id, () => {
        clearTimeout(timer);
        resolve(true);
      });
      this.child?.send({ type: 'ping', id });
    });
  }

  private printed(): string {
    return new TextDecoder().decode(Buffer.concat(this.streamed));
  }

  /** Wait (briefly) until output already in the pipe has arrived. */
  private async drain(): Promise<void> {
    const out = this.child?.stdout;
    if (!out || out.readableEnded || out.destroyed) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 100);
      out.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** SIGKILL the worker's whole process group (bwrap, node and anything they started). */
  kill(): void {
    if (this.dead) return;
    this.dead = true;
    this.markDied();
    this.exitNote = 'killed by the host';
    try {
      if (this.child?.pid) process.kill(-this.child.pid, 'SIGKILL');
    } catch {
      this.child?.kill('SIGKILL');
    }
  }
}

/**
 * Awaits `promise` while keeping the host process alive: the worker's own handles are unref'd
 * so that idle spares never hold the host open.
 */
export async function whileAlive<T>(promise: Promise<T>): Promise<T> {
  const keep = setInterval(() => {}, 1 << 30);
  try {
    return await promise;
  } finally {
    clearInterval(keep);
  }
}

/** Workers not yet exited. Killed when the host exits: without bwrap's --die-with-parent a
 * detached worker would outlive it. */
const live = new Set<PythonWorker>();
process.on('exit', () => {
  for (const w of live) w.kill();
});

let snapshot: Promise<string | undefined> | undefined;

/**
 * The start-up snapshot file, made once per machine (per pyodide and node version) by a worker
 * that runs no agent code; undefined when it cannot be made (workers then start the slow way).
 */
export function startupSnapshot(): Promise<string | undefined> {
  snapshot ??= makeSnapshot().catch((err: Error) => {
    console.error(
      `stepwise: python start-up snapshot unavailable, starting interpreters without it: ${err.message}`,
    );
    return undefined;
  });
  return snapshot;
}

async function makeSnapshot(): Promise<string> {
  const file = snapshotFile();
  if (existsSync(file)) return file;
  const { command, args, env } = workerCommand(detectProtection(), ['--no-warnings'], { make: file });
  const child = spawn(command, args, { env, stdio: ['ignore', 'ignore', 'pipe', 'ipc'], detached: true });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-STDERR_TAIL);
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      if (child.pid) process.kill(-child.pid, 'SIGKILL');
      reject(new Error('making the snapshot took over 120 s'));
    }, 120_000);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (code === 0 && existsSync(file)) resolve();
      else reject(new Error(`snapshot worker exited with code ${code}: ${stderr.trim()}`));
    });
  });
  return file;
}
