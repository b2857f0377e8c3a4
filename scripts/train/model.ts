/**
 * A llama-architecture decoder for training on build/train.wasm: parameter layout (GGUF names,
 * linear weights stored as GGUF's (out × in) row-major), forward that saves what the backward
 * needs, backward that accumulates gradients, AdamW over the flat parameter buffer.
 *
 * Per layer: attn_norm → q, k, v → RoPE(q, k) → causal attention → attn_output → residual →
 * ffn_norm → gate, up → silu(gate)·up → down → residual. Then output_norm → output (untied).
 */
import { TrainWasm } from './wasm.ts';

/** Shape of the model (the llama.* GGUF keys). */
export interface ModelConfig {
  vocabSize: number;
  dim: number;
  nLayers: number;
  nHeads: number;
  ffnDim: number;
  contextLength: number;
  normEps: number;
  ropeBase: number;
}

/** One parameter tensor inside the flat buffer. rows × cols row-major (a linear weight is out × in). */
export interface TensorSpec {
  name: string;
  rows: number;
  cols: number;
  offset: number; // in floats
  decay: boolean; // weight decay applies (matrices, not norms)
}

/** The tensors of a config in layout order, and the total parameter count. */
export function paramLayout(c: ModelConfig): { tensors: TensorSpec[]; total: number } {
  const tensors: TensorSpec[] = [];
  let off = 0;
  const add = (name: string, rows: number, cols: number, decay: boolean) => {
    tensors.push({ name, rows, cols, offset: off, decay });
    off += rows * cols;
    off = (off + 15) & ~15; // keep every tensor 64-byte aligned
  };
  const d = c.dim;
  add('token_embd.weight', c.vocabSize, d, true);
  for (let l = 0; l < c.nLayers; l++) {
    add(`blk.${l}.attn_norm.weight`, 1, d, false);
    add(`blk.${l}.attn_q.weight`, d, d, true);
    add(`blk.${l}.attn_k.weight`, d, d, true);
    add(`blk.${l}.attn_v.weight`, d, d, true);
    add(`blk.${l}.attn_output.weight`, d, d, true);
    add(`blk.${l}.ffn_norm.weight`, 1, d, false);
    add(`blk.${l}.ffn_gate.weight`, c.ffnDim, d, true);
    add(`blk.${l}.ffn_up.weight`, c.ffnDim, d, true);
    add(`blk.${l}.ffn_down.weight`, d, c.ffnDim, true);
  }
  add('output_norm.weight', 1, d, false);
  add('output.weight', c.vocabSize, d, true);
  return { tensors, total: off };
}

/** Number of real parameters (no alignment padding). */
export function paramCount(c: ModelConfig): number {
  return paramLayout(c).tensors.reduce((s, t) => s + t.rows * t.cols, 0);
}

