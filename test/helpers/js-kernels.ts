// A plain-JavaScript implementation of the Kernels contract (runtime/kernels.ts), test-only. It keeps
// the same arena in a WebAssembly.Memory and the same pointer conventions, so runtime/model.ts can
// run on it: a failing model test that passes here points at the WASM kernels, and vice versa.
// Quantised weights are dequantised to f32 at prepare time (activations are not quantised).

import { BudgetError } from '../../runtime/errors.ts';
import { fromF32, tensorByteSize, toF32 } from '../../runtime/ggml.ts';
import {
  type EmbeddingTable,
  type Kernels,
  type KvType,
  kvTypeBytes,
  type LinearWeight,
  type WeightType,
} from '../../runtime/kernels.ts';

const GGML: Record<WeightType, number> = { f32: 0, f16: 1, q4_0: 2, q8_0: 8 };

// f16 KV elements as the WASM kernels store them: nearest f16, ties to even, finite values beyond
// ±65504 clamped to ±65504, ±inf and NaN kept (bit manipulation on the f32 pattern)
const cvF = new Float32Array(1);
const cvU = new Uint32Array(cvF.buffer);
function halfBits(x: number): number {
  cvF[0] = x;
  const u = cvU[0];
  const sign = (u >>> 16) & 0x8000;
  const a = u & 0x7fffffff;
  if (a >= 0x7f800000) return sign | (a === 0x7f800000 ? 0x7c00 : 0x7e00 | ((a >>> 13) & 0x3ff));
  if (a > 0x477fe000) return sign | 0x7bff;
  const e = a >>> 23;
  if (e < 113) {
    // subnormal f16: the significand (with its implicit bit) shifted right by 126 - e, nearest even
    if (e < 102) return sign; // below 2^-25: rounds to zero
    const m = (a & 0x7fffff) | 0x800000;
    const sh = 126 - e;
    const q = m >>> sh;
    const rem = m - (q << sh);
    const half = 1 << (sh - 1);
    return sign | (q + (rem > half || (rem === half && (q & 1) === 1) ? 1 : 0));
  }
  const q = (a >>> 13) - (112 << 10);
  const rem = a & 0x1fff;
  return sign | (q + (rem > 0x1000 || (rem === 0x1000 && (q & 1) === 1) ? 1 : 0));
}
function halfValue(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 31) return m ? Number.NaN : s * Number.POSITIVE_INFINITY;
  return e === 0 ? s * m * 2 ** -24 : s * (1 + m / 1024) * 2 ** (e - 15);
}

/**
 * A Kernels object computed in plain JS (float32 storage, float64 sums).
 * @example
 * const model = Model.load(createJsKernels(), parseGGUF(bytes));
 */
