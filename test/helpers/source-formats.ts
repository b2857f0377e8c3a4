// Test-only writers for the checkpoint formats the converter reads, following each format's own
// specification, and a float64 reference forward that applies each source's own conventions to the
// source weights (llama2.c: adjacent-pair RoPE; HF Llama: rotate-half RoPE on unpermuted q/k;
// GPT-2: Conv1D (in, out) weights, x·W + b).
import { f16ToF32, f32ToF16 } from '../../runtime/ggml.ts';

export function rng(seed: number) {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296 - 0.5;
  };
}

export interface LlamaWeights {
  dim: number;
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  vocab: number;
  ctx: number;
  tok: Float32Array; // (vocab, dim)
  attnNorm: Float32Array[]; // (dim)
  wq: Float32Array[]; // (dim, dim) out × in
  wk: Float32Array[]; // (kvDim, dim)
  wv: Float32Array[]; // (kvDim, dim)
  wo: Float32Array[]; // (dim, dim)
  ffnNorm: Float32Array[];
  w1: Float32Array[]; // (hidden, dim) gate
  w2: Float32Array[]; // (dim, hidden) down
  w3: Float32Array[]; // (hidden, dim) up
  norm: Float32Array;
  cls?: Float32Array; // (vocab, dim) when not shared
}

export function randomLlama(
  c: {
    dim: number;
    hidden: number;
    layers: number;
    heads: number;
    kvHeads: number;
    vocab: number;
    ctx: number;
  },
  seed: number,
  shared = true,
): LlamaWeights {
  const r = rng(seed);
  const m = (n: number, s: number) => Float32Array.from({ length: n }, () => r() * 2 * s);
  const norm = (n: number) => Float32Array.from({ length: n }, () => 1 + r() * 0.4);
  const kvDim = (c.dim / c.heads) * c.kvHeads;
  const L = Array.from({ length: c.layers });
  const s = 1.5 / Math.sqrt(c.dim);
  return {
    ...c,
    tok: m(c.vocab * c.dim, 1),
    attnNorm: L.map(() => norm(c.dim)),
    wq: L.map(() => m(c.dim * c.dim, s)),
    wk: L.map(() => m(kvDim * c.dim, s)),
    wv: L.map(() => m(kvDim * c.dim, s)),
    wo: L.map(() => m(c.dim * c.dim, s)),
    ffnNorm: L.map(() => norm(c.dim)),
    w1: L.map(() => m(c.hidden * c.dim, s)),
    w2: L.map(() => m(c.dim * c.hidden, 1.5 / Math.sqrt(c.hidden))),
    w3: L.map(() => m(c.hidden * c.dim, s)),
    norm: norm(c.dim),
    cls: shared ? undefined : m(c.vocab * c.dim, 1),
  };
}

const cat = (parts: ArrayBufferView[]): Uint8Array => {
  const n = parts.reduce((a, p) => a + p.byteLength, 0);
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(new Uint8Array(p.buffer, p.byteOffset, p.byteLength), o);
    o += p.byteLength;
  }
  return out;
};

