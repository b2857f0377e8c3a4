import { describe, expect, it } from 'vitest';
import { FormatError, UnsupportedError } from '../../runtime/errors.ts';
import {
  dequantizeQ4_0,
  dequantizeQ8_0,
  f16ToF32,
  f32ToF16,
  fromF32,
  GGMLType,
  ggmlTypeName,
  Q4_0_BLOCK_BYTES,
  Q8_0_BLOCK_BYTES,
  quantizeQ4_0,
  quantizeQ8_0,
  tensorByteSize,
  toF32,
} from '../../runtime/ggml.ts';
import { randomF32, seededRandom } from '../helpers/gguf-fixtures.ts';

// ---- float64 references, written from the IEEE / ggml definitions -------------------------------

// value of a half from its fields, in float64
function halfRef(h: number): number {
  const s = h >> 15 ? -1 : 1;
  const e = (h >> 10) & 31;
  const m = h & 1023;
  if (e === 31) return m ? Number.NaN : s * Infinity;
  return e === 0 ? s * m * 2 ** -24 : s * 2 ** (e - 15) * (1 + m / 1024);
}
// all finite non-negative halves in increasing order (0x0000..0x7bff)
const POS_HALVES = Array.from({ length: 0x7c00 }, (_, h) => halfRef(h));

const roundAway = (v: number) => Math.sign(v) * Math.floor(Math.abs(v) + 0.5);

describe('f16', () => {
  it('f16ToF32 decodes all 65,536 halves like the float64 reference (exact)', () => {
    const bad: string[] = [];
    for (let h = 0; h < 65536; h++) {
      const got = f16ToF32(h);
      const want = halfRef(h);
      if (Number.isNaN(want) ? !Number.isNaN(got) : !Object.is(got, want))
        bad.push(`${h}: ${got} != ${want}`);
    }
    expect(bad.slice(0, 5)).toEqual([]);
    expect(f16ToF32(0x3c00)).toBe(1);
    expect(f16ToF32(0x7bff)).toBe(65504);
    expect(f16ToF32(0x0001)).toBe(2 ** -24);
    expect(Object.is(f16ToF32(0x8000), -0)).toBe(true);
  });

  it('f32ToF16 round-trips every half exactly (NaN stays NaN)', () => {
    const bad: string[] = [];
    for (let h = 0; h < 65536; h++) {
      const v = halfRef(h);
      const back = f32ToF16(v);
      const ok = Number.isNaN(v) ? ((back >> 10) & 31) === 31 && (back & 1023) !== 0 : back === h;
      if (!ok) bad.push(`${h} -> ${back}`);
    }
    expect(bad.slice(0, 5)).toEqual([]);
  });

  it('f32ToF16 rounds ties to even at every midpoint between adjacent halves (incl. subnormals and overflow)', () => {
    const bad: string[] = [];
    for (let h = 0; h < 0x7bff; h++) {
      const mid = (POS_HALVES[h] + POS_HALVES[h + 1]) / 2; // exact in float32: one more mantissa bit
      const even = h % 2 === 0 ? h : h + 1;
      if (Math.fround(mid) !== mid || f32ToF16(mid) !== even || f32ToF16(-mid) !== (0x8000 | even)) {
        bad.push(`midpoint after ${h}: ${f32ToF16(mid)}`);
      }
    }
    expect(bad.slice(0, 5)).toEqual([]);
    // 65504 + half an ulp (65520) ties to the "even" 0x7c00 = inf; just below stays 65504
    expect(f32ToF16(65520)).toBe(0x7c00);
    expect(f32ToF16(Math.fround(65519.99))).toBe(0x7bff);
    expect(f32ToF16(2 ** -25)).toBe(0); // tie between 0 and the smallest subnormal → 0 (even)
    expect(f32ToF16(Math.fround(2 ** -25 * 1.0001))).toBe(1);
    expect(f32ToF16(Infinity)).toBe(0x7c00);
    expect(f32ToF16(-Infinity)).toBe(0xfc00);
    expect(f32ToF16(1e10)).toBe(0x7c00);
    expect(f32ToF16(-0)).toBe(0x8000);
  });

  it('f32ToF16 gives the nearest half for 20,000 random float32 values of every magnitude', () => {
    const rnd = seededRandom(7);
    const u32 = new Uint32Array(1);
    const f32 = new Float32Array(u32.buffer);
    for (let i = 0; i < 20000; i++) {
      u32[0] = Math.floor(rnd() * 2 ** 32);
      const x = f32[0];
      if (!Number.isFinite(x) || Math.abs(x) >= 65520) continue;
      const h = f32ToF16(x);
      const got = halfRef(h);
      // reference: binary search the sorted halves for the neighbours of |x|
      const a = Math.abs(x);
      let lo = 0;
      let hi = POS_HALVES.length - 1;
      while (hi - lo > 1) {
        const mid = (lo + hi) >> 1;
        if (POS_HALVES[mid] <= a) lo = mid;
        else hi = mid;
      }
      const best = Math.min(Math.abs(a - POS_HALVES[lo]), Math.abs(a - POS_HALVES[hi]));
      expect(Math.abs(Math.abs(got) - a)).toBe(best);
      if (got !== 0) expect(Math.sign(got)).toBe(Math.sign(x));
    }
  });
});

