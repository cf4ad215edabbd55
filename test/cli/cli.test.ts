/**
 * The command's own papercuts: --version, unknown options refused, `bench`
 * alone lists its suites.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../..');
const benchmarks = join(root, 'docs', 'BENCHMARKS.md');

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, ['bin/stepwise.js', ...args], { cwd: root, encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('stepwise', () => {
  it('--version prints the package version', () => {
    const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
    for (const flag of ['--version', '-V'])
      expect(cli(flag)).toMatchObject({ status: 0, stdout: `${version}\n` });
  });

  it('refuses unknown options, suggesting the near one', () => {
    const r = cli('bench', '--suit', 'policy');
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/unknown option '--suit'[\s\S]*Did you mean --suite\?/);
    expect(cli('train', '--iteration', '2').stderr).toMatch(/unknown option '--iteration'/);
  });

  it('bench without --suite lists the suites and runs and rewrites nothing', () => {
    const before = statSync(benchmarks).mtimeMs;
    const r = cli('bench');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^bench suites/);
    for (const name of ['tokenizer', 'policy', 'credit', 'learning'])
      expect(r.stdout).toMatch(new RegExp(`^  ${name} `, 'm'));
    expect(r.stdout).toMatch(/^ {2}learning .*options --only, --seeds, --scratch, --report-only$/m);
    expect(statSync(benchmarks).mtimeMs).toBe(before);
  });

  it("bench refuses a suite's option given to another suite, and unknown suites", () => {
    expect(cli('bench', '--suite', 'credit', '--seeds', '2').stderr).toMatch(
      /--seeds belongs to the learning suite; use it with --suite learning/,
    );
    expect(cli('bench', '--suite', 'credit', '--sft-steps', '2').stderr).toMatch(
      /--sft-steps belongs to the trainer suite; use it with --suite trainer/,
    );
    expect(cli('bench', '--suite', 'nope').stderr).toMatch(
      /unknown bench suite 'nope'; expected quick or one of: tokenizer/,
    );
  });
});
