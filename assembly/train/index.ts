// edgelm training kernels: forward ops that save what their backward needs, the backward twin of
// each, AdamW. A separate build (build/train.wasm, SIMD128 + relaxed SIMD) so the Worker's
// inference module stays small. Raw byte pointers into one linear memory; JS owns the layout.
//
// Legend: M rows (= B·T tokens), T time, D model width, F ffn width, V vocab, H heads,
// hd head size, N output features, K input features. All f32, row-major.
// Backward kernels accumulate (+=) into their d-buffers unless a comment says otherwise.

/** first byte past the module's static data: the JS arena starts here (aligned up). */
export function heapBase(): usize {
  return __heap_base;
}

// fused multiply-add where the hardware has it (relaxed: may or may not fuse; fine for training)
// @ts-ignore: decorator
@inline function fma4(a: v128, b: v128, c: v128): v128 {
  return f32x4.relaxed_madd(a, b, c);
}

// exp(x) for f32 lanes: x = n·ln2 + r, |r| ≤ ln2/2, e^r by its Taylor series to r⁶ (relative
// error ~2e-7), times 2ⁿ built in the exponent bits. Inputs clamped to [−87, 88] (e^−87 ≈ 1.6e-38
// stands in for 0). After Cephes' expf range reduction (ln2 split in a high and a low part).
// @ts-ignore: decorator
@inline function expv(x: v128): v128 {
  x = f32x4.min(f32x4.max(x, f32x4.splat(-87.0)), f32x4.splat(88.0));
  const n = f32x4.nearest(f32x4.mul(x, f32x4.splat(1.44269504)));
  let r = f32x4.sub(x, f32x4.mul(n, f32x4.splat(0.693359375)));
  r = f32x4.sub(r, f32x4.mul(n, f32x4.splat(-2.12194440e-4)));
  let p = f32x4.splat(1.0 / 720.0);
  p = fma4(p, r, f32x4.splat(1.0 / 120.0));
  p = fma4(p, r, f32x4.splat(1.0 / 24.0));
  p = fma4(p, r, f32x4.splat(1.0 / 6.0));
  p = fma4(p, r, f32x4.splat(0.5));
  p = fma4(p, r, f32x4.splat(1.0));
  p = fma4(p, r, f32x4.splat(1.0));
  const e = i32x4.shl(i32x4.add(i32x4.trunc_sat_f32x4_s(n), i32x4.splat(127)), 23);
  return f32x4.mul(p, e);
}

// scalar twin of expv (same lanes, lane 0)
// @ts-ignore: decorator
@inline function expf(x: f32): f32 {
  return f32x4.extract_lane(expv(f32x4.splat(x)), 0);
}

/** exp of n floats in place (exposed for tests). */
export function expInPlace(x: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(x + (<usize>i << 2), expv(v128.load(x + (<usize>i << 2))));
  for (; i < n; i++) store<f32>(x + (<usize>i << 2), expf(load<f32>(x + (<usize>i << 2))));
}

/** zero `bytes` bytes at p. */
export function zero(p: usize, bytes: usize): void {
  memory.fill(p, 0, bytes);
}

/** copy `bytes` bytes from src to dst. */
export function copy(dst: usize, src: usize, bytes: usize): void {
  memory.copy(dst, src, bytes);
}

/** x[i] += y[i]. */
export function addInPlace(x: usize, y: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(x + o, f32x4.add(v128.load(x + o), v128.load(y + o)));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(x + o, load<f32>(x + o) + load<f32>(y + o));
  }
}

/** x[i] *= s. */
export function scale(x: usize, s: f32, n: i32): void {
  const sv = f32x4.splat(s);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(x + o, f32x4.mul(v128.load(x + o), sv));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(x + o, load<f32>(x + o) * s);
  }
}

