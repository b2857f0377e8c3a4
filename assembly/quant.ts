// quantised linear layers over GGUF's Q8_0 and Q4_0 weights, activations quantised to Q8_0 on the
// fly (per block of 32: d = max|x| / 127, q = round(x / d)), as llama.cpp does.
//
// GGUF blocks: Q8_0 = f16 scale + 32 int8 (34 bytes); Q4_0 = f16 scale + 16 bytes, low nibble =
// element j, high nibble = element j + 16, value = nibble - 8 (18 bytes).
//
// packed layout (made by prepareLinear in runtime/kernels.ts): rows in groups of 4, block by block, "c4" interleave:
//   Q8: per (group, block) 128 bytes: step s (k = 4s..4s+3) holds 16 bytes [row0 k0..3 | row1 | row2 | row3],
//       then the 4 row scales as f32: 144 bytes.
//   Q4: per (group, block) 64 bytes: vector j holds [row0 | row1 | row2 | row3] × 4 bytes whose low
//       nibbles are elements 4j..4j+3 and high nibbles elements 16+4j..16+4j+3 (this is GGUF's byte
//       4j+t unchanged), then the 4 row scales as f32: 80 bytes.
// one vector of 16 weight bytes then feeds one integer dot per x row whose i32 lanes are the four
// output rows, so no horizontal sum is needed per block.
//
// plain SIMD: x kept as int16, i32x4.dot_i16x8_s (lanes pair up, combined once per block).
// relaxed SIMD: i32x4.relaxed_dot_i8x16_i7x16_add_s needs its second operand in 0..127 to be portable:
//   Q8_0 uses w·x = (w·sign(x))·|x| (|x| <= 127; weights of -128 are clamped to -127 at pack time),
//   Q4_0 feeds the raw nibbles 0..15 and subtracts 8·Σx per block.
// both builds compute exactly the same integer block sums.
import { f16ToF32, f32ToF16, fma, hsumI } from './simd';

const ONES16: usize = memory.data<i16>([1, 1, 1, 1, 1, 1, 1, 1], 16);
const Q8_GB: usize = 144; // bytes per (group, block), q8_0
const Q4_GB: usize = 80; // bytes per (group, block), q4_0

/** scratch bytes linearQ8/linearQ4 use for m rows of k (activation quants, scales, sums). */
export function quantScratchBytes(m: i32, k: i32): usize {
  return 5 * <usize>m * <usize>k + 8 * <usize>m * <usize>(k >> 5) + 64;
}

/** quantise m rows of k activations to Q8_0 into scratch s:
 * plain build: int16 values at s; relaxed: int8 at s, |x| at s + m·k, sign masks (0 / -1) at s + 2m·k,
 * and for m > 1 also int16 at s + 3m·k; then f32 scales at s + 5m·k and i32 block sums after them. */
export function quantizeAct(s: usize, x: usize, m: i32, k: i32): void {
  const nb = k >> 5;
  const mk = <usize>m * <usize>k;
  const xd = s + 5 * mk;
  const xs = xd + 4 * <usize>m * <usize>nb;
  let src = x;
  let bi: usize = 0; // block index over all rows
  for (let r = 0; r < m; r++) {
    for (let b = 0; b < nb; b++) {
      const v0 = v128.load(src);
      const v1 = v128.load(src, 16);
      const v2 = v128.load(src, 32);
      const v3 = v128.load(src, 48);
      const v4 = v128.load(src, 64);
      const v5 = v128.load(src, 80);
      const v6 = v128.load(src, 96);
      const v7 = v128.load(src, 112);
      let mx = f32x4.pmax(f32x4.pmax(f32x4.abs(v0), f32x4.abs(v1)), f32x4.pmax(f32x4.abs(v2), f32x4.abs(v3)));
      mx = f32x4.pmax(mx, f32x4.pmax(f32x4.pmax(f32x4.abs(v4), f32x4.abs(v5)), f32x4.pmax(f32x4.abs(v6), f32x4.abs(v7))));
      mx = f32x4.max(mx, i32x4.shuffle(mx, mx, 2, 3, 0, 1));
      const amax = max(f32x4.extract_lane(mx, 0), f32x4.extract_lane(mx, 1));
      const d: f32 = amax / 127;
      const id: f32 = d != 0 ? <f32>1 / d : 0;
      const vid = f32x4.splat(id);
      const q0 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v0, vid)));
      const q1 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v1, vid)));
      const q2 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v2, vid)));
      const q3 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v3, vid)));
      const q4 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v4, vid)));
      const q5 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v5, vid)));
      const q6 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v6, vid)));
      const q7 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v7, vid)));
      const sum = i32x4.add(i32x4.add(i32x4.add(q0, q1), i32x4.add(q2, q3)), i32x4.add(i32x4.add(q4, q5), i32x4.add(q6, q7)));
      store<f32>(xd + (bi << 2), d);
      store<i32>(xs + (bi << 2), hsumI(sum));
      const h0 = i16x8.narrow_i32x4_s(q0, q1);
      const h1 = i16x8.narrow_i32x4_s(q2, q3);
      const h2 = i16x8.narrow_i32x4_s(q4, q5);
      const h3 = i16x8.narrow_i32x4_s(q6, q7);
      if (ASC_FEATURE_RELAXED_SIMD) {
        const o = s + (bi << 5);
        const b0 = i8x16.narrow_i16x8_s(h0, h1);
        const b1 = i8x16.narrow_i16x8_s(h2, h3);
        v128.store(o, b0);
        v128.store(o, b1, 16);
        v128.store(o + mk, i8x16.abs(b0));
        v128.store(o + mk, i8x16.abs(b1), 16);
        v128.store(o + 2 * mk, i8x16.shr_s(b0, 7));
        v128.store(o + 2 * mk, i8x16.shr_s(b1, 7), 16);
        if (m > 1) {
          const o16 = s + 3 * mk + (bi << 6);
          v128.store(o16, h0);
          v128.store(o16, h1, 16);
          v128.store(o16, h2, 32);
          v128.store(o16, h3, 48);
        }
      } else {
        const o = s + (bi << 6);
        v128.store(o, h0);
        v128.store(o, h1, 16);
        v128.store(o, h2, 32);
        v128.store(o, h3, 48);
      }
      src += 128;
      bi++;
    }
  }
}