/** Deterministic 32-bit generator (mulberry32) with a normal sampler; state is one u32. */
export class Rng {
  state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  normal(): number {
    const u = 1 - this.next();
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
}

/** Fresh parameters: N(0, 0.02) matrices, output projections scaled by 1/sqrt(2L), norms 1. */
export function initParams(c: ModelConfig, seed: number): Float32Array {
  const { tensors, total } = paramLayout(c);
  const p = new Float32Array(total);
  const rng = new Rng(seed);
  for (const t of tensors) {
    const n = t.rows * t.cols;
    if (!t.decay) {
      p.fill(1, t.offset, t.offset + n);
      continue;
    }
    const proj = t.name.endsWith('attn_output.weight') || t.name.endsWith('ffn_down.weight');
    const std = proj ? 0.02 / Math.sqrt(2 * c.nLayers) : 0.02;
    for (let i = 0; i < n; i++) p[t.offset + i] = rng.normal() * std;
  }
  return p;
}

/**
 * Parameters for a larger vocabulary: every tensor copied by name; the new rows of token_embd and
 * output start at the mean of the existing rows (so new tokens begin as an "average" token).
 */
export function growVocab(old: ModelConfig, params: Float32Array, newVocab: number): Float32Array {
  const nc = { ...old, vocabSize: newVocab };
  const a = paramLayout(old).tensors;
  const b = paramLayout(nc);
  const out = new Float32Array(b.total);
  for (const t of b.tensors) {
    const s = a.find((x) => x.name === t.name);
    if (!s) throw new Error(`growVocab: no tensor ${t.name}`);
    out.set(params.subarray(s.offset, s.offset + s.rows * s.cols), t.offset);
    if (t.rows !== s.rows) {
      const mean = new Float32Array(t.cols);
      for (let r = 0; r < s.rows; r++)
        for (let j = 0; j < t.cols; j++) mean[j] += params[s.offset + r * s.cols + j];
      for (let j = 0; j < t.cols; j++) mean[j] /= s.rows;
      for (let r = s.rows; r < t.rows; r++) out.set(mean, t.offset + r * t.cols);
    }
  }
  return out;
}

interface LayerActs {
  xin: number; // (M, D) residual stream entering the layer
  rstd1: number; // (M)
  xn1: number; // (M, D) attn_norm output
  q: number; // (M, D) after RoPE
  k: number; // (M, D) after RoPE
  v: number; // (M, D)
  p: number; // (B, H, T, T) attention probabilities
  att: number; // (M, D) attention output before attn_output
  xmid: number; // (M, D) residual after attention
  rstd2: number; // (M)
  xn2: number; // (M, D) ffn_norm output
  g: number; // (M, F) gate pre-activation
  u: number; // (M, F) up
  h: number; // (M, F) silu(g)·u
}

/**
 * A model bound to one WASM instance with fixed micro-batch shape (B sequences × T tokens).
 * Holds parameters, gradients, the transposed weight copies that the forward reads, and
 * activations. AdamW moments are allocated on demand (`withOptimizer`).
 */
export class TrainModel {
  readonly w: TrainWasm;
  readonly cfg: ModelConfig;
  readonly B: number;
  readonly T: number;
  readonly M: number;
  readonly tensors: TensorSpec[];
  readonly nParams: number; // floats in the flat buffer (incl. padding)
  readonly params: number;
  readonly grads: number;
  private readonly wt: Map<string, number> = new Map(); // transposed copies (in × out)
  private adamM = 0;
  private adamV = 0;
  private readonly ropeTab: number;
  private readonly acts: LayerActs[] = [];
  private readonly xfin: number;
  private readonly rstdf: number;
  private readonly xnf: number;
  private readonly logits: number;
  private readonly tokens: number;
  private readonly targets: number;
  private readonly weights: number;
  private readonly dres: number;
  private readonly dxn: number;
  private readonly dq: number;
  private readonly dk: number;
  private readonly dv: number;
  private readonly datt: number;
  private readonly dh: number;
  private readonly dg: number;
  private readonly du: number;
  private readonly scratch: number;
  private readonly off: Map<string, number> = new Map();