/** Σ x[i]², accumulated in f64 (for the gradient norm). */
export function sumSquares(x: usize, n: i32): f64 {
  let acc: f64 = 0;
  // f32 partial sums over chunks of 1024, f64 across chunks
  let i = 0;
  while (i < n) {
    const end = min(i + 1024, n);
    let v = f32x4.splat(0);
    for (; i + 4 <= end; i += 4) {
      const a = v128.load(x + (<usize>i << 2));
      v = fma4(a, a, v);
    }
    let s: f64 =
      <f64>f32x4.extract_lane(v, 0) +
      <f64>f32x4.extract_lane(v, 1) +
      <f64>f32x4.extract_lane(v, 2) +
      <f64>f32x4.extract_lane(v, 3);
    for (; i < end; i++) {
      const a = <f64>load<f32>(x + (<usize>i << 2));
      s += a * a;
    }
    acc += s;
  }
  return acc;
}

/** dst[c×r] = srcᵀ where src is r×c. */
export function transpose(dst: usize, src: usize, r: i32, c: i32): void {
  // tiles of 16×16 keep both sides in cache
  for (let i0 = 0; i0 < r; i0 += 16) {
    const i1 = min(i0 + 16, r);
    for (let j0 = 0; j0 < c; j0 += 16) {
      const j1 = min(j0 + 16, c);
      for (let i = i0; i < i1; i++) {
        for (let j = j0; j < j1; j++) {
          store<f32>(dst + ((<usize>j * <usize>r + <usize>i) << 2), load<f32>(src + ((<usize>i * <usize>c + <usize>j) << 2)));
        }
      }
    }
  }
}

/**
 * C[i,j] (+)= Σ_r A[i·sai + r·sar] · B[r·ldb + j] for i < m, j < n, r < kk; C row stride ldc.
 * The one matrix product that training needs: B is read in rows (SIMD along j), A by scalars
 * (any strides, so Aᵀ costs nothing). Tiles of 4 rows × 8 columns of C live in registers while
 * r runs over a block of 128.
 */
export function matmul(
  c: usize,
  a: usize,
  b: usize,
  m: i32,
  n: i32,
  kk: i32,
  sai: i32,
  sar: i32,
  ldb: i32,
  ldc: i32,
  accumulate: i32,
): void {
  if (!accumulate) {
    for (let i = 0; i < m; i++) memory.fill(c + ((<usize>i * <usize>ldc) << 2), 0, <usize>n << 2);
  }
  // column blocks of 128: the block of B that the row tiles re-read (128 × 128 floats) stays in L2
  const NB = 128;
  for (let j0 = 0; j0 < n; j0 += NB) {
    matmulPanel(c + (<usize>j0 << 2), a, b + (<usize>j0 << 2), m, min(NB, n - j0), kk, sai, sar, ldb, ldc);
  }
}

