// element-wise and row-wise ops: norms, RoPE, activations, softmax, argmax, top-k.
// rows are contiguous f32; every loop has a scalar tail for lengths not a multiple of 4.
import { exp4, expNeg4, fma, hmax, hsum, K_GELU_C, K_GELU_K, K_HALF, K_MINUS15, K_ONE, K_PLUS15, K_TWO, kf, kinf, SCRATCH_COS, SCRATCH_SIN } from './simd';

/** out[i] = a[i] + b[i] for i < n. */
export function add(out: usize, a: usize, b: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(out + o, f32x4.add(v128.load(a + o), v128.load(b + o)));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(out + o, load<f32>(a + o) + load<f32>(b + o));
  }
}

/** x[r][j] += bias[j] for m rows of n. */
export function addBias(x: usize, bias: usize, m: i32, n: i32): void {
  for (let r = 0; r < m; r++) add(x + ((<usize>r * <usize>n) << 2), x + ((<usize>r * <usize>n) << 2), bias, n);
}

// Σ x² over one row (four lanes, then the tail)
// @ts-ignore: decorator
@inline
function sumSq(x: usize, n: i32): f32 {
  let a = f32x4.splat(0);
  let b = f32x4.splat(0);
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const v = v128.load(x + (<usize>i << 2));
    const w = v128.load(x + (<usize>i << 2), 16);
    a = fma(v, v, a);
    b = fma(w, w, b);
  }
  let s = hsum(f32x4.add(a, b));
  for (; i < n; i++) {
    const v = load<f32>(x + (<usize>i << 2));
    s += v * v;
  }
  return s;
}

/** RMSNorm: out = x / sqrt(mean(x²) + eps) · w, for m rows of dim. */
export function rmsnorm(out: usize, x: usize, w: usize, m: i32, dim: i32, eps: f32): void {
  for (let r = 0; r < m; r++) {
    const xr = x + ((<usize>r * <usize>dim) << 2);
    const or = out + ((<usize>r * <usize>dim) << 2);
    const sc: f32 = <f32>1 / Mathf.sqrt(sumSq(xr, dim) / <f32>dim + eps);
    const vs = f32x4.splat(sc);
    let i = 0;
    for (; i + 4 <= dim; i += 4) {
      const o = <usize>i << 2;
      v128.store(or + o, f32x4.mul(f32x4.mul(v128.load(xr + o), vs), v128.load(w + o)));
    }
    for (; i < dim; i++) {
      const o = <usize>i << 2;
      store<f32>(or + o, load<f32>(xr + o) * sc * load<f32>(w + o));
    }
  }
}

/** LayerNorm: out = (x - mean) / sqrt(var + eps) · w + b, for m rows of dim (two passes). */
export function layernorm(out: usize, x: usize, w: usize, b: usize, m: i32, dim: i32, eps: f32): void {
  for (let r = 0; r < m; r++) {
    const xr = x + ((<usize>r * <usize>dim) << 2);
    const or = out + ((<usize>r * <usize>dim) << 2);
    let acc = f32x4.splat(0);
    let i = 0;
    for (; i + 4 <= dim; i += 4) acc = f32x4.add(acc, v128.load(xr + (<usize>i << 2)));
    let s = hsum(acc);
    for (; i < dim; i++) s += load<f32>(xr + (<usize>i << 2));
    const mean: f32 = s / <f32>dim;
    const vm = f32x4.splat(mean);
    acc = f32x4.splat(0);
    i = 0;
    for (; i + 4 <= dim; i += 4) {
      const d = f32x4.sub(v128.load(xr + (<usize>i << 2)), vm);
      acc = fma(d, d, acc);
    }
    let v = hsum(acc);
    for (; i < dim; i++) {
      const d = load<f32>(xr + (<usize>i << 2)) - mean;
      v += d * d;
    }
    const sc: f32 = <f32>1 / Mathf.sqrt(v / <f32>dim + eps);
    const vs = f32x4.splat(sc);
    i = 0;
    for (; i + 4 <= dim; i += 4) {
      const o = <usize>i << 2;
      const d = f32x4.mul(f32x4.sub(v128.load(xr + o), vm), vs);
      v128.store(or + o, fma(d, v128.load(w + o), v128.load(b + o)));
    }
    for (; i < dim; i++) {
      const o = <usize>i << 2;
      store<f32>(or + o, (load<f32>(xr + o) - mean) * sc * load<f32>(w + o) + load<f32>(b + o));
    }
  }
}

