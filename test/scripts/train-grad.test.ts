// Gradient checks of the training kernels (build/train.wasm, f32) against central finite
// differences of plain float64 forwards (test/scripts/train-reference.ts), op by op and for a
// whole tiny model; plus the "no cheating" check of the causal mask.
import { describe, expect, it } from 'vitest';
import { initParams, type ModelConfig, paramLayout, Rng, TrainModel } from '../../scripts/train/model.ts';
import { TrainWasm } from '../../scripts/train/wasm.ts';
import {
  refAttention,
  refCrossEntropy,
  refLinear,
  refModelLoss,
  refRmsnorm,
  refRope,
  refSwiglu,
  type Vec,
} from './train-reference.ts';

const H = 1e-5; // finite-difference step (float64)

/** d(Σ dy·f(x))/dx by central differences, for every element of x (f is float64). */
function fdGrad(x: Vec, dy: Vec, f: (x: Vec) => Vec): Vec {
  const g = new Float64Array(x.length);
  const xx = Float64Array.from(x);
  const dot = (y: Vec) => y.reduce((s, v, i) => s + v * dy[i], 0);
  for (let i = 0; i < x.length; i++) {
    const o = xx[i];
    xx[i] = o + H;
    const a = dot(f(xx));
    xx[i] = o - H;
    const b = dot(f(xx));
    xx[i] = o;
    g[i] = (a - b) / (2 * H);
  }
  return g;
}

/** largest |a − b| relative to the largest |b| (so the tolerance reads as a relative error). */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  let m = 1e-12;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    m = Math.max(m, Math.abs(b[i]));
  }
  return d / m;
}

function randVec(rng: Rng, n: number, s = 1): Float64Array {
  return Float64Array.from({ length: n }, () => (rng.next() * 2 - 1) * s);
}

// a fresh WASM instance with helpers to place float64 data as f32 and read it back
function arena(mb = 16) {
  const w = new TrainWasm();
  w.reserve(mb << 20);
  const put = (v: ArrayLike<number>) => {
    const p = w.allocF32(v.length);
    w.f32(p, v.length).set(Float32Array.from(v));
    return p;
  };
  const putI = (v: ArrayLike<number>) => {
    const p = w.alloc(v.length * 4);
    w.i32(p, v.length).set(Int32Array.from(v));
    return p;
  };
  const zeros = (n: number) => put(new Float64Array(n));
  const get = (p: number, n: number) => Float64Array.from(w.f32(p, n));
  return { w, x: w.x, put, putI, zeros, get };
}

// f32 inputs: compare against the float64 function evaluated at the f32-rounded inputs
const f32r = (v: Vec) => Float64Array.from(Float32Array.from(v));

