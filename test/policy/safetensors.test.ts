import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  decodeSafetensors,
  encodeSafetensors,
  fromFloat32,
  loadSafetensors,
  saveSafetensors,
  tensor,
  toFloat32,
} from '../../src/policy/checkpoint/safetensors.ts';

/** Build a file by hand, byte by byte, from the format description (independent of the writer). */
function handBuilt(headerJson: string, data: number[]): Uint8Array {
  const header = new TextEncoder().encode(headerJson);
  const out = new Uint8Array(8 + header.length + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, header.length, true);
  view.setUint32(4, 0, true);
  out.set(header, 8);
  out.set(data, 8 + header.length);
  return out;
}

const fixture = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'reference.safetensors');

/** The tensors of fixtures/reference-safetensors.py, which wrote the fixture with the reference library. */
const referenceTensors = {
  embedding: tensor(
    Float32Array.from({ length: 12 }, (_, i) => i / 8 - 0.5),
    [3, 4],
  ),
  scale: tensor(new Float64Array([Math.PI, -1e-300, 2.5]), [3]),
  ids: tensor(new Int32Array([-7, 0, 2 ** 31 - 1]), [1, 3]),
  steps: tensor(new BigInt64Array([-(2n ** 63n), 2n ** 40n + 3n]), [2]),
  bytes: tensor(new Uint8Array([0, 128, 255]), [3]),
  signed: tensor(new Int8Array([-128, 5]), [2]),
};

