// causal self-attention over a paged KV cache.
//
// per layer a K pool and a V pool of blocks; block b starts at pool + b·blockBytes with
// blockBytes = nKvHeads·blockSize·headDim·e and is laid out [kvHead][blockSize][headDim] of the
// KV element type: f32 (e = 4: kvWrite, attention, kvWriteRows, attentionRows) or f16 (e = 2: the
// *F16 exports), so one head's keys (and values) inside a block are contiguous. a sequence owns an
// i32 block table: position p lives in block table[p / blockSize], slot p % blockSize. sequences that share a
// prefix (beams) share its blocks.
//
// scores use an online softmax (running max m, running sum l, rescaled accumulator) over tiles
// of up to 32 keys: one pass over K and V, no buffer proportional to the context. within a tile:
// scores four keys at a time, a SIMD exp, then V accumulated 16 floats of head_dim at a time.
//
// f16 K/V: every kernel is one generic body specialised at compile time on the element type K (f32,
// or a 16-bit type for f16 bits; see fastF16/scaledK): sizeof<K>() is a constant, so the f16 branches
// cost nothing in the f32 kernels and the f32 ones are the same code as before. the write rounds each
// f32 to the nearest f16 (ties to even); finite values beyond ±65504 are clamped to ±65504 (they
// would round to ±∞), ±∞ stays ±∞ and NaN stays NaN. the exact read (h2f4) converts four f16 to f32;
// the cheap one (h2x4) gives the values × 2^-112, the factor folded into the queries and the softmax
// weights, for the same bits. everything after the read - f32 scores, online softmax, f32
// accumulation - is the f32 kernel's arithmetic, so f16 attention equals f32 attention over the
// f16-rounded K/V. a tile of 32 keys that several (row, head) pairs read (GQA groups, beams sharing a
// block, the queries of a prefill chunk) is converted once into a scratch tile (h2x4, or h2f4 when it
// holds ±inf/NaN); one that a single head reads is read in place (h2x4 unless tileSpecial finds
// ±inf/NaN in it).
import { ACC_FLOATS, exp4, f16ToF32, fma, hmax, hsum, SCRATCH_ACC, SCRATCH_L, SCRATCH_M, SCRATCH_SCORES } from './simd';

// f16 -> f32 constants, loaded from memory (V8 rebuilds a v128.const at each use inside a loop)
// prettier-ignore
const KH: usize = memory.data<i32>([
  0x7fff, 0x7fff, 0x7fff, 0x7fff, // exponent and mantissa bits of an f16
  0x8000, 0x8000, 0x8000, 0x8000, // sign bit of an f16
  0x77800000, 0x77800000, 0x77800000, 0x77800000, // 2^112 as f32: rebias the exponent 15 -> 127
  0x7bff, 0x7bff, 0x7bff, 0x7bff, // the largest finite |f16|: above it, ±inf or NaN
  0x7f800000, 0x7f800000, 0x7f800000, 0x7f800000, // f32 exponent all ones
  0x8fffe000, 0x8fffe000, 0x8fffe000, 0x8fffe000, // sign and shifted exponent/mantissa of a sign-extended f16 << 13
  0x5b800000, 0x5b800000, 0x5b800000, 0x5b800000, // 2^56 as f32
  0x7c007c00, 0x7c007c00, 0x7c007c00, 0x7c007c00, // f16 exponent bits, eight i16 lanes
], 16);
const F2P112: f32 = reinterpret<f32>(0x77800000); // 2^112
const F2P56: f32 = reinterpret<f32>(0x5b800000); // 2^56
// the query heads of the fast f16 path, scaled by 2^56 (two: tileStep2)
const SCRATCH_Q: usize = memory.data(8192, 64);
// one f16 tile (32 keys and values of up to 1024 dims) converted to f32, when several heads or rows read it
const SCRATCH_KT: usize = memory.data(32 * 1024 * 4, 64);
const SCRATCH_VT: usize = memory.data(32 * 1024 * 4, 64);

// @ts-ignore: decorator
@inline
function kh(i: i32): v128 {
  return v128.load(KH + (<usize>i << 4));
}

// four f16 (zero-extended to i32 lanes) as f32, exactly: the exponent and mantissa bits shifted into
// an f32's place and scaled by 2^112 (exact for normals and subnormals: a subnormal f16 lands on an
// f32 subnormal, scaled exactly), the sign ORed in, and exponent 31 (±inf, NaN) mapped to f32's 255
// @ts-ignore: decorator
@inline
function h2f4(h: v128): v128 {
  const em = v128.and(h, kh(0));
  const f = f32x4.mul(i32x4.shl(em, 13), kh(2));
  const special = v128.and(i32x4.gt_s(em, kh(3)), kh(4));
  return v128.or(v128.or(f, special), i32x4.shl(v128.and(h, kh(1)), 16));
}

// the fast f16 read, for tiles that hold no ±inf or NaN (tileSpecial): four sign-extended f16 shifted
// into an f32's place, the sign-extension bits cleared - the value × 2^-112, exactly (normals land
// on f32 normals, subnormals on f32 subnormals). the factor 2^112 is never applied: the queries
// come prescaled by 2^56 and the scores scaled by sc·2^56, the softmax weights by 2^112, so every
// product and sum is the exact power-of-two scaling of the one the exact read (h2f4) gives and
// rounds the same (the two paths agree bit for bit unless a term q·k falls below 2^-70, or |q|
// exceeds 2^72).
// @ts-ignore: decorator
@inline
function h2x4(hs: v128): v128 {
  return v128.and(i32x4.shl(hs, 13), kh(5));
}

// K/V element types of the kernels below: f32; u16 = f16, converted exactly (h2f4); i16 = f16 of a
// tile without ±inf/NaN, read by h2x4 (scaled by 2^-112); u32 = such a tile already converted by
// h2x4 into an f32 scratch tile (tileToScaled)
// @ts-ignore: decorator
@inline
function fastF16<K>(): bool {
  return sizeof<K>() == 2 && isSigned<K>();
}

// the K/V values are scaled by 2^-112 (i16, u32): the queries and weights carry the factor
// @ts-ignore: decorator
@inline
function scaledK<K>(): bool {
  return fastF16<K>() || (sizeof<K>() == 4 && isInteger<K>());
}

// four K/V elements at p as f32x4 (fastF16: × 2^-112)
// @ts-ignore: decorator
@inline
function ld4<K>(p: usize): v128 {
  if (fastF16<K>()) return h2x4(i32x4.extend_low_i16x8_s(v128.load64_zero(p)));
  if (sizeof<K>() == 2) return h2f4(i32x4.extend_low_i16x8_u(v128.load64_zero(p)));
  return v128.load(p);
}

// one K/V element at p as f32 (fastF16: × 2^-112)
// @ts-ignore: decorator
@inline
function ld1<K>(p: usize): f32 {
  if (fastF16<K>()) return reinterpret<f32>((<i32>load<i16>(p) << 13) & 0x8fffe000);
  if (sizeof<K>() == 2) return f16ToF32(<u32>load<u16>(p));
  return load<f32>(p);
}