// store four outputs (a group), only `valid` of them for the last partial group.
// @ts-ignore: decorator
@inline
function store4(o: usize, v: v128, valid: i32): void {
  if (valid >= 4) {
    v128.store(o, v);
  } else {
    store<f32>(o, f32x4.extract_lane(v, 0));
    if (valid > 1) store<f32>(o, f32x4.extract_lane(v, 1), 4);
    if (valid > 2) store<f32>(o, f32x4.extract_lane(v, 2), 8);
  }
}

// pairs of i32 lanes [r0a r0b r1a r1b] + [r2a r2b r3a r3b] -> [r0 r1 r2 r3]
// @ts-ignore: decorator
@inline
function pairSum(a: v128, b: v128): v128 {
  return i32x4.add(i32x4.shuffle(a, b, 0, 2, 4, 6), i32x4.shuffle(a, b, 1, 3, 5, 7));
}

// ---- Q8_0 ----------------------------------------------------------------------------------

// one group of 4 output rows times R (1..4) x rows, int16 x at s (both builds: several rows share
// the unpacked weights, which the relaxed sign trick could not)
// @ts-ignore: decorator
@inline
function q8Tile(R: i32, o: usize, ldo: usize, s: usize, xd: usize, k: i32, wg: usize, nb: i32, valid: i32): void {
  const ldq = <usize>k << 1; // bytes per x row of int16 quants
  const ldd = <usize>nb << 2; // bytes per x row of scales
  let f0 = f32x4.splat(0);
  let f1 = f32x4.splat(0);
  let f2 = f32x4.splat(0);
  let f3 = f32x4.splat(0);
  let wb = wg;
  let xq = s;
  let xdp = xd;
  for (let b = 0; b < nb; b++) {
    const ws = v128.load(wb, 128);
    {
      let a0 = i32x4.splat(0);
      let b0 = i32x4.splat(0);
      let a1 = i32x4.splat(0);
      let b1 = i32x4.splat(0);
      let a2 = i32x4.splat(0);
      let b2 = i32x4.splat(0);
      let a3 = i32x4.splat(0);
      let b3 = i32x4.splat(0);
      for (let st: usize = 0; st < 32; st += 4) {
        const wl = v128.load8x8_s(wb + (st << 2));
        const wh = v128.load8x8_s(wb + (st << 2) + 8);
        let xv = v128.load64_splat(xq + (st << 1));
        a0 = i32x4.add(a0, i32x4.dot_i16x8_s(wl, xv));
        b0 = i32x4.add(b0, i32x4.dot_i16x8_s(wh, xv));
        if (R > 1) {
          xv = v128.load64_splat(xq + ldq + (st << 1));
          a1 = i32x4.add(a1, i32x4.dot_i16x8_s(wl, xv));
          b1 = i32x4.add(b1, i32x4.dot_i16x8_s(wh, xv));
        }
        if (R > 2) {
          xv = v128.load64_splat(xq + 2 * ldq + (st << 1));
          a2 = i32x4.add(a2, i32x4.dot_i16x8_s(wl, xv));
          b2 = i32x4.add(b2, i32x4.dot_i16x8_s(wh, xv));
        }
        if (R > 3) {
          xv = v128.load64_splat(xq + 3 * ldq + (st << 1));
          a3 = i32x4.add(a3, i32x4.dot_i16x8_s(wl, xv));
          b3 = i32x4.add(b3, i32x4.dot_i16x8_s(wh, xv));
        }
      }
      f0 = fma(f32x4.convert_i32x4_s(pairSum(a0, b0)), f32x4.mul(ws, v128.load32_splat(xdp)), f0);
      if (R > 1) f1 = fma(f32x4.convert_i32x4_s(pairSum(a1, b1)), f32x4.mul(ws, v128.load32_splat(xdp + ldd)), f1);
      if (R > 2) f2 = fma(f32x4.convert_i32x4_s(pairSum(a2, b2)), f32x4.mul(ws, v128.load32_splat(xdp + 2 * ldd)), f2);
      if (R > 3) f3 = fma(f32x4.convert_i32x4_s(pairSum(a3, b3)), f32x4.mul(ws, v128.load32_splat(xdp + 3 * ldd)), f3);
      xq += 64;
    }
    xdp += 4;
    wb += Q8_GB;
  }
  store4(o, f0, valid);
  if (R > 1) store4(o + ldo, f1, valid);
  if (R > 2) store4(o + 2 * ldo, f2, valid);
  if (R > 3) store4(o + 3 * ldo, f3, valid);
}

