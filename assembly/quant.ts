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
// several x rows (beams, prefill): tiles of 4 x rows × groups of 4 output rows, the x rows stored
// block-interleaved (see quantizeAct) so the inner loops address everything from two pointers with
// constant offsets; a row's integer sums and f32 operations are those of the one-row path, so its
// result does not depend on the batch it is in (bit for bit).
//
// order of reading the weights (memory, not arithmetic, bounds a model that does not fit the caches):
// on this VM (2-core x86-64, Node 22, measured 2026-11-28) one core read 256 MB of plain loads at
// ~11.5 GB/s as one sequential stream and ~14–15 GB/s as 2–8 concurrent ones; with the ~20 vector
// ops per 64 bytes of a one-row kernel, one stream fell to ~6 GB/s, four to ~10 and eight to ~12
// (the hardware prefetcher overlaps the arithmetic only when several streams run; load-ahead
// "touches" gained <20 %). The groups of one weight are contiguous, so reading G consecutive groups
// gives G streams that end after one group each; instead every call reads groups g, g + Q, …,
// g + (G − 1)·Q (Q = ng / G), and each stream runs on into the next call:
//   one row: relaxed q8_0 and q4_0 read 8 streams (two halves of four groups per block, all eight
//     f32 sums in registers), plain q8_0 6 (two halves of three); then 4 / 3, then the rest.
//     From memory (scripts/bench-stream-quant.ts) q8_0 relaxed 7–11 → 13–15 GB/s, q4_0 6–10 → 13–14.
//   several rows (and plain q4_0's one row): 8 groups for m ≤ 4, 4 above (TILE_STREAMS_FEW,
//     TILE_STREAMS), block by block in turn, f32 sums in scratch; each x tile in turn over that
//     group set (the first reads memory, the others cache). q8_0 m = 2 from memory 4.8 → 10.7,
//     m = 4 4.7 → 7.6 GB/s (2048x768); 8 streams for m = 8 cost 7 % on the cache-resident 42M.
//
// why several rows still cost ~3× one row from cache (measured 2026-11, Node 22, this x86-64 with
// AVX-VNNI that V8 does not use): V8 12.4 lowers i32x4.relaxed_dot_i8x16_i7x16_add_s to pmaddubsw
// + pmaddwd + paddd (no vpdpbusd). With 128-bit integer ops on three ports (p0, p1, p5; the multiplies
// on p0/p1 only), per 16 MACs and per x row:
//   one row, relaxed q8_0: xor + sub (sign of x onto w) + pmaddubsw + pmaddwd + paddd = 5 ops, plus
//     ~3 per block and group (convert, scale product, fma): ≈ 43 ops per 128 MACs → at 3 ops/cycle,
//     ~2.6 GHz: ≈ 46–50 GOP/s, what 1x768x3072 measures (44–50).
//   tile, q8_0 (int16): 2 pmaddwd + 2 paddd = 4 ops per row, + 2 pmovsxbw shared by the R rows:
//     18 ops per 64 MACs for R = 4 → 4 rows cost ≥ (4·4 + 2) / 5 = 3.6 one-row steps; measured
//     3.0–3.6× (tile ~58 GOP/s against ~45–50). No formulation found with fewer ops: a 7-bit operand
//     is needed for pmaddubsw, and both Q8 operands are signed 8-bit — moving a sign costs 2 ops per
//     row and vector, splitting w into nibbles costs 2 pmaddubsw + 2 paddw per row (= 4), and int16
//     sums of 8×7-bit pairs overflow after one step, so every pmaddubsw needs its own pmaddwd + paddd.
//   tile, q4_0 (relaxed): 2 pmaddubsw + 2 paddw per row per 32 MACs, + 3 unpack ops shared; one row
//     7 per 32 MACs → 4 rows ≥ (4·4 + 3) / 7 ≈ 2.7×; measured 2.8–3.0×.
// so "4 rows ≤ 2× one row" holds only where one row is bound by memory and four are not much slower
// than their arithmetic: from memory q8_0 2048x768 m = 4 costs ~1.9× m = 1 (bench-stream-quant).
// usdot engines (V8 13.6 = Node 24 here, with AVX-VNNI; see "usdot" below) do the 16 MACs in one
// vpdpbusd: measured 2026-11-28, 1x768x3072 q8_0 45 → 52–56 GOP/s (now bound by L3, ~31 GB/s),
// 4x768x3072 58 → 131 (two groups per x broadcast; one group per broadcast ran at ~4 instructions
// per cycle and gave 104), so 4 rows cost ~1.6× one row for q8_0 and ~1.9× for q4_0.
// Tried and dropped: a fully unrolled block (V8 hoisted every load and spilled), 8 x rows per tile
// (spills), prefetching further ahead, nibble-split Q8 weights (same op count), both x tiles of
// m = 8 in one block loop (slower from cache, no faster from memory), one-row plain q8_0 as a tile
// (−20 % from cache), tiles loading one byte 1–16 KB ahead in each stream (a page-crossing
// "prefetch": m = 2 from memory 10 → 7 GB/s, the loads stall retirement).
import { f16ToF32, f32ToF16, fma, hsumI } from './simd';

const ONES16: usize = memory.data<i16>([1, 1, 1, 1, 1, 1, 1, 1], 16);
// the nibble mask as a load: V8 rebuilds a v128.const at every use inside a loop (three instructions;
// V8 13 did so ~100 times in linearQ4), a loaded vector it keeps in a register
const LO4: usize = memory.data<u8>([15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15], 16);
const Q8_GB: usize = 144; // bytes per (group, block), q8_0
const Q4_GB: usize = 80; // bytes per (group, block), q4_0

/** scratch bytes linearQ8/linearQ4 use for m rows of k (activation quants, scales, sums). */
export function quantScratchBytes(m: i32, k: i32): usize {
  const mp = <usize>((m + 3) & ~3);
  return 5 * mp * <usize>k + 40 * mp * <usize>(k >> 5) + 64 * <usize>max(TILE_STREAMS, TILE_STREAMS_FEW) + 80;
}

// several rows (m > 1) are stored for the tiles: rows in tiles of 4 (the last one padded), and per
// (tile, block) the four rows' values one after another, so one pointer plus constant offsets reach
// every row (V8 then computes no address per load):
//   relaxed int8 at s: (t·nb + b)·128 + i·32 + e      (i = row in tile, e = element in block)
//   int16 at s16 (s, or s + 3·mp·k in the relaxed build): (t·nb + b)·256 + i·64 + 2e
//   vectors at actVectors: (t·nb + b)·128 + i·32: the Q4 tiles' starting sums (−8·Σx, see quantizeAct),
//   f32x4 splat of d
// @ts-ignore: decorator
@inline
function actVectors(s: usize, m: i32, k: i32): usize {
  const mp = <usize>((m + 3) & ~3);
  return (s + 5 * mp * <usize>k + 8 * mp * <usize>(k >> 5) + 15) & ~(<usize>15);
}

/** quantise m rows of k activations to Q8_0 into scratch s.
 * m == 1: plain build: int16 values at s; relaxed: int8 at s, |x| at s + k, sign masks (0 / -1) at
 * s + 2k; m > 1: the tile layout above. f32 scales at s + 5·mp·k and i32 block sums after them (row-major),
 * mp = m rounded up to a multiple of 4. */
export function quantizeAct(s: usize, x: usize, m: i32, k: i32): void {
  quantizeActs(s, x, m, k, m > 1, 7);
}

