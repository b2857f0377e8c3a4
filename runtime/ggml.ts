// ggml block formats in plain TypeScript: f16 <-> f32, Q8_0 and Q4_0 quantise / dequantise, byte sizes.
//
// The block layouts, said once:
//   F32   4 bytes per element, little-endian
//   F16   2 bytes per element, IEEE half, little-endian
//   Q8_0  blocks of 32: f16 scale d, then 32 int8 q;         x ≈ d·q                      (34 bytes)
//   Q4_0  blocks of 32: f16 scale d, then 16 bytes of nibbles; byte j holds element j in its low
//         nibble and element j+16 in its high nibble;         x ≈ d·(nibble − 8)           (18 bytes)
// The quantisers follow llama.cpp's reference rows (ggml-quants.c, quantize_row_q8_0_ref and
// quantize_row_q4_0_ref) step by step in float32 arithmetic (Math.fround), so the bytes match.
// Multi-byte values are read and written little-endian explicitly, whatever the host.

import { FormatError, UnsupportedError } from './errors.ts';

/** ggml tensor type ids that edgelm reads and writes. */
export const GGMLType = { F32: 0, F16: 1, Q4_0: 2, Q8_0: 8 } as const;
/** Elements per block of Q8_0 and Q4_0. */
export const QK = 32;
/** f16 scale + 32 int8. */
export const Q8_0_BLOCK_BYTES = 34;
/** f16 scale + 16 bytes of nibbles (low = j, high = j+16, value = nibble − 8). */
export const Q4_0_BLOCK_BYTES = 18;

// every ggml type id up to the newest we know of, by name; ids that were removed from ggml are gaps
const TYPE_NAMES: Record<number, string> = {
  0: 'F32',
  1: 'F16',
  2: 'Q4_0',
  3: 'Q4_1',
  4: 'Q4_2 (removed)',
  5: 'Q4_3 (removed)',
  6: 'Q5_0',
  7: 'Q5_1',
  8: 'Q8_0',
  9: 'Q8_1',
  10: 'Q2_K',
  11: 'Q3_K',
  12: 'Q4_K',
  13: 'Q5_K',
  14: 'Q6_K',
  15: 'Q8_K',
  16: 'IQ2_XXS',
  17: 'IQ2_XS',
  18: 'IQ3_XXS',
  19: 'IQ1_S',
  20: 'IQ4_NL',
  21: 'IQ3_S',
  22: 'IQ2_S',
  23: 'IQ4_XS',
  24: 'I8',
  25: 'I16',
  26: 'I32',
  27: 'I64',
  28: 'F64',
  29: 'IQ1_M',
  30: 'BF16',
  31: 'Q4_0_4_4 (removed)',
  32: 'Q4_0_4_8 (removed)',
  33: 'Q4_0_8_8 (removed)',
  34: 'TQ1_0',
  35: 'TQ2_0',
  36: 'IQ4_NL_4_4 (removed)',
  37: 'IQ4_NL_4_8 (removed)',
  38: 'IQ4_NL_8_8 (removed)',
  39: 'MXFP4',
};

/**
 * Name of a ggml type id ("Q8_0", "BF16", …), or "unknown type N" for an id ggml does not define.
 * @example
 * ggmlTypeName(8) // 'Q8_0'
 */
export function ggmlTypeName(type: number): string {
  return TYPE_NAMES[type] ?? `unknown type ${type}`;
}

/**
 * True when edgelm implements the type (F32, F16, Q8_0, Q4_0).
 * @example
 * isSupportedType(GGMLType.Q4_0) // true
 */
export function isSupportedType(type: number): boolean {
  return type === 0 || type === 1 || type === 2 || type === 8;
}

/** Elements per block (1 for F32/F16, 32 for Q8_0/Q4_0); throws UnsupportedError for other types. */
export function blockSize(type: number): number {
  if (type === GGMLType.F32 || type === GGMLType.F16) return 1;
  if (type === GGMLType.Q8_0 || type === GGMLType.Q4_0) return QK;
  throw unsupportedType(type);
}