// eight f16 at p as two f32x4 (low four in lo, high four in hi)
// @ts-ignore: decorator
@inline
function ld8lo<K>(h: v128): v128 {
  if (fastF16<K>()) return h2x4(i32x4.extend_low_i16x8_s(h));
  return h2f4(i32x4.extend_low_i16x8_u(h));
}
// @ts-ignore: decorator
@inline
function ld8hi<K>(h: v128): v128 {
  if (fastF16<K>()) return h2x4(i32x4.extend_high_i16x8_s(h));
  return h2f4(i32x4.extend_high_i16x8_u(h));
}

// n f16 at src to f32 at dst, exactly (h2f4)
// @ts-ignore: decorator
@inline
function tileToF32(dst: usize, src: usize, n: i32): void {
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const h = v128.load(src + (<usize>i << 1));
    const d = dst + (<usize>i << 2);
    v128.store(d, h2f4(i32x4.extend_low_i16x8_u(h)));
    v128.store(d, h2f4(i32x4.extend_high_i16x8_u(h)), 16);
  }
  for (; i < n; i++) store<f32>(dst + (<usize>i << 2), f16ToF32(<u32>load<u16>(src + (<usize>i << 1))));
}

// n f16 at src to f32 × 2^-112 at dst (h2x4); false when one of them is ±inf or NaN (then dst is
// not usable: tileToF32 instead)
// @ts-ignore: decorator
@inline
function tileToScaled(dst: usize, src: usize, n: i32): bool {
  const e = kh(7);
  let a = i16x8.splat(0);
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const h = v128.load(src + (<usize>i << 1));
    a = i16x8.max_u(a, v128.and(h, e));
    const d = dst + (<usize>i << 2);
    v128.store(d, h2x4(i32x4.extend_low_i16x8_s(h)));
    v128.store(d, h2x4(i32x4.extend_high_i16x8_s(h)), 16);
  }
  let ok = !v128.any_true(i16x8.eq(a, e));
  for (; i < n; i++) {
    const h = <i32>load<i16>(src + (<usize>i << 1));
    if ((h & 0x7c00) == 0x7c00) ok = false;
    store<f32>(dst + (<usize>i << 2), reinterpret<f32>((h << 13) & 0x8fffe000));
  }
  return ok;
}

// f16 tile shared by several (row, head) pairs into the scratch tiles: scaled (mode 3) unless it
// holds ±inf or NaN, then exact (mode 2)
// @ts-ignore: decorator
@inline
function tileToScratch(kp: usize, vp: usize, n: i32): i32 {
  if (tileToScaled(SCRATCH_KT, kp, n) && tileToScaled(SCRATCH_VT, vp, n)) return 3;
  tileToF32(SCRATCH_KT, kp, n);
  tileToF32(SCRATCH_VT, vp, n);
  return 2;
}

// true when the n f16 at kp or the n at vp hold an exponent of 31 (±inf, NaN): the tile then takes
// the exact read
// @ts-ignore: decorator
@inline
function tileSpecial(kp: usize, vp: usize, n: i32): bool {
  const e = kh(7);
  let a = i16x8.splat(0);
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const o = <usize>i << 1;
    a = i16x8.max_u(a, v128.and(v128.load(kp + o), e));
    a = i16x8.max_u(a, v128.and(v128.load(vp + o), e));
  }
  let special = v128.any_true(i16x8.eq(a, e));
  for (; i < n; i++) {
    const o = <usize>i << 1;
    if ((<u32>load<u16>(kp + o) & 0x7c00) == 0x7c00 || (<u32>load<u16>(vp + o) & 0x7c00) == 0x7c00) special = true;
  }
  return special;
}

/** the f16 bits kvWriteF16 stores for x: nearest, ties to even; finite |x| > 65504 clamped to
 * 65504 (sign kept); ±inf kept; NaN a quiet NaN (sign and top mantissa bits kept). */
// @ts-ignore: decorator
@inline
function kvF16(x: f32): u32 {
  const u = reinterpret<u32>(x);
  const sign = (u >> 16) & 0x8000;
  const a = u & 0x7fffffff;
  let o: u32;
  if (a >= 0x7f800000) {
    o = a == 0x7f800000 ? 0x7c00 : 0x7e00 | ((a >> 13) & 0x3ff);
  } else if (a > 0x477fe000) {
    o = 0x7bff; // beyond 65504: clamp (65504 < |x| < 65520 rounds to 65504 anyway)
  } else if (a < 0x38800000) {
    // below 2^-14: subnormal f16 = |x|·2^24 rounded to an integer (exact scaling, nearest-even)
    o = <u32>nearest(reinterpret<f32>(a) * reinterpret<f32>(0x4b800000));
  } else {
    // rebias the exponent, round the 13 dropped bits to nearest even (a carry into the exponent is right)
    const r = a - 0x38000000;
    o = (r + 0xfff + ((r >> 13) & 1)) >> 13;
  }
  return o | sign;
}

// f32 -> f16 constants of f2h4
// prettier-ignore
const KW: usize = memory.data<i32>([
  0x8000, 0x8000, 0x8000, 0x8000, // 0: f16 sign
  0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff, // 1: |x|
  0x38000000, 0x38000000, 0x38000000, 0x38000000, // 2: exponent rebias 127 -> 15
  0xfff, 0xfff, 0xfff, 0xfff, // 3: rounding bias below the kept mantissa bit
  1, 1, 1, 1, // 4
  0x4b800000, 0x4b800000, 0x4b800000, 0x4b800000, // 5: 2^24 as f32
  0x38800000, 0x38800000, 0x38800000, 0x38800000, // 6: 2^-14, the smallest normal f16
  0x7bff, 0x7bff, 0x7bff, 0x7bff, // 7: 65504
  0x477fe000, 0x477fe000, 0x477fe000, 0x477fe000, // 8: 65504 as f32
  0x7e00, 0x7e00, 0x7e00, 0x7e00, // 9: quiet NaN
  0x3ff, 0x3ff, 0x3ff, 0x3ff, // 10: f16 mantissa
  0x7c00, 0x7c00, 0x7c00, 0x7c00, // 11: f16 infinity
  0x7f800000, 0x7f800000, 0x7f800000, 0x7f800000, // 12: f32 infinity
  0x7f7fffff, 0x7f7fffff, 0x7f7fffff, 0x7f7fffff, // 13: the largest finite f32
], 16);

// @ts-ignore: decorator
@inline
function kw(i: i32): v128 {
  return v128.load(KW + (<usize>i << 4));
}

// kvF16 on four lanes (i32 lanes of f16 bits): every case computed, the right one selected
// @ts-ignore: decorator
@inline
function f2h4(x: v128): v128 {
  const sign = v128.and(i32x4.shr_u(x, 16), kw(0));
  const a = v128.and(x, kw(1));
  // normal: rebias, round the 13 dropped bits to nearest even
  const r = i32x4.sub(a, kw(2));
  const nrm = i32x4.shr_u(i32x4.add(i32x4.add(r, kw(3)), v128.and(i32x4.shr_u(r, 13), kw(4))), 13);
  // subnormal: |x|·2^24 rounded to an integer (exact scaling, nearest even)
  const sub = i32x4.trunc_sat_f32x4_u(f32x4.nearest(f32x4.mul(a, kw(5))));
  let o = v128.bitselect(sub, nrm, i32x4.lt_s(a, kw(6)));
  o = v128.bitselect(kw(7), o, i32x4.gt_s(a, kw(8))); // finite beyond 65504: clamp
  const nan = v128.or(kw(9), v128.and(i32x4.shr_u(a, 13), kw(10)));
  const special = v128.bitselect(kw(11), nan, i32x4.eq(a, kw(12)));
  o = v128.bitselect(special, o, i32x4.gt_s(a, kw(13))); // ±inf, NaN
  return v128.or(o, sign);
}

