// Plain float64 reference versions of the kernels (independent of assembly/ and runtime/), plus a
// seeded random source and GGUF block encoders written from the format description:
// Q8_0 = f16 scale d + 32 int8 (value = d·q); Q4_0 = f16 scale d + 16 bytes, low nibble = element j,
// high nibble = element j+16, value = d·(nibble − 8).

/** mulberry32: small seeded generator, uniform in [0, 1) */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** n values uniform in [-scale, scale) */
export function randomF32(r: () => number, n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (r() * 2 - 1) * scale;
  return a;
}

/** out[m×n] = x[m×k]·Wᵀ in float64 */
export function refLinear(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  m: number,
  n: number,
  k: number,
): Float64Array {
  const out = new Float64Array(m * n);
  for (let r = 0; r < m; r++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let i = 0; i < k; i++) s += x[r * k + i] * w[j * k + i];
      out[r * n + j] = s;
    }
  return out;
}

/** Σ|x·w| per output, the scale for f32 rounding tolerances */
export function refLinearAbs(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  m: number,
  n: number,
  k: number,
): Float64Array {
  const out = new Float64Array(m * n);
  for (let r = 0; r < m; r++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let i = 0; i < k; i++) s += Math.abs(x[r * k + i] * w[j * k + i]);
      out[r * n + j] = s;
    }
  return out;
}

/** IEEE half bits → number (exact) */
export function halfToNumber(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? Number.NaN : s * Number.POSITIVE_INFINITY;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

/** number → IEEE half bits, round to nearest even (by search over the exact values; slow, exact) */
export function numberToHalf(v: number): number {
  if (Number.isNaN(v)) return 0x7e00;
  const sign = v < 0 || Object.is(v, -0) ? 0x8000 : 0;
  const a = Math.abs(v);
  if (a >= 65520) return sign | 0x7c00;
  // largest half ≤ a by binary search over the 0x7c00 finite magnitudes (monotone in bits)
  let lo = 0;
  let hi = 0x7bff;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (halfToNumber(mid) <= a) lo = mid;
    else hi = mid - 1;
  }
  const below = halfToNumber(lo);
  if (below === a || lo === 0x7bff) return sign | lo;
  const above = halfToNumber(lo + 1);
  const d0 = a - below;
  const d1 = above - a;
  const pick = d0 < d1 ? lo : d1 < d0 ? lo + 1 : lo % 2 === 0 ? lo : lo + 1;
  return sign | pick;
}

/** GGUF Q8_0 bytes of a row set (length % 32 == 0): d = max|x|/127, q = round(x/d) */
export function encodeQ8_0(x: ArrayLike<number>): Uint8Array {
  const nb = x.length / 32;
  const out = new Uint8Array(nb * 34);
  const dv = new DataView(out.buffer);
  for (let b = 0; b < nb; b++) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b * 32 + j]));
    const d = amax / 127;
    dv.setUint16(b * 34, numberToHalf(d), true);
    for (let j = 0; j < 32; j++) {
      const q = d === 0 ? 0 : Math.max(-127, Math.min(127, Math.round(x[b * 32 + j] / d)));
      dv.setInt8(b * 34 + 2 + j, q);
    }
  }
  return out;
}

/** GGUF Q4_0 bytes: d = (value of largest magnitude)/-8, nibble = clamp(round(x/d) + 8, 0, 15) */
export function encodeQ4_0(x: ArrayLike<number>): Uint8Array {
  const nb = x.length / 32;
  const out = new Uint8Array(nb * 18);
  const dv = new DataView(out.buffer);
  for (let b = 0; b < nb; b++) {
    let mx = 0;
    for (let j = 0; j < 32; j++) if (Math.abs(x[b * 32 + j]) > Math.abs(mx)) mx = x[b * 32 + j];
    const d = mx / -8;
    dv.setUint16(b * 18, numberToHalf(d), true);
    const q = (v: number) => (d === 0 ? 8 : Math.max(0, Math.min(15, Math.round(v / d) + 8)));
    for (let j = 0; j < 16; j++) out[b * 18 + 2 + j] = q(x[b * 32 + j]) | (q(x[b * 32 + 16 + j]) << 4);
  }
  return out;
}

/** values of GGUF bytes of any supported type (0 f32, 1 f16, 2 q4_0, 8 q8_0) */
export function decodeRow(type: 'f32' | 'f16' | 'q8_0' | 'q4_0', bytes: Uint8Array, n: number): Float64Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    if (type === 'f32') out[i] = dv.getFloat32(i * 4, true);
    else if (type === 'f16') out[i] = halfToNumber(dv.getUint16(i * 2, true));
    else if (type === 'q8_0') {
      const b = Math.floor(i / 32);
      out[i] = halfToNumber(dv.getUint16(b * 34, true)) * dv.getInt8(b * 34 + 2 + (i % 32));
    } else {
      const b = Math.floor(i / 32);
      const j = i % 32;
      const byte = bytes[b * 18 + 2 + (j % 16)];
      out[i] = halfToNumber(dv.getUint16(b * 18, true)) * ((j < 16 ? byte & 15 : byte >> 4) - 8);
    }
  }
  return out;
}

/** f16 bytes of values (round to nearest even) */
export function encodeF16(x: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(x.length * 2);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < x.length; i++) dv.setUint16(i * 2, numberToHalf(x[i]), true);
  return out;
}

