// A plain float64 forward pass for llama and gpt2, test-only, written to be obviously right:
// one position at a time, every product a loop, the whole K/V history kept in arrays.
// Weights are read from the GGUF with toF32 (dequantised exactly as stored) and widened to f64.
import { toF32 } from '../../runtime/ggml.ts';
import type { GGUFFile } from '../../runtime/gguf.ts';

type Vec = Float64Array;

function weight(file: GGUFFile, name: string): { data: Vec; dims: number[] } {
  const t = file.tensor(name);
  if (!t) throw new Error(`reference: missing tensor ${name}`);
  const n = t.dims.reduce((a, b) => a * b, 1);
  return { data: Float64Array.from(toF32(t.type, t.data, n)), dims: t.dims };
}

function num(file: GGUFFile, key: string, def?: number): number {
  const v = file.get<number | bigint>(key);
  if (v === undefined) {
    if (def === undefined) throw new Error(`reference: missing ${key}`);
    return def;
  }
  return Number(v);
}

// out[i] = Σ_j W[i][j] x[j] + b[i];  W is (n × k) row-major
function matvec(W: Vec, x: Vec, n: number, k: number, b?: Vec): Vec {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = b ? b[i] : 0;
    for (let j = 0; j < k; j++) s += W[i * k + j] * x[j];
    out[i] = s;
  }
  return out;
}

function rmsnorm(x: Vec, w: Vec, eps: number): Vec {
  let ss = 0;
  for (const v of x) ss += v * v;
  const r = 1 / Math.sqrt(ss / x.length + eps);
  return x.map((v, i) => v * r * w[i]);
}

function layernorm(x: Vec, w: Vec, b: Vec, eps: number): Vec {
  let mean = 0;
  for (const v of x) mean += v;
  mean /= x.length;
  let variance = 0;
  for (const v of x) variance += (v - mean) * (v - mean);
  variance /= x.length;
  const r = 1 / Math.sqrt(variance + eps);
  return x.map((v, i) => (v - mean) * r * w[i] + b[i]);
}

// rotate adjacent pairs (x[2i], x[2i+1]) of each head by pos · base^(-2i/hd)
function rope(x: Vec, nHeads: number, hd: number, pos: number, base: number): void {
  for (let h = 0; h < nHeads; h++) {
    for (let i = 0; i < hd / 2; i++) {
      const angle = pos * base ** ((-2 * i) / hd);
      const c = Math.cos(angle);
      const s = Math.sin(angle);
      const a = x[h * hd + 2 * i];
      const b = x[h * hd + 2 * i + 1];
      x[h * hd + 2 * i] = a * c - b * s;
      x[h * hd + 2 * i + 1] = a * s + b * c;
    }
  }
}

const silu = (v: number) => v / (1 + Math.exp(-v));
const gelu = (v: number) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v)));

/**
 * Logits (one Float64Array of V per position) of `tokens` run from position 0.
 * @example
 * const logits = refForward(parseGGUF(bytes), [1, 2, 3]); // logits[2] predicts the 4th token
 */
