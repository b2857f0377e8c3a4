// The forward pass against the float64 reference (test/helpers/ref-forward.ts) on random models
// written through our GGUF writer, on every kernel implementation available.
import { describe, expect, it } from 'vitest';
import { parseGGUF } from '../../runtime/gguf.ts';
import { type RandomModelOptions, randomModel } from '../helpers/random-model.ts';
import { refForward } from '../helpers/ref-forward.ts';
import { argmax, kernelImpls, kl, load, maxDiff, tokenSeq } from './model-helpers.ts';

const impls = kernelImpls();
const PEAK_LLAMA = 8; // llama's residual stream carries the embedding less than gpt2's: a smaller scale peaks it

const f32Cases: Array<[string, RandomModelOptions, number]> = [
  // name, model, prompt length
  [
    'F32 llama MHA, untied output',
    { arch: 'llama', dim: 64, nLayers: 2, nHeads: 4, ffnDim: 96, vocab: 300, context: 64, seed: 1 },
    37,
  ],
  [
    'F32 llama GQA 8/2, tied output',
    {
      arch: 'llama',
      dim: 64,
      nLayers: 2,
      nHeads: 8,
      nKvHeads: 2,
      ffnDim: 128,
      vocab: 290,
      context: 64,
      tied: true,
      seed: 2,
    },
    33,
  ],
  [
    'llama all F16 (the reference reads the same f16 weights)',
    {
      arch: 'llama',
      dim: 48,
      nLayers: 2,
      nHeads: 4,
      ffnDim: 80,
      vocab: 270,
      context: 48,
      seed: 7,
      type: 'f16',
    },
    29,
  ],
  [
    'gpt2 all F16',
    {
      arch: 'gpt2',
      dim: 48,
      nLayers: 2,
      nHeads: 4,
      ffnDim: 80,
      vocab: 270,
      context: 48,
      seed: 8,
      type: 'f16',
    },
    29,
  ],
  [
    'F32 llama odd shapes (dim 42, 3 heads of 14, ffn 37, vocab 263), freq_base 500',
    {
      arch: 'llama',
      dim: 42,
      nLayers: 3,
      nHeads: 3,
      nKvHeads: 1,
      ffnDim: 37,
      vocab: 263,
      context: 40,
      seed: 3,
      freqBase: 500,
    },
    40,
  ],
  [
    'llama mixed F32/F16 (q, k, v and gate, up of different types: separate products)',
    {
      arch: 'llama',
      dim: 64,
      nLayers: 2,
      nHeads: 4,
      nKvHeads: 2,
      ffnDim: 96,
      vocab: 300,
      context: 64,
      seed: 6,
      typeOverrides: { 'attn_v.weight': 'f16', 'ffn_up.weight': 'f16', 'output.weight': 'f16' },
    },
    30,
  ],
  [
    'F32 gpt2, tied output',
    { arch: 'gpt2', dim: 48, nLayers: 2, nHeads: 4, ffnDim: 100, vocab: 280, context: 64, seed: 4 },
    35,
  ],
  [
    'F32 gpt2 odd shapes (dim 30, 5 heads of 6, ffn 50), untied output',
    {
      arch: 'gpt2',
      dim: 30,
      nLayers: 3,
      nHeads: 5,
      ffnDim: 50,
      vocab: 257,
      context: 24,
      tied: false,
      seed: 5,
    },
    24,
  ],
];

