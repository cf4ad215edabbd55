/**
 * The Python sandbox's worker process: one pyodide interpreter, driven over Node's IPC channel.
 * Plain JavaScript because it starts without the TypeScript loader, inside bubblewrap when that is
 * available. The host kills this process when a call overruns its time limit, so nothing here has
 * to be trusted to stop. Layers of defence applied here (the OS layer is the host's bwrap):
 *   1. pyodide gets no JavaScript globals (`jsglobals: {}`) and an empty environment;
 *   2. the `js` and `pyodide_js` modules (pyodide's bridges to this process) are removed;
 *   3. Python's process, shell and socket entry points raise PermissionError;
 *   4. the Node modules pyodide could reach through WebAssembly imports (child_process, net, tls,
 *      ws) are neutralised, and `process.binding`/`dlopen`/`env` emptied, after start-up.
 */
import { readFileSync, renameSync, writeFileSync, writeSync } from 'node:fs';
import { createRequire, syncBuiltinESMExports } from 'node:module';

const require = createRequire(import.meta.url);
// argv: <pyodide.mjs> [--snapshot <file> | --make-snapshot <file>]
const [pyodidePath, mode, snapshotFile] = process.argv.slice(2);
const started = performance.now();
const { loadPyodide } = await import(pyodidePath);

let chunks = [];
let bytes = 0;
let maxBytes = 0;
function capture(buffer) {
  // Keep a little more than the output limit: a print loop must not fill memory.
  if (bytes < maxBytes) {
    const kept = buffer.subarray(0, maxBytes - bytes);
    chunks.push(Uint8Array.from(kept));
    bytes += kept.length;
    // Also streamed to the host as it is printed, so that a call killed at its deadline still
    // shows what it printed before.
    writeSync(1, kept);
  }
  return buffer.length;
}

const config = { jsglobals: {}, env: { HOME: '/home/pyodide', LANG: 'C.UTF-8' }, checkAPIVersion: true };
if (mode === '--make-snapshot') {
  // A memory image of a freshly started interpreter (no agent code has run), which later workers
  // start from in a fraction of the time. The modules the hardening below imports are preloaded.
  const py = await loadPyodide({ ...config, _makeSnapshot: true });
  py.runPython('import os, socket, subprocess, traceback, builtins');
  writeFileSync(`${snapshotFile}.tmp`, py.makeMemorySnapshot());
  renameSync(`${snapshotFile}.tmp`, snapshotFile);
  process.send({ snapshot: true }, () => process.exit(0));
  await new Promise(() => {});
}
const py = await loadPyodide(
  mode === '--snapshot' ? { ...config, _loadSnapshot: readFileSync(snapshotFile) } : config,
);
py.setStdout({ write: capture, isatty: false });
py.setStderr({ write: capture, isatty: false });