/** llama2.c checkpoint, version 0 (legacy), 1 (ak42 header, f32) or 2 (ak42, int8 groups + f32 scales) */
export function writeLlama2c(w: LlamaWeights, version: 0 | 1 | 2, groupSize = 32): Uint8Array {
  const hd = w.dim / w.heads;
  const ints = [w.dim, w.hidden, w.layers, w.heads, w.kvHeads, w.cls ? -w.vocab : w.vocab, w.ctx];
  if (version === 0) {
    const freqs = new Float32Array(w.ctx * (hd / 2)); // the RoPE tables the reader must skip
    for (let i = 0; i < freqs.length; i++) freqs[i] = 1234.5;
    return cat([
      Int32Array.from(ints),
      w.tok,
      ...w.attnNorm,
      ...w.wq,
      ...w.wk,
      ...w.wv,
      ...w.wo,
      ...w.ffnNorm,
      ...w.w1,
      ...w.w2,
      ...w.w3,
      w.norm,
      freqs,
      freqs,
      ...(w.cls ? [w.cls] : []),
    ]);
  }
  const header = new Uint8Array(256);
  const dv = new DataView(header.buffer);
  dv.setUint32(0, 0x616b3432, true);
  dv.setInt32(4, version, true);
  ints[5] = w.vocab;
  for (const [i, v] of ints.entries()) dv.setInt32(8 + 4 * i, v, true);
  dv.setUint8(36, w.cls ? 0 : 1);
  if (version === 1)
    return cat([
      header,
      ...w.attnNorm,
      ...w.ffnNorm,
      w.norm,
      w.tok,
      ...w.wq,
      ...w.wk,
      ...w.wv,
      ...w.wo,
      ...w.w1,
      ...w.w2,
      ...w.w3,
      ...(w.cls ? [w.cls] : []),
    ]);
  dv.setInt32(37, groupSize, true);
  const q8 = (x: Float32Array): ArrayBufferView[] => {
    const q = new Int8Array(x.length);
    const s = new Float32Array(x.length / groupSize);
    for (let g = 0; g < s.length; g++) {
      let m = 0;
      for (let i = 0; i < groupSize; i++) m = Math.max(m, Math.abs(x[g * groupSize + i]));
      s[g] = m / 127;
      for (let i = 0; i < groupSize; i++)
        q[g * groupSize + i] = Math.round(x[g * groupSize + i] / (s[g] || 1));
    }
    return [q, s];
  };
  return cat([
    header,
    ...w.attnNorm,
    ...w.ffnNorm,
    w.norm,
    ...[
      w.tok,
      ...w.wq,
      ...w.wk,
      ...w.wv,
      ...w.wo,
      ...w.w1,
      ...w.w2,
      ...w.w3,
      ...(w.cls ? [w.cls] : []),
    ].flatMap(q8),
  ]);
}

/** the weights a version-2 file actually holds (int8 groups dequantised), for the reference */
export function q8GroupRoundTrip(w: LlamaWeights, groupSize = 32): LlamaWeights {
  const rt = (x: Float32Array) => {
    const out = new Float32Array(x.length);
    for (let g = 0; g < x.length / groupSize; g++) {
      let m = 0;
      for (let i = 0; i < groupSize; i++) m = Math.max(m, Math.abs(x[g * groupSize + i]));
      const s = Math.fround(m / 127);
      for (let i = 0; i < groupSize; i++)
        out[g * groupSize + i] = Math.round(x[g * groupSize + i] / (s || 1)) * s;
    }
    return out;
  };
  return {
    ...w,
    tok: rt(w.tok),
    wq: w.wq.map(rt),
    wk: w.wk.map(rt),
    wv: w.wv.map(rt),
    wo: w.wo.map(rt),
    w1: w.w1.map(rt),
    w2: w.w2.map(rt),
    w3: w.w3.map(rt),
    cls: w.cls && rt(w.cls),
  };
}

/** llama2.c tokenizer.bin */
export function writeTokenizerBin(pieces: string[], scores: number[]): Uint8Array {
  const enc = new TextEncoder();
  const parts: ArrayBufferView[] = [Int32Array.from([Math.max(...pieces.map((p) => enc.encode(p).length))])];
  pieces.forEach((p, i) => {
    const b = enc.encode(p);
    parts.push(Float32Array.from([scores[i]]), Int32Array.from([b.length]), b);
  });
  return cat(parts);
}