// C[:, 0:n] += A·B[:, 0:n] for one column panel (see matmul)
function matmulPanel(c: usize, a: usize, b: usize, m: i32, n: i32, kk: i32, sai: i32, sar: i32, ldb: i32, ldc: i32): void {
  const RB = 128;
  const n8 = n & ~7;
  const m4 = m & ~3;
  for (let r0 = 0; r0 < kk; r0 += RB) {
    const r1 = min(r0 + RB, kk);
    let i = 0;
    for (; i < m4; i += 4) {
      const a0 = a + ((<usize>i * <usize>sai) << 2);
      const a1 = a0 + (<usize>sai << 2);
      const a2 = a1 + (<usize>sai << 2);
      const a3 = a2 + (<usize>sai << 2);
      const c0 = c + ((<usize>i * <usize>ldc) << 2);
      const c1 = c0 + (<usize>ldc << 2);
      const c2 = c1 + (<usize>ldc << 2);
      const c3 = c2 + (<usize>ldc << 2);
      let j = 0;
      for (; j < n8; j += 8) {
        const jo = <usize>j << 2;
        let s00 = v128.load(c0 + jo);
        let s01 = v128.load(c0 + jo + 16);
        let s10 = v128.load(c1 + jo);
        let s11 = v128.load(c1 + jo + 16);
        let s20 = v128.load(c2 + jo);
        let s21 = v128.load(c2 + jo + 16);
        let s30 = v128.load(c3 + jo);
        let s31 = v128.load(c3 + jo + 16);
        let bp = b + ((<usize>r0 * <usize>ldb) << 2) + jo;
        let ao = (<usize>r0 * <usize>sar) << 2;
        const bstep = <usize>ldb << 2;
        const astep = <usize>sar << 2;
        for (let r = r0; r < r1; r++) {
          const b0 = v128.load(bp);
          const b1 = v128.load(bp + 16);
          const x0 = v128.load32_splat(a0 + ao);
          s00 = fma4(x0, b0, s00);
          s01 = fma4(x0, b1, s01);
          const x1 = v128.load32_splat(a1 + ao);
          s10 = fma4(x1, b0, s10);
          s11 = fma4(x1, b1, s11);
          const x2 = v128.load32_splat(a2 + ao);
          s20 = fma4(x2, b0, s20);
          s21 = fma4(x2, b1, s21);
          const x3 = v128.load32_splat(a3 + ao);
          s30 = fma4(x3, b0, s30);
          s31 = fma4(x3, b1, s31);
          bp += bstep;
          ao += astep;
        }
        v128.store(c0 + jo, s00);
        v128.store(c0 + jo + 16, s01);
        v128.store(c1 + jo, s10);
        v128.store(c1 + jo + 16, s11);
        v128.store(c2 + jo, s20);
        v128.store(c2 + jo + 16, s21);
        v128.store(c3 + jo, s30);
        v128.store(c3 + jo + 16, s31);
      }
      for (; j < n; j++) {
        for (let q = 0; q < 4; q++) {
          const ar = a + ((<usize>(i + q) * <usize>sai) << 2);
          const cp = c + ((<usize>(i + q) * <usize>ldc + <usize>j) << 2);
          let s = load<f32>(cp);
          for (let r = r0; r < r1; r++) {
            s += load<f32>(ar + ((<usize>r * <usize>sar) << 2)) * load<f32>(b + ((<usize>r * <usize>ldb + <usize>j) << 2));
          }
          store<f32>(cp, s);
        }
      }
    }
    // leftover rows, one at a time
    for (; i < m; i++) {
      const ar = a + ((<usize>i * <usize>sai) << 2);
      const cr = c + ((<usize>i * <usize>ldc) << 2);
      let j = 0;
      for (; j < n8; j += 8) {
        const jo = <usize>j << 2;
        let s0 = v128.load(cr + jo);
        let s1 = v128.load(cr + jo + 16);
        for (let r = r0; r < r1; r++) {
          const bp = b + ((<usize>r * <usize>ldb) << 2) + jo;
          const x = f32x4.splat(load<f32>(ar + ((<usize>r * <usize>sar) << 2)));
          s0 = fma4(x, v128.load(bp), s0);
          s1 = fma4(x, v128.load(bp + 16), s1);
        }
        v128.store(cr + jo, s0);
        v128.store(cr + jo + 16, s1);
      }
      for (; j < n; j++) {
        const cp = cr + (<usize>j << 2);
        let s = load<f32>(cp);
        for (let r = r0; r < r1; r++) {
          s += load<f32>(ar + ((<usize>r * <usize>sar) << 2)) * load<f32>(b + ((<usize>r * <usize>ldb + <usize>j) << 2));
        }
        store<f32>(cp, s);
      }
    }
  }
}

/** y = x / sqrt(mean(x²) + eps) · w per row; rstd[M] saved for the backward. */
export function rmsnormForward(y: usize, rstd: usize, x: usize, w: usize, m: i32, d: i32, eps: f32): void {
  for (let i = 0; i < m; i++) {
    const xr = x + ((<usize>i * <usize>d) << 2);
    const yr = y + ((<usize>i * <usize>d) << 2);
    let acc = f32x4.splat(0);
    let j = 0;
    for (; j + 4 <= d; j += 4) {
      const v = v128.load(xr + (<usize>j << 2));
      acc = fma4(v, v, acc);
    }
    let ss = f32x4.extract_lane(acc, 0) + f32x4.extract_lane(acc, 1) + f32x4.extract_lane(acc, 2) + f32x4.extract_lane(acc, 3);
    for (; j < d; j++) {
      const v = load<f32>(xr + (<usize>j << 2));
      ss += v * v;
    }
    const r = <f32>(1.0 / Math.sqrt(<f64>(ss / <f32>d) + <f64>eps));
    store<f32>(rstd + (<usize>i << 2), r);
    const rv = f32x4.splat(r);
    j = 0;
    for (; j + 4 <= d; j += 4) {
      const o = <usize>j << 2;
      v128.store(yr + o, f32x4.mul(f32x4.mul(v128.load(xr + o), rv), v128.load(w + o)));
    }
    for (; j < d; j++) {
      const o = <usize>j << 2;
      store<f32>(yr + o, load<f32>(xr + o) * r * load<f32>(w + o));
    }
  }
}

