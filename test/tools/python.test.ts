import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PythonPool } from '../../src/tools/python/pool.ts';
import { detectProtection } from '../../src/tools/python/sandbox.ts';
import { PythonTool } from '../../src/tools/python/tool.ts';
import { inCI, installed } from '../ci.ts';

const CLI = join(import.meta.dirname, '../../bin/stepwise.js');
function cli(args: string[], env: NodeJS.ProcessEnv): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile('node', [CLI, ...args], { env }, (err, stdout, stderr) =>
      err ? reject(err) : resolve({ stdout, stderr }),
    );
  });
}

// One pool for the whole file: interpreters take seconds to start, so they are shared.
const SECRET = `stepwise-secret-${process.pid}-${Date.now()}`;
process.env.STEPWISE_TEST_SECRET = SECRET;
const LIMIT_MS = 2_000;
let pool: PythonPool;
let dir: string;
let secretFile: string;
let server: Server;
let port = 0;
const connections: string[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'stepwise-py-'));
  secretFile = join(dir, 'secret.txt');
  writeFileSync(secretFile, SECRET);
  server = createServer((socket) => {
    connections.push('connected');
    socket.on('data', (d) => connections.push(d.toString()));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as { port: number }).port;
  pool = new PythonPool({ size: 2, announce: false });
  await pool.warm();
});

afterAll(async () => {
  await pool.close();
  server.close();
  rmSync(dir, { recursive: true, force: true });
});

const tool = (timeMs = LIMIT_MS) => new PythonTool({ pool, limits: { timeMs, outputChars: 2_000 } });

describe('python tool', () => {
  it('runs code, prints, keeps state within a trajectory and resets between them', async () => {
    const t = tool();
    const a = await t.execute({ code: 'x = 6 * 7\nprint("x is", x)\nx + 1' });
    expect(a).toMatchObject({ ok: true, output: 'x is 42\n', truncated: false });
    expect(a.durationMs).toBeGreaterThan(0);
    const b = await t.execute({ code: 'import sys\nprint(x, file=sys.stderr)' });
    expect(b).toMatchObject({ ok: true, output: '42\n' });
    await t.reset();
    const c = await t.execute({ code: 'print(x)' });
    expect(c.ok).toBe(false);
    expect(c.errorKind).toBe('tool_error');
    expect(c.error).toBe("NameError: name 'x' is not defined");
    expect(c.output).toContain('Traceback');
    await t.close();
  });

  it('reports exceptions with what was printed before them, and bad arguments', async () => {
    const t = tool();
    const r = await t.execute({ code: 'print("before")\n1/0' });
    expect(r.ok).toBe(false);
    expect(r.error).toBe('ZeroDivisionError: division by zero');
    expect(r.output.startsWith('before\n')).toBe(true);
    const bad = await t.execute({ code: 42 } as never);
    expect(bad).toMatchObject({ ok: false, errorKind: 'bad_arguments' });
    const syntax = await t.execute({ code: 'def (' });
    expect(syntax.error).toMatch(/^SyntaxError/);
    await t.close();
  });

  it('a reusing pool hands back the interpreter that ran code (state kept); the default pool never does', async () => {
    const reusing = new PythonPool({ size: 1, announce: false, reuse: true });
    try {
      const t = new PythonTool({ pool: reusing, limits: { timeMs: LIMIT_MS, outputChars: 2_000 } });
      expect(await t.execute({ code: 'y = 5\nprint(y)' })).toMatchObject({ ok: true, output: '5\n' });
      await t.reset();
      expect(await t.execute({ code: 'print(y)' })).toMatchObject({ ok: true, output: '5\n' });
      await t.close();
    } finally {
      await reusing.close();
    }
    const t = tool();
    await t.execute({ code: 'z = 5' });
    await t.reset();
    expect((await t.execute({ code: 'print(z)' })).error).toBe("NameError: name 'z' is not defined");
    await t.close();
  });

  it('hands out at most maxActive interpreters: the next episode waits for one given back or killed', async () => {
    const bounded = new PythonPool({ size: 0, announce: false, maxActive: 2 });
    const settled = <T>(p: Promise<T>) => {
      const state = { done: false };
      void p.then(() => {
        state.done = true;
      });
      return state;
    };
    try {
      // Three episodes each run code: the third one's call waits for an interpreter.
      const tools = [0, 1, 2].map(
        () => new PythonTool({ pool: bounded, limits: { timeMs: LIMIT_MS, outputChars: 2_000 } }),
      );
      expect(await tools[0]!.execute({ code: 'print(1)' })).toMatchObject({ ok: true, output: '1\n' });
      expect(await tools[1]!.execute({ code: 'print(2)' })).toMatchObject({ ok: true, output: '2\n' });
      expect(bounded.active).toBe(2);
      const third = tools[2]!.execute({ code: 'print(3)' });
      const thirdState = settled(third);
      await new Promise((r) => setTimeout(r, 500));
      expect(thirdState.done).toBe(false);
      // An episode ends: its interpreter goes, and the waiting call gets a new one.
      await tools[0]!.reset();
      expect(await third).toMatchObject({ ok: true, output: '3\n' });
      expect(bounded.active).toBe(2);
      // A call that overruns its limit kills its interpreter without giving it back: that frees a slot too.
      const fourth = new PythonTool({ pool: bounded, limits: { timeMs: LIMIT_MS, outputChars: 2_000 } });
      const waiting = fourth.execute({ code: 'print(4)' });
      expect((await tools[1]!.execute({ code: 'while True: pass' })).ok).toBe(false);
      expect(await waiting).toMatchObject({ ok: true, output: '4\n' });
      expect(bounded.active).toBe(2);
      for (const t of [...tools, fourth]) await t.close();
      expect(bounded.active).toBe(0);
    } finally {
      await bounded.close();
    }
  }, 60_000);

  it('says which protection is active', () => {
    const p = detectProtection();
    expect(['bubblewrap', 'in-process']).toContain(p.level);
    expect(p.summary).toMatch(/python sandbox/);
  });

  // CI installs bubblewrap: there a probe that fails (and falls back to the weaker mode) is a bug.
  const bwrapExpected = inCI && installed('bwrap') && process.env.STEPWISE_SANDBOX !== 'in-process';
  it.runIf(bwrapExpected)('uses bubblewrap when CI=true and bwrap is installed', () => {
    const p = detectProtection();
    expect(p.level, `fell back to in-process: ${p.reason}`).toBe('bubblewrap');
    expect(p.summary).toMatch(/bubblewrap/);
  });
});