// copy n f32 at src to n elements of K at dst
// @ts-ignore: decorator
@inline
function putRow<K>(dst: usize, src: usize, n: i32): void {
  if (sizeof<K>() == 2) {
    let i = 0;
    for (; i + 4 <= n; i += 4) {
      const h = f2h4(v128.load(src + (<usize>i << 2)));
      v128.store64_lane(dst + (<usize>i << 1), i16x8.narrow_i32x4_u(h, h), 0);
    }
    for (; i < n; i++) store<u16>(dst + (<usize>i << 1), <u16>kvF16(load<f32>(src + (<usize>i << 2))));
  } else {
    memory.copy(dst, src, <usize>n << 2);
  }
}

// @ts-ignore: decorator
@inline
function kvWriteT<K>(
  kPool: usize,
  vPool: usize,
  blockTable: usize,
  pos0: i32,
  n: i32,
  k: usize,
  v: usize,
  nKvHeads: i32,
  headDim: i32,
  blockSize: i32,
): void {
  const hdBytes = <usize>headDim << 2;
  const kvBytes = <usize>headDim * sizeof<K>();
  const blockBytes = <usize>nKvHeads * <usize>blockSize * kvBytes;
  const rowBytes = <usize>nKvHeads * hdBytes;
  for (let i = 0; i < n; i++) {
    const pos = pos0 + i;
    const blk = <usize>load<i32>(blockTable + (<usize>(pos / blockSize) << 2));
    const slot = <usize>(pos % blockSize);
    for (let h = 0; h < nKvHeads; h++) {
      const off = blk * blockBytes + (<usize>h * <usize>blockSize + slot) * kvBytes;
      putRow<K>(kPool + off, k + <usize>i * rowBytes + <usize>h * hdBytes, headDim);
      putRow<K>(vPool + off, v + <usize>i * rowBytes + <usize>h * hdBytes, headDim);
    }
  }
}

/** store n rows of keys and values (rows [n][nKvHeads·headDim] f32) at positions pos0.. of a sequence (f32 pools). */
export function kvWrite(
  kPool: usize,
  vPool: usize,
  blockTable: usize,
  pos0: i32,
  n: i32,
  k: usize,
  v: usize,
  nKvHeads: i32,
  headDim: i32,
  blockSize: i32,
): void {
  kvWriteT<f32>(kPool, vPool, blockTable, pos0, n, k, v, nKvHeads, headDim, blockSize);
}

/** kvWrite into f16 pools: each f32 rounded to the nearest f16 (ties to even), finite values beyond
 * ±65504 clamped to ±65504, ±inf and NaN kept. */
export function kvWriteF16(
  kPool: usize,
  vPool: usize,
  blockTable: usize,
  pos0: i32,
  n: i32,
  k: usize,
  v: usize,
  nKvHeads: i32,
  headDim: i32,
  blockSize: i32,
): void {
  kvWriteT<u16>(kPool, vPool, blockTable, pos0, n, k, v, nKvHeads, headDim, blockSize);
}

// four scores q·k_j (j = 0..3, keys hdBytes apart) as one vector
// @ts-ignore: decorator
@inline
function dot4<K>(q: usize, k: usize, hdBytes: usize, n: i32): v128 {
  let s0 = f32x4.splat(0);
  let s1 = f32x4.splat(0);
  let s2 = f32x4.splat(0);
  let s3 = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const qv = v128.load(q + (<usize>i << 2));
    const o = <usize>i * sizeof<K>();
    s0 = fma(qv, ld4<K>(k + o), s0);
    s1 = fma(qv, ld4<K>(k + hdBytes + o), s1);
    s2 = fma(qv, ld4<K>(k + 2 * hdBytes + o), s2);
    s3 = fma(qv, ld4<K>(k + 3 * hdBytes + o), s3);
  }
  // transpose-add: [Σs0, Σs1, Σs2, Σs3]
  const t0 = f32x4.add(i32x4.shuffle(s0, s1, 0, 4, 1, 5), i32x4.shuffle(s0, s1, 2, 6, 3, 7));
  const t1 = f32x4.add(i32x4.shuffle(s2, s3, 0, 4, 1, 5), i32x4.shuffle(s2, s3, 2, 6, 3, 7));
  let r = f32x4.add(i32x4.shuffle(t0, t1, 0, 1, 4, 5), i32x4.shuffle(t0, t1, 2, 3, 6, 7));
  for (; i < n; i++) {
    const qs = load<f32>(q + (<usize>i << 2));
    const o = <usize>i * sizeof<K>();
    r = f32x4.add(
      r,
      f32x4.mul(
        f32x4.splat(qs),
        f32x4(ld1<K>(k + o), ld1<K>(k + hdBytes + o), ld1<K>(k + 2 * hdBytes + o), ld1<K>(k + 3 * hdBytes + o)),
      ),
    );
  }
  return r;
}

// q·k over headDim
// @ts-ignore: decorator
@inline
function dot<K>(a: usize, b: usize, n: i32): f32 {
  let s0 = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) s0 = fma(v128.load(a + (<usize>i << 2)), ld4<K>(b + <usize>i * sizeof<K>()), s0);
  let s = hsum(s0);
  for (; i < n; i++) s += load<f32>(a + (<usize>i << 2)) * ld1<K>(b + <usize>i * sizeof<K>());
  return s;
}

// acc = acc·c + Σ_j p_j·v_j over a tile of tn values (p at sco, values hdBytes apart), 16 floats at a time
// @ts-ignore: decorator
@inline
function accumulate<K>(acc: usize, c: f32, sco: usize, v: usize, hdBytes: usize, tn: i32, n: i32): void {
  const vc = f32x4.splat(c);
  let i = 0;
  for (; i + 16 <= n; i += 16) {
    const o = <usize>i << 2;
    let a0 = f32x4.mul(v128.load(acc + o), vc);
    let a1 = f32x4.mul(v128.load(acc + o, 16), vc);
    let a2 = f32x4.mul(v128.load(acc + o, 32), vc);
    let a3 = f32x4.mul(v128.load(acc + o, 48), vc);
    let vp = v + <usize>i * sizeof<K>();
    for (let j = 0; j < tn; j++) {
      let p = v128.load32_splat(sco + (<usize>j << 2));
      if (scaledK<K>()) p = f32x4.mul(p, kh(2)); // the weight × 2^112, the value × 2^-112
      if (sizeof<K>() == 2) {
        // 16 f16 in two loads, widened half by half
        const lo = v128.load(vp);
        const hi = v128.load(vp, 16);
        a0 = fma(p, ld8lo<K>(lo), a0);
        a1 = fma(p, ld8hi<K>(lo), a1);
        a2 = fma(p, ld8lo<K>(hi), a2);
        a3 = fma(p, ld8hi<K>(hi), a3);
      } else {
        a0 = fma(p, v128.load(vp), a0);
        a1 = fma(p, v128.load(vp, 16), a1);
        a2 = fma(p, v128.load(vp, 32), a2);
        a3 = fma(p, v128.load(vp, 48), a3);
      }
      vp += hdBytes;
    }
    v128.store(acc + o, a0);
    v128.store(acc + o, a1, 16);
    v128.store(acc + o, a2, 32);
    v128.store(acc + o, a3, 48);
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    let a = load<f32>(acc + o) * c;
    let vp = v + <usize>i * sizeof<K>();
    for (let j = 0; j < tn; j++) {
      let p = load<f32>(sco + (<usize>j << 2));
      if (scaledK<K>()) p *= F2P112;
      a += p * ld1<K>(vp);
      vp += hdBytes;
    }
    store<f32>(acc + o, a);
  }
}