/**
 * RMSNorm backward. With x̂ = x·rstd: dw += Σ_rows dy·x̂;
 * dx += rstd · (dy·w − x̂ · mean(dy·w·x̂)).
 */
export function rmsnormBackward(dx: usize, dw: usize, dy: usize, x: usize, w: usize, rstd: usize, m: i32, d: i32): void {
  for (let i = 0; i < m; i++) {
    const ro = (<usize>i * <usize>d) << 2;
    const r = load<f32>(rstd + (<usize>i << 2));
    // mean(dy·w·x̂)
    let dot: f32 = 0;
    for (let j = 0; j < d; j++) {
      const o = <usize>j << 2;
      dot += load<f32>(dy + ro + o) * load<f32>(w + o) * load<f32>(x + ro + o);
    }
    const c = dot * r / <f32>d; // mean(dy·w·x̂) = r·mean(dy·w·x)
    for (let j = 0; j < d; j++) {
      const o = <usize>j << 2;
      const xh = load<f32>(x + ro + o) * r;
      const g = load<f32>(dy + ro + o);
      store<f32>(dw + o, load<f32>(dw + o) + g * xh);
      store<f32>(dx + ro + o, load<f32>(dx + ro + o) + r * (g * load<f32>(w + o) - xh * c));
    }
  }
}

/**
 * RoPE on adjacent pairs (x[2i], x[2i+1]) of each head, in place; row r is at position r % t.
 * cs: table [t][hd/2][2] of (cos, sin) of p·θ_i, θ_i = base^(−2i/hd). sign −1 rotates backwards
 * (the backward of a rotation is its inverse).
 */
export function rope(x: usize, cs: usize, m: i32, t: i32, nHeads: i32, hd: i32, sign: f32): void {
  const half = hd >> 1;
  for (let r = 0; r < m; r++) {
    const p = r % t;
    const tab = cs + ((<usize>p * <usize>half) << 3);
    for (let h = 0; h < nHeads; h++) {
      const base = x + ((<usize>r * <usize>(nHeads * hd) + <usize>(h * hd)) << 2);
      for (let i = 0; i < half; i++) {
        const c = load<f32>(tab + (<usize>i << 3));
        const s = sign * load<f32>(tab + (<usize>i << 3) + 4);
        const a = load<f32>(base + (<usize>i << 3));
        const b = load<f32>(base + (<usize>i << 3) + 4);
        store<f32>(base + (<usize>i << 3), a * c - b * s);
        store<f32>(base + (<usize>i << 3) + 4, a * s + b * c);
      }
    }
  }
}

// horizontal sum of an f32x4
// @ts-ignore: decorator
@inline function hsum(v: v128): f32 {
  return f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) + f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3);
}

// dot product of two hd-long vectors (hd % 4 == 0)
// @ts-ignore: decorator
@inline function dot(a: usize, b: usize, hd: i32): f32 {
  let acc = f32x4.splat(0);
  for (let j = 0; j < hd; j += 4) {
    const o = <usize>j << 2;
    acc = fma4(v128.load(a + o), v128.load(b + o), acc);
  }
  return hsum(acc);
}

// y += s·x over hd floats (hd % 4 == 0)
// @ts-ignore: decorator
@inline function axpy(y: usize, s: f32, x: usize, hd: i32): void {
  const sv = f32x4.splat(s);
  for (let j = 0; j < hd; j += 4) {
    const o = <usize>j << 2;
    v128.store(y + o, fma4(sv, v128.load(x + o), v128.load(y + o)));
  }
}

// rows of queries per block: the score matrix is computed block-triangularly (row block
// [i0, i1) against keys [0, i1)), so at most one block's worth of masked work is wasted
const ABLK = 32;