/** a small SentencePiece-style vocabulary: <unk>, <s>, </s>, 256 byte tokens, ▁ + letters */
export function smallSpmVocab(n: number): { pieces: string[]; scores: number[] } {
  const pieces = ['<unk>', '<s>', '</s>'];
  for (let i = 0; i < 256; i++) pieces.push(`<0x${i.toString(16).toUpperCase().padStart(2, '0')}>`);
  pieces.push('▁');
  for (const c of 'abcdefghijklmnopqrstuvwxyz') pieces.push(c);
  for (const c of 'abcdefghijklmnopqrstuvwxyz') pieces.push(`▁${c}`);
  while (pieces.length < n) pieces.push(`▁w${pieces.length}`);
  return { pieces: pieces.slice(0, n), scores: pieces.slice(0, n).map((_, i) => (i < 259 ? 0 : -i)) };
}

/** safetensors: u64 header length, JSON header, data */
export function writeSafetensors(
  tensors: Record<string, { data: Float32Array; shape: number[] }>,
  dtype: 'F32' | 'F16' | 'BF16',
): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  const blobs: Uint8Array[] = [];
  let off = 0;
  for (const [name, t] of Object.entries(tensors)) {
    let b: Uint8Array;
    if (dtype === 'F32') b = new Uint8Array(t.data.slice().buffer);
    else {
      const u = new Uint16Array(t.data.length);
      const u32 = new Uint32Array(t.data.slice().buffer);
      for (let i = 0; i < u.length; i++) u[i] = dtype === 'F16' ? f32ToF16(t.data[i]) : u32[i] >>> 16;
      b = new Uint8Array(u.buffer);
    }
    header[name] = { dtype, shape: t.shape, data_offsets: [off, off + b.length] };
    blobs.push(b);
    off += b.length;
  }
  let h = JSON.stringify(header);
  h += ' '.repeat((8 - (h.length % 8)) % 8);
  const hb = new TextEncoder().encode(h);
  const len = new DataView(new ArrayBuffer(8));
  len.setBigUint64(0, BigInt(hb.length), true);
  return cat([new Uint8Array(len.buffer), hb, ...blobs]);
}

/** values as the file stores them (f16/bf16 rounding), for the reference */
export function roundTo(dtype: 'F32' | 'F16' | 'BF16', x: Float32Array): Float32Array {
  if (dtype === 'F32') return x;
  const out = new Float32Array(x.length);
  const u = new Uint32Array(x.slice().buffer);
  const o = new Uint32Array(out.buffer);
  for (let i = 0; i < x.length; i++) {
    if (dtype === 'BF16')
      o[i] = u[i] & 0xffff0000; // truncation, as the writer above does
    else out[i] = f16ToF32(f32ToF16(x[i]));
  }
  return out;
}

// ---- float64 references ----------------------------------------------------------------------------

const rms = (x: Float64Array, w: Float32Array, eps: number) => {
  let ss = 0;
  for (const v of x) ss += v * v;
  const r = 1 / Math.sqrt(ss / x.length + eps);
  return x.map((v, i) => v * r * w[i]);
};
const mv = (w: Float32Array | Float64Array, x: Float64Array, rows: number) => {
  const cols = x.length;
  const out = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let c = 0; c < cols; c++) s += w[r * cols + c] * x[c];
    out[r] = s;
  }
  return out;
};