describe.each(impls)('model forward on $name kernels', (impl) => {
  it.each(f32Cases)(
    '%s: logits match the float64 reference at every position (≤ 1e-4 × max|logit|)',
    (_, o, T) => {
      const bytes = randomModel(o);
      const ref = refForward(parseGGUF(bytes), tokenSeq(T, o.vocab, o.seed! * 7));
      // prefillChunk 7: prompt rows go through in several chunks, attention spans several 16-position blocks
      const model = load(impl, bytes, { prefillChunk: 7 });
      const logits = model.prefill(model.newSequence(), tokenSeq(T, o.vocab, o.seed! * 7), true);
      expect(logits.length).toBe(T * o.vocab);
      for (let t = 0; t < T; t++) {
        const { diff, scale, at } = maxDiff(logits.subarray(t * o.vocab, (t + 1) * o.vocab), ref[t]);
        expect(diff, `position ${t}, token ${at}: |diff| ${diff} vs scale ${scale}`).toBeLessThanOrEqual(
          1e-4 * scale,
        );
      }
      // the default (last row only) is the same numbers
      const m2 = load(impl, bytes);
      const last = m2.prefill(m2.newSequence(), tokenSeq(T, o.vocab, o.seed! * 7));
      const { diff, scale } = maxDiff(last, ref[T - 1]);
      expect(diff).toBeLessThanOrEqual(1e-4 * scale);
    },
  );

  // Quantised weights against the F32 source weights (same seed). Random networks amplify weight
  // noise: Q4_0 on uniform weights is 6.5 % RMS error per weight, and it reaches the logits as ~35 %
  // of their spread, so on unpeaked random logits no Q4_0 implementation keeps 95 % of argmaxes.
  // Two models per architecture therefore:
  //  - peaked (tied embeddings, scale 8 for llama and 14 for gpt2: the logits have a clear winner, as a trained model's
  //    mostly do): argmax agreement ≥ 99 % (Q8_0) and ≥ 95 % (Q4_0) of positions;
  //  - unpeaked (scale 1): mean KL(ref ‖ ours) ≤ 1e-3 nats (Q8_0) and ≤ 0.15 nats (Q4_0); measured
  //    with the float64 reference itself on the quantised weights: ~3e-4 and ~7e-2.
  const quantBase: Array<[string, RandomModelOptions, number]> = [
    // name, model, scale of the peaked variant
    [
      'llama',
      {
        arch: 'llama',
        dim: 64,
        nLayers: 2,
        nHeads: 4,
        nKvHeads: 2,
        ffnDim: 128,
        vocab: 320,
        context: 64,
        seed: 11,
      },
      PEAK_LLAMA,
    ],
    [
      'gpt2',
      { arch: 'gpt2', dim: 64, nLayers: 2, nHeads: 4, ffnDim: 128, vocab: 300, context: 64, seed: 12 },
      14,
    ],
  ];
  const quantTypes = [
    ['q8_0', 0.99, 1e-3],
    ['q4_0', 0.95, 0.15],
  ] as const;
  const prompts = [0, 1, 2, 3].map((i) => tokenSeq(48, 300, 100 + i));
  const measure = (o: RandomModelOptions, type: 'q8_0' | 'q4_0') => {
    const ref = prompts.map((p) => refForward(parseGGUF(randomModel({ ...o, type: 'f32' })), p));
    const model = load(impl, randomModel({ ...o, type }));
    let agree = 0;
    let total = 0;
    let klSum = 0;
    for (let p = 0; p < prompts.length; p++) {
      const seq = model.newSequence();
      const logits = model.prefill(seq, prompts[p], true);
      model.free(seq);
      for (let t = 0; t < prompts[p].length; t++) {
        const r = ref[p][t];
        if (argmax(logits, t * o.vocab, o.vocab) === argmax(r)) agree++;
        klSum += kl(r, logits, t * o.vocab, o.vocab);
        total++;
      }
    }
    return { agree: agree / total, kl: klSum / total };
  };
  describe.each(quantBase)('%s quantised', (arch, o, peak) => {
    it.each(quantTypes)('%s, peaked logits: argmax agreement with the F32 source ≥ %d', (type, minAgree) => {
      const r = measure({ ...o, tied: true, scale: peak }, type);
      console.log(
        `${impl.name} ${arch} ${type} peaked: argmax agreement ${(r.agree * 100).toFixed(1)} %, mean KL ${r.kl.toExponential(2)}`,
      );
      expect(r.agree).toBeGreaterThanOrEqual(minAgree);
    });
    it.each(quantTypes.map(([t, , maxKl]) => [t, maxKl] as const))(
      '%s, unpeaked logits: mean KL from the F32 source ≤ %d',
      (type, maxKl) => {
        const r = measure(o, type);
        console.log(
          `${impl.name} ${arch} ${type} unpeaked: argmax agreement ${(r.agree * 100).toFixed(1)} %, mean KL ${r.kl.toExponential(2)}`,
        );
        expect(r.kl).toBeLessThanOrEqual(maxKl);
      },
    );
  });
});