// dst[r][j] = src[(j)·c + r] for r < hd, j < t: one head's K or V transposed to hd × t
function headTranspose(dst: usize, src: usize, t: i32, c: i32, hd: i32): void {
  for (let j = 0; j < t; j++) {
    const row = src + ((<usize>j * <usize>c) << 2);
    for (let r = 0; r < hd; r++) store<f32>(dst + ((<usize>r * <usize>t + <usize>j) << 2), load<f32>(row + (<usize>r << 2)));
  }
}

/**
 * Causal self-attention forward. q, k, v, out: [B·T][H·hd]; p: [B][H][T][T] softmax rows saved
 * for the backward: row i holds P[i][0..i] and zeros up to the end of its block of ABLK rows
 * (entries further right are never written or read). Query t attends to keys 0..t, scale
 * 1/sqrt(hd). Scores and P·V go through `matmul`. scratch: hd·T floats. Requires hd % 4 == 0.
 */
export function attentionForward(out: usize, p: usize, q: usize, k: usize, v: usize, scratch: usize, bsz: i32, t: i32, nHeads: i32, hd: i32): void {
  const c = nHeads * hd;
  const sc = <f32>(1.0 / Math.sqrt(<f64>hd));
  const kt = scratch;
  for (let b = 0; b < bsz; b++) {
    for (let h = 0; h < nHeads; h++) {
      const ho = (<usize>(b * t) * <usize>c + <usize>(h * hd)) << 2; // row 0 of this head
      const pm = p + ((<usize>((b * nHeads + h) * t) * <usize>t) << 2);
      headTranspose(kt, k + ho, t, c, hd);
      for (let i0 = 0; i0 < t; i0 += ABLK) {
        const i1 = min(i0 + ABLK, t);
        const prow = pm + ((<usize>i0 * <usize>t) << 2);
        // S[i0:i1, 0:i1] = Q·Kᵀ
        matmul(prow, q + ho + ((<usize>i0 * <usize>c) << 2), kt, i1 - i0, i1, hd, c, 1, t, t, 0);
        for (let i = i0; i < i1; i++) {
          const pr = pm + ((<usize>i * <usize>t) << 2);
          let mx: f32 = -Infinity;
          for (let u = 0; u <= i; u++) {
            const s = load<f32>(pr + (<usize>u << 2)) * sc;
            store<f32>(pr + (<usize>u << 2), s);
            if (s > mx) mx = s;
          }
          // exponentials, four keys at a time, then the scalar tail
          const mv = f32x4.splat(mx);
          let sv = f32x4.splat(0);
          let u = 0;
          for (; u + 4 <= i + 1; u += 4) {
            const e = expv(f32x4.sub(v128.load(pr + (<usize>u << 2)), mv));
            v128.store(pr + (<usize>u << 2), e);
            sv = f32x4.add(sv, e);
          }
          let sum: f32 = hsum(sv);
          for (; u <= i; u++) {
            const e = expf(load<f32>(pr + (<usize>u << 2)) - mx);
            store<f32>(pr + (<usize>u << 2), e);
            sum += e;
          }
          scale(pr, <f32>1 / sum, i + 1);
          for (u = i + 1; u < i1; u++) store<f32>(pr + (<usize>u << 2), 0);
        }
        // O[i0:i1] = P[i0:i1, 0:i1]·V[0:i1]
        matmul(out + ho + ((<usize>i0 * <usize>c) << 2), prow, v + ho, i1 - i0, hd, i1, t, 1, c, c, 0);
      }
    }
  }
}

/**
 * Causal self-attention backward: writes (not accumulates) dq, dk, dv [B·T][H·hd].
 * dP = dO·Vᵀ; dS = P∘(dP − rowsum(P∘dP))·scale; dQ = dS·K; dK = dSᵀ·Q; dV = Pᵀ·dO — all through
 * `matmul`, block-triangular like the forward. scratch: T·T + hd·T floats.
 */