// one x row times G (1..4, constant) consecutive groups of 4 output rows: every x load (and, in the
// relaxed build, its sign and magnitude) feeds G weight vectors; G independent accumulator chains.
// @ts-ignore: decorator
@inline
function q8Row(G: i32, o: usize, s: usize, xd: usize, mk: usize, wg: usize, gBytes: usize, nb: i32, valid: i32): void {
  // i16 pairs → i32 by pmaddwd with ones held in a register (V8 rebuilds the constant of
  // relaxed_dot_add's own widening at every use; a loaded vector it cannot)
  const ones = v128.load(ONES16);
  let f0 = f32x4.splat(0);
  let f1 = f32x4.splat(0);
  let f2 = f32x4.splat(0);
  let f3 = f32x4.splat(0);
  let w0 = wg;
  let xq = s;
  let xdp = xd;
  for (let b = 0; b < nb; b++) {
    let a0 = i32x4.splat(0);
    let a1 = i32x4.splat(0);
    let a2 = i32x4.splat(0);
    let a3 = i32x4.splat(0);
    if (ASC_FEATURE_RELAXED_SIMD) {
      const xa = xq + mk;
      const xg = xq + 2 * mk;
      for (let st: usize = 0; st < 32; st += 4) {
        const sg = v128.load32_splat(xg + st);
        const ab = v128.load32_splat(xa + st);
        const wo = st << 2;
        let w = v128.load(w0 + wo);
        a0 = i32x4.add(a0, i32x4.dot_i16x8_s(i16x8.relaxed_dot_i8x16_i7x16_s(i8x16.sub(v128.xor(w, sg), sg), ab), ones));
        if (G > 1) {
          w = v128.load(w0 + gBytes + wo);
          a1 = i32x4.add(a1, i32x4.dot_i16x8_s(i16x8.relaxed_dot_i8x16_i7x16_s(i8x16.sub(v128.xor(w, sg), sg), ab), ones));
        }
        if (G > 2) {
          w = v128.load(w0 + 2 * gBytes + wo);
          a2 = i32x4.add(a2, i32x4.dot_i16x8_s(i16x8.relaxed_dot_i8x16_i7x16_s(i8x16.sub(v128.xor(w, sg), sg), ab), ones));
        }
        if (G > 3) {
          w = v128.load(w0 + 3 * gBytes + wo);
          a3 = i32x4.add(a3, i32x4.dot_i16x8_s(i16x8.relaxed_dot_i8x16_i7x16_s(i8x16.sub(v128.xor(w, sg), sg), ab), ones));
        }
      }
      xq += 32;
    } else {
      let b0 = i32x4.splat(0);
      let b1 = i32x4.splat(0);
      let b2 = i32x4.splat(0);
      let b3 = i32x4.splat(0);
      for (let st: usize = 0; st < 32; st += 4) {
        const xv = v128.load64_splat(xq + (st << 1));
        const wo = st << 2;
        a0 = i32x4.add(a0, i32x4.dot_i16x8_s(v128.load8x8_s(w0 + wo), xv));
        b0 = i32x4.add(b0, i32x4.dot_i16x8_s(v128.load8x8_s(w0 + wo + 8), xv));
        if (G > 1) {
          a1 = i32x4.add(a1, i32x4.dot_i16x8_s(v128.load8x8_s(w0 + gBytes + wo), xv));
          b1 = i32x4.add(b1, i32x4.dot_i16x8_s(v128.load8x8_s(w0 + gBytes + wo + 8), xv));
        }
        if (G > 2) {
          a2 = i32x4.add(a2, i32x4.dot_i16x8_s(v128.load8x8_s(w0 + 2 * gBytes + wo), xv));
          b2 = i32x4.add(b2, i32x4.dot_i16x8_s(v128.load8x8_s(w0 + 2 * gBytes + wo + 8), xv));
        }
        if (G > 3) {
          a3 = i32x4.add(a3, i32x4.dot_i16x8_s(v128.load8x8_s(w0 + 3 * gBytes + wo), xv));
          b3 = i32x4.add(b3, i32x4.dot_i16x8_s(v128.load8x8_s(w0 + 3 * gBytes + wo + 8), xv));
        }
      }
      a0 = pairSum(a0, b0);
      if (G > 1) a1 = pairSum(a1, b1);
      if (G > 2) a2 = pairSum(a2, b2);
      if (G > 3) a3 = pairSum(a3, b3);
      xq += 64;
    }
    const xdv = v128.load32_splat(xdp);
    f0 = fma(f32x4.convert_i32x4_s(a0), f32x4.mul(v128.load(w0, 128), xdv), f0);
    if (G > 1) f1 = fma(f32x4.convert_i32x4_s(a1), f32x4.mul(v128.load(w0 + gBytes, 128), xdv), f1);
    if (G > 2) f2 = fma(f32x4.convert_i32x4_s(a2), f32x4.mul(v128.load(w0 + 2 * gBytes, 128), xdv), f2);
    if (G > 3) f3 = fma(f32x4.convert_i32x4_s(a3), f32x4.mul(v128.load(w0 + 3 * gBytes, 128), xdv), f3);
    xdp += 4;
    w0 += Q8_GB;
  }
  store4(o, f0, valid);
  if (G > 1) store4(o + 16, f1, valid - 4);
  if (G > 2) store4(o + 32, f2, valid - 8);
  if (G > 3) store4(o + 48, f3, valid - 12);
}

