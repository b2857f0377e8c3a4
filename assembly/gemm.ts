// f32 linear layers: out[M×N] = x[M×K] · Wᵀ, W given (N×K) row-major as GGUF stores it.
//
// packed layout (made once by prepareLinear in runtime/kernels.ts): panels of 8 output rows, k-major, as XNNPACK packs them:
//   panel p, step kk: 8 floats W[8p + 0..7][kk] at ((p*K + kk) * 8) floats; rows past N are zero.
// one step is then two v128 loads of weights times one broadcast x[kk]; there is no K tail at all.
// row tiles of up to 4 x rows share every weight load (beams, prefill); M = 1 has its own loop
// unrolled over k to keep eight independent accumulators in flight.
//
// Weights streamed from DRAM (a model bigger than the caches): one core read ~12.5 GB/s as one
// sequential stream and ~15 GB/s as 3–8 streams side by side; a loop with many FMAs per weight byte
// (4 rows × 1 panel) got only ~7 GB/s from one stream, since few of its loads are in flight at once and
// the prefetcher follows one page at a time. So the beam paths (2 ≤ m ≤ 8) read weights from four
// places at once — k ≥ 512: one panel as four chunks of k taken in turn by 4-row groups (blkRot);
// k < 512 or m = 2: two panels half the matrix apart, by row pairs (blk2x2) — and walk k in blocks
// of KB steps in which every row group takes its turn, so that the weight streams of the first group
// never stop for long while the others reuse the block from L1. Figures: scripts/bench-stream.ts.
// A row of a batch may therefore sum in another order than the same row alone (M = 1): f32 rows agree
// to rounding across batch sizes, not bit for bit.
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

// one panel times one x row, k unrolled by 4 into four independent accumulator pairs.
// @ts-ignore: decorator
@inline
function tile1(o: usize, xp: usize, wp: usize, k: i32, valid: i32): void {
  let a0 = f32x4.splat(0);
  let a1 = f32x4.splat(0);
  let b0 = f32x4.splat(0);
  let b1 = f32x4.splat(0);
  let c0 = f32x4.splat(0);
  let c1 = f32x4.splat(0);
  let d0 = f32x4.splat(0);
  let d1 = f32x4.splat(0);
  let kk = 0;
  for (; kk + 4 <= k; kk += 4) {
    // one load of x[kk..kk+3], broadcast by shuffles (cheaper than four splat loads here)
    const xv = v128.load(xp);
    const x0 = i32x4.shuffle(xv, xv, 0, 0, 0, 0);
    const x1 = i32x4.shuffle(xv, xv, 1, 1, 1, 1);
    const x2 = i32x4.shuffle(xv, xv, 2, 2, 2, 2);
    const x3 = i32x4.shuffle(xv, xv, 3, 3, 3, 3);
    a0 = fma(v128.load(wp), x0, a0);
    a1 = fma(v128.load(wp, 16), x0, a1);
    b0 = fma(v128.load(wp, 32), x1, b0);
    b1 = fma(v128.load(wp, 48), x1, b1);
    c0 = fma(v128.load(wp, 64), x2, c0);
    c1 = fma(v128.load(wp, 80), x2, c1);
    d0 = fma(v128.load(wp, 96), x3, d0);
    d1 = fma(v128.load(wp, 112), x3, d1);
    wp += 128;
    xp += 16;
  }
  for (; kk < k; kk++) {
    const x0 = v128.load32_splat(xp);
    a0 = fma(v128.load(wp), x0, a0);
    a1 = fma(v128.load(wp, 16), x0, a1);
    wp += 32;
    xp += 4;
  }
  a0 = f32x4.add(f32x4.add(a0, b0), f32x4.add(c0, d0));
  a1 = f32x4.add(f32x4.add(a1, b1), f32x4.add(c1, d1));
  store8(o, a0, a1, valid);
}


// three panels g apart times one row: six accumulators and three weight streams, each walking its own
// third of the matrix (far-apart streams stay long: from DRAM ~5 % faster than three adjacent panels,
// equal in cache). (Four panels, eight accumulators, spilled two in V8's register allocation and ran
// 25 % slower in cache.) o: outputs of the first panel; og: bytes between the panels' outputs.
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