// the tables' key, so that q and k of one step (and beams at one position) share them
let tabPos: i32 = -1;
let tabDim: i32 = 0;
let tabBase: f32 = 0;

// cos/sin of pos·base^(-2i/headDim) for i < headDim/2, computed in f64, into the static tables
function ropeTable(pos: i32, headDim: i32, freqBase: f32): void {
  if (pos == tabPos && headDim == tabDim && freqBase == tabBase) return;
  // key cleared first and set last: a run cut off midway (CPU limit) leaves no stale table behind
  tabPos = -1;
  const half = headDim >> 1;
  for (let i = 0; i < half; i++) {
    const theta = <f64>pos * Math.pow(<f64>freqBase, (-2.0 * <f64>i) / <f64>headDim);
    store<f32>(SCRATCH_COS + (<usize>i << 2), <f32>Math.cos(theta));
    store<f32>(SCRATCH_SIN + (<usize>i << 2), <f32>Math.sin(theta));
  }
  tabDim = headDim;
  tabBase = freqBase;
  tabPos = pos;
}

// rotate every head of one row with the current tables
function ropeRow(x: usize, nHeads: i32, headDim: i32, neox: bool): void {
  const half = headDim >> 1;
  for (let h = 0; h < nHeads; h++) {
    const hp = x + ((<usize>h * <usize>headDim) << 2);
    if (neox) {
      // pairs (i, i + half): GPT-NeoX / Hugging Face rotate_half
      let i = 0;
      for (; i + 4 <= half; i += 4) {
        const o = <usize>i << 2;
        const a = v128.load(hp + o);
        const b = v128.load(hp + o + (<usize>half << 2));
        const c = v128.load(SCRATCH_COS + o);
        const s = v128.load(SCRATCH_SIN + o);
        v128.store(hp + o, f32x4.sub(f32x4.mul(a, c), f32x4.mul(b, s)));
        v128.store(hp + o + (<usize>half << 2), f32x4.add(f32x4.mul(a, s), f32x4.mul(b, c)));
      }
      for (; i < half; i++) {
        const o = <usize>i << 2;
        const a = load<f32>(hp + o);
        const b = load<f32>(hp + o + (<usize>half << 2));
        const c = load<f32>(SCRATCH_COS + o);
        const s = load<f32>(SCRATCH_SIN + o);
        store<f32>(hp + o, a * c - b * s);
        store<f32>(hp + o + (<usize>half << 2), a * s + b * c);
      }
    } else {
      // adjacent pairs (2i, 2i+1): llama2.c / GGUF llama
      for (let i = 0; i < half; i++) {
        const o = <usize>i << 3;
        const a = load<f32>(hp + o);
        const b = load<f32>(hp + o, 4);
        const c = load<f32>(SCRATCH_COS + (<usize>i << 2));
        const s = load<f32>(SCRATCH_SIN + (<usize>i << 2));
        store<f32>(hp + o, a * c - b * s);
        store<f32>(hp + o, a * s + b * c, 4);
      }
    }
  }
}

/** RoPE in place on m rows of nHeads·headDim; row r at position pos0 + r·posStride. */
export function rope(x: usize, m: i32, nHeads: i32, headDim: i32, pos0: i32, posStride: i32, freqBase: f32, neox: bool): void {
  const rowBytes = (<usize>nHeads * <usize>headDim) << 2;
  for (let r = 0; r < m; r++) {
    ropeTable(pos0 + r * posStride, headDim, freqBase);
    ropeRow(x + <usize>r * rowBytes, nHeads, headDim, neox);
  }
}

/** RoPE in place on m rows; row r at position positions[r] (i32 array). */
export function ropeAt(x: usize, m: i32, nHeads: i32, headDim: i32, positions: usize, freqBase: f32, neox: bool): void {
  const rowBytes = (<usize>nHeads * <usize>headDim) << 2;
  for (let r = 0; r < m; r++) {
    ropeTable(load<i32>(positions + (<usize>r << 2)), headDim, freqBase);
    ropeRow(x + <usize>r * rowBytes, nHeads, headDim, neox);
  }
}

/** out = silu(a) · b = a / (1 + e^-a) · b. */
export function siluMul(out: usize, a: usize, b: usize, n: i32): void {
  const one = kf(K_ONE);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    const v = v128.load(a + o);
    v128.store(out + o, f32x4.mul(f32x4.div(v, f32x4.add(one, exp4(f32x4.neg(v)))), v128.load(b + o)));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    const v = load<f32>(a + o);
    store<f32>(out + o, (v / (<f32>1 + Mathf.exp(-v))) * load<f32>(b + o));
  }
}