describe('train kernels: backward vs central finite differences (float64)', () => {
  it('matmul: forward, dx, dW (odd sizes exercise the tails)', () => {
    const rng = new Rng(1);
    const [m, n, k] = [7, 13, 10];
    const xv = f32r(randVec(rng, m * k));
    const wv = f32r(randVec(rng, n * k));
    const dy = f32r(randVec(rng, m * n));
    const A = arena();
    const x = A.put(xv);
    const w = A.put(wv);
    const wt = A.zeros(n * k);
    A.x.transpose(wt, w, n, k);
    const y = A.zeros(m * n);
    A.x.matmul(y, x, wt, m, n, k, k, 1, n, n, 0);
    expect(relErr(A.get(y, m * n), refLinear(xv, wv, m, n, k))).toBeLessThan(1e-6); // f32 sums of 10
    const g = A.put(dy);
    const dx = A.zeros(m * k);
    const dw = A.zeros(n * k);
    A.x.matmul(dx, g, w, m, k, n, n, 1, k, k, 1);
    A.x.matmul(dw, g, x, n, k, m, 1, n, k, k, 1);
    expect(
      relErr(
        A.get(dx, m * k),
        fdGrad(xv, dy, (xx) => refLinear(xx, wv, m, n, k)),
      ),
    ).toBeLessThan(1e-5);
    expect(
      relErr(
        A.get(dw, n * k),
        fdGrad(wv, dy, (ww) => refLinear(xv, ww, m, n, k)),
      ),
    ).toBeLessThan(1e-5);
  });

  it('rmsnorm: dx and dw', () => {
    const rng = new Rng(2);
    const [m, d, eps] = [3, 12, 1e-5];
    const xv = f32r(randVec(rng, m * d));
    const wv = f32r(randVec(rng, d, 2));
    const dy = f32r(randVec(rng, m * d));
    const A = arena();
    const x = A.put(xv);
    const w = A.put(wv);
    const y = A.zeros(m * d);
    const rstd = A.zeros(m);
    A.x.rmsnormForward(y, rstd, x, w, m, d, eps);
    expect(relErr(A.get(y, m * d), refRmsnorm(xv, wv, m, d, eps))).toBeLessThan(1e-6);
    const dx = A.zeros(m * d);
    const dw = A.zeros(d);
    A.x.rmsnormBackward(dx, dw, A.put(dy), x, w, rstd, m, d);
    expect(
      relErr(
        A.get(dx, m * d),
        fdGrad(xv, dy, (xx) => refRmsnorm(xx, wv, m, d, eps)),
      ),
    ).toBeLessThan(1e-5);
    expect(
      relErr(
        A.get(dw, d),
        fdGrad(wv, dy, (ww) => refRmsnorm(xv, ww, m, d, eps)),
      ),
    ).toBeLessThan(1e-5);
  });

  it('rope: forward, and the backward is the inverse rotation', () => {
    const rng = new Rng(3);
    const [t, nh, hd, base] = [5, 2, 8, 10000];
    const m = 2 * t;
    const xv = f32r(randVec(rng, m * nh * hd));
    const dy = f32r(randVec(rng, m * nh * hd));
    const cfg: ModelConfig = {
      vocabSize: 8,
      dim: nh * hd,
      nLayers: 0,
      nHeads: nh,
      ffnDim: 8,
      contextLength: t,
      normEps: 1e-5,
      ropeBase: base,
    };
    // the model builds the (cos, sin) table; borrow it through a tiny model's instance
    const A = arena();
    const tab = A.zeros(t * hd);
    const tv = A.w.f32(tab, t * hd);
    for (let p = 0; p < t; p++)
      for (let i = 0; i < hd / 2; i++) {
        const ang = p * cfg.ropeBase ** ((-2 * i) / hd);
        tv[p * hd + 2 * i] = Math.cos(ang);
        tv[p * hd + 2 * i + 1] = Math.sin(ang);
      }
    const x = A.put(xv);
    A.x.rope(x, tab, m, t, nh, hd, 1);
    expect(relErr(A.get(x, xv.length), refRope(xv, m, t, nh, hd, base))).toBeLessThan(1e-6);
    const g = A.put(dy);
    A.x.rope(g, tab, m, t, nh, hd, -1);
    expect(
      relErr(
        A.get(g, dy.length),
        fdGrad(xv, dy, (xx) => refRope(xx, m, t, nh, hd, base)),
      ),
    ).toBeLessThan(1e-5);
  });

  it('causal attention: dq, dk, dv over several 32-row blocks', () => {
    const rng = new Rng(4);
    const [bsz, t, nh, hd] = [2, 37, 2, 4];
    const n = bsz * t * nh * hd;
    const qv = f32r(randVec(rng, n));
    const kv = f32r(randVec(rng, n));
    const vv = f32r(randVec(rng, n));
    const dy = f32r(randVec(rng, n));
    const A = arena();
    const [q, k, v] = [A.put(qv), A.put(kv), A.put(vv)];
    const out = A.zeros(n);
    const p = A.zeros(bsz * nh * t * t);
    const scratch = A.zeros(t * t + t * hd);
    A.x.attentionForward(out, p, q, k, v, scratch, bsz, t, nh, hd);
    expect(relErr(A.get(out, n), refAttention(qv, kv, vv, bsz, t, nh, hd))).toBeLessThan(1e-5);
    const [dq, dk, dv] = [A.zeros(n), A.zeros(n), A.zeros(n)];
    A.x.attentionBackward(dq, dk, dv, A.put(dy), p, q, k, v, scratch, bsz, t, nh, hd);
    const tol = 1e-4; // f32 softmax over up to 37 keys
    expect(
      relErr(
        A.get(dq, n),
        fdGrad(qv, dy, (x) => refAttention(x, kv, vv, bsz, t, nh, hd)),
      ),
    ).toBeLessThan(tol);
    expect(
      relErr(
        A.get(dk, n),
        fdGrad(kv, dy, (x) => refAttention(qv, x, vv, bsz, t, nh, hd)),
      ),
    ).toBeLessThan(tol);
    expect(
      relErr(
        A.get(dv, n),
        fdGrad(vv, dy, (x) => refAttention(qv, kv, x, bsz, t, nh, hd)),
      ),
    ).toBeLessThan(tol);
  });

  it('swiglu: dg and du', () => {
    const rng = new Rng(5);
    const n = 23;
    const gv = f32r(randVec(rng, n, 6));
    const uv = f32r(randVec(rng, n, 2));
    const dy = f32r(randVec(rng, n));
    const A = arena();
    const [g, u] = [A.put(gv), A.put(uv)];
    const h = A.zeros(n);
    A.x.swigluForward(h, g, u, n);
    expect(relErr(A.get(h, n), refSwiglu(gv, uv))).toBeLessThan(1e-6);
    const [dg, du] = [A.zeros(n), A.zeros(n)];
    A.x.swigluBackward(dg, du, A.put(dy), g, u, n);
    expect(
      relErr(
        A.get(dg, n),
        fdGrad(gv, dy, (x) => refSwiglu(x, uv)),
      ),
    ).toBeLessThan(1e-5);
    expect(
      relErr(
        A.get(du, n),
        fdGrad(uv, dy, (x) => refSwiglu(gv, x)),
      ),
    ).toBeLessThan(1e-5);
  });

  it('embedding: lookup, and the backward scatters into the used rows (repeats add up)', () => {
    const rng = new Rng(6);
    const [vocab, d] = [5, 8];
    const tokens = [3, 1, 3, 0];
    const table = f32r(randVec(rng, vocab * d));
    const dy = f32r(randVec(rng, tokens.length * d));
    const A = arena();
    const tab = A.put(table);
    const ids = A.putI(tokens);
    const x = A.zeros(tokens.length * d);
    A.x.embeddingForward(x, ids, tab, tokens.length, d);
    const lookup = (tb: Vec) =>
      Float64Array.from({ length: tokens.length * d }, (_, i) => tb[tokens[Math.floor(i / d)] * d + (i % d)]);
    expect(relErr(A.get(x, tokens.length * d), lookup(table))).toBe(0);
    const dt = A.zeros(vocab * d);
    A.x.embeddingBackward(dt, A.put(dy), ids, tokens.length, d);
    expect(
      relErr(
        A.get(dt, vocab * d),
        fdGrad(
          table,
          new Float64Array([1]),
          (tb) => [lookup(tb).reduce((s, v, i) => s + v * dy[i], 0)] as unknown as Vec,
        ),
      ),
    ).toBeLessThan(1e-6);
  });

  it('softmax cross-entropy: loss and dlogits, weighted rows, zero-weight rows get no gradient', () => {
    const rng = new Rng(7);
    const [m, v] = [4, 11];
    const lv = f32r(randVec(rng, m * v, 4));
    const targets = [2, 10, 0, 5];
    const weights = [1, 0.5, 0, 2];
    const A = arena();
    const l = A.put(lv);
    const loss = A.x.crossEntropy(l, A.putI(targets), A.put(weights), m, v, 0.25);
    const ref = refCrossEntropy(lv, targets, weights, m, v);
    expect(Math.abs(loss - ref) / ref).toBeLessThan(1e-6);
    const fd = fdGrad(lv, new Float64Array([0.25]), (x) =>
      Float64Array.of(refCrossEntropy(x, targets, weights, m, v)),
    );
    expect(relErr(A.get(l, m * v), fd)).toBeLessThan(1e-5);
    expect(
      A.get(l, m * v)
        .subarray(2 * v, 3 * v)
        .every((g) => g === 0),
    ).toBe(true);
  });

  it('fast exp: relative error below 1e-6 over the range softmax uses', () => {
    const xs = Float64Array.from({ length: 401 }, (_, i) => -80 + i * 0.2);
    const A = arena();
    const p = A.put(xs);
    A.x.expInPlace(p, xs.length);
    const got = A.get(p, xs.length);
    const x32 = f32r(xs);
    let worst = 0;
    for (let i = 0; i < xs.length; i++)
      worst = Math.max(worst, Math.abs(got[i] - Math.exp(x32[i])) / Math.exp(x32[i]));
    expect(worst).toBeLessThan(1e-6);
  });

  it('adamw: one step equals the formula (bias correction, decoupled decay, gradient scale)', () => {
    const A = arena();
    const p = A.put([0.5, -1, 2]);
    const g = A.put([0.1, -0.2, 0]);
    const m = A.put([0.01, 0, 0.3]);
    const v = A.put([0.001, 0.002, 0]);
    const [lr, b1, b2, eps, wd, t, gs] = [0.01, 0.9, 0.95, 1e-8, 0.1, 3, 0.5];
    A.x.adamw(p, g, m, v, 3, lr, b1, b2, eps, wd, 1 - b1 ** t, 1 - b2 ** t, gs);
    const want = [0.5, -1, 2].map((pi, i) => {
      const gi = [0.1, -0.2, 0][i] * gs;
      const mi = b1 * [0.01, 0, 0.3][i] + (1 - b1) * gi;
      const vi = b2 * [0.001, 0.002, 0][i] + (1 - b2) * gi * gi;
      return pi - lr * (mi / (1 - b1 ** t) / (Math.sqrt(vi / (1 - b2 ** t)) + eps) + wd * pi);
    });
    expect(relErr(A.get(p, 3), want)).toBeLessThan(1e-6);
  });
});