/** Each hostile snippet: what must hold of its result besides "contained". */
interface Hostile {
  name: string;
  code: () => string;
  /**
   * The case's own time limit, for a case that checks something other than the limit and must not
   * depend on how fast a busy machine runs it (default LIMIT_MS, on the corpus's shared tool).
   */
  timeMs?: number;
  check?: (r: {
    ok: boolean;
    output: string;
    error?: string;
    errorKind?: string;
    truncated: boolean;
  }) => void;
}

const noSecret = (r: { output: string; error?: string }) => {
  expect(r.output).not.toContain(SECRET);
  expect(r.error ?? '').not.toContain(SECRET);
};

const HOSTILE: Hostile[] = [
  {
    name: 'reads /etc/hostname',
    code: () => 'print(open("/etc/hostname").read())',
    check: (r) => expect(r.ok).toBe(false),
  },
  {
    name: 'reads a host secret file',
    code: () => `print(open(${JSON.stringify(secretFile)}).read())`,
    check: (r) => expect(r.ok).toBe(false),
  },
  {
    name: 'lists the host root',
    code: () => 'import os\nprint(os.listdir("/"))',
    check: (r) => expect(r.output).not.toMatch(/'(etc|root|work|usr|bin)'/),
  },
  { name: 'reads environment variables', code: () => 'import os\nprint(dict(os.environ))' },
  { name: 'os.system writes a host file', code: () => `import os\nos.system("touch ${dir}/pwned-1")` },
  {
    name: 'posix.system bypass writes a host file',
    code: () => `import posix\nposix.system(b"touch ${dir}/pwned-2")`,
  },
  { name: 'subprocess', code: () => `import subprocess\nsubprocess.run(["touch", "${dir}/pwned-3"])` },
  {
    name: 'socket connect',
    code: () => `import socket\ns = socket.create_connection(("127.0.0.1", ${port}))\ns.sendall(b"leak")`,
  },
  {
    name: 'raw _socket connect bypass',
    code: () =>
      `import _socket\ns = _socket.socket()\ns.connect(("127.0.0.1", ${port}))\ns.send(b"leak")\nprint(s.recv(4))`,
  },
  { name: 'import js', code: () => 'import js\nprint(js.process.env)' },
  { name: 'import pyodide_js', code: () => 'import pyodide_js\nprint(pyodide_js.FS.readdir("/"))' },
  {
    name: 'pyodide.code.run_js',
    code: () => 'from pyodide.code import run_js\nprint(run_js("process.env"))',
  },
  {
    name: 'Function constructor through to_js',
    code: () =>
      'from pyodide.ffi import to_js\nprint(to_js([1]).constructor.constructor("return process.env")())',
  },
  {
    name: 'scheduler JsProxy left in a module',
    code: () => 'from pyodide.webloop import scheduleCallback\nprint(scheduleCallback.constructor)',
  },
  {
    name: 'ctypes into WebAssembly exports',
    code: () => 'import ctypes\nctypes.CDLL(None).emscripten_run_script(b"1")',
  },
  {
    name: 'ctypes after removing the import block',
    code: () =>
      'import sys\nsys.meta_path[:] = [f for f in sys.meta_path if "Stepwise" not in type(f).__name__]\n' +
      `import ctypes\nlib = ctypes.CDLL(None)\nlib.emscripten_run_script(b"require('fs').writeFileSync('${dir}/pwned-4', 'x')")\n` +
      `lib.system(b"touch ${dir}/pwned-5")`,
  },
  {
    name: 'infinite loop',
    code: () => 'print("looping")\nwhile True:\n    pass',
    check: (r) => {
      expect(r.errorKind).toBe('timeout');
      expect(r.output).toBe('looping\n');
    },
  },
  {
    name: 'memory bomb (one allocation)',
    code: () => 'x = [0] * (10**9)',
    check: (r) => expect(r.errorKind).toBe('memory'),
  },
  {
    name: 'memory bomb (growing)',
    code: () => 'l = []\nwhile True:\n    l.append(bytearray(10**7))',
    check: (r) => expect(['memory', 'timeout']).toContain(r.errorKind),
  },
  {
    name: 'deep recursion',
    code: () => 'def f(n):\n    return f(n + 1)\nf(0)',
    check: (r) => expect(r.error).toMatch(/RecursionError/),
  },
  {
    name: 'deep recursion past the raised limit',
    code: () => 'import sys\nsys.setrecursionlimit(10**7)\ndef f(n):\n    return f(n + 1)\nf(0)',
  },
  {
    // 1.6 MB of output: about a second to print here, so it gets a limit it cannot reach.
    name: 'huge output',
    code: () => 'for i in range(20000):\n    print("spam" * 20)',
    timeMs: 60_000,
    check: (r) => {
      expect(r.error).toBeUndefined();
      expect(r.ok).toBe(true);
      expect(r.truncated).toBe(true);
      expect(r.output.length).toBeLessThanOrEqual(2_000);
    },
  },
  {
    name: 'outlives its call with asyncio',
    code: () =>
      'import asyncio\nasync def spin():\n    while True:\n        pass\nasyncio.ensure_future(spin())',
  },
  {
    name: 'outlives its call with a thread',
    code: () => 'import threading\nthreading.Thread(target=lambda: [0 for _ in iter(int, 1)]).start()',
  },
];