function unsupportedType(type: number, field?: string): UnsupportedError {
  return new UnsupportedError(
    `${field ? `tensor ${field}: ` : ''}tensor type ${ggmlTypeName(type)} (${type}) is not supported`,
    {
      field,
      hint: 'edgelm reads F32, F16, Q8_0 and Q4_0; re-quantise the model to one of those',
    },
  );
}

/**
 * Bytes that `nElements` elements of `type` take. Quantised types need a multiple of 32 elements
 * (FormatError otherwise; callers check the row length, dims[0], too). Checked arithmetic: a size
 * beyond 2^53 is a FormatError.
 * @example
 * tensorByteSize(GGMLType.Q8_0, 64) // 68
 */
export function tensorByteSize(type: number, nElements: number): number {
  if (!Number.isSafeInteger(nElements) || nElements < 0) {
    throw new FormatError(`element count ${nElements} is not a non-negative safe integer`);
  }
  let size: number;
  switch (type) {
    case GGMLType.F32:
      size = nElements * 4;
      break;
    case GGMLType.F16:
      size = nElements * 2;
      break;
    case GGMLType.Q8_0:
    case GGMLType.Q4_0:
      if (nElements % QK !== 0) {
        throw new FormatError(`${ggmlTypeName(type)} needs a multiple of ${QK} elements, got ${nElements}`, {
          hint: 'quantised rows must be a whole number of 32-element blocks',
        });
      }
      size = (nElements / QK) * (type === GGMLType.Q8_0 ? Q8_0_BLOCK_BYTES : Q4_0_BLOCK_BYTES);
      break;
    default:
      throw unsupportedType(type);
  }
  if (!Number.isSafeInteger(size)) throw new FormatError(`byte size of ${nElements} elements overflows`);
  return size;
}

// ---- f16 ----------------------------------------------------------------------------------------

const cvtF32 = new Float32Array(1);
const cvtU32 = new Uint32Array(cvtF32.buffer);

/**
 * Nearest IEEE half (as its 16 bits) to a number: round to nearest, ties to even; subnormals kept;
 * overflow to ±inf; NaN stays NaN (quiet). The number is first rounded to float32, as in C.
 * @example
 * f32ToF16(1) // 0x3c00
 */
export function f32ToF16(x: number): number {
  cvtF32[0] = x;
  const b = cvtU32[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    // subnormal half (or zero): value = m · 2^(exp−150) = (m >> (14 − e)) · 2^−24
    if (e < -10) return sign; // below 2^−25: rounds to ±0
    const m = mant | 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let r = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    if (rem > half || (rem === half && r & 1)) r++;
    return sign | r; // r may round up to 0x400, the smallest normal: still correct
  }
  let r = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && r & 1)) r++; // a carry into the exponent (even to inf) is right
  return sign | r;
}

/**
 * Value of an IEEE half given as its 16 bits (exact).
 * @example
 * f16ToF32(0x3c00) // 1
 */
export function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? Number.NaN : s * Number.POSITIVE_INFINITY;
  return s * (1024 + m) * 2 ** (e - 25);
}

let f16Table: Float32Array | undefined;
// all 65,536 halves as f32 (256 KiB), built on first use by the bulk converters
function halfTable(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16ToF32(h);
  }
  return f16Table;
}

// ---- quantisers ---------------------------------------------------------------------------------

const fr = Math.fround;

function checkBlocks(n: number, what: string): number {
  if (!Number.isSafeInteger(n) || n < 0 || n % QK !== 0) {
    throw new FormatError(`${what}: length ${n} is not a multiple of ${QK}`, {
      hint: 'quantised rows must be a whole number of 32-element blocks',
    });
  }
  return n / QK;
}

function checkFinite(src: Float32Array, what: string): void {
  for (let i = 0; i < src.length; i++) {
    if (!Number.isFinite(src[i])) {
      throw new FormatError(`${what}: element ${i} is ${src[i]}`, {
        hint: 'cannot quantise NaN or infinity',
      });
    }
  }
}