  constructor(cfg: ModelConfig, B: number, T: number, opts: { optimizer?: boolean; wasm?: TrainWasm } = {}) {
    const { dim: D, ffnDim: F, vocabSize: V, nHeads: H } = cfg;
    if (D % H !== 0 || (D / H) % 4 !== 0) throw new Error('dim / nHeads must be a multiple of 4');
    if (T > cfg.contextLength) throw new Error('sequence length exceeds contextLength');
    this.cfg = cfg;
    this.B = B;
    this.T = T;
    const M = B * T;
    this.M = M;
    const lay = paramLayout(cfg);
    this.tensors = lay.tensors;
    this.nParams = lay.total;
    for (const t of lay.tensors) this.off.set(t.name, t.offset);
    const linears = lay.tensors.filter((t) => t.rows > 1 && t.name.startsWith('blk.'));
    const wtFloats = linears.reduce((s, t) => s + t.rows * t.cols + 16, 0) + V * D + 16;
    const perLayer = 9 * M * D + 2 * M + B * H * T * T + 3 * M * F + 16 * 14;
    const floats =
      lay.total * (opts.optimizer ? 4 : 2) +
      wtFloats +
      T * D +
      cfg.nLayers * perLayer +
      3 * M * D +
      M +
      M * V +
      3 * M +
      6 * M * D +
      3 * M * F +
      T * T +
      T * D +
      64 * 40;
    this.w = opts.wasm ?? new TrainWasm();
    this.w.reserve(floats * 4 + (1 << 16));
    const a = (n: number) => this.w.allocF32(n);
    this.params = a(lay.total);
    this.grads = a(lay.total);
    if (opts.optimizer) {
      this.adamM = a(lay.total);
      this.adamV = a(lay.total);
    }
    for (const t of linears) this.wt.set(t.name, a(t.rows * t.cols));
    this.wt.set('output.weight', a(V * D));
    // RoPE table: (cos, sin) of p·θ_i, θ_i = base^(−2i/hd)
    const hd = D / H;
    this.ropeTab = a(T * hd);
    const tab = this.w.f32(this.ropeTab, T * hd);
    for (let p = 0; p < T; p++) {
      for (let i = 0; i < hd / 2; i++) {
        const ang = p * cfg.ropeBase ** ((-2 * i) / hd);
        tab[p * hd + 2 * i] = Math.cos(ang);
        tab[p * hd + 2 * i + 1] = Math.sin(ang);
      }
    }
    for (let l = 0; l < cfg.nLayers; l++) {
      this.acts.push({
        xin: a(M * D),
        rstd1: a(M),
        xn1: a(M * D),
        q: a(M * D),
        k: a(M * D),
        v: a(M * D),
        p: a(B * H * T * T),
        att: a(M * D),
        xmid: a(M * D),
        rstd2: a(M),
        xn2: a(M * D),
        g: a(M * F),
        u: a(M * F),
        h: a(M * F),
      });
    }
    this.xfin = a(M * D);
    this.rstdf = a(M);
    this.xnf = a(M * D);
    this.logits = a(M * V);
    this.tokens = a(M);
    this.targets = a(M);
    this.weights = a(M);
    this.dres = a(M * D);
    this.dxn = a(M * D);
    this.dq = a(M * D);
    this.dk = a(M * D);
    this.dv = a(M * D);
    this.datt = a(M * D);
    this.dh = a(M * F);
    this.dg = a(M * F);
    this.du = a(M * F);
    this.scratch = a(T * T + T * hd); // attention: dS (T × T) and one head's Kᵀ or Vᵀ (hd × T)
  }

  /** A view of the flat parameter buffer (re-made on each call). */
  paramView(): Float32Array {
    return this.w.f32(this.params, this.nParams);
  }

  gradView(): Float32Array {
    return this.w.f32(this.grads, this.nParams);
  }

  /** Copy parameters in and refresh the transposed copies. */
  setParams(p: Float32Array): void {
    this.paramView().set(p);
    this.refresh();
  }

  /** Recompute the transposed weight copies after the parameters changed. */
  refresh(): void {
    for (const [name, ptr] of this.wt) {
      const t = this.tensors.find((x) => x.name === name) as TensorSpec;
      this.w.x.transpose(ptr, this.params + t.offset * 4, t.rows, t.cols);
    }
  }

  zeroGrads(): void {
    this.w.x.zero(this.grads, this.nParams * 4);
  }

  private p(name: string): number {
    return this.params + (this.off.get(name) as number) * 4;
  }

  private g(name: string): number {
    return this.grads + (this.off.get(name) as number) * 4;
  }

  // out(M×N) = x(M×K) · Wᵀ, through the transposed copy (K×N)
  private linear(out: number, x: number, name: string, n: number, k: number): void {
    this.w.x.matmul(out, x, this.wt.get(name) as number, this.M, n, k, k, 1, n, n, 0);
  }

