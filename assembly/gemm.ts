// f32 linear layers: out[M×N] = x[M×K] · Wᵀ, W given (N×K) row-major as GGUF stores it.
//
// packed layout (made once by prepareLinear in runtime/kernels.ts): panels of 8 output rows, k-major, as XNNPACK packs them:
//   panel p, step kk: 8 floats W[8p + 0..7][kk] at ((p*K + kk) * 8) floats; rows past N are zero.
// one step is then two v128 loads of weights times one broadcast x[kk]; there is no K tail at all.
// row tiles of up to 4 x rows share every weight load (beams, prefill). Every path sums each output
// in plain k order, one FMA per step into one accumulator (partial sums parked in memory between blocks
// are exact): a row of a batch is bit-identical to the same row alone, within a build — as the
// quantised kernels promise. (A k-unrolled one-row tile with four accumulator pairs, once used for
// leftover panels and rows, broke that; leftovers are too few for its speed to matter.)
//
// Weights streamed from DRAM (a model bigger than the caches): one core read ~12.5 GB/s as one
// sequential stream and ~15 GB/s as 3–8 streams side by side (up to 128 MB, partly in L3: 11 vs 18 GB/s);
// a loop with many FMAs per weight byte (4 rows × 1 panel) got only ~7 GB/s from one stream, since few
// of its loads are in flight at once and the prefetcher follows one page at a time. So the paths read
// weights as several long streams, far apart: m = 1 three panels a third of the matrix apart (tile1x3);
// 2 ≤ m ≤ 8 (beams) six panels a sixth apart, visited in turn block by block (KB steps) by every row
// group, partial sums kept in a static scratch: each of the six streams walks its sixth of the matrix
// in order, and the blocks of later row groups come from L1 while earlier prefetches still arrive.
// Figures: scripts/bench-stream.ts. (Weights hot in L2, which a model never has, lost 5–45 %.)
import { fma } from './simd';

// store 8 outputs (a = cols 0..3, b = cols 4..7), only the first `valid` when the panel is partial.
// @ts-ignore: decorator
@inline
function store8(o: usize, a: v128, b: v128, valid: i32): void {
  if (valid >= 8) {
    v128.store(o, a);
    v128.store(o, b, 16);
  } else {
    if (valid >= 4) {
      v128.store(o, a);
      if (valid > 4) store<f32>(o, f32x4.extract_lane(b, 0), 16);
      if (valid > 5) store<f32>(o, f32x4.extract_lane(b, 1), 20);
      if (valid > 6) store<f32>(o, f32x4.extract_lane(b, 2), 24);
    } else {
      store<f32>(o, f32x4.extract_lane(a, 0));
      if (valid > 1) store<f32>(o, f32x4.extract_lane(a, 1), 4);
      if (valid > 2) store<f32>(o, f32x4.extract_lane(a, 2), 8);
    }
  }
}

// one panel times R (1..4, a constant after inlining) rows of x.
// @ts-ignore: decorator
@inline
function tile(R: i32, o: usize, ldo: usize, xp: usize, ldx: usize, wp: usize, k: i32, valid: i32): void {
  let c00 = f32x4.splat(0);
  let c01 = f32x4.splat(0);
  let c10 = f32x4.splat(0);
  let c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0);
  let c21 = f32x4.splat(0);
  let c30 = f32x4.splat(0);
  let c31 = f32x4.splat(0);
  for (let kk = 0; kk < k; kk++) {
    const w0 = v128.load(wp);
    const w1 = v128.load(wp, 16);
    const x0 = v128.load32_splat(xp);
    c00 = fma(w0, x0, c00);
    c01 = fma(w1, x0, c01);
    if (R > 1) {
      const x1 = v128.load32_splat(xp + ldx);
      c10 = fma(w0, x1, c10);
      c11 = fma(w1, x1, c11);
    }
    if (R > 2) {
      const x2 = v128.load32_splat(xp + 2 * ldx);
      c20 = fma(w0, x2, c20);
      c21 = fma(w1, x2, c21);
    }
    if (R > 3) {
      const x3 = v128.load32_splat(xp + 3 * ldx);
      c30 = fma(w0, x3, c30);
      c31 = fma(w1, x3, c31);
    }
    wp += 32;
    xp += 4;
  }
  store8(o, c00, c01, valid);
  if (R > 1) store8(o + ldo, c10, c11, valid);
  if (R > 2) store8(o + 2 * ldo, c20, c21, valid);
  if (R > 3) store8(o + 3 * ldo, c30, c31, valid);
}

