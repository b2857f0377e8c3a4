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
// the prefetcher follows one page at a time. So the multi-row tiles read weights from several places at
// once: m ≥ 3 with k ≥ 512 walks each panel once per 4-row group with k in 4 chunks taken in turn
// (tileRot: four streams at tile(4)'s register cost); m = 2 and k < 512 walk two panels, each as two
// halves of k (tile2x2K: four streams), each pair of rows in turn. Figures: scripts/bench-stream.ts.
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


// three panels (24 outputs) times one x row: six accumulators and three weight streams. (four
// panels, eight accumulators, spilled two in V8's register allocation and ran 25% slower in cache)
// @ts-ignore: decorator
@inline
function tile1x3(o: usize, xp: usize, wp: usize, pb: usize, k: i32, valid: i32): void {
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
  store8(o + 32, a2, a3, 8);
  store8(o + 64, a4, a5, valid - 16);
}


// two panels (16 outputs) times two x rows, k split in two halves walked side by side: four weight
// streams, eight accumulators; the last k % 2 steps after the second half.
// @ts-ignore: decorator
@inline
function tile2x2K(o: usize, ldo: usize, xp: usize, ldx: usize, wp: usize, pb: usize, k: i32, valid: i32): void {
  let a0 = f32x4.splat(0);
  let a1 = f32x4.splat(0);
  let a2 = f32x4.splat(0);
  let a3 = f32x4.splat(0);
  let b0 = f32x4.splat(0);
  let b1 = f32x4.splat(0);
  let b2 = f32x4.splat(0);
  let b3 = f32x4.splat(0);
  const kc = k >> 1;
  const wc = <usize>kc << 5;
  const xc = <usize>kc << 2;
  const end = xp + xc;
  while (xp < end) {
    for (let s = 0; s < 2; s++) {
      const xs = xp + <usize>s * xc;
      const ws = wp + <usize>s * wc;
      const x0 = v128.load32_splat(xs);
      const x1 = v128.load32_splat(xs + ldx);
      let w = v128.load(ws);
      a0 = fma(w, x0, a0);
      b0 = fma(w, x1, b0);
      w = v128.load(ws, 16);
      a1 = fma(w, x0, a1);
      b1 = fma(w, x1, b1);
      w = v128.load(ws + pb);
      a2 = fma(w, x0, a2);
      b2 = fma(w, x1, b2);
      w = v128.load(ws + pb, 16);
      a3 = fma(w, x0, a3);
      b3 = fma(w, x1, b3);
    }
    wp += 32;
    xp += 4;
  }
  if (k & 1) {
    wp += wc;
    xp += xc;
    const x0 = v128.load32_splat(xp);
    const x1 = v128.load32_splat(xp + ldx);
    let w = v128.load(wp);
    a0 = fma(w, x0, a0);
    b0 = fma(w, x1, b0);
    w = v128.load(wp, 16);
    a1 = fma(w, x0, a1);
    b1 = fma(w, x1, b1);
    w = v128.load(wp + pb);
    a2 = fma(w, x0, a2);
    b2 = fma(w, x1, b2);
    w = v128.load(wp + pb, 16);
    a3 = fma(w, x0, a3);
    b3 = fma(w, x1, b3);
  }
  store8(o, a0, a1, 8);
  store8(o + 32, a2, a3, valid - 8);
  store8(o + ldo, b0, b1, 8);
  store8(o + ldo + 32, b2, b3, valid - 8);
}