/** out[m×n] = x[m×k] · Wᵀ, W packed as above (q8_0), x quantised to Q8_0 into scratch s. */
export function linearQ8(out: usize, x: usize, w: usize, m: i32, n: i32, k: i32, s: usize): void {
  quantizeAct(s, x, m, k);
  const nb = k >> 5;
  const ng = (n + 3) >> 2;
  const mk = <usize>m * <usize>k;
  const xd = s + 5 * mk;
  const ldo = <usize>n << 2;
  const ldd = <usize>nb << 2;
  const gBytes = <usize>nb * Q8_GB;
  if (m == 1) {
    let g = 0;
    if (ASC_FEATURE_RELAXED_SIMD) {
      for (; g + 4 <= ng; g += 4) q8Row(4, out + (<usize>g << 4), s, xd, mk, w + <usize>g * gBytes, gBytes, nb, n - g * 4);
    } else {
      // int16 path: two accumulators per group, so three groups (four spill in V8)
      for (; g + 3 <= ng; g += 3) q8Row(3, out + (<usize>g << 4), s, xd, mk, w + <usize>g * gBytes, gBytes, nb, n - g * 4);
    }
    const left = ng - g;
    const o = out + (<usize>g << 4);
    const wg = w + <usize>g * gBytes;
    if (left == 3) q8Row(3, o, s, xd, mk, wg, gBytes, nb, n - g * 4);
    else if (left == 2) q8Row(2, o, s, xd, mk, wg, gBytes, nb, n - g * 4);
    else if (left == 1) q8Row(1, o, s, xd, mk, wg, gBytes, nb, n - g * 4);
    return;
  }
  // several rows: the int16 path in both builds (the relaxed sign trick costs two ops per row and
  // weight vector; the int16 one shares its unpacking among the rows). same integer sums.
  const s16 = ASC_FEATURE_RELAXED_SIMD ? s + 3 * mk : s;
  const ld16 = <usize>k << 1;
  for (let g = 0; g < ng; g++) {
    const wg = w + <usize>g * gBytes;
    const valid = n - g * 4;
    const oc = out + (<usize>g << 4);
    let r = 0;
    for (; r + 4 <= m; r += 4) {
      q8Tile(4, oc + <usize>r * ldo, ldo, s16 + <usize>r * ld16, xd + <usize>r * ldd, k, wg, nb, valid);
    }
    const left = m - r;
    const sr = s16 + <usize>r * ld16;
    const dr = xd + <usize>r * ldd;
    if (left == 3) q8Tile(3, oc + <usize>r * ldo, ldo, sr, dr, k, wg, nb, valid);
    else if (left == 2) q8Tile(2, oc + <usize>r * ldo, ldo, sr, dr, k, wg, nb, valid);
    else if (left == 1) q8Tile(1, oc + <usize>r * ldo, ldo, sr, dr, k, wg, nb, valid);
  }
}

// relaxed: int16 pair sums of x (signed, splat of 4 bytes at xp or given) times nibbles (0..15)
// @ts-ignore: decorator
@inline
function rdot16(x: v128, nib: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) {
    return i16x8.relaxed_dot_i8x16_i7x16_s(x, nib);
  } else {
    return unreachable();
  }
}

// @ts-ignore: decorator
@inline
function dot16(xp: usize, nib: v128): v128 {
  return rdot16(v128.load32_splat(xp), nib);
}

// ---- Q4_0 ----------------------------------------------------------------------------------