// the scores of one tile of tn keys (kp: its first key, keys hdBytes apart) for the query head qp,
// scaled, into sco (four keys at a time, then one by one); returns their max
// @ts-ignore: decorator
@inline
function scoresTile<K>(qp: usize, kp: usize, tn: i32, sco: usize, hdBytes: usize, headDim: i32, sc: f32, vsc: v128): f32 {
  let j = 0;
  let tm = f32x4.splat(-Infinity);
  for (; j + 4 <= tn; j += 4) {
    const s4 = f32x4.mul(dot4<K>(qp, kp + <usize>j * hdBytes, hdBytes, headDim), vsc);
    v128.store(sco + (<usize>j << 2), s4);
    tm = f32x4.pmax(tm, s4);
  }
  let tmax = hmax(tm);
  for (; j < tn; j++) {
    const s = dot<K>(qp, kp + <usize>j * hdBytes, headDim) * sc;
    store<f32>(sco + (<usize>j << 2), s);
    tmax = max(tmax, s);
  }
  return tmax;
}

// the online-softmax step of one head over a tile: a new running max (f32 at mp) rescales what was
// accumulated by c = e^(m_old - m_new) (returned); the scores at sco become p_j = e^(s_j - m) and the
// running sum (f32 at lp) becomes l·c + Σp
// @ts-ignore: decorator
@inline
function softmaxTile(sco: usize, tn: i32, mp: usize, lp: usize, tmax: f32): f32 {
  let m = load<f32>(mp);
  let l = load<f32>(lp);
  let c: f32 = 1;
  if (tmax > m) {
    c = l != 0 ? Mathf.exp(m - tmax) : 0;
    l *= c;
    m = tmax;
  }
  const vm = f32x4.splat(m);
  let ls = f32x4.splat(0);
  let j = 0;
  for (; j + 4 <= tn; j += 4) {
    const p = exp4(f32x4.sub(v128.load(sco + (<usize>j << 2)), vm));
    v128.store(sco + (<usize>j << 2), p);
    ls = f32x4.add(ls, p);
  }
  l += hsum(ls);
  for (; j < tn; j++) {
    const p = Mathf.exp(load<f32>(sco + (<usize>j << 2)) - m);
    store<f32>(sco + (<usize>j << 2), p);
    l += p;
  }
  store<f32>(mp, m);
  store<f32>(lp, l);
  return c;
}

// one tile of tn keys (kp, vp: its first key and value, hdBytes apart) for one query head qp: the
// tile's scores, the online-softmax update of the head's running max and sum (f32 at mp, lp), and
// its accumulator (headDim floats at acc) rescaled and accumulated. attention and attentionRows run
// every tile through this function or tileStep2 (the same operations for two heads at once), so a
// row gets the same bits from either.
// @ts-ignore: decorator
@inline
function tileStep<K>(
  qp: usize,
  kp: usize,
  vp: usize,
  tn: i32,
  mp: usize,
  lp: usize,
  acc: usize,
  hdBytes: usize,
  headDim: i32,
  sc: f32,
  vsc: v128,
): void {
  const sco = SCRATCH_SCORES;
  let q = qp;
  let s = sc;
  let vs = vsc;
  if (scaledK<K>()) {
    q = SCRATCH_Q;
    scaleQ(q, qp, headDim);
    s = sc * F2P56;
    vs = f32x4.mul(vsc, kh(6));
  }
  const tmax = scoresTile<K>(q, kp, tn, sco, hdBytes, headDim, s, vs);
  const c = softmaxTile(sco, tn, mp, lp, tmax);
  accumulate<K>(acc, c, sco, vp, hdBytes, tn, headDim);
}

// dst[d] = q[d]·2^56 over headDim floats (the fast f16 path's query)
// @ts-ignore: decorator
@inline
function scaleQ(dst: usize, q: usize, headDim: i32): void {
  const f = kh(6);
  let d = 0;
  for (; d + 4 <= headDim; d += 4) v128.store(dst + (<usize>d << 2), f32x4.mul(v128.load(q + (<usize>d << 2)), f));
  for (; d < headDim; d++) store<f32>(dst + (<usize>d << 2), load<f32>(q + (<usize>d << 2)) * F2P56);
}

// dot4 for two queries over the same four keys (each key vector loaded once), scaled by vsc and
// stored at dA, dB; per query the same operations in the same order as dot4
// @ts-ignore: decorator
@inline
function dot4x2<K>(qa: usize, qb: usize, k: usize, hdBytes: usize, n: i32, dA: usize, dB: usize, vsc: v128): void {
  let a0 = f32x4.splat(0);
  let a1 = f32x4.splat(0);
  let a2 = f32x4.splat(0);
  let a3 = f32x4.splat(0);
  let b0 = f32x4.splat(0);
  let b1 = f32x4.splat(0);
  let b2 = f32x4.splat(0);
  let b3 = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const qo = <usize>i << 2;
    const qva = v128.load(qa + qo);
    const qvb = v128.load(qb + qo);
    const o = <usize>i * sizeof<K>();
    const k0 = ld4<K>(k + o);
    a0 = fma(qva, k0, a0);
    b0 = fma(qvb, k0, b0);
    const k1 = ld4<K>(k + hdBytes + o);
    a1 = fma(qva, k1, a1);
    b1 = fma(qvb, k1, b1);
    const k2 = ld4<K>(k + 2 * hdBytes + o);
    a2 = fma(qva, k2, a2);
    b2 = fma(qvb, k2, b2);
    const k3 = ld4<K>(k + 3 * hdBytes + o);
    a3 = fma(qva, k3, a3);
    b3 = fma(qvb, k3, b3);
  }
  const ta0 = f32x4.add(i32x4.shuffle(a0, a1, 0, 4, 1, 5), i32x4.shuffle(a0, a1, 2, 6, 3, 7));
  const ta1 = f32x4.add(i32x4.shuffle(a2, a3, 0, 4, 1, 5), i32x4.shuffle(a2, a3, 2, 6, 3, 7));
  let ra = f32x4.add(i32x4.shuffle(ta0, ta1, 0, 1, 4, 5), i32x4.shuffle(ta0, ta1, 2, 3, 6, 7));
  const tb0 = f32x4.add(i32x4.shuffle(b0, b1, 0, 4, 1, 5), i32x4.shuffle(b0, b1, 2, 6, 3, 7));
  const tb1 = f32x4.add(i32x4.shuffle(b2, b3, 0, 4, 1, 5), i32x4.shuffle(b2, b3, 2, 6, 3, 7));
  let rb = f32x4.add(i32x4.shuffle(tb0, tb1, 0, 1, 4, 5), i32x4.shuffle(tb0, tb1, 2, 3, 6, 7));
  for (; i < n; i++) {
    const o = <usize>i * sizeof<K>();
    const qo = <usize>i << 2;
    const kv = f32x4(ld1<K>(k + o), ld1<K>(k + hdBytes + o), ld1<K>(k + 2 * hdBytes + o), ld1<K>(k + 3 * hdBytes + o));
    ra = f32x4.add(ra, f32x4.mul(f32x4.splat(load<f32>(qa + qo)), kv));
    rb = f32x4.add(rb, f32x4.mul(f32x4.splat(load<f32>(qb + qo)), kv));
  }
  v128.store(dA, f32x4.mul(ra, vsc));
  v128.store(dB, f32x4.mul(rb, vsc));
}

