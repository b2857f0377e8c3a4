// shared helpers: fused multiply-add switch, horizontal sums, f16 <-> f32, static scratch.

/** a*b + c on four f32 lanes: relaxed_madd (may fuse) in the relaxed build, mul+add otherwise. */
// @ts-ignore: decorator
@inline
export function fma(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) {
    return f32x4.relaxed_madd(a, b, c);
  } else {
    return f32x4.add(f32x4.mul(a, b), c);
  }
}

// vector constants, loaded from memory: V8 (12 and 13) rebuilds every v128.const at each use with three
// instructions (movq, vmovq, vpunpcklqdq) inside the loop, while a loaded vector stays in a register
// (or is folded into the instruction as a memory operand). exp4 ran ~4× faster this way.
// prettier-ignore
const KF: usize = memory.data<f32>([
  -87.33654, -87.33654, -87.33654, -87.33654,
  88.37626, 88.37626, 88.37626, 88.37626,
  1.4426950408889634, 1.4426950408889634, 1.4426950408889634, 1.4426950408889634,
  0.5, 0.5, 0.5, 0.5,
  -0.693359375, -0.693359375, -0.693359375, -0.693359375,
  0.00021219444, 0.00021219444, 0.00021219444, 0.00021219444,
  0.000198756915, 0.000198756915, 0.000198756915, 0.000198756915,
  0.0013981999507, 0.0013981999507, 0.0013981999507, 0.0013981999507,
  0.0083334519073, 0.0083334519073, 0.0083334519073, 0.0083334519073,
  0.041665795894, 0.041665795894, 0.041665795894, 0.041665795894,
  0.16666665459, 0.16666665459, 0.16666665459, 0.16666665459,
  0.50000001201, 0.50000001201, 0.50000001201, 0.50000001201,
  1.0, 1.0, 1.0, 1.0,
  2.0, 2.0, 2.0, 2.0,
  -15.0, -15.0, -15.0, -15.0,
  15.0, 15.0, 15.0, 15.0,
  0.7978845608028654, 0.7978845608028654, 0.7978845608028654, 0.7978845608028654,
  0.044715, 0.044715, 0.044715, 0.044715
], 16);
const KI127: usize = memory.data<i32>([127, 127, 127, 127], 16);
const KINF: usize = memory.data<f32>([Infinity, Infinity, Infinity, Infinity], 16);
export const K_EXP_LO: i32 = 0;
export const K_EXP_HI: i32 = 1;
export const K_LOG2E: i32 = 2;
export const K_HALF: i32 = 3;
export const K_LN2_HI: i32 = 4;
export const K_LN2_LO: i32 = 5;
export const K_P0: i32 = 6;
export const K_P1: i32 = 7;
export const K_P2: i32 = 8;
export const K_P3: i32 = 9;
export const K_P4: i32 = 10;
export const K_P5: i32 = 11;
export const K_ONE: i32 = 12;
export const K_TWO: i32 = 13;
export const K_MINUS15: i32 = 14;
export const K_PLUS15: i32 = 15;
export const K_GELU_C: i32 = 16;
export const K_GELU_K: i32 = 17;

/** the f32x4 constant number i of the table above (K_ONE, K_TWO, …), as a load. */
// @ts-ignore: decorator
@inline
export function kf(i: i32): v128 {
  return v128.load(KF + (<usize>i << 4));
}

/** four lanes of +∞, as a load. */
// @ts-ignore: decorator
@inline
export function kinf(): v128 {
  return v128.load(KINF);
}

// e^x = 2^n · e^r on four lanes, r = x − n·ln2 (|r| ≤ ln2/2 for n = round(x·log2e), given as f32):
// ln2 in two parts, degree-6 polynomial for e^r (Cephes expf), 2^n through the exponent bits
// @ts-ignore: decorator
@inline
function exp2n(x: v128, n: v128): v128 {
  let r = fma(n, kf(K_LN2_HI), x);
  r = fma(n, kf(K_LN2_LO), r);
  let p = kf(K_P0);
  p = fma(p, r, kf(K_P1));
  p = fma(p, r, kf(K_P2));
  p = fma(p, r, kf(K_P3));
  p = fma(p, r, kf(K_P4));
  p = fma(p, r, kf(K_P5));
  p = fma(p, f32x4.mul(r, r), f32x4.add(r, kf(K_ONE)));
  // n is in -126..128 here: the relaxed truncation (one instruction) is exact
  const ni = ASC_FEATURE_RELAXED_SIMD ? i32x4.relaxed_trunc_f32x4_s(n) : i32x4.trunc_sat_f32x4_s(n);
  return f32x4.mul(p, i32x4.shl(i32x4.add(ni, v128.load(KI127)), 23));
}

