// Checked by llama.cpp itself (wllama's compat build in Node): files our writer produces load there,
// and for F32 llama models its greedy tokens equal ours wherever our top-2 logit margin is above
// float noise. For Q8_0/Q4_0 both quantise activations to Q8_0 but sum in different orders, so
// only wide margins are compared.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createRuntime } from '../../runtime/index.ts';
import { randomLlamaGGUF } from '../../scripts/lib/random-llama.ts';
import { compareWithLlamaCpp } from '../helpers/llamacpp-compare.ts';

const dir = mkdtempSync(join(tmpdir(), 'edgelm-llamacpp-'));
const simd = new WebAssembly.Module(readFileSync('build/kernels.wasm'));
const runtime = createRuntime(simd);
const SHAPE = { dim: 64, layers: 2, heads: 4, kvHeads: 2, ffn: 160, vocab: 512, ctx: 256 };
const PROMPT = 'the cat sat on a mat';
const N = 24;
// below this top-1/top-2 gap the two runtimes may legitimately pick differently (f32 sums in
// different orders differ by ~1e-5 relative on logits of this size)
const MARGIN = 1e-3;
// quantised: llama.cpp also keeps K/V in f16; gaps under 1% of the top logit may flip
const QMARGIN = 0.01;

describe('llama.cpp agrees with edgelm', () => {
  for (const type of ['f32', 'q8_0', 'q4_0']) {
    it(`loads our ${type} GGUF and decodes the same greedy tokens`, async () => {
      // weights scaled up for peaked logits; quantised models less so: at ×3 the network is chaotic
      // enough that Q8 rounding differences grow past 1% of the logits within 16 tokens
      const bytes = randomLlamaGGUF(SHAPE, type, 11, type === 'f32' ? 3 : 2);
      const r = await compareWithLlamaCpp(runtime, bytes, {
        dir,
        name: `m-${type}`,
        prompt: PROMPT,
        n: N,
        context: 256,
        margin: (top) => (type === 'f32' ? MARGIN : QMARGIN * Math.abs(top)),
      });
      expect(r.theirs.length).toBe(N);
      // llama.cpp tokenized the same text: same count (BOS included)
      expect(r.ourPromptIds.length).toBe(r.theirPromptTokens);
      for (const c of r.clear) expect(c.theirs, `token ${c.step}`).toBe(c.ours);
      const compared = r.clear.length;
      // the model is scaled so logits are peaked: most of the run must be comparable
      expect(compared).toBeGreaterThanOrEqual(N / 2);
    });
  }
});