/** GELU, tanh form: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). */
export function gelu(out: usize, x: usize, n: i32): void {
  const c: f32 = 0.7978845608028654;
  // tanh(u) = 1 - 2 / (e^{2u} + 1), u clamped to ±15 where tanh is ±1 in f32
  const vc = kf(K_GELU_C);
  const vk = kf(K_GELU_K);
  const one = kf(K_ONE);
  const two = kf(K_TWO);
  const half = kf(K_HALF);
  const m15 = kf(K_MINUS15);
  const p15 = kf(K_PLUS15);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    const v = v128.load(x + o);
    let u = f32x4.mul(vc, fma(f32x4.mul(vk, v), f32x4.mul(v, v), v));
    u = f32x4.pmax(m15, f32x4.pmin(p15, u));
    const t = f32x4.sub(one, f32x4.div(two, f32x4.add(exp4(f32x4.mul(two, u)), one)));
    v128.store(out + o, f32x4.mul(f32x4.mul(half, v), f32x4.add(one, t)));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    const v = load<f32>(x + o);
    let u = c * (v + <f32>0.044715 * v * v * v);
    u = max(min(u, <f32>15), <f32>-15);
    const t: f32 = <f32>1 - <f32>2 / (Mathf.exp(<f32>2 * u) + 1);
    store<f32>(out + o, <f32>0.5 * v * (<f32>1 + t));
  }
}

/** softmax in place over each of m rows of n (max subtracted first). */
export function softmax(x: usize, m: i32, n: i32): void {
  for (let r = 0; r < m; r++) {
    const xr = x + ((<usize>r * <usize>n) << 2);
    let mv = f32x4.splat(-Infinity);
    let i = 0;
    for (; i + 4 <= n; i += 4) mv = f32x4.pmax(mv, v128.load(xr + (<usize>i << 2)));
    let mx = hmax(mv);
    for (; i < n; i++) mx = max(mx, load<f32>(xr + (<usize>i << 2)));
    const vm = f32x4.splat(mx);
    let vs = f32x4.splat(0);
    i = 0;
    for (; i + 4 <= n; i += 4) {
      const o = <usize>i << 2;
      const e = exp4(f32x4.sub(v128.load(xr + o), vm));
      v128.store(xr + o, e);
      vs = f32x4.add(vs, e);
    }
    let s = hsum(vs);
    for (; i < n; i++) {
      const o = <usize>i << 2;
      const e = Mathf.exp(load<f32>(xr + o) - mx);
      store<f32>(xr + o, e);
      s += e;
    }
    const inv = f32x4.splat(<f32>1 / s);
    i = 0;
    for (; i + 4 <= n; i += 4) {
      const o = <usize>i << 2;
      v128.store(xr + o, f32x4.mul(v128.load(xr + o), inv));
    }
    const invs: f32 = <f32>1 / s;
    for (; i < n; i++) {
      const o = <usize>i << 2;
      store<f32>(xr + o, load<f32>(xr + o) * invs);
    }
  }
}

/** index of the largest of n values (the first one on ties; NaN never wins; 0 when none is > -inf). */
export function argmax(x: usize, n: i32): i32 {
  // pass 1: the maximum (pmax keeps its first operand when the other is NaN)
  let mv = f32x4.splat(-Infinity);
  let i = 0;
  for (; i + 4 <= n; i += 4) mv = f32x4.pmax(mv, v128.load(x + (<usize>i << 2)));
  let bv = hmax(mv);
  for (; i < n; i++) {
    const v = load<f32>(x + (<usize>i << 2));
    if (v > bv) bv = v;
  }
  if (!(bv > -Infinity)) return 0;
  // pass 2: its first index
  const vb = f32x4.splat(bv);
  i = 0;
  for (; i + 4 <= n; i += 4) {
    const mask = i32x4.bitmask(f32x4.eq(v128.load(x + (<usize>i << 2)), vb));
    if (mask != 0) return i + ctz(mask);
  }
  for (; i < n; i++) if (load<f32>(x + (<usize>i << 2)) == bv) return i;
  return 0;
}