// @ts-ignore: decorator
@inline
function q4Tile(R: i32, o: usize, ldo: usize, s: usize, xd: usize, xs: usize, k: i32, wg: usize, nb: i32, valid: i32): void {
  const ldq: usize = ASC_FEATURE_RELAXED_SIMD ? <usize>k : <usize>k << 1;
  const ldd = <usize>nb << 2;
  const lo4 = i8x16.splat(0x0f);
  const ones = v128.load(ONES16);
  let f0 = f32x4.splat(0);
  let f1 = f32x4.splat(0);
  let f2 = f32x4.splat(0);
  let f3 = f32x4.splat(0);
  let wb = wg;
  let xq = s;
  let xdp = xd;
  let xsp = xs;
  for (let b = 0; b < nb; b++) {
    const ws = v128.load(wb, 64);
    let a0 = i32x4.splat(0);
    let a1 = i32x4.splat(0);
    let a2 = i32x4.splat(0);
    let a3 = i32x4.splat(0);
    if (ASC_FEATURE_RELAXED_SIMD) {
      // nibble·x pair sums are at most 2·15·127 = 3810: the eight of a block add up in int16
      // (≤ 30480) and widen once per block
      let h0 = i16x8.splat(0);
      let h1 = i16x8.splat(0);
      let h2 = i16x8.splat(0);
      let h3 = i16x8.splat(0);
      for (let j: usize = 0; j < 16; j += 4) {
        const v = v128.load(wb + (j << 2));
        const lo = v128.and(v, lo4);
        const hi = v128.and(i16x8.shr_u(v, 4), lo4);
        h0 = i16x8.add(h0, i16x8.add(dot16(xq + j, lo), dot16(xq + 16 + j, hi)));
        if (R > 1) h1 = i16x8.add(h1, i16x8.add(dot16(xq + ldq + j, lo), dot16(xq + ldq + 16 + j, hi)));
        if (R > 2) h2 = i16x8.add(h2, i16x8.add(dot16(xq + 2 * ldq + j, lo), dot16(xq + 2 * ldq + 16 + j, hi)));
        if (R > 3) h3 = i16x8.add(h3, i16x8.add(dot16(xq + 3 * ldq + j, lo), dot16(xq + 3 * ldq + 16 + j, hi)));
      }
      a0 = i32x4.dot_i16x8_s(h0, ones);
      if (R > 1) a1 = i32x4.dot_i16x8_s(h1, ones);
      if (R > 2) a2 = i32x4.dot_i16x8_s(h2, ones);
      if (R > 3) a3 = i32x4.dot_i16x8_s(h3, ones);
      xq += 32;
    } else {
      let b0 = i32x4.splat(0);
      let b1 = i32x4.splat(0);
      let b2 = i32x4.splat(0);
      let b3 = i32x4.splat(0);
      for (let j: usize = 0; j < 16; j += 4) {
        const v = v128.load(wb + (j << 2));
        const lo = v128.and(v, lo4);
        const hi = v128.and(i16x8.shr_u(v, 4), lo4);
        const la = i16x8.extend_low_i8x16_u(lo);
        const lb = i16x8.extend_high_i8x16_u(lo);
        const ha = i16x8.extend_low_i8x16_u(hi);
        const hb = i16x8.extend_high_i8x16_u(hi);
        let xl = v128.load64_splat(xq + (j << 1));
        let xh = v128.load64_splat(xq + 32 + (j << 1));
        a0 = i32x4.add(a0, i32x4.add(i32x4.dot_i16x8_s(la, xl), i32x4.dot_i16x8_s(ha, xh)));
        b0 = i32x4.add(b0, i32x4.add(i32x4.dot_i16x8_s(lb, xl), i32x4.dot_i16x8_s(hb, xh)));
        if (R > 1) {
          xl = v128.load64_splat(xq + ldq + (j << 1));
          xh = v128.load64_splat(xq + ldq + 32 + (j << 1));
          a1 = i32x4.add(a1, i32x4.add(i32x4.dot_i16x8_s(la, xl), i32x4.dot_i16x8_s(ha, xh)));
          b1 = i32x4.add(b1, i32x4.add(i32x4.dot_i16x8_s(lb, xl), i32x4.dot_i16x8_s(hb, xh)));
        }
        if (R > 2) {
          xl = v128.load64_splat(xq + 2 * ldq + (j << 1));
          xh = v128.load64_splat(xq + 2 * ldq + 32 + (j << 1));
          a2 = i32x4.add(a2, i32x4.add(i32x4.dot_i16x8_s(la, xl), i32x4.dot_i16x8_s(ha, xh)));
          b2 = i32x4.add(b2, i32x4.add(i32x4.dot_i16x8_s(lb, xl), i32x4.dot_i16x8_s(hb, xh)));
        }
        if (R > 3) {
          xl = v128.load64_splat(xq + 3 * ldq + (j << 1));
          xh = v128.load64_splat(xq + 3 * ldq + 32 + (j << 1));
          a3 = i32x4.add(a3, i32x4.add(i32x4.dot_i16x8_s(la, xl), i32x4.dot_i16x8_s(ha, xh)));
          b3 = i32x4.add(b3, i32x4.add(i32x4.dot_i16x8_s(lb, xl), i32x4.dot_i16x8_s(hb, xh)));
        }
      }
      a0 = pairSum(a0, b0);
      if (R > 1) a1 = pairSum(a1, b1);
      if (R > 2) a2 = pairSum(a2, b2);
      if (R > 3) a3 = pairSum(a3, b3);
      xq += 64;
    }
    // nibbles were used as 0..15: subtract 8·Σx
    a0 = i32x4.sub(a0, i32x4.splat(load<i32>(xsp) << 3));
    f0 = fma(f32x4.convert_i32x4_s(a0), f32x4.mul(ws, v128.load32_splat(xdp)), f0);
    if (R > 1) {
      a1 = i32x4.sub(a1, i32x4.splat(load<i32>(xsp + ldd) << 3));
      f1 = fma(f32x4.convert_i32x4_s(a1), f32x4.mul(ws, v128.load32_splat(xdp + ldd)), f1);
    }
    if (R > 2) {
      a2 = i32x4.sub(a2, i32x4.splat(load<i32>(xsp + 2 * ldd) << 3));
      f2 = fma(f32x4.convert_i32x4_s(a2), f32x4.mul(ws, v128.load32_splat(xdp + 2 * ldd)), f2);
    }
    if (R > 3) {
      a3 = i32x4.sub(a3, i32x4.splat(load<i32>(xsp + 3 * ldd) << 3));
      f3 = fma(f32x4.convert_i32x4_s(a3), f32x4.mul(ws, v128.load32_splat(xdp + 3 * ldd)), f3);
    }
    xdp += 4;
    xsp += 4;
    wb += Q4_GB;
  }
  store4(o, f0, valid);
  if (R > 1) store4(o + ldo, f1, valid);
  if (R > 2) store4(o + 2 * ldo, f2, valid);
  if (R > 3) store4(o + 3 * ldo, f3, valid);
}