/**
 * Quantise to Q8_0 as llama.cpp's quantize_row_q8_0_ref: per block d = max|x| / 127, q = round(x / d)
 * (half away from zero). Length must be a multiple of 32; NaN/inf are a FormatError.
 * @example
 * const bytes = quantizeQ8_0(new Float32Array(32).fill(1)) // 34 bytes
 */
export function quantizeQ8_0(src: Float32Array): Uint8Array {
  const nb = checkBlocks(src.length, 'Q8_0');
  checkFinite(src, 'Q8_0');
  const out = new Uint8Array(nb * Q8_0_BLOCK_BYTES);
  for (let b = 0; b < nb; b++) {
    const x0 = b * QK;
    const o = b * Q8_0_BLOCK_BYTES;
    let amax = 0;
    for (let j = 0; j < QK; j++) {
      const a = Math.abs(src[x0 + j]);
      if (a > amax) amax = a;
    }
    const d = fr(amax / 127);
    const id = d ? fr(1 / d) : 0;
    const h = f32ToF16(d);
    out[o] = h & 0xff;
    out[o + 1] = h >>> 8;
    for (let j = 0; j < QK; j++) {
      const v = fr(src[x0 + j] * id);
      out[o + 2 + j] = v >= 0 ? Math.floor(v + 0.5) : -Math.floor(0.5 - v); // C roundf: half away from zero
    }
  }
  return out;
}

/**
 * Dequantise `n` elements of Q8_0 (x = d·q with d the stored f16 scale).
 * @example
 * dequantizeQ8_0(quantizeQ8_0(src), src.length)
 */
export function dequantizeQ8_0(b: Uint8Array, n: number): Float32Array {
  const nb = checkBlocks(n, 'Q8_0');
  if (b.length < nb * Q8_0_BLOCK_BYTES) {
    throw new FormatError(`Q8_0: ${n} elements need ${nb * Q8_0_BLOCK_BYTES} bytes, got ${b.length}`);
  }
  const tab = halfTable();
  const out = new Float32Array(n);
  for (let k = 0; k < nb; k++) {
    const o = k * Q8_0_BLOCK_BYTES;
    const d = tab[b[o] | (b[o + 1] << 8)];
    for (let j = 0; j < QK; j++) out[k * QK + j] = d * ((b[o + 2 + j] << 24) >> 24);
  }
  return out;
}

/**
 * Quantise to Q4_0 as llama.cpp's quantize_row_q4_0_ref: per block, with `max` the signed value of
 * largest magnitude, d = max / −8 and nibble = min(15, trunc(x / d + 8.5)). Element j goes in the
 * low nibble of byte j, element j+16 in the high nibble. Length must be a multiple of 32.
 * @example
 * const bytes = quantizeQ4_0(new Float32Array(64)) // 36 bytes
 */