// partial sums of the k-blocked beam tiles between blocks: ≤ 8 rows × 16 floats (1 KiB is ample)
const ACC: usize = memory.data(1024, 64);
// k steps per block (per stream) in the beam tiles: short enough that the weight streams of the first
// row group are not idle for long while later groups reuse the block from L1 (the prefetches issued
// before carry on), long enough that saving the partial sums costs little (tried 8, 16, 32, 64)
const KB: i32 = 16;

// two panels pb bytes apart (16 outputs) times two x rows over steps [j0, j1): two weight streams,
// eight accumulators, partial sums in acc (128 bytes; `first` starts from 0)
// @ts-ignore: decorator
@inline
function blk2x2(acc: usize, first: bool, xp: usize, ldx: usize, wp: usize, pb: usize, j0: i32, j1: i32): void {
  let a0 = f32x4.splat(0);
  let a1 = f32x4.splat(0);
  let a2 = f32x4.splat(0);
  let a3 = f32x4.splat(0);
  let b0 = f32x4.splat(0);
  let b1 = f32x4.splat(0);
  let b2 = f32x4.splat(0);
  let b3 = f32x4.splat(0);
  if (!first) {
    a0 = v128.load(acc);
    a1 = v128.load(acc, 16);
    a2 = v128.load(acc, 32);
    a3 = v128.load(acc, 48);
    b0 = v128.load(acc, 64);
    b1 = v128.load(acc, 80);
    b2 = v128.load(acc, 96);
    b3 = v128.load(acc, 112);
  }
  let p0 = wp + (<usize>j0 << 5);
  let x0 = xp + (<usize>j0 << 2);
  const end = xp + (<usize>j1 << 2);
  while (x0 < end) {
    const v0 = v128.load32_splat(x0);
    const v1 = v128.load32_splat(x0 + ldx);
    let w = v128.load(p0);
    a0 = fma(w, v0, a0);
    b0 = fma(w, v1, b0);
    w = v128.load(p0, 16);
    a1 = fma(w, v0, a1);
    b1 = fma(w, v1, b1);
    w = v128.load(p0 + pb);
    a2 = fma(w, v0, a2);
    b2 = fma(w, v1, b2);
    w = v128.load(p0 + pb, 16);
    a3 = fma(w, v0, a3);
    b3 = fma(w, v1, b3);
    p0 += 32;
    x0 += 4;
  }
  v128.store(acc, a0);
  v128.store(acc, a1, 16);
  v128.store(acc, a2, 32);
  v128.store(acc, a3, 48);
  v128.store(acc, b0, 64);
  v128.store(acc, b1, 80);
  v128.store(acc, b2, 96);
  v128.store(acc, b3, 112);
}