// tile: the several-row layout (for any m, one row included); usdotShift: the usdot tiles' sums start
// at −Σx << usdotShift (7 for Q8_0, 3 for Q4_0)
// @ts-ignore: decorator
@inline
function quantizeActs(s: usize, x: usize, m: i32, k: i32, tile: bool, usdotShift: i32): void {
  const nb = k >> 5;
  const mp = <usize>((m + 3) & ~3);
  const mk = <usize>m * <usize>k;
  const xd = s + 5 * mp * <usize>k;
  const xs = xd + 4 * mp * <usize>nb;
  const xv = actVectors(s, m, k);
  const s16 = ASC_FEATURE_RELAXED_SIMD ? s + 3 * mp * <usize>k : s;
  let src = x;
  let bi: usize = 0; // block index over all rows
  for (let r = 0; r < m; r++) {
    // (tile, block) index of this row's block 0, and the row's place in its tile
    const tb0 = <usize>(r >> 2) * <usize>nb;
    const ti = <usize>(r & 3);
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
      const bsum = hsumI(sum);
      store<f32>(xd + (bi << 2), d);
      store<i32>(xs + (bi << 2), bsum);
      const h0 = i16x8.narrow_i32x4_s(q0, q1);
      const h1 = i16x8.narrow_i32x4_s(q2, q3);
      const h2 = i16x8.narrow_i32x4_s(q4, q5);
      const h3 = i16x8.narrow_i32x4_s(q6, q7);
      if (!tile) {
        if (ASC_FEATURE_RELAXED_SIMD) {
          const o = s + (bi << 5);
          const b0 = i8x16.narrow_i16x8_s(h0, h1);
          const b1 = i8x16.narrow_i16x8_s(h2, h3);
          v128.store(o, b0);
          v128.store(o, b1, 16);
          if (USDOT) {
            src += 128;
            bi++;
            continue;
          }
          v128.store(o + mk, i8x16.abs(b0));
          v128.store(o + mk, i8x16.abs(b1), 16);
          v128.store(o + 2 * mk, i8x16.shr_s(b0, 7));
          v128.store(o + 2 * mk, i8x16.shr_s(b1, 7), 16);
        } else {
          const o = s + (bi << 6);
          v128.store(o, h0);
          v128.store(o, h1, 16);
          v128.store(o, h2, 32);
          v128.store(o, h3, 48);
        }
      } else {
        const tb = tb0 + <usize>b;
        if (ASC_FEATURE_RELAXED_SIMD) {
          const o = s + (tb << 7) + (ti << 5);
          v128.store(o, i8x16.narrow_i16x8_s(h0, h1));
          v128.store(o, i8x16.narrow_i16x8_s(h2, h3), 16);
        }
        const o16 = s16 + (tb << 8) + (ti << 6);
        v128.store(o16, h0);
        v128.store(o16, h1, 16);
        v128.store(o16, h2, 32);
        v128.store(o16, h3, 48);
        const ov = xv + (tb << 7) + (ti << 5);
        // the Q4 tiles start their sums at −8·Σx (nibbles are used as 0..15, values are nibble − 8):
        // relaxed, int16 pair lanes [−8·(x0 + x1), −8·(x2 + x3)] summed over the block's 4-element
        // steps (each lane's true final value is a sum of 16 (nibble − 8)·x, |·| ≤ 16256: int16 holds it,
        // and wrapping adds make the intermediate values irrelevant); plain, i32 [−8·Σx, 0, −8·Σx, 0]
        // (the pair sums are combined later)
        if (ASC_FEATURE_RELAXED_SIMD && USDOT) {
          // the usdot tiles start their i32 sums at −128·Σx (q8_0: weights fed as w + 128) or −8·Σx
          // (q4_0: nibbles fed as 0..15)
          v128.store(ov, i32x4.splat(-(bsum << usdotShift)));
        } else if (ASC_FEATURE_RELAXED_SIMD) {
          const t = i32x4.mul(i32x4.add(i32x4.shuffle(sum, sum, 0, 2, 0, 2), i32x4.shuffle(sum, sum, 1, 3, 1, 3)), i32x4.splat(-8));
          v128.store(ov, i16x8.narrow_i32x4_s(t, t));
        } else {
          v128.store(ov, i32x4.replace_lane(i32x4.replace_lane(i32x4.splat(0), 0, -(bsum << 3)), 2, -(bsum << 3)));
        }
        v128.store(ov, f32x4.splat(d), 16);
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

// ---- usdot (one instruction per 16 MACs) ---------------------------------------------------
// i32x4.relaxed_dot_i8x16_i7x16_add_s(a, b, c) is portable only for b in 0..127. Engines that lower it
// to x86's vpdpbusd (V8 13 on a CPU with AVX-VNNI: Node 24, recent workerd) multiply b as unsigned
// bytes 0..255 without saturating, in one instruction that also adds c. usdotProbe checks exactly
// that on the running engine; the runtime then turns USDOT on (setUsdot), and:
//   Q8_0: the weights are fed as w + 128 = w ^ 0x80 (1..255; packed w is −127..127) — stored so by
//     prepareLinear for a usdot instance (assembly/pack.ts packQ8's flip; a xor per weight vector
//     in the kernels cost the tiles 5–7 %) — x as signed int8, and each block's sums start at
//     −128·Σx, so they end at Σ w·x;
//   Q4_0: nibbles 0..15 as b (portable anyway), sums start at −8·Σx.
// The integer block sums, and every f32 operation after them, are those of the portable relaxed path:
// the results are bit-identical, only faster. Elsewhere (V8 12's pmaddubsw lowering saturates the
// 16-bit pair sums; AVX-VNNI-INT8 and Arm's sdot treat b as signed) the probe fails and nothing changes.
let USDOT: bool = false;

const PROBE_A: usize = memory.data<i8>([127, 127, 127, 127, -128, -128, -128, -128, -128, 127, -1, 5, 1, 2, 3, 4], 16);
const PROBE_B: usize = memory.data<u8>([255, 255, 255, 255, 255, 255, 255, 255, 128, 200, 1, 0, 10, 20, 30, 40], 16);
const PROBE_C: usize = memory.data<i32>([7, -7, 0, 1], 16);
const PROBE_OUT: usize = memory.data(16, 16);

/** relaxed build: the four i32 lanes of relaxed_dot_i8x16_i7x16_add_s on fixed operands (address of
 * 16 bytes); an engine with unsigned, non-saturating bytes gives [129547, −130567, 9015, 301].
 * plain build: 0. */
export function usdotProbe(): usize {
  if (ASC_FEATURE_RELAXED_SIMD) {
    v128.store(PROBE_OUT, udot(v128.load(PROBE_A), v128.load(PROBE_B), v128.load(PROBE_C)));
    return PROBE_OUT;
  }
  return 0;
}

/** turn the usdot kernels on (1) or off (0); only the relaxed build has them (call after the probe). */
export function setUsdot(on: i32): void {
  USDOT = ASC_FEATURE_RELAXED_SIMD && on != 0;
}

/** 1 while the usdot kernels are on. */
export function usdotOn(): i32 {
  return USDOT ? 1 : 0;
}

// acc + per-lane Σ of 4 products a (signed bytes) · b (bytes, unsigned where usdot holds)
// @ts-ignore: decorator
@inline
function udot(a: v128, b: v128, acc: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) {
    return i32x4.relaxed_dot_i8x16_i7x16_add_s(a, b, acc);
  } else {
    return unreachable();
  }
}

// usdot: one block of one group of 4 output rows times R (1..4) rows of one int8 x tile; sums start
// at the tile vectors' −128·Σx (see quantizeActs)
// @ts-ignore: decorator
@inline
function q8TileBlockU(R: i32, wb: usize, xb: usize, xvp: usize, fp: usize): void {
  const ws = v128.load(wb, 128); // first: touches the block's last cache line early (see q8TileBlock)
  let a0 = v128.load(xvp);
  let a1 = i32x4.splat(0);
  let a2 = i32x4.splat(0);
  let a3 = i32x4.splat(0);
  if (R > 1) a1 = v128.load(xvp, 32);
  if (R > 2) a2 = v128.load(xvp, 64);
  if (R > 3) a3 = v128.load(xvp, 96);
  let wp = wb;
  let xp = xb;
  const we = wb + 128;
  while (wp < we) {
    const w = v128.load(wp);
    a0 = udot(v128.load32_splat(xp), w, a0);
    if (R > 1) a1 = udot(v128.load32_splat(xp, 32), w, a1);
    if (R > 2) a2 = udot(v128.load32_splat(xp, 64), w, a2);
    if (R > 3) a3 = udot(v128.load32_splat(xp, 96), w, a3);
    wp += 16;
    xp += 4;
  }
  v128.store(fp, fma(f32x4.convert_i32x4_s(a0), f32x4.mul(ws, v128.load(xvp, 16)), v128.load(fp)));
  if (R > 1) v128.store(fp, fma(f32x4.convert_i32x4_s(a1), f32x4.mul(ws, v128.load(xvp, 48)), v128.load(fp, 16)), 16);
  if (R > 2) v128.store(fp, fma(f32x4.convert_i32x4_s(a2), f32x4.mul(ws, v128.load(xvp, 80)), v128.load(fp, 32)), 32);
  if (R > 3) v128.store(fp, fma(f32x4.convert_i32x4_s(a3), f32x4.mul(ws, v128.load(xvp, 112)), v128.load(fp, 48)), 48);
}

// usdot: as q8TileBlockU for Q4_0 (nibbles 0..15; sums start at −8·Σx)
// @ts-ignore: decorator
@inline
function q4TileBlockU(R: i32, wb: usize, xb: usize, xvp: usize, fp: usize): void {
  const ws = v128.load(wb, 64);
  const lo4 = v128.load(LO4);
  let a0 = v128.load(xvp);
  let a1 = i32x4.splat(0);
  let a2 = i32x4.splat(0);
  let a3 = i32x4.splat(0);
  if (R > 1) a1 = v128.load(xvp, 32);
  if (R > 2) a2 = v128.load(xvp, 64);
  if (R > 3) a3 = v128.load(xvp, 96);
  let wp = wb;
  let xp = xb;
  const we = wb + 64;
  while (wp < we) {
    const v = v128.load(wp);
    const lo = v128.and(v, lo4);
    const hi = v128.and(i16x8.shr_u(v, 4), lo4);
    a0 = udot(v128.load32_splat(xp, 16), hi, udot(v128.load32_splat(xp), lo, a0));
    if (R > 1) a1 = udot(v128.load32_splat(xp, 48), hi, udot(v128.load32_splat(xp, 32), lo, a1));
    if (R > 2) a2 = udot(v128.load32_splat(xp, 80), hi, udot(v128.load32_splat(xp, 64), lo, a2));
    if (R > 3) a3 = udot(v128.load32_splat(xp, 112), hi, udot(v128.load32_splat(xp, 96), lo, a3));
    wp += 16;
    xp += 4;
  }
  v128.store(fp, fma(f32x4.convert_i32x4_s(a0), f32x4.mul(ws, v128.load(xvp, 16)), v128.load(fp)));
  if (R > 1) v128.store(fp, fma(f32x4.convert_i32x4_s(a1), f32x4.mul(ws, v128.load(xvp, 48)), v128.load(fp, 16)), 16);
  if (R > 2) v128.store(fp, fma(f32x4.convert_i32x4_s(a2), f32x4.mul(ws, v128.load(xvp, 80)), v128.load(fp, 32)), 32);
  if (R > 3) v128.store(fp, fma(f32x4.convert_i32x4_s(a3), f32x4.mul(ws, v128.load(xvp, 112)), v128.load(fp, 48)), 48);
}

// usdot: two groups (weights at wb and wc, f32 sums at fp and fq) share each x broadcast: per dot
// ~2.3 instructions instead of 3.5 (V8 ran one group's tile at ~4 instructions per cycle, the
// front end's limit, with the dots at half their throughput)
// @ts-ignore: decorator
@inline
function q8TileBlockU2(R: i32, wb: usize, wc: usize, xb: usize, xvp: usize, fp: usize, fq: usize): void {
  let a0 = v128.load(xvp);
  let a1 = i32x4.splat(0);
  let a2 = i32x4.splat(0);
  let a3 = i32x4.splat(0);
  if (R > 1) a1 = v128.load(xvp, 32);
  if (R > 2) a2 = v128.load(xvp, 64);
  if (R > 3) a3 = v128.load(xvp, 96);
  let c0 = a0;
  let c1 = a1;
  let c2 = a2;
  let c3 = a3;
  let wp = wb;
  let wq = wc;
  let xp = xb;
  const we = wb + 128;
  while (wp < we) {
    const w = v128.load(wp);
    const v = v128.load(wq);
    let xv = v128.load32_splat(xp);
    a0 = udot(xv, w, a0);
    c0 = udot(xv, v, c0);
    if (R > 1) {
      xv = v128.load32_splat(xp, 32);
      a1 = udot(xv, w, a1);
      c1 = udot(xv, v, c1);
    }
    if (R > 2) {
      xv = v128.load32_splat(xp, 64);
      a2 = udot(xv, w, a2);
      c2 = udot(xv, v, c2);
    }
    if (R > 3) {
      xv = v128.load32_splat(xp, 96);
      a3 = udot(xv, w, a3);
      c3 = udot(xv, v, c3);
    }
    wp += 16;
    wq += 16;
    xp += 4;
  }
  tileStore(R, a0, a1, a2, a3, v128.load(wb, 128), xvp, fp);
  tileStore(R, c0, c1, c2, c3, v128.load(wc, 128), xvp, fq);
}

// usdot: as q8TileBlockU2 for Q4_0
// @ts-ignore: decorator
@inline
function q4TileBlockU2(R: i32, wb: usize, wc: usize, xb: usize, xvp: usize, fp: usize, fq: usize): void {
  const lo4 = v128.load(LO4);
  let a0 = v128.load(xvp);
  let a1 = i32x4.splat(0);
  let a2 = i32x4.splat(0);
  let a3 = i32x4.splat(0);
  if (R > 1) a1 = v128.load(xvp, 32);
  if (R > 2) a2 = v128.load(xvp, 64);
  if (R > 3) a3 = v128.load(xvp, 96);
  let c0 = a0;
  let c1 = a1;
  let c2 = a2;
  let c3 = a3;
  let wp = wb;
  let wq = wc;
  let xp = xb;
  const we = wb + 64;
  while (wp < we) {
    const v = v128.load(wp);
    const lo = v128.and(v, lo4);
    const hi = v128.and(i16x8.shr_u(v, 4), lo4);
    const u = v128.load(wq);
    const ulo = v128.and(u, lo4);
    const uhi = v128.and(i16x8.shr_u(u, 4), lo4);
    let xl = v128.load32_splat(xp);
    let xh = v128.load32_splat(xp, 16);
    a0 = udot(xh, hi, udot(xl, lo, a0));
    c0 = udot(xh, uhi, udot(xl, ulo, c0));
    if (R > 1) {
      xl = v128.load32_splat(xp, 32);
      xh = v128.load32_splat(xp, 48);
      a1 = udot(xh, hi, udot(xl, lo, a1));
      c1 = udot(xh, uhi, udot(xl, ulo, c1));
    }
    if (R > 2) {
      xl = v128.load32_splat(xp, 64);
      xh = v128.load32_splat(xp, 80);
      a2 = udot(xh, hi, udot(xl, lo, a2));
      c2 = udot(xh, uhi, udot(xl, ulo, c2));
    }
    if (R > 3) {
      xl = v128.load32_splat(xp, 96);
      xh = v128.load32_splat(xp, 112);
      a3 = udot(xh, hi, udot(xl, lo, a3));
      c3 = udot(xh, uhi, udot(xl, ulo, c3));
    }
    wp += 16;
    wq += 16;
    xp += 4;
  }
  tileStore(R, a0, a1, a2, a3, v128.load(wb, 64), xvp, fp);
  tileStore(R, c0, c1, c2, c3, v128.load(wc, 64), xvp, fq);
}

// the R rows' block sums a0.. (lanes: 4 output rows) times the weight scales ws and each row's d
// (tile vectors at xvp), added to the f32 sums at fp, fp + 16, …
// @ts-ignore: decorator
@inline
function tileStore(R: i32, a0: v128, a1: v128, a2: v128, a3: v128, ws: v128, xvp: usize, fp: usize): void {
  v128.store(fp, fma(f32x4.convert_i32x4_s(a0), f32x4.mul(ws, v128.load(xvp, 16)), v128.load(fp)));
  if (R > 1) v128.store(fp, fma(f32x4.convert_i32x4_s(a1), f32x4.mul(ws, v128.load(xvp, 48)), v128.load(fp, 16)), 16);
  if (R > 2) v128.store(fp, fma(f32x4.convert_i32x4_s(a2), f32x4.mul(ws, v128.load(xvp, 80)), v128.load(fp, 32)), 32);
  if (R > 3) v128.store(fp, fma(f32x4.convert_i32x4_s(a3), f32x4.mul(ws, v128.load(xvp, 112)), v128.load(fp, 48)), 48);
}

// usdot: one x row (int8 at s, per block d at xd and Σx at xs) times G (1..4, constant) groups gBytes
// apart
// @ts-ignore: decorator
@inline
function q8RowU(G: i32, o: usize, oStride: usize, s: usize, xd: usize, xs: usize, wg: usize, gBytes: usize, nb: i32, validLast: i32): void {
  let f0 = f32x4.splat(0);
  let f1 = f32x4.splat(0);
  let f2 = f32x4.splat(0);
  let f3 = f32x4.splat(0);
  let w0 = wg;
  let xq = s;
  for (let b = 0; b < nb; b++) {
    const init = i32x4.splat(-(load<i32>(xs + (<usize>b << 2)) << 7));
    let a0 = init;
    let a1 = init;
    let a2 = init;
    let a3 = init;
    for (let st: usize = 0; st < 32; st += 4) {
      const xv = v128.load32_splat(xq + st);
      const wo = st << 2;
      a0 = udot(xv, v128.load(w0 + wo), a0);
      if (G > 1) a1 = udot(xv, v128.load(w0 + gBytes + wo), a1);
      if (G > 2) a2 = udot(xv, v128.load(w0 + 2 * gBytes + wo), a2);
      if (G > 3) a3 = udot(xv, v128.load(w0 + 3 * gBytes + wo), a3);
    }
    const xdv = v128.load32_splat(xd + (<usize>b << 2));
    f0 = fma(f32x4.convert_i32x4_s(a0), f32x4.mul(v128.load(w0, 128), xdv), f0);
    if (G > 1) f1 = fma(f32x4.convert_i32x4_s(a1), f32x4.mul(v128.load(w0 + gBytes, 128), xdv), f1);
    if (G > 2) f2 = fma(f32x4.convert_i32x4_s(a2), f32x4.mul(v128.load(w0 + 2 * gBytes, 128), xdv), f2);
    if (G > 3) f3 = fma(f32x4.convert_i32x4_s(a3), f32x4.mul(v128.load(w0 + 3 * gBytes, 128), xdv), f3);
    xq += 32;
    w0 += Q8_GB;
  }
  store4(o, f0, G == 1 ? validLast : 4);
  if (G > 1) store4(o + oStride, f1, G == 2 ? validLast : 4);
  if (G > 2) store4(o + 2 * oStride, f2, G == 3 ? validLast : 4);
  if (G > 3) store4(o + 3 * oStride, f3, validLast);
}

// usdot: one x row times 8 groups gBytes apart, in two halves of four per block (as q8Row8)
// @ts-ignore: decorator
@inline
function q8RowU8(o: usize, oStride: usize, s: usize, xd: usize, xs: usize, wg: usize, gBytes: usize, nb: i32, validLast: i32): void {
  let f0 = f32x4.splat(0);
  let f1 = f32x4.splat(0);
  let f2 = f32x4.splat(0);
  let f3 = f32x4.splat(0);
  let f4 = f32x4.splat(0);
  let f5 = f32x4.splat(0);
  let f6 = f32x4.splat(0);
  let f7 = f32x4.splat(0);
  let w0 = wg;
  let xq = s;
  const g4 = gBytes << 2;
  for (let b = 0; b < nb; b++) {
    const init = i32x4.splat(-(load<i32>(xs + (<usize>b << 2)) << 7));
    const xdv = v128.load32_splat(xd + (<usize>b << 2));
    {
      const wh = w0;
      let a0 = init;
      let a1 = init;
      let a2 = init;
      let a3 = init;
      for (let st: usize = 0; st < 32; st += 4) {
        const xv = v128.load32_splat(xq + st);
        const wo = st << 2;
        a0 = udot(xv, v128.load(wh + wo), a0);
        a1 = udot(xv, v128.load(wh + gBytes + wo), a1);
        a2 = udot(xv, v128.load(wh + 2 * gBytes + wo), a2);
        a3 = udot(xv, v128.load(wh + 3 * gBytes + wo), a3);
      }
      f0 = fma(f32x4.convert_i32x4_s(a0), f32x4.mul(v128.load(wh, 128), xdv), f0);
      f1 = fma(f32x4.convert_i32x4_s(a1), f32x4.mul(v128.load(wh + gBytes, 128), xdv), f1);
      f2 = fma(f32x4.convert_i32x4_s(a2), f32x4.mul(v128.load(wh + 2 * gBytes, 128), xdv), f2);
      f3 = fma(f32x4.convert_i32x4_s(a3), f32x4.mul(v128.load(wh + 3 * gBytes, 128), xdv), f3);
    }
    {
      const wh = w0 + g4;
      let a0 = init;
      let a1 = init;
      let a2 = init;
      let a3 = init;
      for (let st: usize = 0; st < 32; st += 4) {
        const xv = v128.load32_splat(xq + st);
        const wo = st << 2;
        a0 = udot(xv, v128.load(wh + wo), a0);
        a1 = udot(xv, v128.load(wh + gBytes + wo), a1);
        a2 = udot(xv, v128.load(wh + 2 * gBytes + wo), a2);
        a3 = udot(xv, v128.load(wh + 3 * gBytes + wo), a3);
      }
      f4 = fma(f32x4.convert_i32x4_s(a0), f32x4.mul(v128.load(wh, 128), xdv), f4);
      f5 = fma(f32x4.convert_i32x4_s(a1), f32x4.mul(v128.load(wh + gBytes, 128), xdv), f5);
      f6 = fma(f32x4.convert_i32x4_s(a2), f32x4.mul(v128.load(wh + 2 * gBytes, 128), xdv), f6);
      f7 = fma(f32x4.convert_i32x4_s(a3), f32x4.mul(v128.load(wh + 3 * gBytes, 128), xdv), f7);
    }
    xq += 32;
    w0 += Q8_GB;
  }
  v128.store(o, f0);
  v128.store(o + oStride, f1);
  v128.store(o + 2 * oStride, f2);
  v128.store(o + 3 * oStride, f3);
  v128.store(o + 4 * oStride, f4);
  v128.store(o + 5 * oStride, f5);
  v128.store(o + 6 * oStride, f6);
  store4(o + 7 * oStride, f7, validLast);
}

// usdot: one x row times G (1..4, constant) Q4_0 groups gBytes apart
// @ts-ignore: decorator
@inline
function q4RowU(G: i32, o: usize, oStride: usize, s: usize, xd: usize, xs: usize, wg: usize, gBytes: usize, nb: i32, validLast: i32): void {
  const lo4 = v128.load(LO4);
  let f0 = f32x4.splat(0);
  let f1 = f32x4.splat(0);
  let f2 = f32x4.splat(0);
  let f3 = f32x4.splat(0);
  let w0 = wg;
  let xq = s;
  for (let b = 0; b < nb; b++) {
    const init = i32x4.splat(-(load<i32>(xs + (<usize>b << 2)) << 3));
    let a0 = init;
    let a1 = init;
    let a2 = init;
    let a3 = init;
    for (let j: usize = 0; j < 16; j += 4) {
      const xl = v128.load32_splat(xq + j);
      const xh = v128.load32_splat(xq + 16 + j);
      const wo = j << 2;
      let v = v128.load(w0 + wo);
      a0 = udot(xh, v128.and(i16x8.shr_u(v, 4), lo4), udot(xl, v128.and(v, lo4), a0));
      if (G > 1) {
        v = v128.load(w0 + gBytes + wo);
        a1 = udot(xh, v128.and(i16x8.shr_u(v, 4), lo4), udot(xl, v128.and(v, lo4), a1));
      }
      if (G > 2) {
        v = v128.load(w0 + 2 * gBytes + wo);
        a2 = udot(xh, v128.and(i16x8.shr_u(v, 4), lo4), udot(xl, v128.and(v, lo4), a2));
      }
      if (G > 3) {
        v = v128.load(w0 + 3 * gBytes + wo);
        a3 = udot(xh, v128.and(i16x8.shr_u(v, 4), lo4), udot(xl, v128.and(v, lo4), a3));
      }
    }
    const xdv = v128.load32_splat(xd + (<usize>b << 2));
    f0 = fma(f32x4.convert_i32x4_s(a0), f32x4.mul(v128.load(w0, 64), xdv), f0);
    if (G > 1) f1 = fma(f32x4.convert_i32x4_s(a1), f32x4.mul(v128.load(w0 + gBytes, 64), xdv), f1);
    if (G > 2) f2 = fma(f32x4.convert_i32x4_s(a2), f32x4.mul(v128.load(w0 + 2 * gBytes, 64), xdv), f2);
    if (G > 3) f3 = fma(f32x4.convert_i32x4_s(a3), f32x4.mul(v128.load(w0 + 3 * gBytes, 64), xdv), f3);
    xq += 32;
    w0 += Q4_GB;
  }
  store4(o, f0, G == 1 ? validLast : 4);
  if (G > 1) store4(o + oStride, f1, G == 2 ? validLast : 4);
  if (G > 2) store4(o + 2 * oStride, f2, G == 3 ? validLast : 4);
  if (G > 3) store4(o + 3 * oStride, f3, validLast);
}

// usdot: one x row times 8 Q4_0 groups gBytes apart, in two halves of four per block (as q4Row8)
// @ts-ignore: decorator
@inline
function q4RowU8(o: usize, oStride: usize, s: usize, xd: usize, xs: usize, wg: usize, gBytes: usize, nb: i32, validLast: i32): void {
  const lo4 = v128.load(LO4);
  let f0 = f32x4.splat(0);
  let f1 = f32x4.splat(0);
  let f2 = f32x4.splat(0);
  let f3 = f32x4.splat(0);
  let f4 = f32x4.splat(0);
  let f5 = f32x4.splat(0);
  let f6 = f32x4.splat(0);
  let f7 = f32x4.splat(0);
  let w0 = wg;
  let xq = s;
  const g4 = gBytes << 2;
  for (let b = 0; b < nb; b++) {
    const init = i32x4.splat(-(load<i32>(xs + (<usize>b << 2)) << 3));
    const xdv = v128.load32_splat(xd + (<usize>b << 2));
    {
      const wh = w0;
      let a0 = init;
      let a1 = init;
      let a2 = init;
      let a3 = init;
      for (let j: usize = 0; j < 16; j += 4) {
        const xl = v128.load32_splat(xq + j);
        const xh = v128.load32_splat(xq + 16 + j);
        const wo = j << 2;
        let v = v128.load(wh + wo);
        a0 = udot(xh, v128.and(i16x8.shr_u(v, 4), lo4), udot(xl, v128.and(v, lo4), a0));
        v = v128.load(wh + gBytes + wo);
        a1 = udot(xh, v128.and(i16x8.shr_u(v, 4), lo4), udot(xl, v128.and(v, lo4), a1));
        v = v128.load(wh + 2 * gBytes + wo);
        a2 = udot(xh, v128.and(i16x8.shr_u(v, 4), lo4), udot(xl, v128.and(v, lo4), a2));
        v = v128.load(wh + 3 * gBytes + wo);
        a3 = udot(xh, v128.and(i16x8.shr_u(v, 4), lo4), udot(xl, v128.and(v, lo4), a3));
      }
      f0 = fma(f32x4.convert_i32x4_s(a0), f32x4.mul(v128.load(wh, 64), xdv), f0);
      f1 = fma(f32x4.convert_i32x4_s(a1), f32x4.mul(v128.load(wh + gBytes, 64), xdv), f1);
      f2 = fma(f32x4.convert_i32x4_s(a2), f32x4.mul(v128.load(wh + 2 * gBytes, 64), xdv), f2);
      f3 = fma(f32x4.convert_i32x4_s(a3), f32x4.mul(v128.load(wh + 3 * gBytes, 64), xdv), f3);
    }
    {
      const wh = w0 + g4;
      let a0 = init;
      let a1 = init;
      let a2 = init;
      let a3 = init;
      for (let j: usize = 0; j < 16; j += 4) {
        const xl = v128.load32_splat(xq + j);
        const xh = v128.load32_splat(xq + 16 + j);
        const wo = j << 2;
        let v = v128.load(wh + wo);
        a0 = udot(xh, v128.and(i16x8.shr_u(v, 4), lo4), udot(xl, v128.and(v, lo4), a0));
        v = v128.load(wh + gBytes + wo);
        a1 = udot(xh, v128.and(i16x8.shr_u(v, 4), lo4), udot(xl, v128.and(v, lo4), a1));
        v = v128.load(wh + 2 * gBytes + wo);
        a2 = udot(xh, v128.and(i16x8.shr_u(v, 4), lo4), udot(xl, v128.and(v, lo4), a2));
        v = v128.load(wh + 3 * gBytes + wo);
        a3 = udot(xh, v128.and(i16x8.shr_u(v, 4), lo4), udot(xl, v128.and(v, lo4), a3));
      }
      f4 = fma(f32x4.convert_i32x4_s(a0), f32x4.mul(v128.load(wh, 64), xdv), f4);
      f5 = fma(f32x4.convert_i32x4_s(a1), f32x4.mul(v128.load(wh + gBytes, 64), xdv), f5);
      f6 = fma(f32x4.convert_i32x4_s(a2), f32x4.mul(v128.load(wh + 2 * gBytes, 64), xdv), f6);
      f7 = fma(f32x4.convert_i32x4_s(a3), f32x4.mul(v128.load(wh + 3 * gBytes, 64), xdv), f7);
    }
    xq += 32;
    w0 += Q4_GB;
  }
  v128.store(o, f0);
  v128.store(o + oStride, f1);
  v128.store(o + 2 * oStride, f2);
  v128.store(o + 3 * oStride, f3);
  v128.store(o + 4 * oStride, f4);
  v128.store(o + 5 * oStride, f5);
  v128.store(o + 6 * oStride, f6);
  store4(o + 7 * oStride, f7, validLast);
}

// ---- Q8_0 ----------------------------------------------------------------------------------

// one block of one group of 4 output rows times R (1..4) rows of one x tile (int16, tile layout;
// xvp the block's vectors), folded into the R f32x4 accumulators at fp, fp + 16, …: the rows share
// the unpacked weights, which the relaxed sign trick of q8Row could not
// @ts-ignore: decorator
@inline
function q8TileBlock(R: i32, wb: usize, xb: usize, xvp: usize, fp: usize): void {
  // the scales first: this touches the block's last cache line early (a prefetch in effect:
  // loaded after the sums, weights streaming from L3 or memory lost up to 30 %)
  const ws = v128.load(wb, 128);
  let a0 = i32x4.splat(0);
  let b0 = i32x4.splat(0);
  let a1 = i32x4.splat(0);
  let b1 = i32x4.splat(0);
  let a2 = i32x4.splat(0);
  let b2 = i32x4.splat(0);
  let a3 = i32x4.splat(0);
  let b3 = i32x4.splat(0);
  let wp = wb;
  let xp = xb;
  for (let st = 0; st < 8; st++) {
    const wl = v128.load8x8_s(wp);
    const wh = v128.load8x8_s(wp, 8);
    let xx = v128.load64_splat(xp);
    a0 = i32x4.add(a0, i32x4.dot_i16x8_s(wl, xx));
    b0 = i32x4.add(b0, i32x4.dot_i16x8_s(wh, xx));
    if (R > 1) {
      xx = v128.load64_splat(xp, 64);
      a1 = i32x4.add(a1, i32x4.dot_i16x8_s(wl, xx));
      b1 = i32x4.add(b1, i32x4.dot_i16x8_s(wh, xx));
    }
    if (R > 2) {
      xx = v128.load64_splat(xp, 128);
      a2 = i32x4.add(a2, i32x4.dot_i16x8_s(wl, xx));
      b2 = i32x4.add(b2, i32x4.dot_i16x8_s(wh, xx));
    }
    if (R > 3) {
      xx = v128.load64_splat(xp, 192);
      a3 = i32x4.add(a3, i32x4.dot_i16x8_s(wl, xx));
      b3 = i32x4.add(b3, i32x4.dot_i16x8_s(wh, xx));
    }
    wp += 16;
    xp += 8;
  }
  v128.store(fp, fma(f32x4.convert_i32x4_s(pairSum(a0, b0)), f32x4.mul(ws, v128.load(xvp, 16)), v128.load(fp)));
  if (R > 1) v128.store(fp, fma(f32x4.convert_i32x4_s(pairSum(a1, b1)), f32x4.mul(ws, v128.load(xvp, 48)), v128.load(fp, 16)), 16);
  if (R > 2) v128.store(fp, fma(f32x4.convert_i32x4_s(pairSum(a2, b2)), f32x4.mul(ws, v128.load(xvp, 80)), v128.load(fp, 32)), 32);
  if (R > 3) v128.store(fp, fma(f32x4.convert_i32x4_s(pairSum(a3, b3)), f32x4.mul(ws, v128.load(xvp, 112)), v128.load(fp, 48)), 48);
}

// one x row times G (1..4, constant) consecutive groups of 4 output rows: every x load (and, in the
// relaxed build, its sign and magnitude) feeds G weight vectors; G independent accumulator chains.
// @ts-ignore: decorator
@inline
function q8Row(G: i32, o: usize, oStride: usize, s: usize, xd: usize, mk: usize, wg: usize, gBytes: usize, nb: i32, validLast: i32): void {
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
  store4(o, f0, G == 1 ? validLast : 4);
  if (G > 1) store4(o + oStride, f1, G == 2 ? validLast : 4);
  if (G > 2) store4(o + 2 * oStride, f2, G == 3 ? validLast : 4);
  if (G > 3) store4(o + 3 * oStride, f3, validLast);
}

// several x rows: the weights of S groups far apart (ng / S groups between them; S = TILE_STREAMS_FEW
// for m ≤ 4, else TILE_STREAMS) are read block by block in turn, so that many streams run at once
// (one stream of weights read at the tiles' compute rate got ~4.5 GB/s from memory here, several
// ~7–10); each (group, block) feeds every x tile, whose f32 sums wait at tileAcc
const TILE_STREAMS: i32 = 4;
const TILE_STREAMS_FEW: i32 = 8; // m ≤ 4

// S × 4 f32x4 accumulators (S ≤ 8), after the tile vectors
// @ts-ignore: decorator
@inline
function tileAcc(s: usize, m: i32, k: i32): usize {
  return actVectors(s, m, k) + (<usize>((m + 3) & ~3) << 5) * <usize>(k >> 5);
}

// rows r of x tile t of one (group, block) into f32x4 accumulators at fp + 16·r
// @ts-ignore: decorator
@inline
function tileBlock(Q4: bool, U: bool, R: i32, wb: usize, xb: usize, xvp: usize, fp: usize): void {
  if (U) {
    if (Q4) q4TileBlockU(R, wb, xb, xvp, fp);
    else q8TileBlockU(R, wb, xb, xvp, fp);
  } else if (Q4) q4TileBlock(R, wb, xb, xvp, fp);
  else q8TileBlock(R, wb, xb, xvp, fp);
}

// R (constant) rows of one x tile (xt, its vectors xv) times the groups g, g + gStep, …,
// g + (S − 1)·gStep, block by block in turn; f32 sums at acc, stored to out's rows r0 .. r0 + R − 1
// @ts-ignore: decorator
@inline
function tileGroups(Q4: bool, U: bool, R: i32, out: usize, r0: i32, w: usize, gBytes: usize, n: i32, nb: i32, xt: usize, xB: usize, xv: usize, acc: usize, g: i32, S: i32, gStep: i32): void {
  const bB: usize = Q4 ? Q4_GB : Q8_GB;
  const step = <usize>gStep * gBytes;
  memory.fill(acc, 0, <usize>S << 6);
  let wbb = w + <usize>g * gBytes;
  let xb = xt;
  let xvp = xv;
  for (let b = 0; b < nb; b++) {
    let wb = wbb;
    let fp = acc;
    if (U) {
      let i = 0;
      for (; i + 2 <= S; i += 2) {
        if (Q4) q4TileBlockU2(R, wb, wb + step, xb, xvp, fp, fp + 64);
        else q8TileBlockU2(R, wb, wb + step, xb, xvp, fp, fp + 64);
        wb += step << 1;
        fp += 128;
      }
      if (i < S) tileBlock(Q4, U, R, wb, xb, xvp, fp);
    } else {
      for (let i = 0; i < S; i++) {
        tileBlock(Q4, U, R, wb, xb, xvp, fp);
        wb += step;
        fp += 64;
      }
    }
    wbb += bB;
    xb += xB;
    xvp += 128;
  }
  const ldo = <usize>n << 2;
  for (let i = 0; i < S; i++) {
    const gi = g + i * gStep;
    const o = out + <usize>r0 * ldo + (<usize>gi << 4);
    const valid = n - gi * 4;
    const fp = acc + (<usize>i << 6);
    store4(o, v128.load(fp), valid);
    if (R > 1) store4(o + ldo, v128.load(fp, 16), valid);
    if (R > 2) store4(o + 2 * ldo, v128.load(fp, 32), valid);
    if (R > 3) store4(o + 3 * ldo, v128.load(fp, 48), valid);
  }
}

// groups g0 .. g0 + count − 1 of `S` streams gStep groups apart, every x tile in turn (the first
// reads the weights from memory, the others from cache)
// @ts-ignore: decorator
@inline
function tilePass(Q4: bool, U: bool, out: usize, w: usize, gBytes: usize, n: i32, nb: i32, m: i32, xt0: usize, tx: usize, xv: usize, tv: usize, acc: usize, g0: i32, count: i32, S: i32, gStep: i32): void {
  const nt = m >> 2;
  const left = m & 3;
  const xB: usize = tx / <usize>nb; // x tile bytes per block
  for (let g = g0; g < g0 + count; g++) {
    for (let t = 0; t < nt; t++) tileGroups(Q4, U, 4, out, t << 2, w, gBytes, n, nb, xt0 + <usize>t * tx, xB, xv + <usize>t * tv, acc, g, S, gStep);
    const xt = xt0 + <usize>nt * tx;
    const vt = xv + <usize>nt * tv;
    if (left == 3) tileGroups(Q4, U, 3, out, nt << 2, w, gBytes, n, nb, xt, xB, vt, acc, g, S, gStep);
    else if (left == 2) tileGroups(Q4, U, 2, out, nt << 2, w, gBytes, n, nb, xt, xB, vt, acc, g, S, gStep);
    else if (left == 1) tileGroups(Q4, U, 1, out, nt << 2, w, gBytes, n, nb, xt, xB, vt, acc, g, S, gStep);
  }
}

// out (m × n) for m > 1: x tiles at xt0 (tx bytes each), vectors at actVectors(s, m, k)
// @ts-ignore: decorator
@inline
function tiles(Q4: bool, U: bool, out: usize, w: usize, gBytes: usize, n: i32, nb: i32, m: i32, k: i32, xt0: usize, tx: usize, s: usize): void {
  const ng = (n + 3) >> 2;
  const xv = actVectors(s, m, k);
  const tv = <usize>nb << 7;
  const acc = tileAcc(s, m, k);
  const S = m <= 4 ? TILE_STREAMS_FEW : TILE_STREAMS;
  const Q = ng / S;
  if (Q > 0) tilePass(Q4, U, out, w, gBytes, n, nb, m, xt0, tx, xv, tv, acc, 0, Q, S, Q);
  const rest = ng - Q * S;
  if (rest > 0) tilePass(Q4, U, out, w, gBytes, n, nb, m, xt0, tx, xv, tv, acc, Q * S, 1, rest, 1);
}

// relaxed build: one x row times 8 groups gBytes apart, in two halves of four per block, written
// out twice (f32 sums of all eight in registers; as a loop over the halves, or with the sums in
// memory, it ran ~10 % slower from cache)
// @ts-ignore: decorator
@inline
function q8Row8(o: usize, oStride: usize, s: usize, xd: usize, mk: usize, wg: usize, gBytes: usize, nb: i32, validLast: i32): void {
  const ones = v128.load(ONES16);
  let f0 = f32x4.splat(0);
  let f1 = f32x4.splat(0);
  let f2 = f32x4.splat(0);
  let f3 = f32x4.splat(0);
  let f4 = f32x4.splat(0);
  let f5 = f32x4.splat(0);
  let f6 = f32x4.splat(0);
  let f7 = f32x4.splat(0);
  let w0 = wg;
  let xq = s;
  let xdp = xd;
  const g4 = gBytes << 2;
  for (let b = 0; b < nb; b++) {
    if (ASC_FEATURE_RELAXED_SIMD) {
      const xa = xq + mk;
      const xg = xq + 2 * mk;
      const xdv = v128.load32_splat(xdp);
      {
        const wh = w0;
        let a0 = i32x4.splat(0);
        let a1 = i32x4.splat(0);
        let a2 = i32x4.splat(0);
        let a3 = i32x4.splat(0);
        for (let st: usize = 0; st < 32; st += 4) {
          const sg = v128.load32_splat(xg + st);
          const ab = v128.load32_splat(xa + st);
          const wo = st << 2;
          let w = v128.load(wh + wo);
          a0 = i32x4.add(a0, i32x4.dot_i16x8_s(i16x8.relaxed_dot_i8x16_i7x16_s(i8x16.sub(v128.xor(w, sg), sg), ab), ones));
          w = v128.load(wh + gBytes + wo);
          a1 = i32x4.add(a1, i32x4.dot_i16x8_s(i16x8.relaxed_dot_i8x16_i7x16_s(i8x16.sub(v128.xor(w, sg), sg), ab), ones));
          w = v128.load(wh + 2 * gBytes + wo);
          a2 = i32x4.add(a2, i32x4.dot_i16x8_s(i16x8.relaxed_dot_i8x16_i7x16_s(i8x16.sub(v128.xor(w, sg), sg), ab), ones));
          w = v128.load(wh + 3 * gBytes + wo);
          a3 = i32x4.add(a3, i32x4.dot_i16x8_s(i16x8.relaxed_dot_i8x16_i7x16_s(i8x16.sub(v128.xor(w, sg), sg), ab), ones));
        }
        f0 = fma(f32x4.convert_i32x4_s(a0), f32x4.mul(v128.load(wh, 128), xdv), f0);
        f1 = fma(f32x4.convert_i32x4_s(a1), f32x4.mul(v128.load(wh + gBytes, 128), xdv), f1);
        f2 = fma(f32x4.convert_i32x4_s(a2), f32x4.mul(v128.load(wh + 2 * gBytes, 128), xdv), f2);
        f3 = fma(f32x4.convert_i32x4_s(a3), f32x4.mul(v128.load(wh + 3 * gBytes, 128), xdv), f3);
      }
      {
        const wh = w0 + g4;
        let a0 = i32x4.splat(0);
        let a1 = i32x4.splat(0);
        let a2 = i32x4.splat(0);
        let a3 = i32x4.splat(0);
        for (let st: usize = 0; st < 32; st += 4) {
          const sg = v128.load32_splat(xg + st);
          const ab = v128.load32_splat(xa + st);
          const wo = st << 2;
          let w = v128.load(wh + wo);
          a0 = i32x4.add(a0, i32x4.dot_i16x8_s(i16x8.relaxed_dot_i8x16_i7x16_s(i8x16.sub(v128.xor(w, sg), sg), ab), ones));
          w = v128.load(wh + gBytes + wo);
          a1 = i32x4.add(a1, i32x4.dot_i16x8_s(i16x8.relaxed_dot_i8x16_i7x16_s(i8x16.sub(v128.xor(w, sg), sg), ab), ones));
          w = v128.load(wh + 2 * gBytes + wo);
          a2 = i32x4.add(a2, i32x4.dot_i16x8_s(i16x8.relaxed_dot_i8x16_i7x16_s(i8x16.sub(v128.xor(w, sg), sg), ab), ones));
          w = v128.load(wh + 3 * gBytes + wo);
          a3 = i32x4.add(a3, i32x4.dot_i16x8_s(i16x8.relaxed_dot_i8x16_i7x16_s(i8x16.sub(v128.xor(w, sg), sg), ab), ones));
        }
        f4 = fma(f32x4.convert_i32x4_s(a0), f32x4.mul(v128.load(wh, 128), xdv), f4);
        f5 = fma(f32x4.convert_i32x4_s(a1), f32x4.mul(v128.load(wh + gBytes, 128), xdv), f5);
        f6 = fma(f32x4.convert_i32x4_s(a2), f32x4.mul(v128.load(wh + 2 * gBytes, 128), xdv), f6);
        f7 = fma(f32x4.convert_i32x4_s(a3), f32x4.mul(v128.load(wh + 3 * gBytes, 128), xdv), f7);
      }
      xq += 32;
    }
    xdp += 4;
    w0 += Q8_GB;
  }
  v128.store(o, f0);
  v128.store(o + oStride, f1);
  v128.store(o + 2 * oStride, f2);
  v128.store(o + 3 * oStride, f3);
  v128.store(o + 4 * oStride, f4);
  v128.store(o + 5 * oStride, f5);
  v128.store(o + 6 * oStride, f6);
  store4(o + 7 * oStride, f7, validLast);
}

// plain build: one x row times 6 groups gBytes apart, in two halves of three per block (as q8Row8)
// @ts-ignore: decorator
@inline
function q8Row6(o: usize, oStride: usize, s: usize, xd: usize, wg: usize, gBytes: usize, nb: i32, validLast: i32): void {
  let f0 = f32x4.splat(0);
  let f1 = f32x4.splat(0);
  let f2 = f32x4.splat(0);
  let f3 = f32x4.splat(0);
  let f4 = f32x4.splat(0);
  let f5 = f32x4.splat(0);
  let w0 = wg;
  let xq = s;
  let xdp = xd;
  const g3 = gBytes * 3;
  for (let b = 0; b < nb; b++) {
    const xdv = v128.load32_splat(xdp);
    {
      const wh = w0;
      let a0 = i32x4.splat(0);
      let b0 = i32x4.splat(0);
      let a1 = i32x4.splat(0);
      let b1 = i32x4.splat(0);
      let a2 = i32x4.splat(0);
      let b2 = i32x4.splat(0);
      for (let st: usize = 0; st < 32; st += 4) {
        const xv = v128.load64_splat(xq + (st << 1));
        const wo = st << 2;
        a0 = i32x4.add(a0, i32x4.dot_i16x8_s(v128.load8x8_s(wh + wo), xv));
        b0 = i32x4.add(b0, i32x4.dot_i16x8_s(v128.load8x8_s(wh + wo + 8), xv));
        a1 = i32x4.add(a1, i32x4.dot_i16x8_s(v128.load8x8_s(wh + gBytes + wo), xv));
        b1 = i32x4.add(b1, i32x4.dot_i16x8_s(v128.load8x8_s(wh + gBytes + wo + 8), xv));
        a2 = i32x4.add(a2, i32x4.dot_i16x8_s(v128.load8x8_s(wh + 2 * gBytes + wo), xv));
        b2 = i32x4.add(b2, i32x4.dot_i16x8_s(v128.load8x8_s(wh + 2 * gBytes + wo + 8), xv));
      }
      f0 = fma(f32x4.convert_i32x4_s(pairSum(a0, b0)), f32x4.mul(v128.load(wh, 128), xdv), f0);
      f1 = fma(f32x4.convert_i32x4_s(pairSum(a1, b1)), f32x4.mul(v128.load(wh + gBytes, 128), xdv), f1);
      f2 = fma(f32x4.convert_i32x4_s(pairSum(a2, b2)), f32x4.mul(v128.load(wh + 2 * gBytes, 128), xdv), f2);
    }
    {
      const wh = w0 + g3;
      let a0 = i32x4.splat(0);
      let b0 = i32x4.splat(0);
      let a1 = i32x4.splat(0);
      let b1 = i32x4.splat(0);
      let a2 = i32x4.splat(0);
      let b2 = i32x4.splat(0);
      for (let st: usize = 0; st < 32; st += 4) {
        const xv = v128.load64_splat(xq + (st << 1));
        const wo = st << 2;
        a0 = i32x4.add(a0, i32x4.dot_i16x8_s(v128.load8x8_s(wh + wo), xv));
        b0 = i32x4.add(b0, i32x4.dot_i16x8_s(v128.load8x8_s(wh + wo + 8), xv));
        a1 = i32x4.add(a1, i32x4.dot_i16x8_s(v128.load8x8_s(wh + gBytes + wo), xv));
        b1 = i32x4.add(b1, i32x4.dot_i16x8_s(v128.load8x8_s(wh + gBytes + wo + 8), xv));
        a2 = i32x4.add(a2, i32x4.dot_i16x8_s(v128.load8x8_s(wh + 2 * gBytes + wo), xv));
        b2 = i32x4.add(b2, i32x4.dot_i16x8_s(v128.load8x8_s(wh + 2 * gBytes + wo + 8), xv));
      }
      f3 = fma(f32x4.convert_i32x4_s(pairSum(a0, b0)), f32x4.mul(v128.load(wh, 128), xdv), f3);
      f4 = fma(f32x4.convert_i32x4_s(pairSum(a1, b1)), f32x4.mul(v128.load(wh + gBytes, 128), xdv), f4);
      f5 = fma(f32x4.convert_i32x4_s(pairSum(a2, b2)), f32x4.mul(v128.load(wh + 2 * gBytes, 128), xdv), f5);
    }
    xq += 64;
    xdp += 4;
    w0 += Q8_GB;
  }
  v128.store(o, f0);
  v128.store(o + oStride, f1);
  v128.store(o + 2 * oStride, f2);
  v128.store(o + 3 * oStride, f3);
  v128.store(o + 4 * oStride, f4);
  store4(o + 5 * oStride, f5, validLast);
}

// the one-row kernels of the relaxed build, by kind (a constant): 0 q8_0, 1 q8_0 usdot, 2 q4_0,
// 3 q4_0 usdot; mk (q8_0 portable: |x| and sign planes) and xs (Σx per block) as each needs
// @ts-ignore: decorator
@inline
function row8(kind: i32, o: usize, oStride: usize, s: usize, xd: usize, xs: usize, mk: usize, wg: usize, gBytes: usize, nb: i32, validLast: i32): void {
  if (kind == 0) q8Row8(o, oStride, s, xd, mk, wg, gBytes, nb, validLast);
  else if (kind == 1) q8RowU8(o, oStride, s, xd, xs, wg, gBytes, nb, validLast);
  else if (kind == 2) q4Row8(o, oStride, s, xd, xs, wg, gBytes, nb, validLast);
  else q4RowU8(o, oStride, s, xd, xs, wg, gBytes, nb, validLast);
}

// @ts-ignore: decorator
@inline
function rowG(kind: i32, G: i32, o: usize, oStride: usize, s: usize, xd: usize, xs: usize, mk: usize, wg: usize, gBytes: usize, nb: i32, validLast: i32): void {
  if (kind == 0) q8Row(G, o, oStride, s, xd, mk, wg, gBytes, nb, validLast);
  else if (kind == 1) q8RowU(G, o, oStride, s, xd, xs, wg, gBytes, nb, validLast);
  else if (kind == 2) q4Row(G, o, oStride, s, xd, xs, wg, gBytes, nb, validLast);
  else q4RowU(G, o, oStride, s, xd, xs, wg, gBytes, nb, validLast);
}

// one x row, relaxed build: G streams — call i reads groups g, g + Q, …, g + (G−1)·Q (Q = ng / G), so
// each of the G weight streams runs on through the next call (contiguous groups) instead of ending
// after one group: 8 streams, then 4 over what is left, then the last 0..3 groups consecutively
// @ts-ignore: decorator
@inline
function rowWalk(kind: i32, out: usize, s: usize, xd: usize, xs: usize, mk: usize, w: usize, gBytes: usize, nb: i32, n: i32): void {
  const ng = (n + 3) >> 2;
  const Q8 = ng >> 3;
  for (let g = 0; g < Q8; g++) row8(kind, out + (<usize>g << 4), <usize>Q8 << 4, s, xd, xs, mk, w + <usize>g * gBytes, <usize>Q8 * gBytes, nb, n - (g + 7 * Q8) * 4);
  const g0 = Q8 << 3;
  const ng2 = ng - g0;
  const Q = ng2 >> 2;
  const qo = <usize>Q << 4;
  const qw = <usize>Q * gBytes;
  const w2 = w + <usize>g0 * gBytes;
  const o2 = out + (<usize>g0 << 4);
  for (let g = 0; g < Q; g++) rowG(kind, 4, o2 + (<usize>g << 4), qo, s, xd, xs, mk, w2 + <usize>g * gBytes, qw, nb, n - (g0 + g + 3 * Q) * 4);
  const left = ng2 - 4 * Q;
  const gl = g0 + 4 * Q;
  const ol = out + (<usize>gl << 4);
  const wl = w + <usize>gl * gBytes;
  const vl = n - (gl + left - 1) * 4;
  if (left == 3) rowG(kind, 3, ol, 16, s, xd, xs, mk, wl, gBytes, nb, vl);
  else if (left == 2) rowG(kind, 2, ol, 16, s, xd, xs, mk, wl, gBytes, nb, vl);
  else if (left == 1) rowG(kind, 1, ol, 16, s, xd, xs, mk, wl, gBytes, nb, vl);
}

/** out[m×n] = x[m×k] · Wᵀ, W packed as above (q8_0), x quantised to Q8_0 into scratch s. */
export function linearQ8(out: usize, x: usize, w: usize, m: i32, n: i32, k: i32, s: usize): void {
  quantizeActs(s, x, m, k, m > 1, 7);
  const nb = k >> 5;
  const ng = (n + 3) >> 2;
  const mk = <usize>m * <usize>k;
  const xd = s + 5 * <usize>((m + 3) & ~3) * <usize>k;
  const ldo = <usize>n << 2;
  const gBytes = <usize>nb * Q8_GB;
  if (m == 1) {
    const xs = xd + 16 * <usize>nb;
    if (ASC_FEATURE_RELAXED_SIMD && USDOT) rowWalk(1, out, s, xd, xs, mk, w, gBytes, nb, n);
    else if (ASC_FEATURE_RELAXED_SIMD) rowWalk(0, out, s, xd, xs, mk, w, gBytes, nb, n);
    else {
      // int16 path: two accumulators per group, so three groups (four spill in V8); the tiles with
      // one row read 6 % faster from memory but run 20 % slower from cache
      const Q6 = ng / 6;
      for (let g = 0; g < Q6; g++) q8Row6(out + (<usize>g << 4), <usize>Q6 << 4, s, xd, w + <usize>g * gBytes, <usize>Q6 * gBytes, nb, n - (g + 5 * Q6) * 4);
      const g0 = Q6 * 6;
      const ng2 = ng - g0;
      const Q = ng2 / 3;
      const qo = <usize>Q << 4;
      const qw = <usize>Q * gBytes;
      const w2 = w + <usize>g0 * gBytes;
      const o2 = out + (<usize>g0 << 4);
      for (let g = 0; g < Q; g++) q8Row(3, o2 + (<usize>g << 4), qo, s, xd, mk, w2 + <usize>g * gBytes, qw, nb, n - (g0 + g + 2 * Q) * 4);
      const left = ng2 - 3 * Q;
      const gl = g0 + 3 * Q;
      const ol = out + (<usize>gl << 4);
      const wl = w + <usize>gl * gBytes;
      const vl = n - (gl + left - 1) * 4;
      if (left == 2) q8Row(2, ol, 16, s, xd, mk, wl, gBytes, nb, vl);
      else if (left == 1) q8Row(1, ol, 16, s, xd, mk, wl, gBytes, nb, vl);
    }
    return;
  }
  // several rows: the int16 path in both builds (the relaxed sign trick costs two ops per row and
  // weight vector; the int16 one shares its unpacking among the rows). same integer sums.
  if (ASC_FEATURE_RELAXED_SIMD && USDOT) {
    tiles(false, true, out, w, gBytes, n, nb, m, k, s, <usize>nb << 7, s);
    return;
  }
  const s16 = ASC_FEATURE_RELAXED_SIMD ? s + 3 * <usize>((m + 3) & ~3) * <usize>k : s;
  tiles(false, false, out, w, gBytes, n, nb, m, k, s16, <usize>nb << 8, s);
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


// ---- Q4_0 ----------------------------------------------------------------------------------

// one block of one group of 4 output rows times R (1..4) rows of one x tile (tile layout: int8 in
// the relaxed build, int16 in the plain one; xvp the block's vectors), folded into the R f32x4
// accumulators at fp, fp + 16, …
// @ts-ignore: decorator
@inline
function q4TileBlock(R: i32, wb: usize, xb: usize, xvp: usize, fp: usize): void {
  const lo4 = v128.load(LO4);
  const ws = v128.load(wb, 64); // first: touches the block's second cache line early (see q8TileBlock)
  let a0: v128;
  let a1 = i32x4.splat(0);
  let a2 = i32x4.splat(0);
  let a3 = i32x4.splat(0);
  let wp = wb;
  let xp = xb;
  const we = wb + 64;
  if (ASC_FEATURE_RELAXED_SIMD) {
    // nibble·x pair sums are at most 2·15·127 = 3810: the eight of a block add up in int16
    // (≤ 30480) and widen once per block
    let h0 = v128.load(xvp);
    let h1 = i16x8.splat(0);
    let h2 = i16x8.splat(0);
    let h3 = i16x8.splat(0);
    if (R > 1) h1 = v128.load(xvp, 32);
    if (R > 2) h2 = v128.load(xvp, 64);
    if (R > 3) h3 = v128.load(xvp, 96);
    while (wp < we) {
      const v = v128.load(wp);
      const lo = v128.and(v, lo4);
      const hi = v128.and(i16x8.shr_u(v, 4), lo4);
      h0 = i16x8.add(h0, i16x8.add(rdot16(v128.load32_splat(xp), lo), rdot16(v128.load32_splat(xp, 16), hi)));
      if (R > 1) h1 = i16x8.add(h1, i16x8.add(rdot16(v128.load32_splat(xp, 32), lo), rdot16(v128.load32_splat(xp, 48), hi)));
      if (R > 2) h2 = i16x8.add(h2, i16x8.add(rdot16(v128.load32_splat(xp, 64), lo), rdot16(v128.load32_splat(xp, 80), hi)));
      if (R > 3) h3 = i16x8.add(h3, i16x8.add(rdot16(v128.load32_splat(xp, 96), lo), rdot16(v128.load32_splat(xp, 112), hi)));
      wp += 16;
      xp += 4;
    }
    const ones = v128.load(ONES16);
    a0 = i32x4.dot_i16x8_s(h0, ones);
    if (R > 1) a1 = i32x4.dot_i16x8_s(h1, ones);
    if (R > 2) a2 = i32x4.dot_i16x8_s(h2, ones);
    if (R > 3) a3 = i32x4.dot_i16x8_s(h3, ones);
  } else {
    a0 = v128.load(xvp);
    let b0 = a0;
    let b1 = i32x4.splat(0);
    let b2 = i32x4.splat(0);
    let b3 = i32x4.splat(0);
    if (R > 1) {
      a1 = v128.load(xvp, 32);
      b1 = a1;
    }
    if (R > 2) {
      a2 = v128.load(xvp, 64);
      b2 = a2;
    }
    if (R > 3) {
      a3 = v128.load(xvp, 96);
      b3 = a3;
    }
    while (wp < we) {
      const v = v128.load(wp);
      const lo = v128.and(v, lo4);
      const hi = v128.and(i16x8.shr_u(v, 4), lo4);
      const la = i16x8.extend_low_i8x16_u(lo);
      const lb = i16x8.extend_high_i8x16_u(lo);
      const ha = i16x8.extend_low_i8x16_u(hi);
      const hb = i16x8.extend_high_i8x16_u(hi);
      let xl = v128.load64_splat(xp);
      let xh = v128.load64_splat(xp, 32);
      a0 = i32x4.add(a0, i32x4.add(i32x4.dot_i16x8_s(la, xl), i32x4.dot_i16x8_s(ha, xh)));
      b0 = i32x4.add(b0, i32x4.add(i32x4.dot_i16x8_s(lb, xl), i32x4.dot_i16x8_s(hb, xh)));
      if (R > 1) {
        xl = v128.load64_splat(xp, 64);
        xh = v128.load64_splat(xp, 96);
        a1 = i32x4.add(a1, i32x4.add(i32x4.dot_i16x8_s(la, xl), i32x4.dot_i16x8_s(ha, xh)));
        b1 = i32x4.add(b1, i32x4.add(i32x4.dot_i16x8_s(lb, xl), i32x4.dot_i16x8_s(hb, xh)));
      }
      if (R > 2) {
        xl = v128.load64_splat(xp, 128);
        xh = v128.load64_splat(xp, 160);
        a2 = i32x4.add(a2, i32x4.add(i32x4.dot_i16x8_s(la, xl), i32x4.dot_i16x8_s(ha, xh)));
        b2 = i32x4.add(b2, i32x4.add(i32x4.dot_i16x8_s(lb, xl), i32x4.dot_i16x8_s(hb, xh)));
      }
      if (R > 3) {
        xl = v128.load64_splat(xp, 192);
        xh = v128.load64_splat(xp, 224);
        a3 = i32x4.add(a3, i32x4.add(i32x4.dot_i16x8_s(la, xl), i32x4.dot_i16x8_s(ha, xh)));
        b3 = i32x4.add(b3, i32x4.add(i32x4.dot_i16x8_s(lb, xl), i32x4.dot_i16x8_s(hb, xh)));
      }
      wp += 16;
      xp += 8;
    }
    a0 = pairSum(a0, b0);
    if (R > 1) a1 = pairSum(a1, b1);
    if (R > 2) a2 = pairSum(a2, b2);
    if (R > 3) a3 = pairSum(a3, b3);
  }
  // the sums started at −8·Σx (see quantizeAct): a holds the exact Σ (nibble − 8)·x
  v128.store(fp, fma(f32x4.convert_i32x4_s(a0), f32x4.mul(ws, v128.load(xvp, 16)), v128.load(fp)));
  if (R > 1) v128.store(fp, fma(f32x4.convert_i32x4_s(a1), f32x4.mul(ws, v128.load(xvp, 48)), v128.load(fp, 16)), 16);
  if (R > 2) v128.store(fp, fma(f32x4.convert_i32x4_s(a2), f32x4.mul(ws, v128.load(xvp, 80)), v128.load(fp, 32)), 32);
  if (R > 3) v128.store(fp, fma(f32x4.convert_i32x4_s(a3), f32x4.mul(ws, v128.load(xvp, 112)), v128.load(fp, 48)), 48);
}

// relaxed build: one x row times G (1..4, constant) groups gBytes apart: x loads shared by G weight
// vectors
// @ts-ignore: decorator
@inline
function q4Row(G: i32, o: usize, oStride: usize, s: usize, xd: usize, xs: usize, wg: usize, gBytes: usize, nb: i32, validLast: i32): void {
  const lo4 = v128.load(LO4);
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
      unreachable(); // one row of q4_0 goes through the tiles in the plain build
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
  store4(o, f0, G == 1 ? validLast : 4);
  if (G > 1) store4(o + oStride, f1, G == 2 ? validLast : 4);
  if (G > 2) store4(o + 2 * oStride, f2, G == 3 ? validLast : 4);
  if (G > 3) store4(o + 3 * oStride, f3, validLast);
}

// relaxed build: one x row times 8 groups gBytes apart, in two halves of four per block (as q8Row8)
// @ts-ignore: decorator
@inline
function q4Row8(o: usize, oStride: usize, s: usize, xd: usize, xs: usize, wg: usize, gBytes: usize, nb: i32, validLast: i32): void {
  const lo4 = v128.load(LO4);
  let f0 = f32x4.splat(0);
  let f1 = f32x4.splat(0);
  let f2 = f32x4.splat(0);
  let f3 = f32x4.splat(0);
  let f4 = f32x4.splat(0);
  let f5 = f32x4.splat(0);
  let f6 = f32x4.splat(0);
  let f7 = f32x4.splat(0);
  let w0 = wg;
  let xq = s;
  const g4 = gBytes << 2;
  for (let b = 0; b < nb; b++) {
    // nibbles were used as 0..15: subtract 8·Σx
    const corr = i32x4.splat(load<i32>(xs + (<usize>b << 2)) << 3);
    const xdv = v128.load32_splat(xd + (<usize>b << 2));
    {
      const wh = w0;
      let h0 = i16x8.splat(0);
      let h1 = i16x8.splat(0);
      let h2 = i16x8.splat(0);
      let h3 = i16x8.splat(0);
      for (let j: usize = 0; j < 16; j += 4) {
        const xl = v128.load32_splat(xq + j);
        const xh = v128.load32_splat(xq + 16 + j);
        const wo = j << 2;
        let v = v128.load(wh + wo);
        h0 = i16x8.add(h0, i16x8.add(rdot16(xl, v128.and(v, lo4)), rdot16(xh, v128.and(i16x8.shr_u(v, 4), lo4))));
        v = v128.load(wh + gBytes + wo);
        h1 = i16x8.add(h1, i16x8.add(rdot16(xl, v128.and(v, lo4)), rdot16(xh, v128.and(i16x8.shr_u(v, 4), lo4))));
        v = v128.load(wh + 2 * gBytes + wo);
        h2 = i16x8.add(h2, i16x8.add(rdot16(xl, v128.and(v, lo4)), rdot16(xh, v128.and(i16x8.shr_u(v, 4), lo4))));
        v = v128.load(wh + 3 * gBytes + wo);
        h3 = i16x8.add(h3, i16x8.add(rdot16(xl, v128.and(v, lo4)), rdot16(xh, v128.and(i16x8.shr_u(v, 4), lo4))));
      }
      const ones = v128.load(ONES16);
      f0 = fma(f32x4.convert_i32x4_s(i32x4.sub(i32x4.dot_i16x8_s(h0, ones), corr)), f32x4.mul(v128.load(wh, 64), xdv), f0);
      f1 = fma(f32x4.convert_i32x4_s(i32x4.sub(i32x4.dot_i16x8_s(h1, ones), corr)), f32x4.mul(v128.load(wh + gBytes, 64), xdv), f1);
      f2 = fma(f32x4.convert_i32x4_s(i32x4.sub(i32x4.dot_i16x8_s(h2, ones), corr)), f32x4.mul(v128.load(wh + 2 * gBytes, 64), xdv), f2);
      f3 = fma(f32x4.convert_i32x4_s(i32x4.sub(i32x4.dot_i16x8_s(h3, ones), corr)), f32x4.mul(v128.load(wh + 3 * gBytes, 64), xdv), f3);
    }
    {
      const wh = w0 + g4;
      let h0 = i16x8.splat(0);
      let h1 = i16x8.splat(0);
      let h2 = i16x8.splat(0);
      let h3 = i16x8.splat(0);
      for (let j: usize = 0; j < 16; j += 4) {
        const xl = v128.load32_splat(xq + j);
        const xh = v128.load32_splat(xq + 16 + j);
        const wo = j << 2;
        let v = v128.load(wh + wo);
        h0 = i16x8.add(h0, i16x8.add(rdot16(xl, v128.and(v, lo4)), rdot16(xh, v128.and(i16x8.shr_u(v, 4), lo4))));
        v = v128.load(wh + gBytes + wo);
        h1 = i16x8.add(h1, i16x8.add(rdot16(xl, v128.and(v, lo4)), rdot16(xh, v128.and(i16x8.shr_u(v, 4), lo4))));
        v = v128.load(wh + 2 * gBytes + wo);
        h2 = i16x8.add(h2, i16x8.add(rdot16(xl, v128.and(v, lo4)), rdot16(xh, v128.and(i16x8.shr_u(v, 4), lo4))));
        v = v128.load(wh + 3 * gBytes + wo);
        h3 = i16x8.add(h3, i16x8.add(rdot16(xl, v128.and(v, lo4)), rdot16(xh, v128.and(i16x8.shr_u(v, 4), lo4))));
      }
      const ones = v128.load(ONES16);
      f4 = fma(f32x4.convert_i32x4_s(i32x4.sub(i32x4.dot_i16x8_s(h0, ones), corr)), f32x4.mul(v128.load(wh, 64), xdv), f4);
      f5 = fma(f32x4.convert_i32x4_s(i32x4.sub(i32x4.dot_i16x8_s(h1, ones), corr)), f32x4.mul(v128.load(wh + gBytes, 64), xdv), f5);
      f6 = fma(f32x4.convert_i32x4_s(i32x4.sub(i32x4.dot_i16x8_s(h2, ones), corr)), f32x4.mul(v128.load(wh + 2 * gBytes, 64), xdv), f6);
      f7 = fma(f32x4.convert_i32x4_s(i32x4.sub(i32x4.dot_i16x8_s(h3, ones), corr)), f32x4.mul(v128.load(wh + 3 * gBytes, 64), xdv), f7);
    }
    xq += 32;
    w0 += Q4_GB;
  }
  v128.store(o, f0);
  v128.store(o + oStride, f1);
  v128.store(o + 2 * oStride, f2);
  v128.store(o + 3 * oStride, f3);
  v128.store(o + 4 * oStride, f4);
  v128.store(o + 5 * oStride, f5);
  v128.store(o + 6 * oStride, f6);
  store4(o + 7 * oStride, f7, validLast);
}

/** out[m×n] = x[m×k] · Wᵀ, W packed as above (q4_0), x quantised to Q8_0 into scratch s. */
export function linearQ4(out: usize, x: usize, w: usize, m: i32, n: i32, k: i32, s: usize): void {
  const nb = k >> 5;
  const gBytes = <usize>nb * Q4_GB;
  if (ASC_FEATURE_RELAXED_SIMD && m == 1) {
    quantizeActs(s, x, m, k, false, 3);
    const xd = s + 20 * <usize>k;
    const xs = xd + 16 * <usize>nb;
    if (USDOT) rowWalk(3, out, s, xd, xs, 0, w, gBytes, nb, n);
    else rowWalk(2, out, s, xd, xs, 0, w, gBytes, nb, n);
    return;
  }
  // several rows, and in the plain build one row too (its unpacking needs more registers than a
  // row of four groups can have; as a one-row tile with the far-apart streams it read 4.0 → 8.0 GB/s
  // from memory on 2048x768, same speed from cache)
  quantizeActs(s, x, m, k, true, 3);
  if (ASC_FEATURE_RELAXED_SIMD && USDOT) tiles(true, true, out, w, gBytes, n, nb, m, k, s, <usize>nb << 7, s);
  else tiles(true, false, out, w, gBytes, n, nb, m, k, s, ASC_FEATURE_RELAXED_SIMD ? <usize>nb << 7 : <usize>nb << 8, s);
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