// accumulate for two heads over the same tile of values (each value vector loaded once); per head
// the same operations in the same order as accumulate
// @ts-ignore: decorator
@inline
function accumulate2<K>(
  accA: usize,
  cA: f32,
  scoA: usize,
  accB: usize,
  cB: f32,
  scoB: usize,
  v: usize,
  hdBytes: usize,
  tn: i32,
  n: i32,
): void {
  const vcA = f32x4.splat(cA);
  const vcB = f32x4.splat(cB);
  let i = 0;
  for (; i + 16 <= n; i += 16) {
    const o = <usize>i << 2;
    let a0 = f32x4.mul(v128.load(accA + o), vcA);
    let a1 = f32x4.mul(v128.load(accA + o, 16), vcA);
    let a2 = f32x4.mul(v128.load(accA + o, 32), vcA);
    let a3 = f32x4.mul(v128.load(accA + o, 48), vcA);
    let b0 = f32x4.mul(v128.load(accB + o), vcB);
    let b1 = f32x4.mul(v128.load(accB + o, 16), vcB);
    let b2 = f32x4.mul(v128.load(accB + o, 32), vcB);
    let b3 = f32x4.mul(v128.load(accB + o, 48), vcB);
    let vp = v + <usize>i * sizeof<K>();
    for (let j = 0; j < tn; j++) {
      let pa = v128.load32_splat(scoA + (<usize>j << 2));
      let pb = v128.load32_splat(scoB + (<usize>j << 2));
      if (scaledK<K>()) {
        pa = f32x4.mul(pa, kh(2));
        pb = f32x4.mul(pb, kh(2));
      }
      let v0: v128, v1: v128, v2: v128, v3: v128;
      if (sizeof<K>() == 2) {
        const lo = v128.load(vp);
        const hi = v128.load(vp, 16);
        v0 = ld8lo<K>(lo);
        v1 = ld8hi<K>(lo);
        v2 = ld8lo<K>(hi);
        v3 = ld8hi<K>(hi);
      } else {
        v0 = v128.load(vp);
        v1 = v128.load(vp, 16);
        v2 = v128.load(vp, 32);
        v3 = v128.load(vp, 48);
      }
      a0 = fma(pa, v0, a0);
      b0 = fma(pb, v0, b0);
      a1 = fma(pa, v1, a1);
      b1 = fma(pb, v1, b1);
      a2 = fma(pa, v2, a2);
      b2 = fma(pb, v2, b2);
      a3 = fma(pa, v3, a3);
      b3 = fma(pb, v3, b3);
      vp += hdBytes;
    }
    v128.store(accA + o, a0);
    v128.store(accA + o, a1, 16);
    v128.store(accA + o, a2, 32);
    v128.store(accA + o, a3, 48);
    v128.store(accB + o, b0);
    v128.store(accB + o, b1, 16);
    v128.store(accB + o, b2, 32);
    v128.store(accB + o, b3, 48);
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    let a = load<f32>(accA + o) * cA;
    let b = load<f32>(accB + o) * cB;
    let vp = v + <usize>i * sizeof<K>();
    for (let j = 0; j < tn; j++) {
      const x = ld1<K>(vp);
      let pa = load<f32>(scoA + (<usize>j << 2));
      let pb = load<f32>(scoB + (<usize>j << 2));
      if (scaledK<K>()) {
        pa *= F2P112;
        pb *= F2P112;
      }
      a += pa * x;
      b += pb * x;
      vp += hdBytes;
    }
    store<f32>(accA + o, a);
    store<f32>(accB + o, b);
  }
}

// tileStep for two query heads (qa, qb; state at mA/lA/accA and mB/lB/accB) over the same tile of
// tn keys: K and V read once for both
// @ts-ignore: decorator
@inline
function tileStep2<K>(
  qa0: usize,
  qb0: usize,
  kp: usize,
  vp: usize,
  tn: i32,
  mA: usize,
  lA: usize,
  accA: usize,
  mB: usize,
  lB: usize,
  accB: usize,
  hdBytes: usize,
  headDim: i32,
  sc0: f32,
  vsc0: v128,
): void {
  const scoA = SCRATCH_SCORES;
  const scoB = SCRATCH_SCORES + 128;
  let qa = qa0;
  let qb = qb0;
  let sc = sc0;
  let vsc = vsc0;
  if (scaledK<K>()) {
    qa = SCRATCH_Q;
    qb = SCRATCH_Q + 4096;
    scaleQ(qa, qa0, headDim);
    scaleQ(qb, qb0, headDim);
    sc = sc0 * F2P56;
    vsc = f32x4.mul(vsc0, kh(6));
  }
  let j = 0;
  let tmA = f32x4.splat(-Infinity);
  let tmB = f32x4.splat(-Infinity);
  for (; j + 4 <= tn; j += 4) {
    const o = <usize>j << 2;
    dot4x2<K>(qa, qb, kp + <usize>j * hdBytes, hdBytes, headDim, scoA + o, scoB + o, vsc);
    tmA = f32x4.pmax(tmA, v128.load(scoA + o));
    tmB = f32x4.pmax(tmB, v128.load(scoB + o));
  }
  let tmaxA = hmax(tmA);
  let tmaxB = hmax(tmB);
  for (; j < tn; j++) {
    const sA = dot<K>(qa, kp + <usize>j * hdBytes, headDim) * sc;
    const sB = dot<K>(qb, kp + <usize>j * hdBytes, headDim) * sc;
    store<f32>(scoA + (<usize>j << 2), sA);
    store<f32>(scoB + (<usize>j << 2), sB);
    tmaxA = max(tmaxA, sA);
    tmaxB = max(tmaxB, sB);
  }
  const cA = softmaxTile(scoA, tn, mA, lA, tmaxA);
  const cB = softmaxTile(scoB, tn, mB, lB, tmaxB);
  accumulate2<K>(accA, cA, scoA, accB, cB, scoB, vp, hdBytes, tn, headDim);
}

// op[d] = acc[d] / l over headDim floats (op may be acc)
// @ts-ignore: decorator
@inline
function finish(op: usize, acc: usize, l: f32, headDim: i32): void {
  const inv: f32 = <f32>1 / l;
  const vi = f32x4.splat(inv);
  let d = 0;
  for (; d + 4 <= headDim; d += 4) v128.store(op + (<usize>d << 2), f32x4.mul(v128.load(acc + (<usize>d << 2)), vi));
  for (; d < headDim; d++) store<f32>(op + (<usize>d << 2), load<f32>(acc + (<usize>d << 2)) * inv);
}