export function createJsKernels(): Kernels {
  const memory = new WebAssembly.Memory({ initial: 1 });
  let top = 64;
  let limit = 65536;
  let F = new Float32Array(memory.buffer);
  let I = new Int32Array(memory.buffer);
  let H = new Uint16Array(memory.buffer);
  const refresh = () => {
    if (F.buffer !== memory.buffer) {
      F = new Float32Array(memory.buffer);
      I = new Int32Array(memory.buffer);
      H = new Uint16Array(memory.buffer);
    }
  };
  // element e of a KV pool (f32: float index from the pool's start; f16: half index)
  const kvGet = (pool: number, e: number, t: KvType) =>
    t === 'f16' ? halfValue(H[(pool >> 1) + e]) : F[f(pool) + e];
  const kvSet = (pool: number, e: number, x: number, t: KvType) => {
    if (t === 'f16') H[(pool >> 1) + e] = halfBits(x);
    else F[f(pool) + e] = x;
  };
  const f = (p: number) => p >> 2;
  const k: Kernels = {
    relaxed: false,
    usdot: false,
    linearAlign: 64,
    memory,
    reserve(total) {
      const need = top + total + 64;
      const have = memory.buffer.byteLength;
      if (need > have) memory.grow(Math.ceil((need - have) / 65536));
      limit = memory.buffer.byteLength;
      refresh();
    },
    alloc(bytes, align = 64) {
      const p = Math.ceil(top / align) * align;
      if (p + bytes > limit) throw new BudgetError(`js arena: ${bytes} bytes past the reservation`);
      top = p + bytes;
      return p;
    },
    mark: () => top,
    release(m) {
      top = m;
    },
    f32: (ptr, len) => new Float32Array(memory.buffer, ptr, len),
    i32: (ptr, len) => new Int32Array(memory.buffer, ptr, len),
    u8: (ptr, len) => new Uint8Array(memory.buffer, ptr, len),
    linearBytes: (_type, n, kk) => n * kk * 4,
    prepareLinear(type, raw, n, kk): LinearWeight {
      const bytes = n * kk * 4;
      const ptr = k.alloc(bytes);
      k.f32(ptr, n * kk).set(toF32(GGML[type], raw, n * kk));
      return { type, ptr, n, k: kk, bytes };
    },
    linear(out, x, w, m) {
      refresh();
      const { n, k: kk } = w;
      const o = f(out);
      const xi = f(x);
      const wi = f(w.ptr);
      const tmp = new Float64Array(m * n);
      for (let r = 0; r < m; r++) {
        for (let i = 0; i < n; i++) {
          let s = 0;
          for (let j = 0; j < kk; j++) s += F[wi + i * kk + j] * F[xi + r * kk + j];
          tmp[r * n + i] = s;
        }
      }
      for (let i = 0; i < m * n; i++) F[o + i] = tmp[i];
    },
    linearScratchBytes: () => 0,
    embeddingBytes: (_type, rows, dim) => rows * dim * 4,
    prepareEmbedding(type, raw, rows, dim): EmbeddingTable {
      const bytes = rows * dim * 4;
      const ptr = k.alloc(bytes);
      k.f32(ptr, rows * dim).set(toF32(GGML[type], raw, rows * dim));
      return { type, ptr, rows, dim, bytes };
    },
    embed(out, table, row) {
      refresh();
      F.copyWithin(f(out), f(table.ptr) + row * table.dim, f(table.ptr) + (row + 1) * table.dim);
    },
    rmsnorm(out, x, w, m, dim, eps) {
      refresh();
      for (let r = 0; r < m; r++) {
        let ss = 0;
        for (let i = 0; i < dim; i++) ss += F[f(x) + r * dim + i] ** 2;
        const s = 1 / Math.sqrt(ss / dim + eps);
        for (let i = 0; i < dim; i++) F[f(out) + r * dim + i] = F[f(x) + r * dim + i] * s * F[f(w) + i];
      }
    },
    layernorm(out, x, w, b, m, dim, eps) {
      refresh();
      for (let r = 0; r < m; r++) {
        const xr = f(x) + r * dim;
        let mean = 0;
        for (let i = 0; i < dim; i++) mean += F[xr + i];
        mean /= dim;
        let v = 0;
        for (let i = 0; i < dim; i++) v += (F[xr + i] - mean) ** 2;
        const s = 1 / Math.sqrt(v / dim + eps);
        for (let i = 0; i < dim; i++)
          F[f(out) + r * dim + i] = (F[xr + i] - mean) * s * F[f(w) + i] + F[f(b) + i];
      }
    },
    rope(x, m, nHeads, hd, pos0, posStride, base, neox) {
      for (let r = 0; r < m; r++)
        ropeRow(x + r * nHeads * hd * 4, nHeads, hd, pos0 + r * posStride, base, neox);
    },
    ropeAt(x, m, nHeads, hd, positions, base, neox) {
      refresh();
      for (let r = 0; r < m; r++)
        ropeRow(x + r * nHeads * hd * 4, nHeads, hd, I[f(positions) + r], base, neox);
    },
    siluMul(out, a, b, n) {
      refresh();
      for (let i = 0; i < n; i++) {
        const v = F[f(a) + i];
        F[f(out) + i] = (v / (1 + Math.exp(-v))) * F[f(b) + i];
      }
    },
    gelu(out, x, n) {
      refresh();
      for (let i = 0; i < n; i++) {
        const v = F[f(x) + i];
        F[f(out) + i] = 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v)));
      }
    },
    add(out, a, b, n) {
      refresh();
      for (let i = 0; i < n; i++) F[f(out) + i] = F[f(a) + i] + F[f(b) + i];
    },
    addBias(x, bias, m, n) {
      refresh();
      for (let r = 0; r < m; r++) for (let i = 0; i < n; i++) F[f(x) + r * n + i] += F[f(bias) + i];
    },
    softmax(x, m, n) {
      refresh();
      for (let r = 0; r < m; r++) {
        const o = f(x) + r * n;
        let mx = Number.NEGATIVE_INFINITY;
        for (let i = 0; i < n; i++) mx = Math.max(mx, F[o + i]);
        let s = 0;
        for (let i = 0; i < n; i++) s += Math.exp(F[o + i] - mx);
        for (let i = 0; i < n; i++) F[o + i] = Math.exp(F[o + i] - mx) / s;
      }
    },
    kvWrite(kPool, vPool, table, pos0, n, kk, v, nKv, hd, bs, kvType = 'f32') {
      kvTypeBytes(kvType);
      refresh();
      for (let r = 0; r < n; r++) {
        const pos = pos0 + r;
        const blk = I[f(table) + Math.floor(pos / bs)];
        const off = pos % bs;
        for (let h = 0; h < nKv; h++) {
          const dst = blk * nKv * bs * hd + h * bs * hd + off * hd;
          for (let i = 0; i < hd; i++) {
            kvSet(kPool, dst + i, F[f(kk) + r * nKv * hd + h * hd + i], kvType);
            kvSet(vPool, dst + i, F[f(v) + r * nKv * hd + h * hd + i], kvType);
          }
        }
      }
    },
    attention(out, q, nQ, kPool, vPool, table, pos0, nHeads, nKv, hd, bs, kvType = 'f32') {
      kvTypeBytes(kvType);
      refresh();
      const at = (pos: number, h: number) =>
        I[f(table) + Math.floor(pos / bs)] * nKv * bs * hd + h * bs * hd + (pos % bs) * hd;
      for (let r = 0; r < nQ; r++) {
        const n = pos0 + r + 1;
        for (let h = 0; h < nHeads; h++) {
          const kh = Math.floor(h / (nHeads / nKv));
          const qo = f(q) + r * nHeads * hd + h * hd;
          const sc = new Float64Array(n);
          let mx = Number.NEGATIVE_INFINITY;
          for (let t = 0; t < n; t++) {
            let s = 0;
            const ko = at(t, kh);
            for (let i = 0; i < hd; i++) s += F[qo + i] * kvGet(kPool, ko + i, kvType);
            sc[t] = s / Math.sqrt(hd);
            mx = Math.max(mx, sc[t]);
          }
          let sum = 0;
          for (let t = 0; t < n; t++) sum += sc[t] = Math.exp(sc[t] - mx);
          const acc = new Float64Array(hd);
          for (let t = 0; t < n; t++) {
            const vo = at(t, kh);
            for (let i = 0; i < hd; i++) acc[i] += (sc[t] / sum) * kvGet(vPool, vo + i, kvType);
          }
          for (let i = 0; i < hd; i++) F[f(out) + r * nHeads * hd + h * hd + i] = acc[i];
        }
      }
    },
    // one row per sequence: the per-row kernels above, row by row (tables: B i32 pointers)
    kvWriteRows(kPool, vPool, tables, positions, B, kk, v, nKv, hd, bs, kvType = 'f32') {
      refresh();
      for (let b = 0; b < B; b++) {
        const o = b * nKv * hd * 4;
        k.kvWrite(kPool, vPool, I[f(tables) + b], I[f(positions) + b], 1, kk + o, v + o, nKv, hd, bs, kvType);
      }
    },
    attentionRows(out, q, B, kPool, vPool, tables, positions, nHeads, nKv, hd, bs, kvType = 'f32') {
      refresh();
      for (let b = 0; b < B; b++) {
        const o = b * nHeads * hd * 4;
        k.attention(
          out + o,
          q + o,
          1,
          kPool,
          vPool,
          I[f(tables) + b],
          I[f(positions) + b],
          nHeads,
          nKv,
          hd,
          bs,
          kvType,
        );
      }
    },
    argmax(x, n) {
      refresh();
      let best = 0;
      for (let i = 1; i < n; i++) if (F[f(x) + i] > F[f(x) + best]) best = i;
      return best;
    },
    topk(x, n, kk, outIdx, outVal) {
      refresh();
      const idx = Array.from({ length: n }, (_, i) => i).sort((a, b) => F[f(x) + b] - F[f(x) + a] || a - b);
      for (let i = 0; i < kk; i++) {
        I[f(outIdx) + i] = idx[i];
        F[f(outVal) + i] = F[f(x) + idx[i]];
      }
    },
    rowStats(x, n, kk, outIdx, outVal, outSum) {
      refresh();
      // a plain float64 reference: sort, then Σ exp over the row
      const row = Array.from({ length: n }, (_, i) => F[f(x) + i]);
      const idx = row
        .map((_, i) => i)
        .filter((i) => row[i] > Number.NEGATIVE_INFINITY)
        .sort((a, b) => row[b] - row[a] || a - b)
        .slice(0, kk);
      idx.forEach((i, j) => {
        I[f(outIdx) + j] = i;
        F[f(outVal) + j] = row[i];
      });
      const finite = row.every((v) => Number.isFinite(v));
      const mx = idx.length > 0 ? row[idx[0]] : 0;
      const sum = idx.length > 0 && finite ? row.reduce((s, v) => s + Math.exp(v - mx), 0) : Number.NaN;
      new Float64Array(memory.buffer, outSum, 1)[0] = sum;
      return idx.length;
    },
    quantizeRow(type, dst, src, kk) {
      const q = fromF32(GGML[type], new Float32Array(k.f32(src, kk)));
      k.u8(dst, q.length).set(q);
    },
    dequantizeRow(type, dst, src, kk) {
      const n = tensorByteSize(GGML[type], kk);
      k.f32(dst, kk).set(toF32(GGML[type], new Uint8Array(k.u8(src, n)), kk));
    },
  };
  function ropeRow(x: number, nHeads: number, hd: number, pos: number, base: number, neox: boolean) {
    refresh();
    for (let h = 0; h < nHeads; h++) {
      for (let i = 0; i < hd / 2; i++) {
        const angle = pos * base ** ((-2 * i) / hd);
        const c = Math.cos(angle);
        const s = Math.sin(angle);
        const ia = f(x) + h * hd + (neox ? i : 2 * i);
        const ib = ia + (neox ? hd / 2 : 1);
        const a = F[ia];
        const b = F[ib];
        F[ia] = a * c - b * s;
        F[ib] = a * s + b * c;
      }
    }
  }
  // row of a prepared linear weight (here plain f32 rows); runtime/model.ts uses it for tied embeddings
  const linearRow = (out: number, w: LinearWeight, row: number) => {
    refresh();
    F.copyWithin(f(out), f(w.ptr) + row * w.k, f(w.ptr) + (row + 1) * w.k);
  };
  return Object.assign(k, { linearRow });
}