// three panels g apart times one row: six accumulators and three weight streams, each walking its own
// third of the matrix (far-apart streams stay long: from DRAM 2–7 % faster than three adjacent panels,
// equal from L3, but 6–10 % slower with weights hot in L2 — 19 % in the plain build — as bench:kernels'
// 1x288x768 has them and a model never does). (Four panels, eight accumulators, spilled two in V8's
// register allocation and ran 25 % slower in cache.) o: outputs of the first panel; og: bytes between
// the panels' outputs.
// @ts-ignore: decorator
@inline
function tile1x3(o: usize, og: usize, xp: usize, wp: usize, pb: usize, k: i32, valid3: i32): void {
  let a0 = f32x4.splat(0);
  let a1 = f32x4.splat(0);
  let a2 = f32x4.splat(0);
  let a3 = f32x4.splat(0);
  let a4 = f32x4.splat(0);
  let a5 = f32x4.splat(0);
  const end = xp + (<usize>k << 2);
  while (xp < end) {
    const x0 = v128.load32_splat(xp);
    a0 = fma(v128.load(wp), x0, a0);
    a1 = fma(v128.load(wp, 16), x0, a1);
    a2 = fma(v128.load(wp + pb), x0, a2);
    a3 = fma(v128.load(wp + pb, 16), x0, a3);
    a4 = fma(v128.load(wp + 2 * pb), x0, a4);
    a5 = fma(v128.load(wp + 2 * pb, 16), x0, a5);
    wp += 32;
    xp += 4;
  }
  store8(o, a0, a1, 8);
  store8(o + og, a2, a3, 8);
  store8(o + 2 * og, a4, a5, valid3);
}

// partial sums of the beam tiles between blocks: G panels × ≤ 8 rows × 8 floats
const ACC: usize = memory.data(2048, 64);
// panels walked side by side by the beam path (each its own stream); k steps per block
const G: i32 = 6;
const KB: i32 = 16;

// one panel times R (1..4) rows over steps [j0, j1), partial sums in acc (32 bytes per row; `first`
// starts from 0 instead)
// @ts-ignore: decorator
@inline
function blk(R: i32, acc: usize, first: bool, xp: usize, ldx: usize, wp: usize, j0: i32, j1: i32): void {
  let c00 = f32x4.splat(0);
  let c01 = f32x4.splat(0);
  let c10 = f32x4.splat(0);
  let c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0);
  let c21 = f32x4.splat(0);
  let c30 = f32x4.splat(0);
  let c31 = f32x4.splat(0);
  if (!first) {
    c00 = v128.load(acc);
    c01 = v128.load(acc, 16);
    if (R > 1) {
      c10 = v128.load(acc, 32);
      c11 = v128.load(acc, 48);
    }
    if (R > 2) {
      c20 = v128.load(acc, 64);
      c21 = v128.load(acc, 80);
    }
    if (R > 3) {
      c30 = v128.load(acc, 96);
      c31 = v128.load(acc, 112);
    }
  }
  const ldx3 = ldx * 3;
  let p0 = wp + (<usize>j0 << 5);
  let q0 = xp + (<usize>j0 << 2);
  const end = xp + (<usize>j1 << 2);
  while (q0 < end) {
    const wa = v128.load(p0);
    const wb = v128.load(p0, 16);
    const v0 = v128.load32_splat(q0);
    c00 = fma(wa, v0, c00);
    c01 = fma(wb, v0, c01);
    if (R > 1) {
      const v1 = v128.load32_splat(q0 + ldx);
      c10 = fma(wa, v1, c10);
      c11 = fma(wb, v1, c11);
    }
    if (R > 2) {
      const v2 = v128.load32_splat(q0 + 2 * ldx);
      c20 = fma(wa, v2, c20);
      c21 = fma(wb, v2, c21);
    }
    if (R > 3) {
      const v3 = v128.load32_splat(q0 + ldx3);
      c30 = fma(wa, v3, c30);
      c31 = fma(wb, v3, c31);
    }
    p0 += 32;
    q0 += 4;
  }
  v128.store(acc, c00);
  v128.store(acc, c01, 16);
  if (R > 1) {
    v128.store(acc, c10, 32);
    v128.store(acc, c11, 48);
  }
  if (R > 2) {
    v128.store(acc, c20, 64);
    v128.store(acc, c21, 80);
  }
  if (R > 3) {
    v128.store(acc, c30, 96);
    v128.store(acc, c31, 112);
  }
}