describe('tensorByteSize', () => {
  it('gives ggml block sizes', () => {
    expect(tensorByteSize(GGMLType.F32, 10)).toBe(40);
    expect(tensorByteSize(GGMLType.F16, 10)).toBe(20);
    expect(tensorByteSize(GGMLType.Q8_0, 64)).toBe(2 * Q8_0_BLOCK_BYTES);
    expect(tensorByteSize(GGMLType.Q4_0, 96)).toBe(3 * Q4_0_BLOCK_BYTES);
    expect(tensorByteSize(GGMLType.Q4_0, 0)).toBe(0);
  });
  it('rejects partial blocks, unsafe counts and unsupported types', () => {
    expect(() => tensorByteSize(GGMLType.Q8_0, 33)).toThrow(FormatError);
    expect(() => tensorByteSize(GGMLType.Q4_0, 16)).toThrow(FormatError);
    expect(() => tensorByteSize(GGMLType.F32, -1)).toThrow(FormatError);
    expect(() => tensorByteSize(GGMLType.F32, 2 ** 53)).toThrow(FormatError);
    expect(() => tensorByteSize(GGMLType.F32, 2 ** 52)).toThrow(FormatError); // ×4 overflows 2^53
    expect(() => tensorByteSize(3, 32)).toThrow(UnsupportedError);
    expect(() => tensorByteSize(30, 32)).toThrow(/BF16/);
    expect(ggmlTypeName(12)).toBe('Q4_K');
    expect(ggmlTypeName(999)).toBe('unknown type 999');
  });
});

