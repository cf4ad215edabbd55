/**
 * The JavaScript sandbox's worker thread: one QuickJS runtime (WebAssembly) per episode.
 * Plain JavaScript because worker threads start without the TypeScript loader.
 * The host terminates this thread if a call overruns its hard deadline (a long native builtin
 * in QuickJS does not consult the interrupt handler), so nothing here has to be trusted to stop.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { getQuickJS } from 'quickjs-emscripten';

const QuickJS = await getQuickJS();
const { memoryBytes, stackBytes } = workerData;
let runtime;
let vm;
let deadline = 0;
let printed = [];
let printedChars = 0;
let maxChars = 0;

let callId = 0;

function print(text) {
  // Keep a little more than the output limit: a print loop must not fill the host's memory.
  const room = maxChars + 1 - printedChars;
  if (room <= 0) return;
  const kept = text.length > room ? text.slice(0, room) : text;
  printed.push(kept);
  printedChars += kept.length;
  // Also sent as it is printed: if the host has to terminate this thread, it still has the output.
  parentPort.postMessage({ id: callId, printed: kept });
}

function format(handle) {
  const type = vm.typeof(handle);
  if (type === 'string') return vm.getString(handle);
  if (type !== 'object' && type !== 'function') return String(vm.dump(handle));
  const json = vm.getProp(vm.global, '__stepwise_format');
  const out = vm.callFunction(json, vm.undefined, handle);
  json.dispose();
  if (out.error) {
    out.error.dispose();
    return '[object]';
  }
  const text = vm.getString(out.value);
  out.value.dispose();
  return text;
}

function newContext() {
  runtime = QuickJS.newRuntime();
  runtime.setMemoryLimit(memoryBytes);
  runtime.setMaxStackSize(stackBytes);
  runtime.setInterruptHandler(() => performance.now() >= deadline);
  vm = runtime.newContext();
  const consoleObj = vm.newObject();
  for (const level of ['log', 'info', 'warn', 'error', 'debug']) {
    const fn = vm.newFunction(level, (...args) => {
      print(`${args.map(format).join(' ')}\n`);
    });
    vm.setProp(consoleObj, level, fn);
    fn.dispose();
  }
  vm.setProp(vm.global, 'console', consoleObj);
  consoleObj.dispose();
  const helper = vm.evalCode(
    'Object.defineProperty(globalThis, "__stepwise_format", { enumerable: false, value: ' +
      '(v) => { try { return JSON.stringify(v) ?? String(v) } catch { return String(v) } } })',
  );
  vm.unwrapResult(helper).dispose();
}

function dispose() {
  try {
    vm?.dispose();
    runtime?.dispose();
  } catch {
    // A runtime broken by a host-side error may not dispose cleanly; it is dropped either way.
  }
  vm = undefined;
  runtime = undefined;
}

function describe(handle) {
  const e = vm.dump(handle);
  if (typeof e !== 'object' || e === null) return `Uncaught ${String(e)}`;
  const head = `${e.name ?? 'Error'}: ${e.message ?? ''}`;
  const stack = typeof e.stack === 'string' ? e.stack.split('\n').slice(0, 12).join('\n') : '';
  return stack ? `${head}\n${stack.trimEnd()}` : head;
}

function run({ id, code, timeMs, outputChars }) {
  callId = id;
  deadline = performance.now() + timeMs;
  if (!vm) newContext();
  printed = [];
  printedChars = 0;
  maxChars = outputChars;
  let failure;
  const result = vm.evalCode(code, 'input.js');
  if (result.error) failure = result.error;
  else {
    result.value.dispose();
    // Promise jobs the code queued (async functions, .then) run now, under the same deadline.
    const jobs = runtime.executePendingJobs();
    if (jobs.error) failure = jobs.error;
  }
  const output = printed.join('');
  const late = performance.now() >= deadline;
  if (!failure && !late) return { ok: true, output };
  const error = failure ? describe(failure) : '';
  failure?.dispose();
  // A job that was interrupted is swallowed as an unhandled rejection, so lateness is checked too.
  if (late) {
    dispose();
    return {
      ok: false,
      kind: 'timeout',
      error: `timed out after ${timeMs} ms; the JavaScript state was reset`,
      output,
    };
  }
  if (/^InternalError: out of memory/.test(error) || error === 'Uncaught ' || error === 'Error: ') {
    dispose();
    return {
      ok: false,
      kind: 'memory',
      error: `out of memory (limit ${memoryBytes} bytes); the JavaScript state was reset`,
      output,
    };
  }
  return { ok: false, kind: 'tool_error', error: error.split('\n')[0], output: output + error };
}

parentPort.on('message', (msg) => {
  if (msg.type === 'reset') {
    dispose();
    parentPort.postMessage({ id: msg.id, ok: true, output: '' });
    return;
  }
  let reply;
  try {
    reply = run(msg);
  } catch (err) {
    // The host engine threw out of the WebAssembly (its own stack limit, say): start over.
    dispose();
    reply = {
      ok: false,
      kind: 'tool_error',
      error: `the JavaScript engine failed: ${String(err).slice(0, 200)}; state reset`,
      output: '',
    };
  }
  parentPort.postMessage({ id: msg.id, ...reply });
});
parentPort.postMessage({ ready: true });
