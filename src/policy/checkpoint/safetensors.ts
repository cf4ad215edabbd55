/**
 * safetensors read/write (https://github.com/huggingface/safetensors, "Format").
 *
 * A file is: 8 bytes little-endian u64 N, then N bytes of JSON header, then the raw tensor bytes.
 * The header maps each tensor name to `{ dtype, shape, data_offsets: [begin, end] }` (offsets into
 * the byte buffer that follows the header) and may hold `__metadata__`, a string -> string map.
 *
 * Hand-written on purpose: the format is this one paragraph, and no well-kept npm package reads
 * and writes it without pulling in a tensor library. Data is little-endian; typed arrays use the
 * platform's byte order, so we refuse to run on a big-endian machine rather than write bad files.
 */

import { readFile, writeFile } from 'node:fs/promises';
import { endianness } from 'node:os';

/**
 * The dtypes we read and write, with the typed array that holds each. F16 and BF16 are kept as
 * their raw 16-bit patterns (Uint16Array); `toFloat32`/`fromFloat32` convert.
 */
export type Dtype = 'F32' | 'F64' | 'I32' | 'I64' | 'U8' | 'I8' | 'F16' | 'BF16';
type ArrayFor = {
  F16: Uint16Array;
  BF16: Uint16Array;
  F32: Float32Array;
  F64: Float64Array;
  I32: Int32Array;
  I64: BigInt64Array;
  U8: Uint8Array;
  I8: Int8Array;
};
export type TensorData = ArrayFor[Dtype];

export interface SafetensorsTensor {
  dtype: Dtype;
  shape: number[];
  data: TensorData;
}

const arrayTypes = {
  F16: Uint16Array,
  BF16: Uint16Array,
  F32: Float32Array,
  F64: Float64Array,
  I32: Int32Array,
  I64: BigInt64Array,
  U8: Uint8Array,
  I8: Int8Array,
} as const;

interface HeaderEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

function checkLittleEndian(): void {
  if (endianness() !== 'LE')
    throw new Error('safetensors: this platform is big-endian; only little-endian is supported');
}

/** The dtype a typed array is stored as (Float32Array -> F32, ...; a Uint16Array is F16). */
export function dtypeOf(data: TensorData): Dtype {
  for (const [dtype, ctor] of Object.entries(arrayTypes)) {
    if (dtype === 'BF16') continue;
    if (data instanceof ctor) return dtype as Dtype;
  }
  throw new Error(`safetensors: unsupported array type ${(data as object).constructor.name}`);
}

/** A tensor from a typed array and a shape; the dtype follows the array type. */
export function tensor(data: TensorData, shape: number[]): SafetensorsTensor {
  return { dtype: dtypeOf(data), shape, data };
}

const elementCount = (shape: number[]): number => shape.reduce((a, b) => a * b, 1);

/**
 * Tensor order in a file, as the reference implementation writes it: by dtype, widest first
 * (its dtype enum order, descending), then by name. Wider types first keeps every tensor's data
 * aligned to its element size, and the bytes depend only on the content.
 */
const dtypeRank: Record<Dtype, number> = { I64: 8, F64: 7, F32: 6, I32: 5, BF16: 4, F16: 3, I8: 1, U8: 0 };

/** Serialize tensors and an optional metadata map (same bytes as the reference writer). */
export function encodeSafetensors(
  tensors: Record<string, SafetensorsTensor>,
  metadata: Record<string, string> = {},
): Uint8Array {
  checkLittleEndian();
  const names = Object.keys(tensors).sort(
    (a, b) => dtypeRank[tensors[b]!.dtype] - dtypeRank[tensors[a]!.dtype] || (a < b ? -1 : a > b ? 1 : 0),
  );
  const header: Record<string, HeaderEntry | Record<string, string>> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const name of names) {
    if (name === '__metadata__')
      throw new Error("safetensors: '__metadata__' is reserved and cannot name a tensor");
    const t = tensors[name]!;
    const expected = elementCount(t.shape);
    if (t.shape.some((d) => !Number.isInteger(d) || d < 0)) {
      throw new Error(
        `safetensors: tensor '${name}' has a bad shape [${t.shape}]; expected non-negative integers`,
      );
    }
    if (t.data.length !== expected) {
      throw new Error(
        `safetensors: tensor '${name}' has ${t.data.length} elements but shape [${t.shape}] needs ${expected}`,
      );
    }
    if (!(t.data instanceof arrayTypes[t.dtype])) {
      throw new Error(
        `safetensors: tensor '${name}' says dtype ${t.dtype} but holds a ${dtypeOf(t.data)} array`,
      );
    }
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  // Pad the header with spaces so the data starts 8-byte aligned (the format allows trailing spaces).
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(json);
    json = p;
  }
  const out = new Uint8Array(8 + json.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let at = 8 + json.length;
  for (const name of names) {
    const d = tensors[name]!.data;
    out.set(new Uint8Array(d.buffer, d.byteOffset, d.byteLength), at);
    at += d.byteLength;
  }
  return out;
}

