import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JavaScriptTool } from '../../src/tools/javascript/tool.ts';

const SECRET = `stepwise-js-secret-${process.pid}`;
process.env.STEPWISE_TEST_SECRET = SECRET;
(globalThis as Record<string, unknown>).stepwiseHostObject = { secret: SECRET };
const LIMIT_MS = 1_000;

describe('javascript tool', () => {
  let t: JavaScriptTool;
  beforeAll(async () => {
    t = new JavaScriptTool({ limits: { timeMs: LIMIT_MS, outputChars: 1_000 } });
    await t.warm();
  });
  afterAll(async () => {
    await t.close();
  });

  it('prints, keeps state across calls and resets between trajectories', async () => {
    const a = await t.execute({
      code: 'var total = [1, 2, 3].reduce((a, b) => a + b, 0); console.log("sum", total, {k: [total]}); total',
    });
    expect(a).toMatchObject({ ok: true, output: 'sum 6 {"k":[6]}\n', truncated: false });
    const b = await t.execute({ code: 'console.log(total * 7)' });
    expect(b.output).toBe('42\n');
    await t.reset();
    const c = await t.execute({ code: 'console.log(typeof total)' });
    expect(c.output).toBe('undefined\n');
  });

  it('runs promise jobs before answering', async () => {
    const r = await t.execute({ code: '(async () => { await null; console.log("after await") })()' });
    expect(r.output).toBe('after await\n');
  });

  it('returns thrown errors with the printed output', async () => {
    const r = await t.execute({ code: 'console.log("before"); throw new TypeError("boom")' });
    expect(r).toMatchObject({ ok: false, errorKind: 'tool_error', error: 'TypeError: boom' });
    expect(r.output.startsWith('before\n')).toBe(true);
    const bad = await t.execute({ source: 'x' } as never);
    expect(bad).toMatchObject({ ok: false, errorKind: 'bad_arguments' });
  });
});

interface Hostile {
  name: string;
  code: string;
  check?: (r: {
    ok: boolean;
    output: string;
    error?: string;
    errorKind?: string;
    truncated: boolean;
  }) => void;
}

const HOSTILE: Hostile[] = [
  {
    name: 'process and require',
    code: 'console.log(typeof process, typeof require, typeof module, typeof Deno)',
    check: (r) => expect(r.output).toBe('undefined undefined undefined undefined\n'),
  },
  {
    name: 'host globals',
    code: 'console.log(typeof stepwiseHostObject, Object.getOwnPropertyNames(globalThis).filter(k => /process|require|fetch|setTimeout|WebAssembly|HostObject/.test(k)).join())',
    check: (r) => expect(r.output).toBe('undefined \n'),
  },
  {
    name: 'Function constructor chain',
    code: 'console.log(this.constructor.constructor("return typeof process + typeof require")())',
    check: (r) => expect(r.output).toBe('undefinedundefined\n'),
  },
  {
    name: 'prototype walk from console.log',
    code: 'const F = console.log.constructor; console.log(F("return Object.keys(globalThis).join()")())',
    check: (r) => expect(r.output).not.toMatch(/process|require/),
  },
  {
    name: 'dynamic import of fs',
    code: 'import("fs").then(m => console.log(m.readFileSync("/etc/hostname", "utf8")), e => console.log("import failed", String(e)))',
    check: (r) => expect(r.output).not.toMatch(/^[a-z0-9-]+\n$/),
  },
  {
    name: 'network',
    code: 'console.log(typeof fetch, typeof XMLHttpRequest, typeof WebSocket)',
    check: (r) => expect(r.output).toBe('undefined undefined undefined\n'),
  },
  {
    name: 'environment',
    code: 'try { console.log(process.env.STEPWISE_TEST_SECRET) } catch (e) { console.log(String(e)) }',
    check: (r) => expect(r.output).toMatch(/ReferenceError/),
  },
  { name: 'infinite loop', code: 'while (true) {}', check: (r) => expect(r.errorKind).toBe('timeout') },
  {
    name: 'infinite loop in a promise job',
    code: 'Promise.resolve().then(() => { for (;;) {} })',
    check: (r) => expect(r.errorKind).toBe('timeout'),
  },
  {
    name: 'endless promise chain (outliving the call)',
    code: 'function again() { Promise.resolve().then(again) } again()',
    check: (r) => expect(r.errorKind).toBe('timeout'),
  },
  {
    name: 'memory bomb',
    code: 'const a = []; for (;;) a.push(new Array(1e6).fill(1.5))',
    check: (r) => expect(['memory', 'timeout']).toContain(r.errorKind),
  },
  {
    name: 'printed output survives a hard stop',
    code: 'console.log("before"); new Array(2e7).fill(0).map(String)',
    check: (r) => {
      expect(r.ok).toBe(false);
      expect(r.output.startsWith('before\n')).toBe(true);
    },
  },
  {
    name: 'one huge native allocation',
    code: 'new Array(1e8).fill(1)',
    check: (r) => expect(['memory', 'timeout']).toContain(r.errorKind),
  },
  { name: 'string doubling', code: 'let s = "x"; for (;;) s += s', check: (r) => expect(r.ok).toBe(false) },
  {
    name: 'deep recursion',
    code: 'function f(n) { return f(n + 1) + 1 } f(0)',
    check: (r) => expect(r.error).toMatch(/stack overflow|RangeError/i),
  },
  {
    name: 'huge output',
    code: 'for (let i = 0; i < 1e5; i++) console.log("spam".repeat(20))',
    check: (r) => {
      expect(r.truncated).toBe(true);
      expect(r.output.length).toBeLessThanOrEqual(1_000);
    },
  },
  {
    name: 'print loop forever',
    code: 'for (;;) console.log("x".repeat(1000))',
    check: (r) => {
      expect(r.errorKind).toBe('timeout');
      expect(r.output.startsWith('x'.repeat(500))).toBe(true);
      expect(r.output.length).toBeLessThanOrEqual(1_000);
    },
  },
];

describe('javascript hostile corpus: contained, on time, and the next call works', () => {
  let t: JavaScriptTool;
  beforeAll(async () => {
    t = new JavaScriptTool({ limits: { timeMs: LIMIT_MS, outputChars: 1_000 } });
    await t.warm();
  });
  afterAll(async () => {
    await t.close();
  });
  for (const h of HOSTILE) {
    it(h.name, async () => {
      await t.warm();
      const r = await t.execute({ code: h.code });
      // A snippet that never ends by itself returns only through the hard stop (its check wants
      // errorKind 'timeout'); how close to the limit it lands is measured by `npm run bench --
      // --suite tools` (timeout overshoot), not here, where load can delay the stop by seconds.
      expect(r.durationMs).toBeLessThan(LIMIT_MS + 30_000);
      if (!r.ok) expect(r.error?.length).toBeGreaterThan(0);
      expect(r.output).not.toContain(SECRET);
      h.check?.(r);
      const next = await t.execute({ code: 'console.log([1, 2, 3].map((x) => x * 2).join())' });
      expect(next).toMatchObject({ ok: true, output: '2,4,6\n' });
    });
  }
});