/** logits at every position; rope 'adjacent' (llama2.c, GGUF) or 'half' (HF rotate-half) */
export function refLlama(
  w: LlamaWeights,
  tokens: number[],
  rope: 'adjacent' | 'half',
  eps = 1e-5,
  base = 10000,
): Float64Array[] {
  const hd = w.dim / w.heads;
  const kvDim = hd * w.kvHeads;
  const ks: Float64Array[][] = Array.from({ length: w.layers }, () => []);
  const vs: Float64Array[][] = Array.from({ length: w.layers }, () => []);
  const out: Float64Array[] = [];
  const applyRope = (v: Float64Array, nh: number, pos: number) => {
    for (let h = 0; h < nh; h++)
      for (let i = 0; i < hd / 2; i++) {
        const th = pos * base ** ((-2 * i) / hd);
        const [a, b] =
          rope === 'adjacent' ? [h * hd + 2 * i, h * hd + 2 * i + 1] : [h * hd + i, h * hd + i + hd / 2];
        const x0 = v[a];
        const x1 = v[b];
        v[a] = x0 * Math.cos(th) - x1 * Math.sin(th);
        v[b] = x0 * Math.sin(th) + x1 * Math.cos(th);
      }
  };
  tokens.forEach((tok, pos) => {
    let x = Float64Array.from(w.tok.subarray(tok * w.dim, (tok + 1) * w.dim));
    for (let l = 0; l < w.layers; l++) {
      const xb = rms(x, w.attnNorm[l], eps);
      const q = mv(w.wq[l], xb, w.dim);
      const k = mv(w.wk[l], xb, kvDim);
      const v = mv(w.wv[l], xb, kvDim);
      applyRope(q, w.heads, pos);
      applyRope(k, w.kvHeads, pos);
      ks[l].push(k);
      vs[l].push(v);
      const att = new Float64Array(w.dim);
      for (let h = 0; h < w.heads; h++) {
        const kh = Math.floor(h / (w.heads / w.kvHeads));
        const sc = ks[l].map((kk) => {
          let s = 0;
          for (let i = 0; i < hd; i++) s += q[h * hd + i] * kk[kh * hd + i];
          return s / Math.sqrt(hd);
        });
        const m = Math.max(...sc);
        const e = sc.map((s) => Math.exp(s - m));
        const z = e.reduce((a, b) => a + b, 0);
        for (let t = 0; t < e.length; t++)
          for (let i = 0; i < hd; i++) att[h * hd + i] += (e[t] / z) * vs[l][t][kh * hd + i];
      }
      const o = mv(w.wo[l], att, w.dim);
      x = x.map((val, i) => val + o[i]);
      const xb2 = rms(x, w.ffnNorm[l], eps);
      const g = mv(w.w1[l], xb2, w.hidden);
      const u = mv(w.w3[l], xb2, w.hidden);
      const hmid = g.map((gv, i) => (gv / (1 + Math.exp(-gv))) * u[i]);
      const d = mv(w.w2[l], hmid, w.dim);
      x = x.map((val, i) => val + d[i]);
    }
    out.push(mv(w.cls ?? w.tok, rms(x, w.norm, eps), w.vocab));
  });
  return out;
}

export interface Gpt2Weights {
  D: number;
  L: number;
  H: number;
  V: number;
  C: number;
  /** HF names → data and HF shape (Conv1D weights are (in, out)) */
  t: Record<string, { data: Float32Array; shape: number[] }>;
}

export function randomGpt2(
  c: { D: number; L: number; H: number; V: number; C: number },
  seed: number,
): Gpt2Weights {
  const r = rng(seed);
  const t: Gpt2Weights['t'] = {};
  const m = (name: string, shape: number[], s: number, base = 0) => {
    const n = shape.reduce((a, b) => a * b, 1);
    t[name] = { data: Float32Array.from({ length: n }, () => base + r() * 2 * s), shape };
  };
  const D = c.D;
  m('transformer.wte.weight', [c.V, D], 0.5);
  m('transformer.wpe.weight', [c.C, D], 0.2);
  for (let l = 0; l < c.L; l++) {
    const p = `transformer.h.${l}.`;
    m(`${p}ln_1.weight`, [D], 0.2, 1);
    m(`${p}ln_1.bias`, [D], 0.1);
    m(`${p}attn.c_attn.weight`, [D, 3 * D], 1.5 / Math.sqrt(D));
    m(`${p}attn.c_attn.bias`, [3 * D], 0.1);
    m(`${p}attn.c_proj.weight`, [D, D], 1.5 / Math.sqrt(D));
    m(`${p}attn.c_proj.bias`, [D], 0.1);
    m(`${p}ln_2.weight`, [D], 0.2, 1);
    m(`${p}ln_2.bias`, [D], 0.1);
    m(`${p}mlp.c_fc.weight`, [D, 4 * D], 1.5 / Math.sqrt(D));
    m(`${p}mlp.c_fc.bias`, [4 * D], 0.1);
    m(`${p}mlp.c_proj.weight`, [4 * D, D], 1.5 / Math.sqrt(4 * D));
    m(`${p}mlp.c_proj.bias`, [D], 0.1);
  }
  m('transformer.ln_f.weight', [D], 0.2, 1);
  m('transformer.ln_f.bias', [D], 0.1);
  return { ...c, t };
}

