// The Policy object end to end: seeded generation, scoring, checkpoints, ONNX export, devices.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { Policy } from '../../src/policy/policy.ts';
import { resolveDevice } from '../../src/policy/runtime/session.ts';
import { Tokenizer } from '../../src/policy/tokenizer/tokenizer.ts';

const texts = ['the cat sat on the mat', 'the dog ate the bone', 'a cat and a dog'];
const tokenizer = Tokenizer.train(texts, { vocabSize: 300 });
const model = { width: 32, layers: 2, heads: 4, contextLength: 48 };
const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const d = await mkdtemp(path.join(os.tmpdir(), 'stepwise-policy-'));
  dirs.push(d);
  return d;
}
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('Policy', () => {
  it('takes its vocabulary from the tokenizer', () => {
    const p = Policy.create({ model, tokenizer });
    expect(p.config.vocabSize).toBe(tokenizer.vocabSize);
  });

  it('generates reproducibly for a seed, and the returned log-probs are the scoring graph’s', async () => {
    const p = Policy.create({ model, tokenizer, seed: 1 });
    const prompts = ['the cat', [{ role: 'user' as const, content: 'a dog' }], 'the'];
    const opts = { maxNewTokens: 8, seed: 7, temperature: 1, stopTokens: [] };
    const a = await p.generate(prompts, opts);
    const b = await p.generate(prompts, opts);
    expect(b).toEqual(a);
    for (const g of a) {
      expect(g.tokens).toHaveLength(8);
      expect(g.finishReason).toBe('length');
    }
    const c = await p.generate(prompts, { ...opts, seed: 8 });
    expect(c.map((g) => g.tokens)).not.toEqual(a.map((g) => g.tokens));
    // A row's tokens do not depend on the other rows of the batch (row i samples with seed + i).
    const alone = await p.generate([prompts[0]!], opts);
    expect(alone[0]!.tokens).toEqual(a[0]!.tokens);
    // Teacher-forced scoring of the sampled continuation gives the sampler's log-probs.
    const scored = await p.scoreBatch(prompts.map((prompt, i) => ({ prompt, continuation: a[i]!.tokens })));
    for (const [i, row] of scored.entries()) {
      for (const [t, lp] of row.entries()) expect(lp).toBeCloseTo(a[i]!.logprobs[t]!, 4);
    }
  });

  it('stops at the context length', async () => {
    const p = Policy.create({ model, tokenizer, seed: 6 });
    const prompt = Array.from({ length: model.contextLength - 2 }, (_, i) => (i * 7) % 256);
    const [g] = await p.generate([prompt, [1, 2]], { maxNewTokens: 10, stopTokens: [] });
    expect(g!.tokens).toHaveLength(2);
    expect(g!.finishReason).toBe('length');
    await expect(p.generate([[...prompt, 1, 2, 3]])).rejects.toThrow(/more than the context length 48/);
  });

  it('stops at a stop token and at a stop string', async () => {
    const p = Policy.create({ model, tokenizer, seed: 2 });
    const free = (
      await p.generate(['the'], { maxNewTokens: 12, seed: 3, temperature: 0, stopTokens: [] })
    )[0]!;
    // Greedy decoding is deterministic: use its third token as a stop token.
    const stopAt = free.tokens[2]!;
    const first = free.tokens.indexOf(stopAt);
    const g = (
      await p.generate(['the'], { maxNewTokens: 12, seed: 3, temperature: 0, stopTokens: [stopAt] })
    )[0]!;
    expect(g.finishReason).toBe('stop');
    expect(g.tokens).toEqual(free.tokens.slice(0, first + 1));
    // A stop string: the text is cut before it.
    const text = free.text!;
    const stop = text.slice(3, 5);
    if (stop.length === 2) {
      const s = (
        await p.generate(['the'], { maxNewTokens: 12, temperature: 0, stop: [stop], stopTokens: [] })
      )[0]!;
      expect(s.finishReason).toBe('stop');
      expect(s.text).toBe(text.slice(0, text.indexOf(stop)));
    }
  });

  it('says so when a non-finite loss skips the update', async () => {
    const p = Policy.create({ model, tokenizer, seed: 5 });
    const tokens = tokenizer.encode('the cat sat');
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const m = await p.update([
      {
        tokens,
        mask: tokens.map((_, i) => (i ? 1 : 0)),
        advantages: tokens.map(() => Number.POSITIVE_INFINITY),
        oldLogprobs: tokens.map(() => -1),
        refLogprobs: tokens.map(() => -1),
      },
    ]);
    expect(m.skipped).toBe(true);
    expect(String(warn.mock.calls[0]?.[0])).toMatch(/update skipped: the loss .* is not finite/);
    warn.mockRestore();
  });

  it('save/load restores identical logits, optimizer state included', async () => {
    const p = Policy.create({ model, tokenizer, seed: 3 });
    const tokens = tokenizer.encode('the cat sat on the mat');
    const row = { tokens, mask: tokens.map((_, i) => (i > 2 ? 1 : 0)) };
    await p.update([row], { kind: 'sft', learningRate: 1e-2 });
    const dir = await tempDir();
    await p.save(dir);
    const q = await Policy.load(dir);
    expect(q.config).toEqual(p.config);
    expect(q.tokenizer.encode('a dog sat')).toEqual(p.tokenizer.encode('a dog sat'));
    expect(Array.from((await q.runner.logits([tokens])).data)).toEqual(
      Array.from((await p.runner.logits([tokens])).data),
    );
    // The next update is the same from both: moments and step came back too.
    const mp = await p.update([row], { kind: 'sft', learningRate: 1e-2 });
    const mq = await q.update([row], { kind: 'sft', learningRate: 1e-2 });
    expect(mq).toEqual(mp);
    expect(Array.from(q.runner.getParams().get('layers.1.mlpIn')!)).toEqual(
      Array.from(p.runner.getParams().get('layers.1.mlpIn')!),
    );
  });

  it('exports a standalone ONNX model that plain onnxruntime runs to the same logits', async () => {
    const p = Policy.create({ model: { ...model, norm: 'rmsnorm', positions: 'rope' }, tokenizer, seed: 4 });
    const file = path.join(await tempDir(), 'policy.onnx');
    await p.exportOnnx(file);
    const session = await ort.InferenceSession.create(file);
    expect(session.inputNames).toEqual(['ids']);
    const rows = [tokenizer.encode('the dog ate'), tokenizer.encode('a cat sat')];
    const seq = Math.min(...rows.map((r) => r.length));
    const cut = rows.map((r) => r.slice(0, seq));
    const out = await session.run({
      ids: new ort.Tensor('int64', BigInt64Array.from(cut.flat().map(BigInt)), [2, seq]),
    });
    const got = out.logits!.data as Float32Array;
    const want = (await p.runner.logits(cut)).data;
    expect(got.length).toBe(want.length);
    let maxErr = 0;
    for (let i = 0; i < got.length; i++) maxErr = Math.max(maxErr, Math.abs(got[i]! - want[i]!));
    expect(maxErr).toBeLessThan(1e-5);
  });

  it("device 'cuda' without the CUDA binaries says how to install them and runs on CPU", async () => {
    const warn = vi.fn();
    expect(resolveDevice('cuda', warn)).toBe('cpu');
    // The message is printed once per process; when it was, it names the install command.
    if (warn.mock.calls.length > 0)
      expect(String(warn.mock.calls[0]![0])).toContain(
        'ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install',
      );
    const p = Policy.create({ model, tokenizer, device: 'cuda' });
    expect(p.device).toBe('cpu');
    expect((await p.generate(['the'], { maxNewTokens: 2 }))[0]!.tokens.length).toBeGreaterThan(0);
    expect(() => Policy.create({ model, tokenizer, device: 'gpu' })).toThrow(/unknown device 'gpu'/);
  });
});