export function quantizeQ4_0(src: Float32Array): Uint8Array {
  const nb = checkBlocks(src.length, 'Q4_0');
  checkFinite(src, 'Q4_0');
  const out = new Uint8Array(nb * Q4_0_BLOCK_BYTES);
  for (let b = 0; b < nb; b++) {
    const x0 = b * QK;
    const o = b * Q4_0_BLOCK_BYTES;
    let amax = 0;
    let max = 0;
    for (let j = 0; j < QK; j++) {
      const v = src[x0 + j];
      if (amax < Math.abs(v)) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const d = fr(max / -8);
    const id = d ? fr(1 / d) : 0;
    const h = f32ToF16(d);
    out[o] = h & 0xff;
    out[o + 1] = h >>> 8;
    for (let j = 0; j < QK / 2; j++) {
      const lo = Math.min(15, Math.trunc(fr(fr(src[x0 + j] * id) + 8.5)));
      const hi = Math.min(15, Math.trunc(fr(fr(src[x0 + j + 16] * id) + 8.5)));
      out[o + 2 + j] = lo | (hi << 4);
    }
  }
  return out;
}

/**
 * Dequantise `n` elements of Q4_0 (x = d·(nibble − 8)).
 * @example
 * dequantizeQ4_0(quantizeQ4_0(src), src.length)
 */
export function dequantizeQ4_0(b: Uint8Array, n: number): Float32Array {
  const nb = checkBlocks(n, 'Q4_0');
  if (b.length < nb * Q4_0_BLOCK_BYTES) {
    throw new FormatError(`Q4_0: ${n} elements need ${nb * Q4_0_BLOCK_BYTES} bytes, got ${b.length}`);
  }
  const tab = halfTable();
  const out = new Float32Array(n);
  for (let k = 0; k < nb; k++) {
    const o = k * Q4_0_BLOCK_BYTES;
    const d = tab[b[o] | (b[o + 1] << 8)];
    for (let j = 0; j < QK / 2; j++) {
      const q = b[o + 2 + j];
      out[k * QK + j] = d * ((q & 15) - 8);
      out[k * QK + j + 16] = d * ((q >>> 4) - 8);
    }
  }
  return out;
}

// ---- any supported type -------------------------------------------------------------------------

/**
 * Decode `n` elements of any supported type into a new Float32Array (never a view of `bytes`).
 * @example
 * const w = toF32(t.type, t.data, t.dims.reduce((a, b) => a * b, 1))
 */
export function toF32(type: number, bytes: Uint8Array, n: number): Float32Array {
  switch (type) {
    case GGMLType.F32: {
      const need = tensorByteSize(type, n);
      if (bytes.length < need)
        throw new FormatError(`F32: ${n} elements need ${need} bytes, got ${bytes.length}`);
      const out = new Float32Array(n);
      const dv = new DataView(bytes.buffer, bytes.byteOffset, need);
      for (let i = 0; i < n; i++) out[i] = dv.getFloat32(i * 4, true);
      return out;
    }
    case GGMLType.F16: {
      const need = tensorByteSize(type, n);
      if (bytes.length < need)
        throw new FormatError(`F16: ${n} elements need ${need} bytes, got ${bytes.length}`);
      const tab = halfTable();
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = tab[bytes[2 * i] | (bytes[2 * i + 1] << 8)];
      return out;
    }
    case GGMLType.Q8_0:
      return dequantizeQ8_0(bytes, n);
    case GGMLType.Q4_0:
      return dequantizeQ4_0(bytes, n);
    default:
      throw unsupportedType(type);
  }
}

/**
 * Encode f32 values as any supported type (F32 copies, F16 rounds to nearest even, Q8_0 / Q4_0
 * quantise as llama.cpp does).
 * @example
 * const bytes = fromF32(GGMLType.Q8_0, weights)
 */
export function fromF32(type: number, src: Float32Array): Uint8Array {
  switch (type) {
    case GGMLType.F32: {
      const out = new Uint8Array(src.length * 4);
      const dv = new DataView(out.buffer);
      for (let i = 0; i < src.length; i++) dv.setFloat32(i * 4, src[i], true);
      return out;
    }
    case GGMLType.F16: {
      const out = new Uint8Array(src.length * 2);
      for (let i = 0; i < src.length; i++) {
        const h = f32ToF16(src[i]);
        out[2 * i] = h & 0xff;
        out[2 * i + 1] = h >>> 8;
      }
      return out;
    }
    case GGMLType.Q8_0:
      return quantizeQ8_0(src);
    case GGMLType.Q4_0:
      return quantizeQ4_0(src);
    default:
      throw unsupportedType(type);
  }
}

/**
 * The UnsupportedError for a tensor of a type edgelm does not implement, naming the tensor and type
 * (for loaders that check types themselves).
 * @example
 * if (!isSupportedType(t.type)) throw unsupportedTensorType(t.type, t.name)
 */
export function unsupportedTensorType(type: number, tensor: string): UnsupportedError {
  return unsupportedType(type, tensor);
}
