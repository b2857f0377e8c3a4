// Checked by llama.cpp itself (wllama's compat build in Node): files our writer produces load there,
// and for F32 llama models its greedy tokens equal ours wherever our top-2 logit margin is above
// float noise. For Q8_0/Q4_0 both quantise activations to Q8_0 but sum in different orders, so
// only wide margins are compared.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createRuntime } from '../../runtime/index.ts';
import { randomLlamaGGUF } from '../../scripts/lib/random-llama.ts';
import { loadWllama } from '../../scripts/lib/wllama-node.ts';

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

afterAll(() => {});

describe('llama.cpp agrees with edgelm', () => {
  for (const type of ['f32', 'q8_0', 'q4_0']) {
    it(`loads our ${type} GGUF and decodes the same greedy tokens`, async () => {
      // weights scaled up for peaked logits; quantised models less so: at ×3 the network is chaotic
      // enough that Q8 rounding differences grow past 1% of the logits within 16 tokens
      const bytes = randomLlamaGGUF(SHAPE, type, 11, type === 'f32' ? 3 : 2);
      const path = join(dir, `m-${type}.gguf`);
      writeFileSync(path, bytes);
      const ll = await loadWllama(path, 256);
      const theirs = await ll.complete(PROMPT, N, { withIds: true });
      await ll.exit();
      expect(theirs.tokens.length).toBe(N);

      const m = runtime.loadModel(bytes, { maxSequences: 1 });
      const ids = m.promptIds(PROMPT);
      // llama.cpp tokenized the same text: same count (BOS included)
      expect(ids.length).toBe(theirs.promptTokens);
      const seq = m.model.newSequence();
      let logits = m.model.prefill(seq, ids);
      let compared = 0;
      for (let i = 0; i < N; i++) {
        let a = 0;
        let b = -1;
        for (let v = 1; v < logits.length; v++) {
          if (logits[v] > logits[a]) {
            b = a;
            a = v;
          } else if (b < 0 || logits[v] > logits[b]) b = v;
        }
        const margin = type === 'f32' ? MARGIN : QMARGIN * Math.abs(logits[a]);
        // a near-tie may go either way; we follow llama.cpp's choice (teacher forcing) so the
        // sequences never fork, and compare every step whose margin is clear
        if (logits[a] - logits[b] >= margin) {
          expect(theirs.tokens[i], `token ${i}`).toBe(a);
          compared++;
        }
        logits = m.model.decode([seq], [theirs.tokens[i]]);
      }
      // the model is scaled so logits are peaked: most of the run must be comparable
      expect(compared).toBeGreaterThanOrEqual(N / 2);
    });
  }
});
