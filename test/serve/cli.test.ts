// `stepwise init-policy` then `stepwise serve` as a user runs them, queried with the openai client.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterAll, describe, expect, it } from 'vitest';
import { initPolicy } from '../../src/cli/commands/init-policy.ts';
import { Policy } from '../../src/policy/policy.ts';
import { Tokenizer } from '../../src/policy/tokenizer/tokenizer.ts';
import { domainCorpus } from '../../src/training/corpus.ts';

const dir = mkdtempSync(join(tmpdir(), 'stepwise-serve-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('init-policy and serve', () => {
  it('writes a checkpoint whose tokenizer fits the envs, then serves it over HTTP', async () => {
    const out = join(dir, 'tiny-ckpt');
    const created = await initPolicy({ preset: 'tiny', out, tasks: 40 });
    await created.dispose();
    const policy = await Policy.load(out);
    // Domain text compresses well (a byte tokenizer would give one token per character).
    const text = 'You arrive at countertop 1. On the countertop 1, you see a apple 1, and a knife 2.';
    expect(policy.tokenizer.encode(text).length).toBeLessThan(text.length / 3);
    const corpus = await domainCorpus(5);
    expect(corpus.some((t) => t.includes('<tool_call>'))).toBe(true);
    await policy.dispose();

    const child = spawn(
      process.execPath,
      ['bin/stepwise.js', 'serve', '--checkpoint', out, '--port', '0', '--prefix-cache-mb', '8'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let seen = '';
        child.stdout.on('data', (d: Buffer) => {
          seen += d.toString();
          const m = seen.match(/at (http:\/\/\S+\/v1)/);
          if (m) resolve(m[1]!);
        });
        child.stderr.on('data', (d: Buffer) => {
          seen += d.toString();
        });
        child.once('exit', (code) => reject(new Error(`serve exited with ${code}: ${seen}`)));
      });
      const client = new OpenAI({ baseURL: url, apiKey: 'unused', maxRetries: 0 });
      const models = await client.models.list();
      expect(models.data[0]!.id).toBe('tiny-ckpt');
      const r = await client.chat.completions.create({
        model: 'tiny-ckpt',
        messages: [{ role: 'user', content: 'go to fridge 1' }],
        max_tokens: 5,
      });
      expect(r.choices[0]!.message.role).toBe('assistant');
      expect(r.usage!.completion_tokens).toBeGreaterThan(0);
    } finally {
      child.kill('SIGTERM');
    }
  }, 60_000);

  it('init-policy --superwords: the checkpoint keeps its superword merges, which shorten domain text', async () => {
    const plain = join(dir, 'tiny-plain');
    const merged = join(dir, 'tiny-superwords');
    for (const p of [
      await initPolicy({ preset: 'tiny', out: plain, tasks: 40 }),
      await initPolicy({ preset: 'tiny', out: merged, tasks: 40, superwords: 64 }),
    ])
      await p.dispose();
    const [a, b] = [await Policy.load(plain), await Policy.load(merged)];
    const merges = (p: Policy) => (p.tokenizer instanceof Tokenizer ? p.tokenizer.superwords : undefined);
    expect(merges(a)).toBe(0);
    expect(merges(b)).toBe(64);
    const text = "Your admissible actions now are: ['go to countertop 1', 'go to cabinet 2']";
    expect(b.tokenizer.decode(b.tokenizer.encode(text))).toBe(text);
    expect(b.tokenizer.encode(text).length).toBeLessThan(a.tokenizer.encode(text).length);
    await a.dispose();
    await b.dispose();
  }, 120_000);

  it('refuses a bad --superwords or --prefix-cache-mb, naming it', async () => {
    const init = await failing(['init-policy', '--out', join(dir, 'never'), '--superwords', '-3']);
    expect(init.code).not.toBe(0);
    expect(init.err).toMatch(/--superwords must be a whole number \(0: none\), got "-3"/);
    const serve = await failing(['serve', '--checkpoint', dir, '--prefix-cache-mb', 'lots']);
    expect(serve.code).not.toBe(0);
    expect(serve.err).toMatch(/--prefix-cache-mb must be a number of MiB >= 0, got "lots"/);
  }, 60_000);
});

/** Run the CLI with `args` to its exit: its exit code and what it wrote to stderr. */
async function failing(args: string[]): Promise<{ code: number | null; err: string }> {
  const child = spawn(process.execPath, ['bin/stepwise.js', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const code = await new Promise<number | null>((r) => child.once('exit', r));
  return { code, err };
}