const tiny: ModelConfig = {
  vocabSize: 11,
  dim: 8,
  nLayers: 2,
  nHeads: 2,
  ffnDim: 12,
  contextLength: 40,
  normEps: 1e-5,
  ropeBase: 10000,
};

// parameters away from the initialisation (norm weights ≠ 1) so every path carries gradient
function tinyParams(seed: number): Float32Array {
  const p = initParams(tiny, seed);
  const rng = new Rng(seed + 1);
  for (let i = 0; i < p.length; i++) p[i] += (rng.next() - 0.5) * 0.5;
  for (const t of paramLayout(tiny).tensors)
    if (!t.decay) for (let i = 0; i < t.cols; i++) p[t.offset + i] = 1 + (rng.next() - 0.5) * 0.4;
  return p;
}

describe('train model', () => {
  it('whole-model gradient of a tiny config vs finite differences of the float64 reference', () => {
    const [B, T] = [2, 5];
    const m = new TrainModel(tiny, B, T);
    const p = tinyParams(1);
    m.setParams(p);
    const rng = new Rng(3);
    const tokens = Int32Array.from({ length: B * T }, () => rng.int(tiny.vocabSize));
    const targets = Int32Array.from({ length: B * T }, () => rng.int(tiny.vocabSize));
    const weights = Float32Array.from({ length: B * T }, (_, i) => (i % 3 === 0 ? 0 : 1));
    m.zeroGrads();
    const loss = m.step(tokens, targets, weights, 1);
    const ref = refModelLoss(tiny, p, tokens, targets, weights, B, T);
    expect(Math.abs(loss - ref) / ref).toBeLessThan(1e-6);
    const g = m.gradView();
    const pd = Float64Array.from(p);
    for (const t of paramLayout(tiny).tensors) {
      const fd: number[] = [];
      const got: number[] = [];
      for (let i = 0; i < t.rows * t.cols; i++) {
        const j = t.offset + i;
        const o = pd[j];
        pd[j] = o + H;
        const a = refModelLoss(tiny, pd, tokens, targets, weights, B, T);
        pd[j] = o - H;
        const b = refModelLoss(tiny, pd, tokens, targets, weights, B, T);
        pd[j] = o;
        fd.push((a - b) / (2 * H));
        got.push(g[j]);
      }
      expect(relErr(got, fd), t.name).toBeLessThan(1e-5);
    }
  });

  it('no cheating: changing tokens after position t changes neither the loss nor the gradients at positions ≤ t', () => {
    const [B, T, cut] = [1, 36, 20];
    const rng = new Rng(9);
    const tokens = Int32Array.from({ length: T }, () => rng.int(tiny.vocabSize));
    const targets = Int32Array.from({ length: T }, () => rng.int(tiny.vocabSize));
    // score only positions ≤ cut
    const weights = Float32Array.from({ length: T }, (_, i) => (i <= cut ? 1 : 0));
    const run = (toks: Int32Array) => {
      const m = new TrainModel(tiny, B, T);
      m.setParams(tinyParams(2));
      m.zeroGrads();
      const loss = m.step(toks, targets, weights, 1);
      return { loss, grads: m.gradView().slice(), logits: m.forward(toks).slice() };
    };
    const a = run(tokens);
    const changed = tokens.slice();
    for (let i = cut + 1; i < T; i++)
      changed[i] = (changed[i] + 1 + rng.int(tiny.vocabSize - 1)) % tiny.vocabSize;
    const b = run(changed);
    expect(b.loss).toBe(a.loss);
    expect(b.grads).toEqual(a.grads);
    const V = tiny.vocabSize;
    expect(b.logits.subarray(0, (cut + 1) * V)).toEqual(a.logits.subarray(0, (cut + 1) * V));
    // and the check can fail: a change at position cut does move the loss
    const c = tokens.slice();
    c[cut] = (c[cut] + 1) % V;
    expect(run(c).loss).not.toBe(a.loss);
  });
});
