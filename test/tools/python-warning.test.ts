/**
 * The weak-sandbox warning is given once, and only when Python runs without bubblewrap: never by a
 * command that runs no Python (init-policy only reads the python tool's definition).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';

const root = path.resolve(import.meta.dirname, '../..');
const dir = mkdtempSync(path.join(os.tmpdir(), 'stepwise-warning-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function cli(args: string[], sandbox?: string) {
  const env = { ...process.env };
  if (sandbox) env.STEPWISE_SANDBOX = sandbox;
  else delete env.STEPWISE_SANDBOX;
  const r = spawnSync(process.execPath, ['bin/stepwise.js', ...args], { cwd: root, env, encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const warnings = (stderr: string) => stderr.split('\n').filter((l) => l.includes('python sandbox')).length;

describe('the python sandbox warning', () => {
  it('is not given by a command that runs no Python, even without bubblewrap', () => {
    const r = cli(['init-policy', '--out', path.join(dir, 'policy')], 'in-process');
    expect(r.status).toBe(0);
    expect(warnings(r.stderr)).toBe(0);
  });

  it('is given once when Python runs with in-process hardening only', () => {
    const r = cli(['tool', 'python', '--input', '{"code": "print(6 * 7)"}'], 'in-process');
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, output: '42\n' });
    expect(warnings(r.stderr)).toBe(1);
    expect(r.stderr).toMatch(/IN-PROCESS HARDENING ONLY/);
  });

  const bubblewrap = JSON.parse(cli(['tool', '--protection']).stdout).level === 'bubblewrap';
  it.skipIf(!bubblewrap)('is not given when bubblewrap contains Python', () => {
    const r = cli(['tool', 'python', '--input', '{"code": "print(6 * 7)"}']);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, output: '42\n' });
    expect(warnings(r.stderr)).toBe(0);
  });
});

describe('in one process', () => {
  it('is given once however many pools hand out interpreters', async () => {
    process.env.STEPWISE_SANDBOX = 'in-process';
    const { PythonPool } = await import('../../src/tools/python/pool.ts');
    const errors = vi.spyOn(console, 'error').mockImplementation(() => {});
    try {
      const pools = [new PythonPool({ size: 0 }), new PythonPool({ size: 0 })];
      for (const pool of pools) {
        pool.release(await pool.acquire());
        await pool.close();
      }
      const lines = errors.mock.calls.map((c) => String(c[0])).filter((l) => l.includes('python sandbox'));
      expect(lines).toHaveLength(1);
    } finally {
      errors.mockRestore();
    }
  });
});