// rows of one panel, single stream (a panel left over by the far-apart walks, or prompts: m > 8)
// @ts-ignore: decorator
@inline
function panelRows(oc: usize, ldo: usize, x: usize, ldx: usize, wp: usize, m: i32, k: i32, valid: i32): void {
  let r = 0;
  for (; r + 4 <= m; r += 4) tile(4, oc + <usize>r * ldo, ldo, x + <usize>r * ldx, ldx, wp, k, valid);
  const left = m - r;
  if (left == 3) tile(3, oc + <usize>r * ldo, ldo, x + <usize>r * ldx, ldx, wp, k, valid);
  else if (left == 2) tile(2, oc + <usize>r * ldo, ldo, x + <usize>r * ldx, ldx, wp, k, valid);
  else if (left == 1) tile(1, oc + <usize>r * ldo, ldo, x + <usize>r * ldx, ldx, wp, k, valid);
}

// beams, 2 ≤ m ≤ 8: panels p + i·g (i < G, g = np / G) side by side, k in blocks of KB steps; in each
// block every panel in turn, every row group of it (4 rows, then the 1–3 left); the np % G last panels
// alone. (From DRAM, against four chunks of one panel taken in turn: 2752×512 m = 8 775 → 617 µs,
// 32000×288 m = 8 5204 → 3766 µs against panel pairs; equal within noise in cache. G = 4 was as good
// at m = 4 and ~10 % slower at m = 8; 8 panels or 24–64-step blocks were slower. At m = 2 it beat two
// panels half apart by 10–16 % from DRAM, though weights hot in L2 (< 1 MB) ran up to 45 % slower.)
function linearBeams(out: usize, x: usize, w: usize, m: i32, n: i32, k: i32): void {
  const np = (n + 7) >> 3;
  const ldx = <usize>k << 2;
  const ldo = <usize>n << 2;
  const panelBytes = <usize>k * 32;
  const g = np / G;
  for (let p = 0; p < g; p++) {
    for (let j0 = 0; j0 < k; j0 += KB) {
      const j1 = min(k, j0 + KB);
      const first = j0 == 0;
      for (let i = 0; i < G; i++) {
        const wp = w + <usize>(p + i * g) * panelBytes;
        const acc = ACC + <usize>i * 256;
        let r = 0;
        for (; r + 4 <= m; r += 4) blk(4, acc + (<usize>r << 5), first, x + <usize>r * ldx, ldx, wp, j0, j1);
        const left = m - r;
        const a = acc + (<usize>r << 5);
        const xr = x + <usize>r * ldx;
        if (left == 3) blk(3, a, first, xr, ldx, wp, j0, j1);
        else if (left == 2) blk(2, a, first, xr, ldx, wp, j0, j1);
        else if (left == 1) blk(1, a, first, xr, ldx, wp, j0, j1);
      }
    }
    for (let i = 0; i < G; i++) {
      const pp = p + i * g;
      const acc = ACC + <usize>i * 256;
      const o = out + (<usize>pp << 5);
      const valid = n - pp * 8;
      for (let r = 0; r < m; r++) {
        const a = acc + (<usize>r << 5);
        store8(o + <usize>r * ldo, v128.load(a), v128.load(a, 16), valid);
      }
    }
  }
  for (let p = G * g; p < np; p++) {
    panelRows(out + (<usize>p << 5), ldo, x, ldx, w + <usize>p * panelBytes, m, k, n - p * 8);
  }
}

/** out[m×n] = x[m×k] · Wᵀ with W packed in 8-row panels. */
export function linearF32(out: usize, x: usize, w: usize, m: i32, n: i32, k: i32): void {
  const np = (n + 7) >> 3;
  const ldx = <usize>k << 2;
  const ldo = <usize>n << 2;
  const panelBytes = <usize>k * 32;
  if (m == 1) {
    // panels p, p + g, p + 2g together; the np % 3 last ones (the partial one among them, if any) alone
    const g = np / 3;
    const pb = <usize>g * panelBytes;
    for (let p = 0; p < g; p++) {
      tile1x3(out + (<usize>p << 5), <usize>g << 5, x, w + <usize>p * panelBytes, pb, k, n - (p + 2 * g) * 8);
    }
    for (let p = 3 * g; p < np; p++) {
      tile(1, out + (<usize>p << 5), ldo, x, ldx, w + <usize>p * panelBytes, k, n - p * 8);
    }
    return;
  }
  if (m <= 8) {
    linearBeams(out, x, w, m, n, k);
    return;
  }
  // prompts (m > 8): compute-bound, weights mostly cached: panel by panel, 4-row tiles
  for (let p = 0; p < np; p++) {
    panelRows(out + (<usize>p << 5), ldo, x, ldx, w + <usize>p * panelBytes, m, k, n - p * 8);
  }
}
