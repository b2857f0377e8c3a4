// A tiny model memorises a tiny text: the optimiser, schedule and gradients work together.
import { describe, expect, it } from 'vitest';
import { learningRate, type PhaseConfig } from '../../scripts/train/config.ts';
import { initParams, type ModelConfig, TrainModel } from '../../scripts/train/model.ts';

describe('train: overfitting', () => {
  it('a tiny model drives the loss on one short text to near zero', () => {
    const text = 'the quick brown fox jumps over the lazy dog. ';
    const chars = [...new Set(text)];
    const ids = Array.from(text, (c) => chars.indexOf(c));
    const T = ids.length - 1;
    const cfg: ModelConfig = {
      vocabSize: chars.length,
      dim: 32,
      nLayers: 2,
      nHeads: 2,
      ffnDim: 64,
      contextLength: T,
      normEps: 1e-5,
      ropeBase: 10000,
    };
    const m = new TrainModel(cfg, 1, T, { optimizer: true });
    m.setParams(initParams(cfg, 1));
    const tokens = Int32Array.from(ids.slice(0, T));
    const targets = Int32Array.from(ids.slice(1));
    const weights = new Float32Array(T).fill(1);
    const ph: PhaseConfig = {
      steps: 300,
      batch: 1,
      seqLen: T,
      accum: 1,
      lr: 1e-2,
      minLr: 1e-3,
      warmup: 10,
      weightDecay: 0,
      beta1: 0.9,
      beta2: 0.99,
      eps: 1e-8,
      gradClip: 1,
      evalEvery: 100,
      evalBatches: 1,
    };
    let first = 0;
    let last = 0;
    for (let s = 0; s < ph.steps; s++) {
      m.zeroGrads();
      const loss = m.step(tokens, targets, weights, 1 / T) / T;
      if (s === 0) first = loss;
      last = loss;
      const g = Math.sqrt(m.gradNormSq());
      m.adamStep({
        lr: learningRate(ph, s),
        beta1: ph.beta1,
        beta2: ph.beta2,
        eps: ph.eps,
        weightDecay: 0,
        t: s + 1,
        gscale: g > 1 ? 1 / g : 1,
      });
    }
    expect(first).toBeGreaterThan(Math.log(chars.length) * 0.8); // starts near uniform
    expect(last).toBeLessThan(0.02); // nats per character
  });

  it('learning rate: linear warm-up, cosine down to minLr', () => {
    const ph = { steps: 100, warmup: 10, lr: 1, minLr: 0.1 } as PhaseConfig;
    expect(learningRate(ph, 0)).toBeCloseTo(0.1, 12);
    expect(learningRate(ph, 9)).toBeCloseTo(1, 12);
    expect(learningRate(ph, 55)).toBeCloseTo(0.55, 12); // halfway through the decay
    expect(learningRate(ph, 100)).toBeCloseTo(0.1, 12);
  });
});