  // dx(M×K) += dout(M×N)·W; dW(N×K) += doutᵀ·x
  private linearBack(
    dx: number,
    dout: number,
    x: number,
    name: string,
    n: number,
    k: number,
    needDx = true,
  ): void {
    if (needDx) this.w.x.matmul(dx, dout, this.p(name), this.M, k, n, n, 1, k, k, 1);
    this.w.x.matmul(this.g(name), dout, x, n, k, this.M, 1, n, k, k, 1);
  }

  private runForward(tokens: Int32Array): void {
    const { w, M, B, T, cfg } = this;
    const { dim: D, ffnDim: F, vocabSize: V, nHeads: H } = cfg;
    const hd = D / H;
    const x = w.x;
    w.i32(this.tokens, M).set(tokens);
    // embedding → residual stream of layer 0
    x.embeddingForward(
      this.acts.length ? this.acts[0].xin : this.xfin,
      this.tokens,
      this.p('token_embd.weight'),
      M,
      D,
    );
    for (let l = 0; l < cfg.nLayers; l++) {
      const A = this.acts[l];
      const pre = `blk.${l}.`;
      x.rmsnormForward(A.xn1, A.rstd1, A.xin, this.p(`${pre}attn_norm.weight`), M, D, cfg.normEps);
      this.linear(A.q, A.xn1, `${pre}attn_q.weight`, D, D);
      this.linear(A.k, A.xn1, `${pre}attn_k.weight`, D, D);
      this.linear(A.v, A.xn1, `${pre}attn_v.weight`, D, D);
      x.rope(A.q, this.ropeTab, M, T, H, hd, 1);
      x.rope(A.k, this.ropeTab, M, T, H, hd, 1);
      x.attentionForward(A.att, A.p, A.q, A.k, A.v, this.scratch, B, T, H, hd);
      this.linear(A.xmid, A.att, `${pre}attn_output.weight`, D, D);
      x.addInPlace(A.xmid, A.xin, M * D);
      x.rmsnormForward(A.xn2, A.rstd2, A.xmid, this.p(`${pre}ffn_norm.weight`), M, D, cfg.normEps);
      this.linear(A.g, A.xn2, `${pre}ffn_gate.weight`, F, D);
      this.linear(A.u, A.xn2, `${pre}ffn_up.weight`, F, D);
      x.swigluForward(A.h, A.g, A.u, M * F);
      const next = l + 1 < cfg.nLayers ? this.acts[l + 1].xin : this.xfin;
      this.linear(next, A.h, `${pre}ffn_down.weight`, D, F);
      x.addInPlace(next, A.xmid, M * D);
    }
    x.rmsnormForward(this.xnf, this.rstdf, this.xfin, this.p('output_norm.weight'), M, D, cfg.normEps);
    this.linear(this.logits, this.xnf, 'output.weight', V, D);
  }

  /** Forward over B×T tokens; returns a view of the logits (M × V), valid until the next call. */
  forward(tokens: Int32Array): Float32Array {
    this.runForward(tokens);
    return this.w.f32(this.logits, this.M * this.cfg.vocabSize);
  }