/** Parse safetensors bytes; every tensor's data is copied into its own (aligned) typed array. */
export function decodeSafetensors(bytes: Uint8Array): {
  tensors: Record<string, SafetensorsTensor>;
  metadata: Record<string, string>;
} {
  checkLittleEndian();
  if (bytes.length < 8) throw new Error(`safetensors: file is ${bytes.length} bytes; expected at least 8`);
  const headerLength = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  if (8 + headerLength > bytes.length) {
    throw new Error(
      `safetensors: header length ${headerLength} runs past the end of the file (${bytes.length} bytes)`,
    );
  }
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(
      new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + headerLength)),
    );
  } catch (e) {
    throw new Error(`safetensors: header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  const dataStart = 8 + headerLength;
  const dataLength = bytes.length - dataStart;
  const metadata = (header.__metadata__ ?? {}) as Record<string, string>;
  const tensors: Record<string, SafetensorsTensor> = {};
  const spans: [number, number, string][] = [];
  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const e = raw as HeaderEntry;
    const ctor = arrayTypes[e.dtype as Dtype];
    if (!ctor) {
      throw new Error(
        `safetensors: tensor '${name}' has dtype '${e.dtype}'; supported: ${Object.keys(arrayTypes).join(', ')}`,
      );
    }
    const [begin, end] = e.data_offsets;
    const expected = elementCount(e.shape) * ctor.BYTES_PER_ELEMENT;
    if (!(begin >= 0 && end >= begin && end <= dataLength) || end - begin !== expected) {
      throw new Error(
        `safetensors: tensor '${name}' has data_offsets [${begin}, ${end}] but ${e.dtype}[${e.shape}] needs ${expected} bytes within ${dataLength}`,
      );
    }
    spans.push([begin, end, name]);
    // slice() copies, which also fixes alignment: a typed array needs an offset that is a multiple
    // of its element size, and the file does not promise one.
    const copy = bytes.slice(dataStart + begin, dataStart + end);
    tensors[name] = { dtype: e.dtype as Dtype, shape: e.shape, data: new ctor(copy.buffer) };
  }
  // The format requires the tensors to tile the data buffer exactly: no gaps, no overlaps.
  spans.sort((a, b) => a[0] - b[0]);
  let covered = 0;
  for (const [begin, end, name] of spans) {
    if (begin !== covered)
      throw new Error(`safetensors: tensor '${name}' starts at ${begin}; expected ${covered}`);
    covered = end;
  }
  if (covered !== dataLength) {
    throw new Error(
      `safetensors: tensors cover ${covered} of ${dataLength} data bytes; expected all of them`,
    );
  }
  return { tensors, metadata };
}

/** Tensor values as float32 (F16 and BF16 widened exactly; F64 rounded). */
export function toFloat32(t: SafetensorsTensor): Float32Array {
  if (t.dtype === 'F32') return t.data as Float32Array;
  const src = t.data;
  const out = new Float32Array(src.length);
  if (t.dtype === 'BF16') {
    const bits = new Uint32Array(out.buffer);
    for (let i = 0; i < src.length; i++) bits[i] = (src[i] as number) << 16;
    return out;
  }
  if (t.dtype === 'F16') {
    for (let i = 0; i < src.length; i++) out[i] = halfToFloat(src[i] as number);
    return out;
  }
  if (t.dtype === 'I64') throw new Error('safetensors: an I64 tensor is not a float tensor');
  for (let i = 0; i < src.length; i++) out[i] = Number(src[i]);
  return out;
}

/** float32 values stored as `dtype` (F16 and BF16 round to nearest even). */
export function fromFloat32(values: Float32Array, dtype: 'F32' | 'F16' | 'BF16'): TensorData {
  if (dtype === 'F32') return values;
  const out = new Uint16Array(values.length);
  if (dtype === 'BF16') {
    const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
    for (let i = 0; i < bits.length; i++) {
      const b = bits[i]!;
      // NaN stays a (quiet) NaN; everything else rounds to nearest, ties to even.
      out[i] = (b & 0x7fffffff) > 0x7f800000 ? (b >>> 16) | 0x40 : (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
    }
    return out;
  }
  for (let i = 0; i < values.length; i++) out[i] = floatToHalf(values[i]!);
  return out;
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * 2 ** -14 * (frac / 1024);
  if (exp === 31) return frac ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * 2 ** (exp - 15) * (1 + frac / 1024);
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE half from a float32, round to nearest even (subnormals and overflow to infinity included). */
function floatToHalf(v: number): number {
  f32[0] = v;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rest > mid || (rest === mid && half & 1)) half++;
    return sign | half;
  }
  let half = mant >>> 13;
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && half & 1)) {
    half++;
    if (half === 0x400) {
      half = 0;
      e++;
      if (e >= 31) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | half;
}

/** Write a .safetensors file. */
export async function saveSafetensors(
  path: string,
  tensors: Record<string, SafetensorsTensor>,
  metadata?: Record<string, string>,
): Promise<void> {
  await writeFile(path, encodeSafetensors(tensors, metadata));
}

/** Read a .safetensors file. */
export async function loadSafetensors(
  path: string,
): Promise<{ tensors: Record<string, SafetensorsTensor>; metadata: Record<string, string> }> {
  return decodeSafetensors(new Uint8Array(await readFile(path)));
}