export function attentionBackward(
  dq: usize,
  dk: usize,
  dv: usize,
  dout: usize,
  p: usize,
  q: usize,
  k: usize,
  v: usize,
  scratch: usize,
  bsz: i32,
  t: i32,
  nHeads: i32,
  hd: i32,
): void {
  const c = nHeads * hd;
  const sc = <f32>(1.0 / Math.sqrt(<f64>hd));
  const ds = scratch; // T × T
  const vt = scratch + ((<usize>t * <usize>t) << 2); // hd × T
  for (let b = 0; b < bsz; b++) {
    for (let h = 0; h < nHeads; h++) {
      const ho = (<usize>(b * t) * <usize>c + <usize>(h * hd)) << 2;
      const pm = p + ((<usize>((b * nHeads + h) * t) * <usize>t) << 2);
      headTranspose(vt, v + ho, t, c, hd);
      for (let i0 = 0; i0 < t; i0 += ABLK) {
        const i1 = min(i0 + ABLK, t);
        const drow = ds + ((<usize>i0 * <usize>t) << 2);
        // dP[i0:i1, 0:i1] = dO·Vᵀ
        matmul(drow, dout + ho + ((<usize>i0 * <usize>c) << 2), vt, i1 - i0, i1, hd, c, 1, t, t, 0);
        for (let i = i0; i < i1; i++) {
          const pr = pm + ((<usize>i * <usize>t) << 2);
          const dr = ds + ((<usize>i * <usize>t) << 2);
          let acc: f32 = 0;
          for (let u = 0; u <= i; u++) acc += load<f32>(pr + (<usize>u << 2)) * load<f32>(dr + (<usize>u << 2));
          for (let u = 0; u <= i; u++) {
            const o = <usize>u << 2;
            store<f32>(dr + o, load<f32>(pr + o) * (load<f32>(dr + o) - acc) * sc);
          }
          for (let u = i + 1; u < i1; u++) store<f32>(dr + (<usize>u << 2), 0);
        }
        // dQ[i0:i1] = dS[i0:i1, 0:i1]·K[0:i1]
        matmul(dq + ho + ((<usize>i0 * <usize>c) << 2), drow, k + ho, i1 - i0, hd, i1, t, 1, c, c, 0);
      }
      for (let j0 = 0; j0 < t; j0 += ABLK) {
        const j1 = min(j0 + ABLK, t);
        const off = (<usize>j0 * <usize>t + <usize>j0) << 2;
        // dK[j0:j1] = Σ_{i ≥ j0} dS[i, j0:j1]ᵀ·Q[i];  dV[j0:j1] = Σ_{i ≥ j0} P[i, j0:j1]ᵀ·dO[i]
        matmul(dk + ho + ((<usize>j0 * <usize>c) << 2), ds + off, q + ho + ((<usize>j0 * <usize>c) << 2), j1 - j0, hd, t - j0, 1, t, c, c, 0);
        matmul(dv + ho + ((<usize>j0 * <usize>c) << 2), pm + off, dout + ho + ((<usize>j0 * <usize>c) << 2), j1 - j0, hd, t - j0, 1, t, c, c, 0);
      }
    }
  }
}

// @ts-ignore: decorator
@inline function sigmoid(x: f32): f32 {
  return <f32>1 / (<f32>1 + expf(-x));
}

// @ts-ignore: decorator
@inline function sigmoidv(x: v128): v128 {
  const one = f32x4.splat(1);
  return f32x4.div(one, f32x4.add(one, expv(f32x4.neg(x))));
}

/** h = silu(g)·u, silu(g) = g·σ(g). */
export function swigluForward(h: usize, g: usize, u: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    const x = v128.load(g + o);
    v128.store(h + o, f32x4.mul(f32x4.mul(x, sigmoidv(x)), v128.load(u + o)));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    const x = load<f32>(g + o);
    store<f32>(h + o, x * sigmoid(x) * load<f32>(u + o));
  }
}

/** dg = dh·u·σ(g)(1 + g(1−σ(g))), du = dh·silu(g) (written, not accumulated). */
export function swigluBackward(dg: usize, du: usize, dh: usize, g: usize, u: usize, n: i32): void {
  let i = 0;
  const one = f32x4.splat(1);
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    const x = v128.load(g + o);
    const sg = sigmoidv(x);
    const d = v128.load(dh + o);
    const ds = f32x4.mul(sg, f32x4.add(one, f32x4.mul(x, f32x4.sub(one, sg))));
    v128.store(dg + o, f32x4.mul(f32x4.mul(d, v128.load(u + o)), ds));
    v128.store(du + o, f32x4.mul(d, f32x4.mul(x, sg)));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    const x = load<f32>(g + o);
    const s = sigmoid(x);
    const d = load<f32>(dh + o);
    store<f32>(dg + o, d * load<f32>(u + o) * s * (<f32>1 + x * (<f32>1 - s)));
    store<f32>(du + o, d * x * s);
  }
}