export function refForward(file: GGUFFile, tokens: number[]): Vec[] {
  const arch = file.get<string>('general.architecture');
  if (arch !== 'llama' && arch !== 'gpt2') throw new Error(`reference: architecture ${arch}`);
  const a = arch;
  const dim = num(file, `${a}.embedding_length`);
  const nLayers = num(file, `${a}.block_count`);
  const ffn = num(file, `${a}.feed_forward_length`);
  const nHeads = num(file, `${a}.attention.head_count`);
  const nKv = num(file, `${a}.attention.head_count_kv`, nHeads);
  const hd = dim / nHeads;
  const kvDim = nKv * hd;
  const eps =
    a === 'llama'
      ? num(file, 'llama.attention.layer_norm_rms_epsilon', 1e-5)
      : num(file, 'gpt2.attention.layer_norm_epsilon', 1e-5);
  const base = num(file, 'llama.rope.freq_base', 10000);
  const emb = weight(file, 'token_embd.weight');
  const vocab = emb.dims[1];
  const W = (name: string) => weight(file, name).data;
  const layers = Array.from({ length: nLayers }, (_, l) => {
    const p = `blk.${l}.`;
    if (a === 'llama') {
      return {
        attnNorm: W(`${p}attn_norm.weight`),
        wq: W(`${p}attn_q.weight`),
        wk: W(`${p}attn_k.weight`),
        wv: W(`${p}attn_v.weight`),
        wo: W(`${p}attn_output.weight`),
        ffnNorm: W(`${p}ffn_norm.weight`),
        wg: W(`${p}ffn_gate.weight`),
        wu: W(`${p}ffn_up.weight`),
        wd: W(`${p}ffn_down.weight`),
      };
    }
    return {
      attnNorm: W(`${p}attn_norm.weight`),
      attnNormB: W(`${p}attn_norm.bias`),
      wqkv: W(`${p}attn_qkv.weight`),
      bqkv: W(`${p}attn_qkv.bias`),
      wo: W(`${p}attn_output.weight`),
      bo: W(`${p}attn_output.bias`),
      ffnNorm: W(`${p}ffn_norm.weight`),
      ffnNormB: W(`${p}ffn_norm.bias`),
      wu: W(`${p}ffn_up.weight`),
      bu: W(`${p}ffn_up.bias`),
      wd: W(`${p}ffn_down.weight`),
      bd: W(`${p}ffn_down.bias`),
    };
  });
  const outNorm = W('output_norm.weight');
  const outNormB = a === 'gpt2' ? W('output_norm.bias') : undefined;
  const out = file.tensor('output.weight') ? W('output.weight') : emb.data;
  const posEmb = a === 'gpt2' ? W('position_embd.weight') : undefined;

  const keys: Vec[][] = layers.map(() => []); // [layer][pos] → (kvDim)
  const values: Vec[][] = layers.map(() => []);
  const result: Vec[] = [];
  for (let pos = 0; pos < tokens.length; pos++) {
    let x: Vec = emb.data.slice(tokens[pos] * dim, (tokens[pos] + 1) * dim);
    if (posEmb) x = x.map((v, i) => v + posEmb[pos * dim + i]);
    for (let l = 0; l < nLayers; l++) {
      const L = layers[l] as any;
      let q: Vec;
      let k: Vec;
      let v: Vec;
      if (a === 'llama') {
        const xb = rmsnorm(x, L.attnNorm, eps);
        q = matvec(L.wq, xb, dim, dim);
        k = matvec(L.wk, xb, kvDim, dim);
        v = matvec(L.wv, xb, kvDim, dim);
        rope(q, nHeads, hd, pos, base);
        rope(k, nKv, hd, pos, base);
      } else {
        const xb = layernorm(x, L.attnNorm, L.attnNormB, eps);
        const qkv = matvec(L.wqkv, xb, dim + 2 * kvDim, dim, L.bqkv);
        q = qkv.slice(0, dim);
        k = qkv.slice(dim, dim + kvDim);
        v = qkv.slice(dim + kvDim);
      }
      keys[l].push(k);
      values[l].push(v);
      // causal attention: head h reads kv head h / (nHeads / nKv)
      const att = new Float64Array(dim);
      for (let h = 0; h < nHeads; h++) {
        const kh = Math.floor(h / (nHeads / nKv));
        const scores = new Float64Array(pos + 1);
        for (let t = 0; t <= pos; t++) {
          let s = 0;
          for (let i = 0; i < hd; i++) s += q[h * hd + i] * keys[l][t][kh * hd + i];
          scores[t] = s / Math.sqrt(hd);
        }
        const mx = Math.max(...scores);
        let sum = 0;
        for (let t = 0; t <= pos; t++) {
          scores[t] = Math.exp(scores[t] - mx);
          sum += scores[t];
        }
        for (let t = 0; t <= pos; t++) {
          for (let i = 0; i < hd; i++) att[h * hd + i] += (scores[t] / sum) * values[l][t][kh * hd + i];
        }
      }
      const o = matvec(L.wo, att, dim, dim, L.bo);
      x = x.map((val, i) => val + o[i]);
      let f: Vec;
      if (a === 'llama') {
        const xb = rmsnorm(x, L.ffnNorm, eps);
        const g = matvec(L.wg, xb, ffn, dim);
        const u = matvec(L.wu, xb, ffn, dim);
        f = matvec(
          L.wd,
          g.map((gv, i) => silu(gv) * u[i]),
          dim,
          ffn,
        );
      } else {
        const xb = layernorm(x, L.ffnNorm, L.ffnNormB, eps);
        const u = matvec(L.wu, xb, ffn, dim, L.bu);
        f = matvec(L.wd, u.map(gelu), dim, ffn, L.bd);
      }
      x = x.map((val, i) => val + f[i]);
    }
    const xf = outNormB ? layernorm(x, outNorm, outNormB, eps) : rmsnorm(x, outNorm, eps);
    result.push(matvec(out, xf, vocab, dim));
  }
  return result;
}