describe('Q8_0', () => {
  it('matches a float64 reference of llama.cpp quantize_row_q8_0_ref and holds |x − x̂| ≤ d/2 + 127·|d − d16|', () => {
    const n = 32 * 400;
    const x = randomF32(n, 11, 3);
    // a few blocks with special shapes: all zero, one spike, tiny values, constant
    x.fill(0, 0, 32);
    x.fill(0, 32, 64);
    x[40] = -5;
    for (let j = 64; j < 96; j++) x[j] = 1e-30 * (j - 80);
    x.fill(0.25, 96, 128);
    const q = quantizeQ8_0(x);
    expect(q.length).toBe((n / 32) * 34);
    const y = dequantizeQ8_0(q, n);
    let mismatches = 0;
    for (let b = 0; b < n / 32; b++) {
      let amax = 0;
      for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b * 32 + j]));
      const d = amax / 127;
      const d16 = halfRef(q[b * 34] | (q[b * 34 + 1] << 8));
      // the stored scale is the half nearest to d (f32 rounding of d first: within 1e-7 relative)
      expect(Math.abs(d16 - d)).toBeLessThanOrEqual(Math.abs(halfRef(f32ToF16(d)) - d) + 1e-7 * d);
      for (let j = 0; j < 32; j++) {
        const xi = x[b * 32 + j];
        const qi = (q[b * 34 + 2 + j] << 24) >> 24;
        const want = d ? roundAway(xi / d) : 0;
        if (qi !== want) mismatches++;
        expect(Math.abs(qi - want)).toBeLessThanOrEqual(1); // float32 vs float64 only at exact ties
        expect(y[b * 32 + j]).toBe(Math.fround(d16 * qi));
        // bound, with the float32 rounding of x/d (≤ 1e-6 · amax) added
        expect(Math.abs(xi - y[b * 32 + j])).toBeLessThanOrEqual(
          d / 2 + 127 * Math.abs(d - d16) + 1e-6 * amax,
        );
      }
    }
    expect(mismatches).toBeLessThanOrEqual(2);
    // zero block: scale 0, all q 0
    expect(Array.from(q.subarray(0, 34)).every((v) => v === 0)).toBe(true);
  });

  it('golden block: x_j = j − 16 gives d = 16/127 and q = round(x·127/16)', () => {
    const x = Float32Array.from({ length: 32 }, (_, j) => j - 16);
    const q = quantizeQ8_0(x);
    expect(q[0] | (q[1] << 8)).toBe(f32ToF16(16 / 127));
    expect(Array.from(q.subarray(2), (v) => (v << 24) >> 24)).toEqual(
      Array.from({ length: 32 }, (_, j) => roundAway(((j - 16) * 127) / 16)),
    );
    expect((q[2] << 24) >> 24).toBe(-127);
  });

  it('rejects lengths not a multiple of 32, NaN, infinity and short buffers', () => {
    expect(() => quantizeQ8_0(new Float32Array(33))).toThrow(FormatError);
    expect(() => quantizeQ8_0(new Float32Array(32).fill(Number.NaN))).toThrow(FormatError);
    expect(() => quantizeQ8_0(new Float32Array(32).fill(Infinity))).toThrow(FormatError);
    expect(() => dequantizeQ8_0(new Uint8Array(33), 32)).toThrow(FormatError);
    expect(() => dequantizeQ8_0(new Uint8Array(34), 31)).toThrow(FormatError);
  });
});