// one panel times R (1..4) rows over `steps` steps of each of four chunks of k, taken in turn (the
// pointers rotate, so the body and its register use are tile(R)'s while the weights come from four
// places at once); chunk 0 from weights w0 / x row 0 at x0, chunks 1..3 from w1 / x1 on, wc / xc apart.
// Partial sums in acc (32 bytes per row; `first` starts from 0). Unrolling the four chunks in one body
// instead made V8 hoist every load and spill accumulators.
// @ts-ignore: decorator
@inline
function blkRot(R: i32, acc: usize, first: bool, ldx: usize, w0: usize, x0: usize, w1: usize, x1: usize, wc: usize, xc: usize, steps: i32): void {
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
  let p0 = w0;
  let p1 = w1;
  let p2 = p1 + wc;
  let p3 = p2 + wc;
  let q0 = x0;
  let q1 = x1;
  let q2 = q1 + xc;
  let q3 = q2 + xc;
  for (let i = 0, n = steps << 2; i < n; i++) {
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
    const tp = p0;
    const tq = q0;
    p0 = p1;
    p1 = p2;
    p2 = p3;
    p3 = tp + 32;
    q0 = q1;
    q1 = q2;
    q2 = q3;
    q3 = tq + 4;
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

// rows [r0, r1) of one panel: partial sums from acc (32 bytes per row) plus the steps [k0, k) that the
// chunks left over, written to out
// @ts-ignore: decorator
@inline
function finishRows(acc: usize, o: usize, ldo: usize, xp: usize, ldx: usize, wp: usize, k0: i32, k: i32, r0: i32, r1: i32, valid: i32): void {
  for (let r = r0; r < r1; r++) {
    const a = acc + (<usize>r << 5);
    let c0 = v128.load(a);
    let c1 = v128.load(a, 16);
    const xr = xp + <usize>r * ldx;
    for (let kk = k0; kk < k; kk++) {
      const v = v128.load32_splat(xr + (<usize>kk << 2));
      c0 = fma(v128.load(wp + (<usize>kk << 5)), v, c0);
      c1 = fma(v128.load(wp + (<usize>kk << 5), 16), v, c1);
    }
    store8(o + <usize>r * ldo, c0, c1, valid);
  }
}

// beams, k ≥ 512, 3 ≤ m ≤ 8: per panel, k in 4 chunks (≥ 128 steps, 4 KiB, each) walked in blocks of
// KB steps; within a block the full 4-row groups and a last group of 3 take turns (the first from DRAM
// as four streams, the next from L1); a last 1 or 2 rows follow the blocks (panel in L1/L2).
// When k % 512 == 0 a chunk is a whole number of 4 KiB pages long, and the chunks are shifted back by
// d steps so that each starts on a page whatever the weight's alignment (the arena aligns to 64 bytes):
// chunk 0 then starts with the panel's last d steps and wraps to its first. Chunks that straddled page
// boundaries ran ~12 % slower in the model's layer order (42M, m = 4 and 8).
function linearRows4(out: usize, x: usize, w: usize, m: i32, n: i32, k: i32): void {
  const np = (n + 7) >> 3;
  const ldx = <usize>k << 2;
  const ldo = <usize>n << 2;
  const panelBytes = <usize>k * 32;
  const kc = k >> 2;
  const wc = <usize>kc << 5;
  const xc = <usize>kc << 2;
  const blocked = (m & 3) == 3 ? m : m & ~3;
  // the shift (the same for every panel: panelBytes is a multiple of 16 KiB then)
  const d = (k & 511) == 0 ? <i32>((w & 4095) >> 5) : 0;
  for (let p = 0; p < np; p++) {
    const wp = w + <usize>p * panelBytes;
    const valid = n - p * 8;
    const oc = out + (<usize>p << 5);
    for (let j0 = 0; j0 < kc; ) {
      let j1 = min(kc, j0 + KB);
      if (j0 < d && j1 > d) j1 = d; // chunk 0 wraps at j = d: no block straddles it
      const s0 = j0 < d ? k - d + j0 : j0 - d; // steps where chunks 0 and 1 are at this block
      const s1 = kc - d + j0;
      const w0 = wp + (<usize>s0 << 5);
      const w1 = wp + (<usize>s1 << 5);
      let r = 0;
      for (; r + 4 <= m; r += 4) {
        const xr = x + <usize>r * ldx;
        blkRot(4, ACC + (<usize>r << 5), j0 == 0, ldx, w0, xr + (<usize>s0 << 2), w1, xr + (<usize>s1 << 2), wc, xc, j1 - j0);
      }
      if (m - r == 3) {
        const xr = x + <usize>r * ldx;
        blkRot(3, ACC + (<usize>r << 5), j0 == 0, ldx, w0, xr + (<usize>s0 << 2), w1, xr + (<usize>s1 << 2), wc, xc, j1 - j0);
      }
      j0 = j1;
    }
    finishRows(ACC, oc, ldo, x, ldx, wp, kc << 2, k, 0, blocked, valid);
    const r = blocked;
    if (m - r == 2) tile(2, oc + <usize>r * ldo, ldo, x + <usize>r * ldx, ldx, wp, k, valid);
    else if (m - r == 1) tile1(oc + <usize>r * ldo, x + <usize>r * ldx, wp, k, valid);
  }
}

// beams, 2 ≤ m ≤ 8 (k < 512, or m = 2): panels p and p + np/2 together (two long streams, each walking
// its half of the matrix), k in blocks of KB steps (all of k when m = 2) in which the row pairs take
// turns (the first from memory, the next from L1); an odd last row takes each panel alone after the
// blocks, an odd last panel the single-panel tiles. (Adjacent panels with k split in halves, four
// shorter streams, were ~5–10 % slower at m = 8 from DRAM and at m = 4 in cache.)
function linearPairs(out: usize, x: usize, w: usize, m: i32, n: i32, k: i32): void {
  const np = (n + 7) >> 3;
  const ldx = <usize>k << 2;
  const ldo = <usize>n << 2;
  const panelBytes = <usize>k * 32;
  const g = np >> 1;
  const pb = <usize>g * panelBytes;
  const og = <usize>g << 5;
  const kb = m == 2 ? k : KB;
  for (let p = 0; p < g; p++) {
    const wp = w + <usize>p * panelBytes;
    const oc = out + (<usize>p << 5);
    const valid2 = n - (p + g) * 8;
    for (let j0 = 0; j0 < k; j0 += kb) {
      const j1 = min(k, j0 + kb);
      for (let r = 0; r + 2 <= m; r += 2)
        blk2x2(ACC + (<usize>r << 6), j0 == 0, x + <usize>r * ldx, ldx, wp, pb, j0, j1);
    }
    for (let r = 0; r + 2 <= m; r += 2) {
      const a = ACC + (<usize>r << 6);
      const o = oc + <usize>r * ldo;
      store8(o, v128.load(a), v128.load(a, 16), 8);
      store8(o + og, v128.load(a, 32), v128.load(a, 48), valid2);
      store8(o + ldo, v128.load(a, 64), v128.load(a, 80), 8);
      store8(o + ldo + og, v128.load(a, 96), v128.load(a, 112), valid2);
    }
    if (m & 1) {
      const r = m - 1;
      tile1(oc + <usize>r * ldo, x + <usize>r * ldx, wp, k, 8);
      tile1(oc + <usize>r * ldo + og, x + <usize>r * ldx, wp + pb, k, valid2);
    }
  }
  if (np & 1) {
    const p = np - 1;
    const wp = w + <usize>p * panelBytes;
    const valid = n - p * 8;
    const oc = out + (<usize>p << 5);
    let r = 0;
    for (; r + 4 <= m; r += 4) tile(4, oc + <usize>r * ldo, ldo, x + <usize>r * ldx, ldx, wp, k, valid);
    const left = m - r;
    if (left == 3) tile(3, oc + <usize>r * ldo, ldo, x + <usize>r * ldx, ldx, wp, k, valid);
    else if (left == 2) tile(2, oc + <usize>r * ldo, ldo, x + <usize>r * ldx, ldx, wp, k, valid);
    else if (left == 1) tile1(oc + <usize>r * ldo, x + <usize>r * ldx, wp, k, valid);
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
      tile1(out + (<usize>p << 5), x, w + <usize>p * panelBytes, k, n - p * 8);
    }
    return;
  }
  if (m <= 8) {
    if (m >= 3 && k >= 512) linearRows4(out, x, w, m, n, k);
    else linearPairs(out, x, w, m, n, k);
    return;
  }
  // prompts (m > 8): per panel, 4-row tiles; with k ≥ 512 the first group reads the panel as four chunk
  // streams (whole k as one block), the others find it in L1/L2 (single-stream tile(4) was up to 12 %
  // faster there: 256×768×3072)
  const kc = k >> 2;
  for (let p = 0; p < np; p++) {
    const wp = w + <usize>p * panelBytes;
    const valid = n - p * 8;
    const oc = out + (<usize>p << 5);
    let r = 0;
    if (k >= 512) {
      blkRot(4, ACC, true, ldx, wp, x, wp + (<usize>kc << 5), x + (<usize>kc << 2), <usize>kc << 5, <usize>kc << 2, kc);
      finishRows(ACC, oc, ldo, x, ldx, wp, kc << 2, k, 0, 4, valid);
      r = 4;
    }
    for (; r + 4 <= m; r += 4) tile(4, oc + <usize>r * ldo, ldo, x + <usize>r * ldx, ldx, wp, k, valid);
    const left = m - r;
    if (left == 3) tile(3, oc + <usize>r * ldo, ldo, x + <usize>r * ldx, ldx, wp, k, valid);
    else if (left == 2) tile(2, oc + <usize>r * ldo, ldo, x + <usize>r * ldx, ldx, wp, k, valid);
    else if (left == 1) tile1(oc + <usize>r * ldo, x + <usize>r * ldx, wp, k, valid);
  }
}