// one panel times R (1..4) rows with k split in S (2 or 4; 4 is used) chunks read as S streams: each loop step
// takes the next step of one chunk and the chunk pointers rotate, so the loop body (and its register
// use) is tile(R)'s while the weights come from S places at once. The last k % S steps follow chunk S-1.
// (Unrolling the S chunks in one body instead made V8 hoist all the loads and spill accumulators.)
// @ts-ignore: decorator
@inline
function tileRot(R: i32, S: i32, o: usize, ldo: usize, xp: usize, ldx: usize, wp: usize, k: i32, valid: i32): void {
  let c00 = f32x4.splat(0);
  let c01 = f32x4.splat(0);
  let c10 = f32x4.splat(0);
  let c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0);
  let c21 = f32x4.splat(0);
  let c30 = f32x4.splat(0);
  let c31 = f32x4.splat(0);
  const ldx3 = ldx * 3;
  const kc = k / S;
  const wc = <usize>kc << 5;
  const xc = <usize>kc << 2;
  let p0 = wp;
  let p1 = wp + wc;
  let p2 = wp + 2 * wc;
  let p3 = wp + 3 * wc;
  let x0 = xp;
  let x1 = xp + xc;
  let x2 = xp + 2 * xc;
  let x3 = xp + 3 * xc;
  for (let i = 0, steps = kc * S; i < steps; i++) {
    const w0 = v128.load(p0);
    const w1 = v128.load(p0, 16);
    const v0 = v128.load32_splat(x0);
    c00 = fma(w0, v0, c00);
    c01 = fma(w1, v0, c01);
    if (R > 1) {
      const v1 = v128.load32_splat(x0 + ldx);
      c10 = fma(w0, v1, c10);
      c11 = fma(w1, v1, c11);
    }
    if (R > 2) {
      const v2 = v128.load32_splat(x0 + 2 * ldx);
      c20 = fma(w0, v2, c20);
      c21 = fma(w1, v2, c21);
    }
    if (R > 3) {
      const v3 = v128.load32_splat(x0 + ldx3);
      c30 = fma(w0, v3, c30);
      c31 = fma(w1, v3, c31);
    }
    const tp = p0;
    const tx = x0;
    if (S == 2) {
      p0 = p1;
      p1 = tp + 32;
      x0 = x1;
      x1 = tx + 4;
    } else {
      p0 = p1;
      p1 = p2;
      p2 = p3;
      p3 = tp + 32;
      x0 = x1;
      x1 = x2;
      x2 = x3;
      x3 = tx + 4;
    }
  }
  // the k % S steps after the last chunk
  p0 = wp + <usize>S * wc;
  x0 = xp + <usize>S * xc;
  for (let i = kc * S; i < k; i++) {
    const w0 = v128.load(p0);
    const w1 = v128.load(p0, 16);
    const v0 = v128.load32_splat(x0);
    c00 = fma(w0, v0, c00);
    c01 = fma(w1, v0, c01);
    if (R > 1) {
      const v1 = v128.load32_splat(x0 + ldx);
      c10 = fma(w0, v1, c10);
      c11 = fma(w1, v1, c11);
    }
    if (R > 2) {
      const v2 = v128.load32_splat(x0 + 2 * ldx);
      c20 = fma(w0, v2, c20);
      c21 = fma(w1, v2, c21);
    }
    if (R > 3) {
      const v3 = v128.load32_splat(x0 + ldx3);
      c30 = fma(w0, v3, c30);
      c31 = fma(w1, v3, c31);
    }
    p0 += 32;
    x0 += 4;
  }
  store8(o, c00, c01, valid);
  if (R > 1) store8(o + ldo, c10, c11, valid);
  if (R > 2) store8(o + 2 * ldo, c20, c21, valid);
  if (R > 3) store8(o + 3 * ldo, c30, c31, valid);
}

/** out[m×n] = x[m×k] · Wᵀ with W packed in 8-row panels. */
export function linearF32(out: usize, x: usize, w: usize, m: i32, n: i32, k: i32): void {
  const np = (n + 7) >> 3;
  const ldx = <usize>k << 2;
  const ldo = <usize>n << 2;
  const panelBytes = <usize>k * 32;
  if (m == 1) {
    let p = 0;
    for (; p + 3 <= np; p += 3) {
      tile1x3(out + (<usize>p << 5), x, w + <usize>p * panelBytes, panelBytes, k, n - p * 8);
    }
    for (; p < np; p++) {
      tile1(out + (<usize>p << 5), x, w + <usize>p * panelBytes, k, n - p * 8);
    }
    return;
  }
  if (m >= 3 && k >= 512) {
    // the first 4 rows walk each panel once with k in 4 chunks of ≥ 128 steps (4 KiB) taken in turn;
    // later rows find the panel in L1/L2 and take the single-stream tiles (which were up to 12 % faster
    // in cache for long prompts: 256×768×3072)
    for (let p = 0; p < np; p++) {
      const wp = w + <usize>p * panelBytes;
      const valid = n - p * 8;
      const oc = out + (<usize>p << 5);
      let r = 0;
      if (m >= 4) {
        tileRot(4, 4, oc, ldo, x, ldx, wp, k, valid);
        r = 4;
      }
      for (; r + 4 <= m; r += 4) tile(4, oc + <usize>r * ldo, ldo, x + <usize>r * ldx, ldx, wp, k, valid);
      const o = oc + <usize>r * ldo;
      const xl = x + <usize>r * ldx;
      const left = m - r;
      if (left == 3) {
        if (r == 0) tileRot(3, 4, o, ldo, xl, ldx, wp, k, valid);
        else tile(3, o, ldo, xl, ldx, wp, k, valid);
      } else if (left == 2) tile(2, o, ldo, xl, ldx, wp, k, valid);
      else if (left == 1) tile1(o, xl, wp, k, valid);
    }
    return;
  }
  // m = 2, or k < 512 (chunks of a quarter panel would be under 4 KiB: slower from DRAM than this):
  // pairs of panels, k split in halves (four streams), every pair of rows walking the pair once (from
  // DRAM on the first pass, L1/L2 on the next); an odd last row takes each panel alone, an odd last
  // panel the single-panel tiles
  let p = 0;
  for (; p + 2 <= np; p += 2) {
    const wp = w + <usize>p * panelBytes;
    const valid = n - p * 8;
    const oc = out + (<usize>p << 5);
    let r = 0;
    for (; r + 2 <= m; r += 2) tile2x2K(oc + <usize>r * ldo, ldo, x + <usize>r * ldx, ldx, wp, panelBytes, k, valid);
    if (r < m) {
      tile1(oc + <usize>r * ldo, x + <usize>r * ldx, wp, k, 8);
      tile1(oc + <usize>r * ldo + 32, x + <usize>r * ldx, wp + panelBytes, k, valid - 8);
    }
  }
  if (p < np) {
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
