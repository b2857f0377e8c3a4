// The model helper's random models (test/helpers/random-model.ts) checked by llama.cpp itself
// (wllama compat build in Node): gpt2 (LayerNorm with bias, learned positions, fused qkv, GELU,
// tied output) and llama with GQA and a tied output, which the float64 reference alone cannot
// vouch for — a shared misreading of the conventions would pass there. Greedy tokens with teacher
// forcing: wherever our top-2 margin is above float noise, llama.cpp must pick our top token.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createRuntime } from '../../runtime/index.ts';
import { compareWithLlamaCpp } from '../helpers/llamacpp-compare.ts';
import { type RandomModelOptions, randomModel } from '../helpers/random-model.ts';

const dir = mkdtempSync(join(tmpdir(), 'edgelm-model-llamacpp-'));
const runtime = createRuntime(new WebAssembly.Module(readFileSync('build/kernels.wasm')));
const PROMPT = 'the cat sat on a mat';
const N = 24;
// f32 sums in different orders differ by ~1e-5 relative on logits of this size
const MARGIN = 1e-3;

const cases: Array<[string, RandomModelOptions]> = [
  [
    'gpt2 f32, tied output',
    {
      arch: 'gpt2',
      dim: 64,
      nLayers: 2,
      nHeads: 4,
      ffnDim: 128,
      vocab: 512,
      context: 128,
      seed: 3,
      scale: 3,
      asciiOnly: true,
    },
  ],
  [
    'gpt2 f32, separate output',
    {
      arch: 'gpt2',
      dim: 48,
      nLayers: 3,
      nHeads: 3,
      ffnDim: 96,
      vocab: 400,
      context: 64,
      seed: 4,
      scale: 3,
      tied: false,
      asciiOnly: true,
    },
  ],
  [
    'llama f32, GQA 8/2, tied output, freq_base 5e5',
    {
      arch: 'llama',
      dim: 64,
      nLayers: 2,
      nHeads: 8,
      nKvHeads: 2,
      ffnDim: 96,
      vocab: 512,
      context: 128,
      seed: 5,
      scale: 3,
      tied: true,
      freqBase: 500000,
      asciiOnly: true,
    },
  ],
];

describe('llama.cpp agrees with the model helper’s random models', () => {
  it.each(cases)('%s: same greedy tokens where the margin is clear', async (name, o) => {
    const bytes = randomModel(o);
    const r = await compareWithLlamaCpp(runtime, bytes, {
      dir,
      name,
      prompt: PROMPT,
      n: N,
      context: o.context,
      margin: () => MARGIN,
    });
    expect(r.theirs.length).toBe(N);
    expect(r.ourPromptIds.length).toBe(r.theirPromptTokens);
    for (const c of r.clear) expect(c.theirs, `token ${c.step}`).toBe(c.ours);
    const compared = r.clear.length;
    expect(compared).toBeGreaterThanOrEqual(N / 2);
  });
});