// @ts-ignore: decorator
@inline
function attentionT<K>(
  out: usize,
  q: usize,
  nQ: i32,
  kPool: usize,
  vPool: usize,
  blockTable: usize,
  pos0: i32,
  nHeads: i32,
  nKvHeads: i32,
  headDim: i32,
  blockSize: i32,
): void {
  if (sizeof<K>() == 2 && nQ >= 2) {
    attentionPrefillF16(out, q, nQ, kPool, vPool, blockTable, pos0, nHeads, nKvHeads, headDim, blockSize);
    return;
  }
  const hdBytes = <usize>headDim << 2;
  const kvBytes = <usize>headDim * sizeof<K>();
  const blockBytes = <usize>nKvHeads * <usize>blockSize * kvBytes;
  const group = nHeads / nKvHeads;
  const sc: f32 = <f32>1 / Mathf.sqrt(<f32>headDim);
  const vsc = f32x4.splat(sc);
  const sco = SCRATCH_SCORES;
  // the query heads that share a KV head go together (up to G at a time): each K/V tile is read
  // from memory once and from L1 for the other heads of the group
  const G = min(min(group, ACC_FLOATS / headDim), 256);
  // head-major: one KV head's keys and values stay in cache across the queries of a prefill
  for (let kvh = 0; kvh < nKvHeads; kvh++) {
    for (let h0 = 0; h0 < group; h0 += G) {
      for (let i = 0; i < nQ; i++) {
        const T = pos0 + i + 1;
        const gn = min(G, group - h0);
        const hFirst = kvh * group + h0;
        memory.fill(SCRATCH_ACC, 0, <usize>gn * hdBytes);
        for (let g = 0; g < gn; g++) {
          store<f32>(SCRATCH_M + (<usize>g << 2), -Infinity);
          store<f32>(SCRATCH_L + (<usize>g << 2), 0);
        }
        for (let t0 = 0; t0 < T; t0 += blockSize) {
          const blk = <usize>load<i32>(blockTable + (<usize>(t0 / blockSize) << 2));
          const headOff = blk * blockBytes + <usize>kvh * <usize>blockSize * kvBytes;
          const cnt = min(blockSize, T - t0);
          for (let j0 = 0; j0 < cnt; j0 += 32) {
            const tn = min(32, cnt - j0);
            const kp = kPool + headOff + <usize>j0 * kvBytes;
            const vp = vPool + headOff + <usize>j0 * kvBytes;
            // f16, several heads on the tile: convert it to f32 once (mode 2); one head: the fast
            // read (mode 1) unless the tile holds ±inf or NaN (mode 0, the exact read)
            let mode = 0;
            if (sizeof<K>() == 2) {
              if (gn >= 2) mode = tileToScratch(kp, vp, tn * headDim);
              else if (!tileSpecial(kp, vp, tn * headDim)) mode = 1;
            }
            for (let g = 0; g < gn; g++) {
              const qp = q + (<usize>i * <usize>nHeads + <usize>(hFirst + g)) * hdBytes;
              const mp = SCRATCH_M + (<usize>g << 2);
              const lp = SCRATCH_L + (<usize>g << 2);
              const ap = SCRATCH_ACC + <usize>g * hdBytes;
              if (mode == 1) tileStep<i16>(qp, kp, vp, tn, mp, lp, ap, kvBytes, headDim, sc, vsc);
              else if (mode == 3) tileStep<u32>(qp, SCRATCH_KT, SCRATCH_VT, tn, mp, lp, ap, hdBytes, headDim, sc, vsc);
              else if (mode == 2) tileStep<f32>(qp, SCRATCH_KT, SCRATCH_VT, tn, mp, lp, ap, hdBytes, headDim, sc, vsc);
              else tileStep<K>(qp, kp, vp, tn, mp, lp, ap, kvBytes, headDim, sc, vsc);
            }
          }
        }
        for (let g = 0; g < gn; g++) {
          const op = out + (<usize>i * <usize>nHeads + <usize>(hFirst + g)) * hdBytes;
          finish(op, SCRATCH_ACC + <usize>g * hdBytes, load<f32>(SCRATCH_L + (<usize>g << 2)), headDim);
        }
      }
    }
  }
}

// attentionF16 for several queries (a prefill chunk): tiles outermost, so each f16 tile is converted
// (tileToScratch) once for a chunk of up to QC queries × gn heads (their running max, sum and accumulator kept
// side by side), then read by the f32 code for each. every (query, head) still sees the same tiles in
// the same order with the same lengths as in attentionT, so the result is the same, bit for bit.
function attentionPrefillF16(
  out: usize,
  q: usize,
  nQ: i32,
  kPool: usize,
  vPool: usize,
  blockTable: usize,
  pos0: i32,
  nHeads: i32,
  nKvHeads: i32,
  headDim: i32,
  blockSize: i32,
): void {
  const hdBytes = <usize>headDim << 2;
  const kvBytes = <usize>headDim << 1;
  const blockBytes = <usize>nKvHeads * <usize>blockSize * kvBytes;
  const group = nHeads / nKvHeads;
  const sc: f32 = <f32>1 / Mathf.sqrt(<f32>headDim);
  const vsc = f32x4.splat(sc);
  const G = min(min(group, ACC_FLOATS / headDim), 256);
  for (let kvh = 0; kvh < nKvHeads; kvh++) {
    for (let h0 = 0; h0 < group; h0 += G) {
      const gn = min(G, group - h0);
      const hFirst = kvh * group + h0;
      // queries per chunk: state for QC·gn (query, head) pairs (256 running maxima and sums, ACC_FLOATS)
      const QC = max(1, min(256 / gn, ACC_FLOATS / (gn * headDim)));
      for (let i0 = 0; i0 < nQ; i0 += QC) {
        const qn = min(QC, nQ - i0);
        const pairs = qn * gn;
        memory.fill(SCRATCH_ACC, 0, <usize>pairs * hdBytes);
        for (let s = 0; s < pairs; s++) {
          store<f32>(SCRATCH_M + (<usize>s << 2), -Infinity);
          store<f32>(SCRATCH_L + (<usize>s << 2), 0);
        }
        const Tmax = pos0 + i0 + qn; // the chunk's last query sees positions 0..Tmax-1
        for (let t0 = 0; t0 < Tmax; t0 += blockSize) {
          const blk = <usize>load<i32>(blockTable + (<usize>(t0 / blockSize) << 2));
          const headOff = blk * blockBytes + <usize>kvh * <usize>blockSize * kvBytes;
          const cntMax = min(blockSize, Tmax - t0);
          for (let j0 = 0; j0 < cntMax; j0 += 32) {
            const n = min(32, cntMax - j0) * headDim;
            const mode = tileToScratch(kPool + headOff + <usize>j0 * kvBytes, vPool + headOff + <usize>j0 * kvBytes, n);
            for (let qi = 0; qi < qn; qi++) {
              const i = i0 + qi;
              const cnt = min(blockSize, pos0 + i + 1 - t0);
              if (j0 >= cnt) continue;
              const tn = min(32, cnt - j0);
              for (let g = 0; g < gn; g++) {
                const s = qi * gn + g;
                const qp = q + (<usize>i * <usize>nHeads + <usize>(hFirst + g)) * hdBytes;
                const mp = SCRATCH_M + (<usize>s << 2);
                const lp = SCRATCH_L + (<usize>s << 2);
                const ap = SCRATCH_ACC + <usize>s * hdBytes;
                if (mode == 3) tileStep<u32>(qp, SCRATCH_KT, SCRATCH_VT, tn, mp, lp, ap, hdBytes, headDim, sc, vsc);
                else tileStep<f32>(qp, SCRATCH_KT, SCRATCH_VT, tn, mp, lp, ap, hdBytes, headDim, sc, vsc);
              }
            }
          }
        }
        for (let qi = 0; qi < qn; qi++) {
          for (let g = 0; g < gn; g++) {
            const s = qi * gn + g;
            const op = out + (<usize>(i0 + qi) * <usize>nHeads + <usize>(hFirst + g)) * hdBytes;
            finish(op, SCRATCH_ACC + <usize>s * hdBytes, load<f32>(SCRATCH_L + (<usize>s << 2)), headDim);
          }
        }
      }
    }
  }
}