describe('python hostile corpus: contained, on time, and the next call works', () => {
  // One tool for the corpus: a snippet that kills its interpreter must leave the tool usable.
  let t: PythonTool;
  beforeAll(() => {
    t = tool();
  });
  afterAll(async () => {
    await t.close();
  });
  for (const h of HOSTILE) {
    it(h.name, async () => {
      const own = h.timeMs === undefined ? undefined : tool(h.timeMs);
      const runner = own ?? t;
      try {
        await runner.warm();
        const r = await runner.execute({ code: h.code() });
        // A snippet that never ends by itself returns only through the hard stop; the overshoot
        // is measured by `npm run bench -- --suite tools`, not by a timed test.
        expect(r.durationMs).toBeLessThan((h.timeMs ?? LIMIT_MS) + 30_000);
        if (!r.ok) {
          expect(r.errorKind).toBeDefined();
          expect(r.error?.length).toBeGreaterThan(0);
        }
        noSecret(r);
        h.check?.(r);
        const next = await runner.execute({ code: 'print(sum(range(10)))' });
        expect(next.output).toMatch(/45\n$/);
        expect(next.ok).toBe(true);
        for (let i = 1; i <= 5; i++) expect(existsSync(join(dir, `pwned-${i}`))).toBe(false);
        expect(readFileSync(secretFile, 'utf8')).toBe(SECRET);
        expect(connections).toEqual([]);
      } finally {
        await own?.close();
      }
    });
  }
});

describe('python without bubblewrap (STEPWISE_SANDBOX=in-process)', () => {
  it('says so at start-up, and the in-process layers still hold', async () => {
    const env = { ...process.env, STEPWISE_SANDBOX: 'in-process' };
    const p = JSON.parse((await cli(['tool', '--protection'], env)).stdout);
    expect(p.level).toBe('in-process');
    const code =
      `import os, posix\ntry:\n    os.system("touch ${dir}/pwned-6")\nexcept Exception as e:\n    print(type(e).__name__)\n` +
      `print(sorted(os.environ))\nposix.system(b"touch ${dir}/pwned-7")`;
    const { stdout, stderr } = await cli(['tool', 'python', '--input', JSON.stringify({ code })], env);
    expect(stderr).toMatch(/IN-PROCESS HARDENING ONLY/);
    const r = JSON.parse(stdout);
    expect(r.ok).toBe(false);
    expect(r.output).toContain("PermissionError\n['HOME', 'LANG']\n");
    expect(r.output).not.toContain(SECRET);
    expect(existsSync(join(dir, 'pwned-6'))).toBe(false);
    expect(existsSync(join(dir, 'pwned-7'))).toBe(false);
  });
});