// insert x[e] = val into the sorted top list of cnt (< k, or == k with val above the last):
// returns the new count
// @ts-ignore: decorator
@inline
function topInsert(val: f32, e: i32, cnt: i32, k: i32, outIdx: usize, outVal: usize): i32 {
  let j = cnt < k ? cnt : k - 1;
  while (j > 0 && load<f32>(outVal + (<usize>(j - 1) << 2)) < val) {
    store<f32>(outVal + (<usize>j << 2), load<f32>(outVal + (<usize>(j - 1) << 2)));
    store<i32>(outIdx + (<usize>j << 2), load<i32>(outIdx + (<usize>(j - 1) << 2)));
    j--;
  }
  store<f32>(outVal + (<usize>j << 2), val);
  store<i32>(outIdx + (<usize>j << 2), e);
  return cnt < k ? cnt + 1 : cnt;
}

/** the k largest of n values, sorted descending (ties: lower index first; NaN skipped);
 * insertion into the sorted outputs, O(n + inserts·k). returns how many were written (< k only
 * when fewer than k values are not NaN). */
export function topk(x: usize, n: i32, k: i32, outIdx: usize, outVal: usize): i32 {
  let cnt = 0;
  for (let i = 0; i < n; i++) {
    const v = load<f32>(x + (<usize>i << 2));
    if (v != v) continue;
    if (cnt == k && !(v > load<f32>(outVal + (<usize>(k - 1) << 2)))) continue;
    cnt = topInsert(v, i, cnt, k, outIdx, outVal);
  }
  return cnt;
}

/** decode rows' statistics in two SIMD passes, for greedy and beam search: the k (≥ 1) largest
 * entries above −∞ of x[0..n), sorted descending (ties: lower index first; NaN and −∞ skipped —
 * runtime/sample.ts's topKInto), into outIdx (i32) / outVal (f32); then, when every entry is finite,
 * Σ exp(x − max) as f64 at outSum (f32 exps, summed in f32 lanes over chunks of 64 and in f64
 * across chunks), else NaN there. returns how many entries were written (< k only when fewer than
 * k entries are above −∞; 0 means none is, and outSum is then NaN too). entry 0 is the argmax. */
export function rowStats(x: usize, n: i32, k: i32, outIdx: usize, outVal: usize, outSum: usize): i32 {
  let cnt = 0;
  let worst: f32 = -Infinity;
  let vw = f32x4.splat(-Infinity);
  let bad = i32x4.splat(0); // lanes that met a NaN or an infinity
  const inf = kinf();
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const v = v128.load(x + (<usize>i << 2));
    // |v| == inf or v != v: not(|v| < inf)
    bad = v128.or(bad, v128.not(f32x4.lt(f32x4.abs(v), inf)));
    let mask = i32x4.bitmask(f32x4.gt(v, vw));
    if (mask == 0) continue;
    while (mask != 0) {
      const l = ctz(mask);
      mask &= mask - 1;
      const e = i + l;
      const val = load<f32>(x + (<usize>e << 2));
      if (cnt == k && !(val > worst)) continue;
      cnt = topInsert(val, e, cnt, k, outIdx, outVal);
      if (cnt == k) worst = load<f32>(outVal + (<usize>(k - 1) << 2));
    }
    vw = f32x4.splat(worst);
  }
  let badTail = false;
  for (; i < n; i++) {
    const val = load<f32>(x + (<usize>i << 2));
    if (!(Mathf.abs(val) < Infinity)) badTail = true;
    if (!(val > -Infinity)) continue;
    if (cnt == k && !(val > worst)) continue;
    cnt = topInsert(val, i, cnt, k, outIdx, outVal);
    if (cnt == k) worst = load<f32>(outVal + (<usize>(k - 1) << 2));
  }
  if (cnt == 0 || badTail || v128.any_true(bad)) {
    store<f64>(outSum, NaN);
    return cnt;
  }
  // pass 2: Σ exp(x − max), every entry finite
  const vm = f32x4.splat(load<f32>(outVal));
  let acc = f64x2.splat(0);
  i = 0;
  while (i + 4 <= n) {
    let vs = f32x4.splat(0);
    const end = min(n & ~3, i + 64);
    for (; i < end; i += 4) vs = f32x4.add(vs, expNeg4(f32x4.sub(v128.load(x + (<usize>i << 2)), vm)));
    acc = f64x2.add(acc, f64x2.add(f64x2.promote_low_f32x4(vs), f64x2.promote_low_f32x4(i32x4.shuffle(vs, vs, 2, 3, 0, 1))));
  }
  let s: f64 = f64x2.extract_lane(acc, 0) + f64x2.extract_lane(acc, 1);
  const mx = load<f32>(outVal);
  for (; i < n; i++) s += <f64>Mathf.exp(load<f32>(x + (<usize>i << 2)) - mx);
  store<f64>(outSum, s);
  return cnt;
}