/** out[nQ][nHeads·headDim]: query i (position pos0 + i) attends to positions 0..pos0+i of the
 * sequence whose blocks blockTable lists; head h reads kv head h / (nHeads / nKvHeads);
 * scores scaled by 1/√headDim. headDim <= 1024. f32 pools. */
export function attention(
  out: usize,
  q: usize,
  nQ: i32,
  kPool: usize,
  vPool: usize,
  blockTable: usize,
  pos0: i32,
  nHeads: i32,
  nKvHeads: i32,
  headDim: i32,
  blockSize: i32,
): void {
  attentionT<f32>(out, q, nQ, kPool, vPool, blockTable, pos0, nHeads, nKvHeads, headDim, blockSize);
}

/** attention over f16 pools (kvWriteF16): K and V converted to f32 exactly on load, the rest as attention. */
export function attentionF16(
  out: usize,
  q: usize,
  nQ: i32,
  kPool: usize,
  vPool: usize,
  blockTable: usize,
  pos0: i32,
  nHeads: i32,
  nKvHeads: i32,
  headDim: i32,
  blockSize: i32,
): void {
  attentionT<u16>(out, q, nQ, kPool, vPool, blockTable, pos0, nHeads, nKvHeads, headDim, blockSize);
}

// ---- B decode rows in one call ------------------------------------------------------------------
// row b of a batch is one query at position positions[b] of its own sequence (block table tables[b]);
// beams forked from one sequence share their prefix blocks. attentionRows walks the block indices in
// order and, at each index, takes the rows whose tables hold the same block together: each 32-key
// tile of that block is read from memory once and scored, exponentiated and accumulated for every
// query head of every row in the group while it sits in L1. each (row, head) keeps its own running
// max and sum, and its accumulator is the row's slice of `out`; its tiles are the same as a
// per-row attention call's (blocks in order, 32 keys from each block's start) and go through
// tileStep, or two (row, head) pairs at a time through tileStep2 (one K/V load for both, the same
// operations per head), so the result is bit-identical to attention(…, nQ = 1, pos0 = positions[b]).

/** rows per attentionRows call (the binding splits larger batches) */
const ROWS_MAX: i32 = 256;
/** (row, head) pairs per attentionRows call: running max and sum of each */
const ROWS_STATE: i32 = 8192;
const ROWS_M: usize = memory.data(ROWS_STATE * 4, 64);
const ROWS_L: usize = memory.data(ROWS_STATE * 4, 64);
const ROWS_PENDING: usize = memory.data(ROWS_MAX * 4, 64);
const ROWS_GROUP: usize = memory.data(ROWS_MAX * 4, 64);

/** the most rows one attentionRows call takes with nHeads query heads (0: none, use attention) */
export function attentionRowsMax(nHeads: i32): i32 {
  return nHeads < 1 ? 0 : min(ROWS_MAX, ROWS_STATE / nHeads);
}

// @ts-ignore: decorator
@inline
function kvWriteRowsT<K>(
  kPool: usize,
  vPool: usize,
  tables: usize,
  positions: usize,
  B: i32,
  k: usize,
  v: usize,
  nKvHeads: i32,
  headDim: i32,
  blockSize: i32,
): void {
  const rowBytes = <usize>nKvHeads * (<usize>headDim << 2);
  for (let b = 0; b < B; b++) {
    const table = <usize>load<i32>(tables + (<usize>b << 2));
    const pos = load<i32>(positions + (<usize>b << 2));
    const o = <usize>b * rowBytes;
    kvWriteT<K>(kPool, vPool, table, pos, 1, k + o, v + o, nKvHeads, headDim, blockSize);
  }
}

/** kvWrite of one row per sequence: row b of k and v (rows [B][nKvHeads·headDim]) at position
 * positions[b] of the sequence whose block table is at tables[b] (an array of B i32 pointers). */
export function kvWriteRows(
  kPool: usize,
  vPool: usize,
  tables: usize,
  positions: usize,
  B: i32,
  k: usize,
  v: usize,
  nKvHeads: i32,
  headDim: i32,
  blockSize: i32,
): void {
  kvWriteRowsT<f32>(kPool, vPool, tables, positions, B, k, v, nKvHeads, headDim, blockSize);
}

/** kvWriteRows into f16 pools (rounding as kvWriteF16). */
export function kvWriteRowsF16(
  kPool: usize,
  vPool: usize,
  tables: usize,
  positions: usize,
  B: i32,
  k: usize,
  v: usize,
  nKvHeads: i32,
  headDim: i32,
  blockSize: i32,
): void {
  kvWriteRowsT<u16>(kPool, vPool, tables, positions, B, k, v, nKvHeads, headDim, blockSize);
}

/** out[B][nHeads·headDim]: row b's query (q[b]) attends to positions 0..positions[b] of the
 * sequence whose block table is at tables[b] (tables: B i32 pointers to block tables; positions: B
 * i32). Bit-identical, row by row, to attention(out[b], q[b], 1, …, tables[b], positions[b], …).
 * out must not overlap q; B <= attentionRowsMax(nHeads); headDim <= 1024. */
export function attentionRows(
  out: usize,
  q: usize,
  B: i32,
  kPool: usize,
  vPool: usize,
  tables: usize,
  positions: usize,
  nHeads: i32,
  nKvHeads: i32,
  headDim: i32,
  blockSize: i32,
): void {
  attentionRowsT<f32>(out, q, B, kPool, vPool, tables, positions, nHeads, nKvHeads, headDim, blockSize);
}

/** attentionRows over f16 pools: row by row bit-identical to attentionF16. */
export function attentionRowsF16(
  out: usize,
  q: usize,
  B: i32,
  kPool: usize,
  vPool: usize,
  tables: usize,
  positions: usize,
  nHeads: i32,
  nKvHeads: i32,
  headDim: i32,
  blockSize: i32,
): void {
  attentionRowsT<u16>(out, q, B, kPool, vPool, tables, positions, nHeads, nKvHeads, headDim, blockSize);
}

