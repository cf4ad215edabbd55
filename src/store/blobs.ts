/**
 * Token ids and log-probs are stored as little-endian typed-array blobs (4 bytes a value), not
 * JSON: a 300-token prompt takes 1.2 kB instead of ~2 kB of text, and reads back without parsing.
 */
import os from 'node:os';

const littleEndian = os.endianness() === 'LE';

/** Int32 token ids -> little-endian blob. */
export function encodeTokens(ids: Int32Array | readonly number[]): Buffer {
  if (ids instanceof Int32Array && littleEndian)
    return Buffer.from(ids.buffer, ids.byteOffset, ids.byteLength);
  const out = Buffer.allocUnsafe(ids.length * 4);
  for (let i = 0; i < ids.length; i++) out.writeInt32LE(ids[i]!, i * 4);
  return out;
}

/** Float32 log-probs -> little-endian blob. */
export function encodeLogprobs(values: Float32Array | readonly number[]): Buffer {
  if (values instanceof Float32Array && littleEndian) {
    return Buffer.from(values.buffer, values.byteOffset, values.byteLength);
  }
  const out = Buffer.allocUnsafe(values.length * 4);
  for (let i = 0; i < values.length; i++) out.writeFloatLE(values[i]!, i * 4);
  return out;
}

function checkSize(blob: Uint8Array, what: string): void {
  if (blob.byteLength % 4 !== 0) {
    throw new Error(
      `${what} blob has ${blob.byteLength} bytes; expected a multiple of 4 (4 bytes per value)`,
    );
  }
}

/** Little-endian blob -> Int32Array: a view when the blob is 4-byte aligned, else a copy. */
export function decodeTokens(blob: Uint8Array): Int32Array {
  checkSize(blob, 'token');
  if (littleEndian && blob.byteOffset % 4 === 0)
    return new Int32Array(blob.buffer, blob.byteOffset, blob.byteLength / 4);
  const out = new Int32Array(blob.byteLength / 4);
  if (littleEndian) new Uint8Array(out.buffer).set(blob);
  else {
    const view = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
    for (let i = 0; i < out.length; i++) out[i] = view.getInt32(i * 4, true);
  }
  return out;
}

/** Little-endian blob -> Float32Array: a view when the blob is 4-byte aligned, else a copy. */
export function decodeLogprobs(blob: Uint8Array): Float32Array {
  checkSize(blob, 'log-prob');
  if (littleEndian && blob.byteOffset % 4 === 0) {
    return new Float32Array(blob.buffer, blob.byteOffset, blob.byteLength / 4);
  }
  const out = new Float32Array(blob.byteLength / 4);
  if (littleEndian) new Uint8Array(out.buffer).set(blob);
  else {
    const view = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
    for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(i * 4, true);
  }
  return out;
}