const HARDEN = `
import builtins, os, socket, subprocess, sys, traceback

def _denied(what):
    def deny(*args, **kwargs):
        raise PermissionError(f"{what} is not available in the stepwise sandbox")
    return deny

for _name in ("js", "pyodide_js"):
    sys.modules.pop(_name, None)
for _name in ("system", "popen", "fork", "forkpty", "kill", "killpg", "execv", "execve", "execl",
              "execle", "execlp", "execlpe", "execvp", "execvpe", "spawnl", "spawnle", "spawnv",
              "spawnve", "posix_spawn", "posix_spawnp"):
    if hasattr(os, _name):
        setattr(os, _name, _denied("os." + _name))
subprocess.Popen = _denied("subprocess")
subprocess.run = subprocess.call = subprocess.check_call = subprocess.check_output = _denied("subprocess")
socket.socket = _denied("socket")
socket.create_connection = socket.socketpair = socket.fromfd = _denied("socket")
# Import hooks cannot be airtight (code can remove them), which is why the Node and OS layers exist;
# this one makes the easy path to calling WebAssembly exports directly (ctypes) fail.
class _StepwiseBlockedImports:
    blocked = ("ctypes", "_ctypes")

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.blocked:
            raise ImportError(f"{name} is not available in the stepwise sandbox")
        return None

for _name in [n for n in sys.modules if n.split(".")[0] in _StepwiseBlockedImports.blocked]:
    del sys.modules[_name]
sys.meta_path.insert(0, _StepwiseBlockedImports())

# Modules loaded while pyodide started hold JavaScript objects (the event loop's scheduler, say);
# each one is a way back into this process's JavaScript, so each is replaced by a stub.
from pyodide.ffi import JsProxy
for _module in list(sys.modules.values()):
    _dict = getattr(_module, "__dict__", None)
    if isinstance(_dict, dict):
        for _key, _value in list(_dict.items()):
            if isinstance(_value, JsProxy):
                _dict[_key] = _denied(f"{getattr(_module, '__name__', '?')}.{_key} (a JavaScript object)")
del JsProxy

os.environ.clear()
os.environ.update({"HOME": "/home/pyodide", "LANG": "C.UTF-8"})

class _Runner:
    """Runs agent code in one namespace kept across calls (the episode's state)."""

    def __init__(self):
        self.namespace = {"__name__": "__main__", "__builtins__": builtins}

    def run(self, code):
        try:
            compiled = compile(code, "<input>", "exec")
        except (SyntaxError, ValueError, OverflowError, MemoryError, RecursionError):
            return "".join(traceback.format_exception_only(*sys.exc_info()[:2]))
        try:
            exec(compiled, self.namespace)
        except SystemExit as e:
            return None if e.code in (None, 0) else f"SystemExit: {e.code}"
        except BaseException:
            kind, value, tb = sys.exc_info()
            return "".join(traceback.format_exception(kind, value, tb.tb_next))
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
        return None

_stepwise_runner = _Runner()
`;
py.runPython(HARDEN);
for (const name of ['js', 'pyodide_js']) {
  try {
    py.unregisterJsModule(name);
  } catch {
    // Not registered in this pyodide version: nothing to remove.
  }
}
const runner = py.globals.get('_stepwise_runner');
py.runPython('del _stepwise_runner, _Runner, _denied, _name, _module, _dict, _key, _value');

// Node-level layer: whatever reaches these from inside WebAssembly finds them closed.
function closed(what) {
  return () => {
    throw new Error(`${what} is not available in the stepwise sandbox`);
  };
}
const childProcess = require('node:child_process');
for (const fn of ['spawn', 'spawnSync', 'exec', 'execSync', 'execFile', 'execFileSync', 'fork']) {
  childProcess[fn] = closed(`child_process.${fn}`);
}
const net = require('node:net');
net.connect = net.createConnection = net.createServer = closed('net');
net.Socket.prototype.connect = closed('net.Socket.connect');
const tls = require('node:tls');
tls.connect = closed('tls');
for (const name of ['node:http', 'node:https', 'node:http2', 'node:dgram']) {
  const mod = require(name);
  for (const key of Object.keys(mod)) if (typeof mod[key] === 'function') mod[key] = closed(name);
}
try {
  const ws = require(require.resolve('ws', { paths: [pyodidePath] }));
  ws.WebSocket = closed('WebSocket');
} catch {
  // ws not loadable here: then pyodide cannot use it either.
}
syncBuiltinESMExports();
globalThis.fetch = closed('fetch');
globalThis.WebSocket = closed('WebSocket');
process.binding = closed('process.binding');
process.dlopen = closed('process.dlopen');
process.env = {};

const decoder = new TextDecoder();
process.on('message', (msg) => {
  // The host pings before each call: no answer means code from an earlier call is still running.
  if (msg.type === 'ping') return process.send({ pong: msg.id });
  if (msg.type !== 'run') return;
  chunks = [];
  bytes = 0;
  maxBytes = msg.outputChars * 4 + 4;
  let error = null;
  let fatal = false;
  try {
    error = runner.run(msg.code) ?? null;
  } catch (err) {
    // A JavaScript-level failure (the WebAssembly stack overflowed, say): pyodide may be broken.
    error = `the Python interpreter failed: ${String(err?.message ?? err).slice(0, 300)}`;
    fatal = true;
  }
  const output = decoder.decode(Buffer.concat(chunks));
  process.send({ id: msg.id, output, error, fatal });
});
// The host is gone (without bwrap nothing else would end this process): stop.
process.on('disconnect', () => process.exit(0));
process.send({ ready: true, loadMs: performance.now() - started });