// @ts-ignore: decorator
@inline
function attentionRowsT<K>(
  out: usize,
  q: usize,
  B: i32,
  kPool: usize,
  vPool: usize,
  tables: usize,
  positions: usize,
  nHeads: i32,
  nKvHeads: i32,
  headDim: i32,
  blockSize: i32,
): void {
  const hdBytes = <usize>headDim << 2;
  const kvBytes = <usize>headDim * sizeof<K>();
  const rowBytes = <usize>nHeads * hdBytes;
  const blockBytes = <usize>nKvHeads * <usize>blockSize * kvBytes;
  const group = nHeads / nKvHeads;
  const sc: f32 = <f32>1 / Mathf.sqrt(<f32>headDim);
  const vsc = f32x4.splat(sc);
  memory.fill(out, 0, <usize>B * rowBytes);
  let maxT = 0;
  for (let b = 0; b < B; b++) maxT = max(maxT, load<i32>(positions + (<usize>b << 2)) + 1);
  for (let i = 0; i < B * nHeads; i++) {
    store<f32>(ROWS_M + (<usize>i << 2), -Infinity);
    store<f32>(ROWS_L + (<usize>i << 2), 0);
  }
  for (let t0 = 0; t0 < maxT; t0 += blockSize) {
    const bi = <usize>(t0 / blockSize) << 2;
    // the rows that reach this block index
    let np = 0;
    for (let b = 0; b < B; b++) {
      if (load<i32>(positions + (<usize>b << 2)) >= t0) {
        store<i32>(ROWS_PENDING + (<usize>np << 2), b);
        np++;
      }
    }
    while (np > 0) {
      // the first pending row's block, and every pending row whose table holds the same block here
      const blk = load<i32>(<usize>load<i32>(tables + (<usize>load<i32>(ROWS_PENDING) << 2)) + bi);
      let ng = 0;
      let keep = 0;
      let cntMax = 0;
      for (let i = 0; i < np; i++) {
        const b = load<i32>(ROWS_PENDING + (<usize>i << 2));
        if (load<i32>(<usize>load<i32>(tables + (<usize>b << 2)) + bi) == blk) {
          store<i32>(ROWS_GROUP + (<usize>ng << 2), b);
          ng++;
          cntMax = max(cntMax, min(blockSize, load<i32>(positions + (<usize>b << 2)) + 1 - t0));
        } else {
          store<i32>(ROWS_PENDING + (<usize>keep << 2), b);
          keep++;
        }
      }
      np = keep;
      for (let kvh = 0; kvh < nKvHeads; kvh++) {
        const headOff = <usize>blk * blockBytes + <usize>kvh * <usize>blockSize * kvBytes;
        for (let j0 = 0; j0 < cntMax; j0 += 32) {
          const kp = kPool + headOff + <usize>j0 * kvBytes;
          const vp = vPool + headOff + <usize>j0 * kvBytes;
          // f16: as in attention - converted once when several (row, head) pairs read the tile (its
          // longest use here), else the fast read unless it holds ±inf or NaN
          let mode = 0;
          if (sizeof<K>() == 2) {
            let rows = 0;
            for (let gi = 0; gi < ng; gi++) {
              const b = load<i32>(ROWS_GROUP + (<usize>gi << 2));
              if (load<i32>(positions + (<usize>b << 2)) + 1 - t0 > j0) rows++;
            }
            const n = min(32, cntMax - j0) * headDim;
            if (rows * group >= 2) mode = tileToScratch(kp, vp, n);
            else if (!tileSpecial(kp, vp, n)) mode = 1;
          }
          // the (row, head) pairs on this tile go two at a time through tileStep2 (K and V loaded
          // once for both) when their tiles have the same length; a pair's first waits in (pb, ph, ptn)
          let pb = -1;
          let ph = 0;
          let ptn = 0;
          for (let gi = 0; gi < ng; gi++) {
            const b = load<i32>(ROWS_GROUP + (<usize>gi << 2));
            const cnt = min(blockSize, load<i32>(positions + (<usize>b << 2)) + 1 - t0);
            if (j0 >= cnt) continue;
            const tn = min(32, cnt - j0);
            const h0 = kvh * group;
            for (let g = 0; g < group; g++) {
              const h = h0 + g;
              const st = <usize>(b * nHeads + h) << 2;
              const ho = <usize>b * rowBytes + <usize>h * hdBytes;
              if (pb < 0) {
                pb = b;
                ph = h;
                ptn = tn;
                continue;
              }
              const pst = <usize>(pb * nHeads + ph) << 2;
              const pho = <usize>pb * rowBytes + <usize>ph * hdBytes;
              if (ptn == tn) {
                const qa = q + pho;
                const qb = q + ho;
                const mA = ROWS_M + pst;
                const lA = ROWS_L + pst;
                const mB = ROWS_M + st;
                const lB = ROWS_L + st;
                const oA = out + pho;
                const oB = out + ho;
                if (mode == 1) tileStep2<i16>(qa, qb, kp, vp, tn, mA, lA, oA, mB, lB, oB, kvBytes, headDim, sc, vsc);
                else if (mode == 3)
                  tileStep2<u32>(qa, qb, SCRATCH_KT, SCRATCH_VT, tn, mA, lA, oA, mB, lB, oB, hdBytes, headDim, sc, vsc);
                else if (mode == 2)
                  tileStep2<f32>(qa, qb, SCRATCH_KT, SCRATCH_VT, tn, mA, lA, oA, mB, lB, oB, hdBytes, headDim, sc, vsc);
                else tileStep2<K>(qa, qb, kp, vp, tn, mA, lA, oA, mB, lB, oB, kvBytes, headDim, sc, vsc);
                pb = -1;
              } else {
                const qa = q + pho;
                const mA = ROWS_M + pst;
                const lA = ROWS_L + pst;
                if (mode == 1) tileStep<i16>(qa, kp, vp, ptn, mA, lA, out + pho, kvBytes, headDim, sc, vsc);
                else if (mode == 3) tileStep<u32>(qa, SCRATCH_KT, SCRATCH_VT, ptn, mA, lA, out + pho, hdBytes, headDim, sc, vsc);
                else if (mode == 2) tileStep<f32>(qa, SCRATCH_KT, SCRATCH_VT, ptn, mA, lA, out + pho, hdBytes, headDim, sc, vsc);
                else tileStep<K>(qa, kp, vp, ptn, mA, lA, out + pho, kvBytes, headDim, sc, vsc);
                pb = b;
                ph = h;
                ptn = tn;
              }
            }
          }
          if (pb >= 0) {
            const pst = <usize>(pb * nHeads + ph) << 2;
            const pho = <usize>pb * rowBytes + <usize>ph * hdBytes;
            const qa = q + pho;
            const mA = ROWS_M + pst;
            const lA = ROWS_L + pst;
            if (mode == 1) tileStep<i16>(qa, kp, vp, ptn, mA, lA, out + pho, kvBytes, headDim, sc, vsc);
            else if (mode == 3) tileStep<u32>(qa, SCRATCH_KT, SCRATCH_VT, ptn, mA, lA, out + pho, hdBytes, headDim, sc, vsc);
            else if (mode == 2) tileStep<f32>(qa, SCRATCH_KT, SCRATCH_VT, ptn, mA, lA, out + pho, hdBytes, headDim, sc, vsc);
            else tileStep<K>(qa, kp, vp, ptn, mA, lA, out + pho, kvBytes, headDim, sc, vsc);
          }
        }
      }
    }
  }
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < nHeads; h++) {
      const op = out + <usize>b * rowBytes + <usize>h * hdBytes;
      finish(op, op, load<f32>(ROWS_L + (<usize>(b * nHeads + h) << 2)), headDim);
    }
  }
}