// e^x on four lanes (Cephes expf); relative error ~2e-7.
// @ts-ignore: decorator
@inline
export function exp4(x0: v128): v128 {
  // pmin/pmax are single instructions on x86 (min/max carry NaN and -0 rules that cost seven)
  const lo = kf(K_EXP_LO);
  const x = f32x4.pmax(lo, f32x4.pmin(kf(K_EXP_HI), x0));
  const n = f32x4.floor(fma(x, kf(K_LOG2E), kf(K_HALF)));
  // below the clamp the true value is < 1.2e-38: return exactly 0 (so e^-inf = 0; NaN also gives 0)
  return v128.and(exp2n(x, n), f32x4.ge(x0, lo));
}

// e^x for x ≤ 0 known finite (rowStats' Σ exp(x − max)): exp4 without the upper clamp and the final
// mask (below −87.3 it returns ~1.2e-38 instead of 0: nothing in a sum that holds e^0 = 1), n by
// round-to-nearest instead of floor(· + 0.5); same polynomial, same ~2e-7 relative error.
// @ts-ignore: decorator
@inline
export function expNeg4(x0: v128): v128 {
  const x = f32x4.pmax(kf(K_EXP_LO), x0);
  return exp2n(x, f32x4.nearest(f32x4.mul(x, kf(K_LOG2E))));
}

/** sum of the four f32 lanes. */
// @ts-ignore: decorator
@inline
export function hsum(v: v128): f32 {
  const s = f32x4.add(v, i32x4.shuffle(v, v, 2, 3, 0, 1));
  return f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1);
}

/** max of the four f32 lanes. */
// @ts-ignore: decorator
@inline
export function hmax(v: v128): f32 {
  const s = f32x4.max(v, i32x4.shuffle(v, v, 2, 3, 0, 1));
  return max(f32x4.extract_lane(s, 0), f32x4.extract_lane(s, 1));
}

/** sum of the four i32 lanes. */
// @ts-ignore: decorator
@inline
export function hsumI(v: v128): i32 {
  const s = i32x4.add(v, i32x4.shuffle(v, v, 2, 3, 0, 1));
  return i32x4.extract_lane(s, 0) + i32x4.extract_lane(s, 1);
}

/** IEEE half (low 16 bits of h) to f32, subnormals, infinities and NaN included.
 * the exponent/mantissa bits are moved into f32 position and the value is rescaled by 2^112
 * (127 - 15), which also normalises f16 subnormals exactly. */
// @ts-ignore: decorator
@inline
export function f16ToF32(h: u32): f32 {
  const sign = (h & 0x8000) << 16;
  const em = h & 0x7fff;
  let bits: u32;
  if (em >= 0x7c00) {
    bits = (em << 13) | 0x7f800000;
  } else {
    bits = reinterpret<u32>(reinterpret<f32>(em << 13) * reinterpret<f32>(0x77800000));
  }
  return reinterpret<f32>(bits | sign);
}

/** f32 to IEEE half, round to nearest even (after F. Giesen's float_to_half_fast3_rtne,
 * public domain: a magic add aligns subnormal mantissas; normal numbers round by integer bias). */
export function f32ToF16(f: f32): u32 {
  let u = reinterpret<u32>(f);
  const sign = (u >> 16) & 0x8000;
  u &= 0x7fffffff;
  let o: u32;
  if (u >= 0x47800000) {
    // 65536 or more, inf, nan
    o = u > 0x7f800000 ? 0x7e00 : 0x7c00;
  } else if (u < 0x38800000) {
    // below 2^-14: f16 subnormal or zero; adding 0.5 rounds the mantissa at 2^-24
    o = reinterpret<u32>(reinterpret<f32>(u) + reinterpret<f32>(0x3f000000)) - 0x3f000000;
  } else {
    const odd = (u >> 13) & 1;
    u += 0xc8000fff + odd; // rebias exponent by (15 - 127) << 23, add rounding bias
    o = u >> 13;
  }
  return o | sign;
}

// static scratch (below the heap base, never handed to JS): attention accumulators (16384 floats:
// the query heads of one KV head together), running max/sum per head, scores of one tile; rope
// cos/sin tables. sized for head_dim <= 1024.
export const ACC_FLOATS: i32 = 16384;
export const SCRATCH_ACC: usize = memory.data(ACC_FLOATS * 4, 64);
export const SCRATCH_M: usize = memory.data(1024, 64);
export const SCRATCH_L: usize = memory.data(1024, 64);
export const SCRATCH_SCORES: usize = memory.data(256, 64);
export const SCRATCH_COS: usize = memory.data(2048, 64);
export const SCRATCH_SIN: usize = memory.data(2048, 64);