/** GPT-2 as HF computes it: Conv1D y = x·W + b with W (in, out), tied output */
export function refGpt2(g: Gpt2Weights, tokens: number[], eps = 1e-5): Float64Array[] {
  const T = (n: string) => g.t[`transformer.${n}`].data;
  const D = g.D;
  const hd = D / g.H;
  const ln = (x: Float64Array, w: Float32Array, b: Float32Array) => {
    const mean = x.reduce((a, v) => a + v, 0) / x.length;
    const varc = x.reduce((a, v) => a + (v - mean) ** 2, 0) / x.length;
    const r = 1 / Math.sqrt(varc + eps);
    return x.map((v, i) => (v - mean) * r * w[i] + b[i]);
  };
  const conv = (x: Float64Array, w: Float32Array, b: Float32Array, nout: number) => {
    const out = Float64Array.from(b.subarray(0, nout));
    for (let i = 0; i < x.length; i++) for (let o = 0; o < nout; o++) out[o] += x[i] * w[i * nout + o];
    return out;
  };
  const gelu = (v: number) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
  const ks: Float64Array[][] = Array.from({ length: g.L }, () => []);
  const vs: Float64Array[][] = Array.from({ length: g.L }, () => []);
  return tokens.map((tok, pos) => {
    let x = Float64Array.from(
      { length: D },
      (_, i) => T('wte.weight')[tok * D + i] + T('wpe.weight')[pos * D + i],
    );
    for (let l = 0; l < g.L; l++) {
      const p = `h.${l}.`;
      const qkv = conv(
        ln(x, T(`${p}ln_1.weight`), T(`${p}ln_1.bias`)),
        T(`${p}attn.c_attn.weight`),
        T(`${p}attn.c_attn.bias`),
        3 * D,
      );
      ks[l].push(qkv.slice(D, 2 * D));
      vs[l].push(qkv.slice(2 * D));
      const att = new Float64Array(D);
      for (let h = 0; h < g.H; h++) {
        const sc = ks[l].map((k) => {
          let s = 0;
          for (let i = 0; i < hd; i++) s += qkv[h * hd + i] * k[h * hd + i];
          return s / Math.sqrt(hd);
        });
        const m = Math.max(...sc);
        const e = sc.map((s) => Math.exp(s - m));
        const z = e.reduce((a, b) => a + b, 0);
        for (let t = 0; t < e.length; t++)
          for (let i = 0; i < hd; i++) att[h * hd + i] += (e[t] / z) * vs[l][t][h * hd + i];
      }
      const o = conv(att, T(`${p}attn.c_proj.weight`), T(`${p}attn.c_proj.bias`), D);
      x = x.map((v, i) => v + o[i]);
      const hmid = conv(
        ln(x, T(`${p}ln_2.weight`), T(`${p}ln_2.bias`)),
        T(`${p}mlp.c_fc.weight`),
        T(`${p}mlp.c_fc.bias`),
        4 * D,
      ).map(gelu);
      const d = conv(hmid, T(`${p}mlp.c_proj.weight`), T(`${p}mlp.c_proj.bias`), D);
      x = x.map((v, i) => v + d[i]);
    }
    return mv(T('wte.weight'), ln(x, T('ln_f.weight'), T('ln_f.bias')), g.V);
  });
}