  /**
   * Forward over B×T tokens; cross-entropy against targets with per-token weights; if `backward`,
   * accumulate gradients of (Σ weight·loss)·gscale into the gradient buffer. Returns Σ weight·loss.
   */
  step(
    tokens: Int32Array,
    targets: Int32Array,
    weights: Float32Array,
    gscale: number,
    backward = true,
  ): number {
    const { w, M, B, T, cfg } = this;
    const { dim: D, ffnDim: F, vocabSize: V, nHeads: H } = cfg;
    const hd = D / H;
    const x = w.x;
    this.runForward(tokens);
    w.i32(this.targets, M).set(targets);
    w.f32(this.weights, M).set(weights);
    const loss = x.crossEntropy(this.logits, this.targets, this.weights, M, V, gscale);
    if (!backward) return loss;

    // backward: logits now hold dlogits
    x.zero(this.dxn, M * D * 4);
    this.linearBack(this.dxn, this.logits, this.xnf, 'output.weight', V, D);
    x.zero(this.dres, M * D * 4);
    x.rmsnormBackward(
      this.dres,
      this.g('output_norm.weight'),
      this.dxn,
      this.xfin,
      this.p('output_norm.weight'),
      this.rstdf,
      M,
      D,
    );
    for (let l = cfg.nLayers - 1; l >= 0; l--) {
      const A = this.acts[l];
      const pre = `blk.${l}.`;
      // ffn branch: dres is d(out of layer) = d(xmid) via the skip, dy via down
      x.zero(this.dh, M * F * 4);
      this.linearBack(this.dh, this.dres, A.h, `${pre}ffn_down.weight`, D, F);
      x.swigluBackward(this.dg, this.du, this.dh, A.g, A.u, M * F);
      x.zero(this.dxn, M * D * 4);
      this.linearBack(this.dxn, this.dg, A.xn2, `${pre}ffn_gate.weight`, F, D);
      this.linearBack(this.dxn, this.du, A.xn2, `${pre}ffn_up.weight`, F, D);
      x.rmsnormBackward(
        this.dres,
        this.g(`${pre}ffn_norm.weight`),
        this.dxn,
        A.xmid,
        this.p(`${pre}ffn_norm.weight`),
        A.rstd2,
        M,
        D,
      );
      // attention branch: dres is now d(xmid)
      x.zero(this.datt, M * D * 4);
      this.linearBack(this.datt, this.dres, A.att, `${pre}attn_output.weight`, D, D);
      x.attentionBackward(
        this.dq,
        this.dk,
        this.dv,
        this.datt,
        A.p,
        A.q,
        A.k,
        A.v,
        this.scratch,
        B,
        T,
        H,
        hd,
      );
      x.rope(this.dq, this.ropeTab, M, T, H, hd, -1);
      x.rope(this.dk, this.ropeTab, M, T, H, hd, -1);
      x.zero(this.dxn, M * D * 4);
      this.linearBack(this.dxn, this.dq, A.xn1, `${pre}attn_q.weight`, D, D);
      this.linearBack(this.dxn, this.dk, A.xn1, `${pre}attn_k.weight`, D, D);
      this.linearBack(this.dxn, this.dv, A.xn1, `${pre}attn_v.weight`, D, D);
      x.rmsnormBackward(
        this.dres,
        this.g(`${pre}attn_norm.weight`),
        this.dxn,
        A.xin,
        this.p(`${pre}attn_norm.weight`),
        A.rstd1,
        M,
        D,
      );
    }
    x.embeddingBackward(this.g('token_embd.weight'), this.dres, this.tokens, M, D);
    return loss;
  }

  /** gradients += g (a gradient computed elsewhere, same layout). */
  addGrads(g: Float32Array): void {
    const v = this.gradView();
    for (let i = 0; i < v.length; i++) v[i] += g[i];
  }

  /** Σ g² over all gradients. */
  gradNormSq(): number {
    return this.w.x.sumSquares(this.grads, this.nParams);
  }

  /** One AdamW update of every tensor (weight decay on matrices only), gradients scaled by gscale. */
  adamStep(o: {
    lr: number;
    beta1: number;
    beta2: number;
    eps: number;
    weightDecay: number;
    t: number;
    gscale: number;
  }): void {
    if (!this.adamM) throw new Error('model built without optimizer state');
    const bc1 = 1 - o.beta1 ** o.t;
    const bc2 = 1 - o.beta2 ** o.t;
    for (const t of this.tensors) {
      const off = t.offset * 4;
      this.w.x.adamw(
        this.params + off,
        this.grads + off,
        this.adamM + off,
        this.adamV + off,
        t.rows * t.cols,
        o.lr,
        o.beta1,
        o.beta2,
        o.eps,
        t.decay ? o.weightDecay : 0,
        bc1,
        bc2,
        o.gscale,
      );
    }
    this.refresh();
  }

  /** Views of the AdamW moments (for checkpoints). */
  moments(): { m: Float32Array; v: Float32Array } {
    return { m: this.w.f32(this.adamM, this.nParams), v: this.w.f32(this.adamV, this.nParams) };
  }
}