/** bound on |Σ w·(x − x̂)| when x is quantised to Q8_0 per block (|x − x̂| ≤ d/2, d = max|x|/127) */
export function refQ8ActivationBound(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  m: number,
  n: number,
  k: number,
) {
  const out = new Float64Array(m * n);
  for (let r = 0; r < m; r++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let b = 0; b < k / 32; b++) {
        let amax = 0;
        let wsum = 0;
        for (let i = 0; i < 32; i++) {
          amax = Math.max(amax, Math.abs(x[r * k + b * 32 + i]));
          wsum += Math.abs(w[j * k + b * 32 + i]);
        }
        s += (amax / 127 / 2) * wsum;
      }
      out[r * n + j] = s;
    }
  return out;
}

export function refRmsnorm(x: ArrayLike<number>, w: ArrayLike<number>, m: number, dim: number, eps: number) {
  const out = new Float64Array(m * dim);
  for (let r = 0; r < m; r++) {
    let ss = 0;
    for (let i = 0; i < dim; i++) ss += x[r * dim + i] ** 2;
    const s = 1 / Math.sqrt(ss / dim + eps);
    for (let i = 0; i < dim; i++) out[r * dim + i] = x[r * dim + i] * s * w[i];
  }
  return out;
}

export function refLayernorm(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  b: ArrayLike<number>,
  m: number,
  dim: number,
  eps: number,
) {
  const out = new Float64Array(m * dim);
  for (let r = 0; r < m; r++) {
    let mean = 0;
    for (let i = 0; i < dim; i++) mean += x[r * dim + i];
    mean /= dim;
    let v = 0;
    for (let i = 0; i < dim; i++) v += (x[r * dim + i] - mean) ** 2;
    const s = 1 / Math.sqrt(v / dim + eps);
    for (let i = 0; i < dim; i++) out[r * dim + i] = (x[r * dim + i] - mean) * s * w[i] + b[i];
  }
  return out;
}

export function refSoftmax(x: ArrayLike<number>, m: number, n: number) {
  const out = new Float64Array(m * n);
  for (let r = 0; r < m; r++) {
    let mx = -Infinity;
    for (let i = 0; i < n; i++) mx = Math.max(mx, x[r * n + i]);
    let s = 0;
    for (let i = 0; i < n; i++) s += Math.exp(x[r * n + i] - mx);
    for (let i = 0; i < n; i++) out[r * n + i] = Math.exp(x[r * n + i] - mx) / s;
  }
  return out;
}

/** RoPE on rows [m][nHeads·hd] at positions pos[r]; neox pairs (i, i+hd/2), else (2i, 2i+1) */
export function refRope(
  x: ArrayLike<number>,
  m: number,
  nHeads: number,
  hd: number,
  pos: number[],
  base: number,
  neox: boolean,
) {
  const out = Float64Array.from(x);
  for (let r = 0; r < m; r++)
    for (let h = 0; h < nHeads; h++) {
      const o = (r * nHeads + h) * hd;
      for (let i = 0; i < hd / 2; i++) {
        const th = pos[r] * base ** ((-2 * i) / hd);
        const [ia, ib] = neox ? [o + i, o + i + hd / 2] : [o + 2 * i, o + 2 * i + 1];
        const a = x[ia];
        const b = x[ib];
        out[ia] = a * Math.cos(th) - b * Math.sin(th);
        out[ib] = a * Math.sin(th) + b * Math.cos(th);
      }
    }
  return out;
}

export const refSilu = (a: number) => a / (1 + Math.exp(-a));
export const refGelu = (x: number) =>
  0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));

/** causal attention, K/V contiguous: k[t][nKv·hd], v likewise, q[nQ][nHeads·hd], query i at pos0+i */
export function refAttention(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  nQ: number,
  pos0: number,
  nHeads: number,
  nKv: number,
  hd: number,
) {
  const out = new Float64Array(nQ * nHeads * hd);
  const g = nHeads / nKv;
  for (let i = 0; i < nQ; i++)
    for (let h = 0; h < nHeads; h++) {
      const T = pos0 + i + 1;
      const kh = Math.floor(h / g);
      const s = new Float64Array(T);
      for (let t = 0; t < T; t++) {
        let d = 0;
        for (let j = 0; j < hd; j++) d += q[(i * nHeads + h) * hd + j] * k[(t * nKv + kh) * hd + j];
        s[t] = d / Math.sqrt(hd);
      }
      const p = refSoftmax(s, 1, T);
      for (let j = 0; j < hd; j++) {
        let a = 0;
        for (let t = 0; t < T; t++) a += p[t] * v[(t * nKv + kh) * hd + j];
        out[(i * nHeads + h) * hd + j] = a;
      }
    }
  return out;
}

/** largest |a − b| / (atol + rtol·|b|) ≤ 1 check helper: returns the worst index and ratio */
export function worst(a: ArrayLike<number>, b: ArrayLike<number>, tol: (i: number) => number) {
  let wi = -1;
  let wr = 0;
  for (let i = 0; i < b.length; i++) {
    const r = Math.abs(a[i] - b[i]) / tol(i);
    if (!(r <= wr)) {
      wr = r;
      wi = i;
    }
  }
  return { index: wi, ratio: wr, got: a[wi], want: b[wi] };
}
