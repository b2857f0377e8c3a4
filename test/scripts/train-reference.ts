// Plain float64 reference of the training model's forward (the independent side of the gradient
// checks): straight loops over the same llama layout as scripts/train/model.ts.
import { type ModelConfig, paramLayout } from '../../scripts/train/model.ts';

export type Vec = Float64Array;

/** y = x·Wᵀ: x (m×k), W (n×k) → (m×n). */
export function refLinear(x: Vec, w: Vec, m: number, n: number, k: number): Vec {
  const y = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let r = 0; r < k; r++) s += x[i * k + r] * w[j * k + r];
      y[i * n + j] = s;
    }
  return y;
}

export function refRmsnorm(x: Vec, w: Vec, m: number, d: number, eps: number): Vec {
  const y = new Float64Array(m * d);
  for (let i = 0; i < m; i++) {
    let ss = 0;
    for (let j = 0; j < d; j++) ss += x[i * d + j] ** 2;
    const r = 1 / Math.sqrt(ss / d + eps);
    for (let j = 0; j < d; j++) y[i * d + j] = x[i * d + j] * r * w[j];
  }
  return y;
}

/** RoPE on adjacent pairs; row r at position r % t. */
export function refRope(x: Vec, m: number, t: number, nHeads: number, hd: number, base: number): Vec {
  const y = Float64Array.from(x);
  for (let r = 0; r < m; r++) {
    const p = r % t;
    for (let h = 0; h < nHeads; h++)
      for (let i = 0; i < hd / 2; i++) {
        const ang = p * base ** ((-2 * i) / hd);
        const o = r * nHeads * hd + h * hd + 2 * i;
        const a = x[o];
        const b = x[o + 1];
        y[o] = a * Math.cos(ang) - b * Math.sin(ang);
        y[o + 1] = a * Math.sin(ang) + b * Math.cos(ang);
      }
  }
  return y;
}

export function refAttention(
  q: Vec,
  k: Vec,
  v: Vec,
  bsz: number,
  t: number,
  nHeads: number,
  hd: number,
): Vec {
  const c = nHeads * hd;
  const out = new Float64Array(bsz * t * c);
  for (let b = 0; b < bsz; b++)
    for (let h = 0; h < nHeads; h++)
      for (let i = 0; i < t; i++) {
        const s: number[] = [];
        for (let u = 0; u <= i; u++) {
          let d = 0;
          for (let j = 0; j < hd; j++) d += q[(b * t + i) * c + h * hd + j] * k[(b * t + u) * c + h * hd + j];
          s.push(d / Math.sqrt(hd));
        }
        const mx = Math.max(...s);
        const e = s.map((z) => Math.exp(z - mx));
        const z = e.reduce((a, b2) => a + b2, 0);
        for (let u = 0; u <= i; u++)
          for (let j = 0; j < hd; j++)
            out[(b * t + i) * c + h * hd + j] += (e[u] / z) * v[(b * t + u) * c + h * hd + j];
      }
  return out;
}

export function refSwiglu(g: Vec, u: Vec): Vec {
  return g.map((x, i) => (x / (1 + Math.exp(-x))) * u[i]);
}

/** Σ_r weight_r · −log softmax(logits_r)[target_r]. */
export function refCrossEntropy(
  logits: Vec,
  targets: ArrayLike<number>,
  weights: ArrayLike<number>,
  m: number,
  v: number,
): number {
  let total = 0;
  for (let r = 0; r < m; r++) {
    if (weights[r] === 0) continue;
    let mx = -Infinity;
    for (let j = 0; j < v; j++) mx = Math.max(mx, logits[r * v + j]);
    let z = 0;
    for (let j = 0; j < v; j++) z += Math.exp(logits[r * v + j] - mx);
    total += weights[r] * -(logits[r * v + targets[r]] - mx - Math.log(z));
  }
  return total;
}

/** The whole model's Σ weight·loss in float64, parameters in the flat layout of paramLayout. */
export function refModelLoss(
  cfg: ModelConfig,
  params: ArrayLike<number>,
  tokens: ArrayLike<number>,
  targets: ArrayLike<number>,
  weights: ArrayLike<number>,
  bsz: number,
  t: number,
): number {
  const lay = paramLayout(cfg);
  const get = (name: string): Vec => {
    const s = lay.tensors.find((x) => x.name === name);
    if (!s) throw new Error(name);
    return Float64Array.from({ length: s.rows * s.cols }, (_, i) => params[s.offset + i]);
  };
  const { dim: D, ffnDim: F, vocabSize: V, nHeads: H } = cfg;
  const hd = D / H;
  const m = bsz * t;
  const emb = get('token_embd.weight');
  let x: Vec = new Float64Array(m * D);
  for (let r = 0; r < m; r++) for (let j = 0; j < D; j++) x[r * D + j] = emb[tokens[r] * D + j];
  for (let l = 0; l < cfg.nLayers; l++) {
    const p = `blk.${l}.`;
    const xn = refRmsnorm(x, get(`${p}attn_norm.weight`), m, D, cfg.normEps);
    const q = refRope(refLinear(xn, get(`${p}attn_q.weight`), m, D, D), m, t, H, hd, cfg.ropeBase);
    const k = refRope(refLinear(xn, get(`${p}attn_k.weight`), m, D, D), m, t, H, hd, cfg.ropeBase);
    const v = refLinear(xn, get(`${p}attn_v.weight`), m, D, D);
    const att = refAttention(q, k, v, bsz, t, H, hd);
    const o = refLinear(att, get(`${p}attn_output.weight`), m, D, D);
    x = x.map((a, i) => a + o[i]);
    const xn2 = refRmsnorm(x, get(`${p}ffn_norm.weight`), m, D, cfg.normEps);
    const g = refLinear(xn2, get(`${p}ffn_gate.weight`), m, F, D);
    const u = refLinear(xn2, get(`${p}ffn_up.weight`), m, F, D);
    const y = refLinear(refSwiglu(g, u), get(`${p}ffn_down.weight`), m, D, F);
    x = x.map((a, i) => a + y[i]);
  }
  const xf = refRmsnorm(x, get('output_norm.weight'), m, D, cfg.normEps);
  const logits = refLinear(xf, get('output.weight'), m, V, D);
  return refCrossEntropy(logits, targets, weights, m, V);
}
