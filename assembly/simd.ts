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

// e^x on four lanes (Cephes expf: x = n·ln2 + r, |r| <= ln2/2, degree-6 polynomial for e^r, then
// 2^n through the exponent bits); relative error ~2e-7.
// @ts-ignore: decorator
@inline
export function exp4(x0: v128): v128 {
  // pmin/pmax are single instructions on x86 (min/max carry NaN and -0 rules that cost seven)
  const x = f32x4.pmax(f32x4.splat(-87.33654), f32x4.pmin(f32x4.splat(88.37626), x0));
  const n = f32x4.floor(fma(x, f32x4.splat(1.44269504088896341), f32x4.splat(0.5)));
  let r = fma(n, f32x4.splat(-0.693359375), x);
  r = fma(n, f32x4.splat(2.12194440e-4), r);
  let p = f32x4.splat(1.9875691500e-4);
  p = fma(p, r, f32x4.splat(1.3981999507e-3));
  p = fma(p, r, f32x4.splat(8.3334519073e-3));
  p = fma(p, r, f32x4.splat(4.1665795894e-2));
  p = fma(p, r, f32x4.splat(1.6666665459e-1));
  p = fma(p, r, f32x4.splat(5.0000001201e-1));
  p = fma(p, f32x4.mul(r, r), f32x4.add(r, f32x4.splat(1)));
  // n is in -126..128 here: the relaxed truncation (one instruction) is exact
  const ni = ASC_FEATURE_RELAXED_SIMD ? i32x4.relaxed_trunc_f32x4_s(n) : i32x4.trunc_sat_f32x4_s(n);
  const pow2n = i32x4.shl(i32x4.add(ni, i32x4.splat(127)), 23);
  // below the clamp the true value is < 1.2e-38: return exactly 0 (so e^-inf = 0; NaN also gives 0)
  return v128.and(f32x4.mul(p, pow2n), f32x4.ge(x0, f32x4.splat(-87.33654)));
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