// one x row times G (1..4, constant) consecutive groups: x loads shared by G weight vectors
// @ts-ignore: decorator
@inline
function q4Row(G: i32, o: usize, s: usize, xd: usize, xs: usize, wg: usize, gBytes: usize, nb: i32, valid: i32): void {
  const lo4 = i8x16.splat(0x0f);
  const ones = v128.load(ONES16);
  let f0 = f32x4.splat(0);
  let f1 = f32x4.splat(0);
  let f2 = f32x4.splat(0);
  let f3 = f32x4.splat(0);
  let w0 = wg;
  let xq = s;
  for (let b = 0; b < nb; b++) {
    let a0 = i32x4.splat(0);
    let a1 = i32x4.splat(0);
    let a2 = i32x4.splat(0);
    let a3 = i32x4.splat(0);
    if (ASC_FEATURE_RELAXED_SIMD) {
      // int16 sums within the block (see q4Tile)
      let h0 = i16x8.splat(0);
      let h1 = i16x8.splat(0);
      let h2 = i16x8.splat(0);
      let h3 = i16x8.splat(0);
      for (let j: usize = 0; j < 16; j += 4) {
        const xl = v128.load32_splat(xq + j);
        const xh = v128.load32_splat(xq + 16 + j);
        const wo = j << 2;
        let v = v128.load(w0 + wo);
        h0 = i16x8.add(h0, i16x8.add(rdot16(xl, v128.and(v, lo4)), rdot16(xh, v128.and(i16x8.shr_u(v, 4), lo4))));
        if (G > 1) {
          v = v128.load(w0 + gBytes + wo);
          h1 = i16x8.add(h1, i16x8.add(rdot16(xl, v128.and(v, lo4)), rdot16(xh, v128.and(i16x8.shr_u(v, 4), lo4))));
        }
        if (G > 2) {
          v = v128.load(w0 + 2 * gBytes + wo);
          h2 = i16x8.add(h2, i16x8.add(rdot16(xl, v128.and(v, lo4)), rdot16(xh, v128.and(i16x8.shr_u(v, 4), lo4))));
        }
        if (G > 3) {
          v = v128.load(w0 + 3 * gBytes + wo);
          h3 = i16x8.add(h3, i16x8.add(rdot16(xl, v128.and(v, lo4)), rdot16(xh, v128.and(i16x8.shr_u(v, 4), lo4))));
        }
      }
      a0 = i32x4.dot_i16x8_s(h0, ones);
      if (G > 1) a1 = i32x4.dot_i16x8_s(h1, ones);
      if (G > 2) a2 = i32x4.dot_i16x8_s(h2, ones);
      if (G > 3) a3 = i32x4.dot_i16x8_s(h3, ones);
      xq += 32;
    } else {
      let b0 = i32x4.splat(0);
      let b1 = i32x4.splat(0);
      let b2 = i32x4.splat(0);
      let b3 = i32x4.splat(0);
      for (let j: usize = 0; j < 16; j += 4) {
        const xl = v128.load64_splat(xq + (j << 1));
        const xh = v128.load64_splat(xq + 32 + (j << 1));
        const wo = j << 2;
        let v = v128.load(w0 + wo);
        let lo = v128.and(v, lo4);
        let hi = v128.and(i16x8.shr_u(v, 4), lo4);
        a0 = i32x4.add(a0, i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(lo), xl), i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(hi), xh)));
        b0 = i32x4.add(b0, i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(lo), xl), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(hi), xh)));
        if (G > 1) {
          v = v128.load(w0 + gBytes + wo);
          lo = v128.and(v, lo4);
          hi = v128.and(i16x8.shr_u(v, 4), lo4);
          a1 = i32x4.add(a1, i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(lo), xl), i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(hi), xh)));
          b1 = i32x4.add(b1, i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(lo), xl), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(hi), xh)));
        }
        if (G > 2) {
          v = v128.load(w0 + 2 * gBytes + wo);
          lo = v128.and(v, lo4);
          hi = v128.and(i16x8.shr_u(v, 4), lo4);
          a2 = i32x4.add(a2, i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(lo), xl), i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(hi), xh)));
          b2 = i32x4.add(b2, i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(lo), xl), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(hi), xh)));
        }
        if (G > 3) {
          v = v128.load(w0 + 3 * gBytes + wo);
          lo = v128.and(v, lo4);
          hi = v128.and(i16x8.shr_u(v, 4), lo4);
          a3 = i32x4.add(a3, i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(lo), xl), i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(hi), xh)));
          b3 = i32x4.add(b3, i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(lo), xl), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(hi), xh)));
        }
      }
      a0 = pairSum(a0, b0);
      if (G > 1) a1 = pairSum(a1, b1);
      if (G > 2) a2 = pairSum(a2, b2);
      if (G > 3) a3 = pairSum(a3, b3);
      xq += 64;
    }
    // nibbles were used as 0..15: subtract 8·Σx
    const corr = i32x4.splat(load<i32>(xs + (<usize>b << 2)) << 3);
    const xdv = v128.load32_splat(xd + (<usize>b << 2));
    f0 = fma(f32x4.convert_i32x4_s(i32x4.sub(a0, corr)), f32x4.mul(v128.load(w0, 64), xdv), f0);
    if (G > 1) f1 = fma(f32x4.convert_i32x4_s(i32x4.sub(a1, corr)), f32x4.mul(v128.load(w0 + gBytes, 64), xdv), f1);
    if (G > 2) f2 = fma(f32x4.convert_i32x4_s(i32x4.sub(a2, corr)), f32x4.mul(v128.load(w0 + 2 * gBytes, 64), xdv), f2);
    if (G > 3) f3 = fma(f32x4.convert_i32x4_s(i32x4.sub(a3, corr)), f32x4.mul(v128.load(w0 + 3 * gBytes, 64), xdv), f3);
    w0 += Q4_GB;
  }
  store4(o, f0, valid);
  if (G > 1) store4(o + 16, f1, valid - 4);
  if (G > 2) store4(o + 32, f2, valid - 8);
  if (G > 3) store4(o + 48, f3, valid - 12);
}

