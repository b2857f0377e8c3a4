// Row builders of the training data: instruction packing scores only response tokens (and <|end|>),
// keeps examples whole, pads with weight 0; vocabulary growth keeps old rows and starts new ones at
// the mean; splitting a micro-batch in halves of rows (two threads) gives the same gradient.
import { describe, expect, it } from 'vitest';
import type { Pair } from '../../scripts/data/instruct.ts';
import { type Example, emptyBatch, Packer } from '../../scripts/train/data.ts';
import {
  growVocab,
  initParams,
  type ModelConfig,
  paramLayout,
  Rng,
  TrainModel,
} from '../../scripts/train/model.ts';

const pair: Pair = { prompt: '', response: '', kind: 'add' };
// prompt ids 100+, response ids 200+, end = 9, pad = 9
const ex = (p: number, r: number): Example => ({
  prompt: Array.from({ length: p }, (_, i) => 100 + i),
  response: [...Array.from({ length: r }, (_, i) => 200 + i), 9],
  pair,
});

describe('train data: instruction packing', () => {
  it('scores exactly the response tokens and <|end|>, keeps examples whole, pads the rest', () => {
    const examples = [ex(3, 2), ex(4, 1), ex(2, 5)];
    const packer = new Packer(examples, 9, 1);
    const T = 12;
    const b = emptyBatch(2, T);
    packer.fillRow(b, 0, T);
    packer.fillRow(b, 1, T);
    for (let r = 0; r < 2; r++) {
      for (let i = 0; i < T; i++) {
        const k = r * T + i;
        const tgt = b.targets[k];
        // a target is scored iff it is a response token or <|end|> following a real token
        const isResponse = tgt >= 200 || (tgt === 9 && b.tokens[k] >= 200);
        expect(b.weights[k], `row ${r} pos ${i}`).toBe(isResponse ? 1 : 0);
        if (i + 1 < T) expect(b.tokens[k + 1]).toBe(tgt); // targets are the next tokens
      }
    }
    // the first example of each row starts at position 0 with its prompt
    expect(b.tokens[0]).toBe(100);
    expect(b.tokens[T]).toBe(100);
    // every example appears whole: count response starts (id 200) over both rows = examples used
    const starts = Array.from(b.tokens).filter((t) => t === 200).length;
    expect(starts).toBeGreaterThanOrEqual(2);
  });

  it('a resumed packer continues with the same examples', () => {
    const examples = Array.from({ length: 20 }, (_, i) => ex(2 + (i % 3), 1 + (i % 4)));
    const a = new Packer(examples, 9, 5);
    const T = 16;
    const b1 = emptyBatch(1, T);
    for (let i = 0; i < 7; i++) a.fillRow(b1, 0, T);
    const c = new Packer(examples, 9, 5);
    c.seek(a.cursor, a.epoch);
    const b2 = emptyBatch(1, T);
    a.fillRow(b1, 0, T);
    c.fillRow(b2, 0, T);
    expect(b2.tokens).toEqual(b1.tokens);
    expect(b2.weights).toEqual(b1.weights);
  });
});

describe('train model: vocabulary growth and data parallel split', () => {
  const cfg: ModelConfig = {
    vocabSize: 10,
    dim: 8,
    nLayers: 1,
    nHeads: 2,
    ffnDim: 8,
    contextLength: 8,
    normEps: 1e-5,
    ropeBase: 10000,
  };

  it('growVocab keeps every old value and starts new embedding/output rows at the mean row', () => {
    const p = initParams(cfg, 3);
    const g = growVocab(cfg, p, 13);
    const a = paramLayout(cfg).tensors;
    const b = paramLayout({ ...cfg, vocabSize: 13 }).tensors;
    for (const t of b) {
      const s = a.find((x) => x.name === t.name);
      if (!s) throw new Error(t.name);
      expect(g.subarray(t.offset, t.offset + s.rows * s.cols)).toEqual(
        p.subarray(s.offset, s.offset + s.rows * s.cols),
      );
      if (t.rows !== s.rows) {
        for (let j = 0; j < t.cols; j++) {
          let mean = 0;
          for (let r = 0; r < s.rows; r++) mean += p[s.offset + r * s.cols + j];
          mean /= s.rows;
          for (let r = s.rows; r < t.rows; r++) expect(g[t.offset + r * t.cols + j]).toBeCloseTo(mean, 6);
        }
      }
    }
  });

  it('two half-batches summed give the gradient of the whole batch (the two-thread split)', () => {
    const [B, T] = [4, 8];
    const rng = new Rng(11);
    const tokens = Int32Array.from({ length: B * T }, () => rng.int(cfg.vocabSize));
    const targets = Int32Array.from({ length: B * T }, () => rng.int(cfg.vocabSize));
    const weights = new Float32Array(B * T).fill(1);
    const p = initParams(cfg, 4);
    const whole = new TrainModel(cfg, B, T);
    whole.setParams(p);
    whole.zeroGrads();
    const lw = whole.step(tokens, targets, weights, 1 / (B * T));
    const half = new TrainModel(cfg, B / 2, T);
    half.setParams(p);
    half.zeroGrads();
    const n = (B / 2) * T;
    let lh = half.step(tokens.slice(0, n), targets.slice(0, n), weights.slice(0, n), 1 / (B * T));
    lh += half.step(tokens.slice(n), targets.slice(n), weights.slice(n), 1 / (B * T));
    expect(Math.abs(lh - lw) / lw).toBeLessThan(1e-6);
    const gw = whole.gradView();
    const gh = half.gradView();
    let d = 0;
    let mx = 0;
    for (let i = 0; i < gw.length; i++) {
      d = Math.max(d, Math.abs(gw[i] - gh[i]));
      mx = Math.max(mx, Math.abs(gw[i]));
    }
    expect(d / mx).toBeLessThan(1e-5); // f32, summation order differs
  });
});