/** x[r] = table[tokens[r]] (tokens: i32[m]). */
export function embeddingForward(x: usize, tokens: usize, table: usize, m: i32, d: i32): void {
  for (let r = 0; r < m; r++) {
    const id = load<i32>(tokens + (<usize>r << 2));
    memory.copy(x + ((<usize>r * <usize>d) << 2), table + ((<usize>id * <usize>d) << 2), <usize>d << 2);
  }
}

/** dtable[tokens[r]] += dx[r]. */
export function embeddingBackward(dtable: usize, dx: usize, tokens: usize, m: i32, d: i32): void {
  for (let r = 0; r < m; r++) {
    const id = load<i32>(tokens + (<usize>r << 2));
    addInPlace(dtable + ((<usize>id * <usize>d) << 2), dx + ((<usize>r * <usize>d) << 2), d);
  }
}

/**
 * Softmax cross-entropy, forward and backward in one pass, logits overwritten by their gradient:
 * loss_r = −log softmax(logits_r)[target_r] · weight_r; dlogits_r = (softmax − onehot)·weight_r·gscale.
 * Rows with weight 0 get zero gradient. Returns Σ_r loss_r (f64).
 */
export function crossEntropy(logits: usize, targets: usize, weights: usize, m: i32, v: i32, gscale: f32): f64 {
  let total: f64 = 0;
  for (let r = 0; r < m; r++) {
    const row = logits + ((<usize>r * <usize>v) << 2);
    const wt = load<f32>(weights + (<usize>r << 2));
    if (wt == 0) {
      memory.fill(row, 0, <usize>v << 2);
      continue;
    }
    let mx: f32 = -Infinity;
    for (let j = 0; j < v; j++) mx = max(mx, load<f32>(row + (<usize>j << 2)));
    const mv = f32x4.splat(mx);
    let sv = f32x4.splat(0);
    let j = 0;
    for (; j + 4 <= v; j += 4) {
      const e = expv(f32x4.sub(v128.load(row + (<usize>j << 2)), mv));
      v128.store(row + (<usize>j << 2), e);
      sv = f32x4.add(sv, e);
    }
    let sum: f32 = hsum(sv);
    for (; j < v; j++) {
      const e = expf(load<f32>(row + (<usize>j << 2)) - mx);
      store<f32>(row + (<usize>j << 2), e);
      sum += e;
    }
    const tg = load<i32>(targets + (<usize>r << 2));
    const pt = load<f32>(row + (<usize>tg << 2)) / sum;
    total += -Math.log(<f64>max(pt, <f32>1e-30)) * <f64>wt;
    const s = wt * gscale / sum;
    scale(row, s, v);
    store<f32>(row + (<usize>tg << 2), load<f32>(row + (<usize>tg << 2)) - wt * gscale);
  }
  return total;
}

/**
 * AdamW step on n parameters: g' = g·gscale; m = β1 m + (1−β1) g'; v = β2 v + (1−β2) g'²;
 * p −= lr·(m/bc1 / (sqrt(v/bc2) + eps) + wd·p) (decoupled weight decay).
 */
export function adamw(
  p: usize,
  g: usize,
  m: usize,
  v: usize,
  n: i32,
  lr: f32,
  b1: f32,
  b2: f32,
  eps: f32,
  wd: f32,
  bc1: f32,
  bc2: f32,
  gscale: f32,
): void {
  for (let i = 0; i < n; i++) {
    const o = <usize>i << 2;
    const gi = load<f32>(g + o) * gscale;
    const mi = b1 * load<f32>(m + o) + (<f32>1 - b1) * gi;
    const vi = b2 * load<f32>(v + o) + (<f32>1 - b2) * gi * gi;
    store<f32>(m + o, mi);
    store<f32>(v + o, vi);
    const pi = load<f32>(p + o);
    const upd = (mi / bc1) / (<f32>Math.sqrt(<f64>(vi / bc2)) + eps) + wd * pi;
    store<f32>(p + o, pi - lr * upd);
  }
}