/** out[m×n] = x[m×k] · Wᵀ, W packed as above (q4_0), x quantised to Q8_0 into scratch s. */
export function linearQ4(out: usize, x: usize, w: usize, m: i32, n: i32, k: i32, s: usize): void {
  quantizeAct(s, x, m, k);
  const nb = k >> 5;
  const ng = (n + 3) >> 2;
  const mk = <usize>m * <usize>k;
  const xd = s + 5 * mk;
  const xs = xd + 4 * <usize>m * <usize>nb;
  const ldo = <usize>n << 2;
  const ldq: usize = ASC_FEATURE_RELAXED_SIMD ? <usize>k : <usize>k << 1;
  const ldd = <usize>nb << 2;
  const gBytes = <usize>nb * Q4_GB;
  if (m == 1) {
    let g = 0;
    if (ASC_FEATURE_RELAXED_SIMD) {
      for (; g + 4 <= ng; g += 4) q4Row(4, out + (<usize>g << 4), s, xd, xs, w + <usize>g * gBytes, gBytes, nb, n - g * 4);
    } else {
      // the plain unpack needs more registers: two groups at a time
      for (; g + 2 <= ng; g += 2) q4Row(2, out + (<usize>g << 4), s, xd, xs, w + <usize>g * gBytes, gBytes, nb, n - g * 4);
    }
    const left = ng - g;
    const o = out + (<usize>g << 4);
    const wg = w + <usize>g * gBytes;
    if (left == 3) q4Row(3, o, s, xd, xs, wg, gBytes, nb, n - g * 4);
    else if (left == 2) q4Row(2, o, s, xd, xs, wg, gBytes, nb, n - g * 4);
    else if (left == 1) q4Row(1, o, s, xd, xs, wg, gBytes, nb, n - g * 4);
    return;
  }
  for (let g = 0; g < ng; g++) {
    const wg = w + <usize>g * gBytes;
    const valid = n - g * 4;
    const oc = out + (<usize>g << 4);
    let r = 0;
    for (; r + 4 <= m; r += 4) {
      q4Tile(4, oc + <usize>r * ldo, ldo, s + <usize>r * ldq, xd + <usize>r * ldd, xs + <usize>r * ldd, k, wg, nb, valid);
    }
    const left = m - r;
    const or = oc + <usize>r * ldo;
    const sr = s + <usize>r * ldq;
    const dr = xd + <usize>r * ldd;
    const cr = xs + <usize>r * ldd;
    if (left == 3) q4Tile(3, or, ldo, sr, dr, cr, k, wg, nb, valid);
    else if (left == 2) q4Tile(2, or, ldo, sr, dr, cr, k, wg, nb, valid);
    else if (left == 1) q4Tile(1, or, ldo, sr, dr, cr, k, wg, nb, valid);
  }
}