describe('safetensors', () => {
  it('reads a file written by the reference implementation (Hugging Face safetensors 0.8)', () => {
    const { tensors, metadata } = decodeSafetensors(new Uint8Array(readFileSync(fixture)));
    expect(metadata).toEqual({ format: 'np' });
    expect(Object.keys(tensors).sort()).toEqual(Object.keys(referenceTensors).sort());
    for (const [name, t] of Object.entries(referenceTensors)) {
      const got = tensors[name]!;
      expect(got.dtype, name).toBe(t.dtype);
      expect(got.shape, name).toEqual(t.shape);
      expect(got.data, name).toEqual(t.data);
    }
  });

  it('writes the same bytes as the reference implementation', () => {
    const ours = encodeSafetensors(referenceTensors, { format: 'np' });
    expect(Buffer.from(ours).equals(readFileSync(fixture))).toBe(true);
  });

  it('reads a file built by hand from the spec', () => {
    // a: F32 [2] = [1.0, -2.0]  (0x3f800000, 0xc0000000 little-endian); b: I64 [1] = [-3]
    const bytes = handBuilt(
      '{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' +
        '"b":{"dtype":"I64","shape":[1],"data_offsets":[8,16]}}',
      [0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0, 0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    );
    const { tensors, metadata } = decodeSafetensors(bytes);
    expect(metadata).toEqual({ format: 'pt' });
    expect(tensors.a!.dtype).toBe('F32');
    expect(Array.from(tensors.a!.data as Float32Array)).toEqual([1, -2]);
    expect(tensors.b!.shape).toEqual([1]);
    expect(Array.from(tensors.b!.data as BigInt64Array)).toEqual([-3n]);
  });

  it('writes exactly the bytes the spec describes', () => {
    const bytes = encodeSafetensors({ x: tensor(new Int32Array([1, 258]), [2]) }, { k: 'v' });
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(n % 8).toBe(0); // data starts 8-byte aligned
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
    expect(header).toEqual({
      __metadata__: { k: 'v' },
      x: { dtype: 'I32', shape: [2], data_offsets: [0, 8] },
    });
    expect(Array.from(bytes.subarray(8 + n))).toEqual([1, 0, 0, 0, 2, 1, 0, 0]);
  });

  it('round-trips every dtype, odd shapes and empty tensors through a file', async () => {
    const tensors = {
      'layers.0.w': tensor(
        Float32Array.from({ length: 3 * 5 }, (_, i) => Math.sin(i) * 1e3),
        [3, 5],
      ),
      f64: tensor(new Float64Array([Math.PI, -0, Number.MIN_VALUE, 1e300]), [2, 2]),
      i32: tensor(new Int32Array([-(2 ** 31), 2 ** 31 - 1, 7]), [3]),
      i64: tensor(new BigInt64Array([-(2n ** 63n), 2n ** 63n - 1n]), [2]),
      u8: tensor(new Uint8Array([0, 255, 1]), [3]), // 3 bytes: the next tensor's offset is unaligned
      i8: tensor(new Int8Array([-128, 127]), [2]),
      empty: tensor(new Float32Array(0), [0, 4]),
      scalar: tensor(new Float32Array([42]), []),
    };
    const dir = mkdtempSync(join(tmpdir(), 'safetensors-'));
    try {
      const file = join(dir, 'model.safetensors');
      await saveSafetensors(file, tensors, { step: '12' });
      const back = await loadSafetensors(file);
      expect(back.metadata).toEqual({ step: '12' });
      expect(Object.keys(back.tensors).sort()).toEqual(Object.keys(tensors).sort());
      for (const [name, t] of Object.entries(tensors)) {
        const b = back.tensors[name]!;
        expect(b.dtype, name).toBe(t.dtype);
        expect(b.shape, name).toEqual(t.shape);
        expect(b.data.constructor, name).toBe(t.data.constructor);
        expect(Array.from(b.data as ArrayLike<number | bigint>), name).toEqual(
          Array.from(t.data as ArrayLike<number | bigint>),
        );
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('writes the same bytes whatever order the tensors were given in', () => {
    const a = tensor(new Float32Array([1, 2]), [2]);
    const b = tensor(new Float32Array([3]), [1]);
    expect(encodeSafetensors({ a, b })).toEqual(encodeSafetensors({ b, a }));
  });

  it('refuses bad input with messages that name the problem', () => {
    expect(() => encodeSafetensors({ w: tensor(new Float32Array(5), [2, 3]) })).toThrow(
      /'w' has 5 elements.*needs 6/,
    );
    expect(() => decodeSafetensors(new Uint8Array(4))).toThrow(/at least 8/);
    const bad = handBuilt('{"a":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}}', [0]);
    expect(() => decodeSafetensors(bad)).toThrow(/dtype 'F8_E4M3'; supported/);
    const short = handBuilt('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', [0, 0, 0, 0]);
    expect(() => decodeSafetensors(short)).toThrow(/'a' has data_offsets \[0, 8\]/);
    const gap = handBuilt('{"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}', [0, 0]);
    expect(() => decodeSafetensors(gap)).toThrow(/starts at 1; expected 0/);
    const truncated = handBuilt('{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', [0]).subarray(0, 20);
    expect(() => decodeSafetensors(truncated)).toThrow(/runs past the end/);
  });

  it('F16 and BF16: bit patterns of known values both ways, round to nearest even, and through a file', () => {
    // Hand-computed IEEE half / bfloat16 patterns.
    const values = Float32Array.of(1, -2, 0.5, 65504, 1 / 3, 6e-8, 0, Number.POSITIVE_INFINITY);
    const half = [0x3c00, 0xc000, 0x3800, 0x7bff, 0x3555, 0x0001, 0x0000, 0x7c00];
    const bf16 = [0x3f80, 0xc000, 0x3f00, 0x4780, 0x3eab, 0x3381, 0x0000, 0x7f80];
    expect(Array.from(fromFloat32(values, 'F16') as Uint16Array)).toEqual(half);
    expect(Array.from(fromFloat32(values, 'BF16') as Uint16Array)).toEqual(bf16);
    const widened = toFloat32({ dtype: 'F16', shape: [8], data: Uint16Array.from(half) });
    expect(Array.from(widened.subarray(0, 4))).toEqual([1, -2, 0.5, 65504]);
    expect(toFloat32({ dtype: 'BF16', shape: [1], data: Uint16Array.of(0x3f80) })[0]).toBe(1);
    // Ties go to even: 1 + 2^-11 sits halfway between two halves and rounds down to 1.
    expect(fromFloat32(Float32Array.of(1 + 2 ** -11), 'F16')[0]).toBe(0x3c00);
    const bytes = encodeSafetensors({
      h: { dtype: 'F16', shape: [2], data: Uint16Array.of(0x3c00, 0xc000) },
      b: { dtype: 'BF16', shape: [1], data: Uint16Array.of(0x3f80) },
    });
    const back = decodeSafetensors(bytes).tensors;
    expect(back.h!.dtype).toBe('F16');
    expect(back.b!.dtype).toBe('BF16');
    expect(Array.from(toFloat32(back.h!))).toEqual([1, -2]);
  });
});