describe('Q4_0', () => {
  it('matches a float64 reference of llama.cpp quantize_row_q4_0_ref; |x − x̂| ≤ |d|/2 (+f16 scale error), ≤ |d| where clamped', () => {
    const n = 32 * 400;
    const x = randomF32(n, 12, 2);
    x.fill(0, 0, 32);
    const q = quantizeQ4_0(x);
    expect(q.length).toBe((n / 32) * 18);
    const y = dequantizeQ4_0(q, n);
    let mismatches = 0;
    let clamped = 0;
    for (let b = 0; b < n / 32; b++) {
      let amax = 0;
      let max = 0;
      for (let j = 0; j < 32; j++) {
        const v = x[b * 32 + j];
        if (Math.abs(v) > amax) {
          amax = Math.abs(v);
          max = v;
        }
      }
      const d = max / -8;
      const d16 = halfRef(q[b * 18] | (q[b * 18 + 1] << 8));
      expect(d16).toBe(halfRef(f32ToF16(d)));
      for (let j = 0; j < 32; j++) {
        const xi = x[b * 32 + j];
        const byte = q[b * 18 + 2 + (j % 16)];
        const nib = j < 16 ? byte & 15 : byte >> 4;
        const t = d ? xi / d : 0;
        const want = Math.min(15, Math.trunc(t + 8.5));
        if (nib !== want) mismatches++;
        expect(Math.abs(nib - want)).toBeLessThanOrEqual(1);
        expect(y[b * 32 + j]).toBe(Math.fround(d16 * (nib - 8)));
        // the clamp case: x/d > 7.5 (same magnitude range as max, opposite sign) maps to 7·d
        const isClamped = t > 7.5;
        if (isClamped) clamped++;
        const bound = (isClamped ? Math.abs(d) : Math.abs(d) / 2) + 8 * Math.abs(d - d16) + 1e-6 * amax;
        expect(Math.abs(xi - y[b * 32 + j])).toBeLessThanOrEqual(bound);
      }
    }
    expect(mismatches).toBeLessThanOrEqual(2);
    expect(clamped).toBeGreaterThan(0); // the clamp case is exercised
  });

  it('golden block: low nibble = element j, high nibble = element j+16, scale = max/−8', () => {
    // max = −8 → d = 1; x_j = j − 8 → nibble j; x_{j+16} = 7 − j → nibble 15 − j
    const x = new Float32Array(32);
    for (let j = 0; j < 16; j++) {
      x[j] = j - 8;
      x[j + 16] = 7 - j;
    }
    const q = quantizeQ4_0(x);
    expect([q[0], q[1]]).toEqual([0x00, 0x3c]); // f16 1.0
    for (let j = 0; j < 16; j++) expect(q[2 + j]).toBe(j | ((15 - j) << 4));
    expect(Array.from(dequantizeQ4_0(q, 32))).toEqual(Array.from(x));
    // max positive: d = −max/8 < 0, and +max maps to nibble 0
    const z = new Float32Array(32);
    z[5] = 4;
    const p = quantizeQ4_0(z);
    expect(f16ToF32(p[0] | (p[1] << 8))).toBe(-0.5);
    expect(p[2 + 5] & 15).toBe(0);
    expect(dequantizeQ4_0(p, 32)[5]).toBe(4);
  });

  it('rejects lengths not a multiple of 32, NaN and short buffers', () => {
    expect(() => quantizeQ4_0(new Float32Array(48))).toThrow(FormatError);
    expect(() => quantizeQ4_0(new Float32Array(32).fill(Number.NaN))).toThrow(FormatError);
    expect(() => dequantizeQ4_0(new Uint8Array(17), 32)).toThrow(FormatError);
  });
});

describe('toF32 / fromF32', () => {
  it('F32 is exact and F16 is within half an f16 ulp, also from unaligned views', () => {
    const x = randomF32(101, 3, 10);
    for (const type of [GGMLType.F32, GGMLType.F16]) {
      const b = fromF32(type, x);
      const shifted = new Uint8Array(b.length + 1);
      shifted.set(b, 1);
      const y = toF32(type, shifted.subarray(1), x.length);
      for (let i = 0; i < x.length; i++) {
        if (type === GGMLType.F32) expect(y[i]).toBe(x[i]);
        // half ulp at |x| < 16: 2^(floor(log2|x|) − 11)
        else
          expect(Math.abs(y[i] - x[i])).toBeLessThanOrEqual(
            2 ** (Math.floor(Math.log2(Math.abs(x[i]))) - 11),
          );
      }
    }
  });
  it('Q8_0 and Q4_0 go through the quantisers; unsupported types throw UnsupportedError', () => {
    const x = randomF32(64, 4);
    expect(toF32(GGMLType.Q8_0, fromF32(GGMLType.Q8_0, x), 64)).toEqual(dequantizeQ8_0(quantizeQ8_0(x), 64));
    expect(toF32(GGMLType.Q4_0, fromF32(GGMLType.Q4_0, x), 64)).toEqual(dequantizeQ4_0(quantizeQ4_0(x), 64));
    expect(() => fromF32(30, x)).toThrow(UnsupportedError);
    expect(() => toF32(6, new Uint8Array(100), 32)).toThrow(UnsupportedError);
    expect(() => toF32(GGMLType.F32, new Uint8Array(7), 2)).toThrow(FormatError);
  });
});