// ---- rows in GGUF format ---------------------------------------------------------------------

// C's roundf: half away from zero
// @ts-ignore: decorator
@inline
function roundHalfAway(v: f32): f32 {
  const a = Mathf.floor(Mathf.abs(v) + 0.5);
  return v < 0 ? -a : a;
}

/** quantise k floats (k % 32 == 0) to GGUF Q8_0 blocks at dst (llama.cpp's reference rounding). */
export function quantizeRowQ8_0(dst: usize, src: usize, k: i32): void {
  const nb = k >> 5;
  for (let b = 0; b < nb; b++) {
    const s = src + (<usize>b << 7);
    const d = dst + <usize>b * 34;
    let amax: f32 = 0;
    for (let j = 0; j < 32; j++) amax = max(amax, Mathf.abs(load<f32>(s + (<usize>j << 2))));
    const sc: f32 = amax / 127;
    const id: f32 = sc != 0 ? <f32>1 / sc : 0;
    store<u16>(d, <u16>f32ToF16(sc));
    for (let j = 0; j < 32; j++) store<i8>(d + 2 + j, <i8>(<i32>roundHalfAway(load<f32>(s + (<usize>j << 2)) * id)));
  }
}

/** quantise k floats (k % 32 == 0) to GGUF Q4_0 blocks at dst (llama.cpp's reference rounding). */
export function quantizeRowQ4_0(dst: usize, src: usize, k: i32): void {
  const nb = k >> 5;
  for (let b = 0; b < nb; b++) {
    const s = src + (<usize>b << 7);
    const d = dst + <usize>b * 18;
    let amax: f32 = 0;
    let mx: f32 = 0;
    for (let j = 0; j < 32; j++) {
      const v = load<f32>(s + (<usize>j << 2));
      if (Mathf.abs(v) > amax) {
        amax = Mathf.abs(v);
        mx = v;
      }
    }
    const sc: f32 = mx / -8;
    const id: f32 = sc != 0 ? <f32>1 / sc : 0;
    store<u16>(d, <u16>f32ToF16(sc));
    for (let j = 0; j < 16; j++) {
      const a = min<i32>(15, <i32>(load<f32>(s + (<usize>j << 2)) * id + 8.5));
      const c = min<i32>(15, <i32>(load<f32>(s + (<usize>(j + 16) << 2)) * id + 8.5));
      store<u8>(d + 2 + j, <u8>(a | (c << 4)));
    }
  }
}

/** k values of a row stored as GGUF type `type` (0 f32, 1 f16, 2 q4_0, 8 q8_0) to f32 at dst. */
export function dequantizeRow(type: i32, dst: usize, src: usize, k: i32): void {
  if (type == 0) {
    memory.copy(dst, src, <usize>k << 2);
  } else if (type == 1) {
    for (let j = 0; j < k; j++) store<f32>(dst + (<usize>j << 2), f16ToF32(load<u16>(src + (<usize>j << 1))));
  } else if (type == 8) {
    const nb = k >> 5;
    for (let b = 0; b < nb; b++) {
      const s = src + <usize>b * 34;
      const o = dst + (<usize>b << 7);
      const d = f16ToF32(load<u16>(s));
      for (let j = 0; j < 32; j++) store<f32>(o + (<usize>j << 2), d * <f32>load<i8>(s + 2 + j));
    }
  } else if (type == 2) {
    const nb = k >> 5;
    for (let b = 0; b < nb; b++) {
      const s = src + <usize>b * 18;
      const o = dst + (<usize>b << 7);
      const d = f16ToF32(load<u16>(s));
      for (let j = 0; j < 16; j++) {
        const q = <i32>load<u8>(s + 2 + j);
        store<f32>(o + (<usize>j << 2), d * <f32>((q & 15) - 8));
        store<f32>(o + (<usize>(j + 16) << 2), d * <f32>((q >> 4) - 8));
      }
    }
  }
}
