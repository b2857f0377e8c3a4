// Decoding on real (random, tiny) GGUF models through the WASM kernels: batched beam search with
// copy-on-write KV forks against the reference beam search that recomputes every hypothesis with a
// fresh prefill (no cache sharing, no batching). Logits are f32 from two kernel paths (prefill rows
// vs batched decode rows), so scores agree to 1e-4 (absolute, scores are O(1–10)) and sequences
// are identical on these seeds (margins between candidates are far above f32 noise).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { COMPLETION_TEXT } from '../../runtime/beam.ts';
import { type GenerateEvent, generate } from '../../runtime/generate.ts';
import { parseGGUF } from '../../runtime/gguf.ts';
import { createKernels } from '../../runtime/kernels.ts';
import { Model } from '../../runtime/model.ts';
import { tokenizerFromGGUF } from '../../runtime/tokenizer.ts';
import { randomModel } from '../helpers/random-model.ts';
import { refBeamSearch } from '../helpers/ref-beam.ts';

const wasm = new WebAssembly.Module(readFileSync('build/kernels.wasm'));

function setup(arch: 'llama' | 'gpt2', seed: number, maxSequences: number) {
  const bytes = randomModel({
    arch,
    dim: 32,
    nLayers: 2,
    nHeads: 4,
    ffnDim: 64,
    vocab: 300,
    context: 64,
    seed,
    scale: 4,
  });
  const file = parseGGUF(bytes);
  const model = Model.load(createKernels(wasm), file, { maxSequences });
  const tokenizer = tokenizerFromGGUF(file);
  const fresh = (prefix: number[]) => {
    const s = model.newSequence();
    try {
      return Float64Array.from(model.prefill(s, prefix));
    } finally {
      model.free(s);
    }
  };
  return { model, tokenizer, fresh };
}

describe('decoding on random GGUF models (WASM kernels)', () => {
  for (const arch of ['llama', 'gpt2'] as const) {
    for (const [B, lengthPenalty, earlyStopping] of [
      [4, 1, false],
      [3, 2, 'never'],
      [6, 0.5, true],
    ] as const) {
      it(`${arch}: beam search B=${B} lp=${lengthPenalty} es=${earlyStopping} = reference with fresh prefills`, async () => {
        const { model, tokenizer, fresh } = setup(arch, 7 + B, B);
        const free0 = model.freeBlocks();
        const prompt = [5, 17, 99, 42];
        const eos = tokenizer.eos!;
        const maxNewTokens = 10;
        // a token the model likes early on becomes a stop token id, so hypotheses end mid-sequence
        let stopId = -1;
        for await (const ev of generate(model, tokenizer, prompt, { maxNewTokens: 3, ignoreEos: true })) {
          if (ev.type === 'done') stopId = ev.result.sequences[0].tokens[2];
        }
        const opts = {
          numBeams: B,
          numReturnSequences: B,
          maxNewTokens,
          lengthPenalty,
          earlyStopping,
          noRepeatNgramSize: 2,
          stopTokenIds: [stopId],
        };
        let done: any;
        let steps = 0;
        for await (const ev of generate(model, tokenizer, prompt, opts)) {
          if (ev.type === 'done') done = ev.result;
          if (ev.type === 'beams') steps++;
        }
        const ref = refBeamSearch(fresh, model.info.vocabSize, prompt, {
          ...opts,
          minNewTokens: 0,
          repetitionPenalty: 1,
          eosIds: [eos, stopId],
          stop: [],
        });
        // (lengthPenalty 2 favours long hypotheses, so only the others must show an early stop)
        if (lengthPenalty <= 1) {
          expect(
            done.sequences.some((s: any) => s.finishReason === 'stop' && s.tokens.length < maxNewTokens),
          ).toBe(true);
        }
        expect(done.sequences.map((s: any) => s.tokens)).toEqual(ref.map((r) => r.tokens));
        for (let i = 0; i < ref.length; i++) {
          expect(Math.abs(done.sequences[i].score - ref[i].score)).toBeLessThanOrEqual(1e-4);
        }
        expect(steps).toBeGreaterThan(1);
        // every KV block went back to the pool
        expect(model.freeBlocks()).toBe(free0);
      });
    }

    it(`${arch}: greedy = argmax of fresh prefills at every step`, async () => {
      const { model, tokenizer, fresh } = setup(arch, 3, 1);
      const prompt = [1, 2, 3];
      let done: any;
      for await (const ev of generate(model, tokenizer, prompt, { maxNewTokens: 12, ignoreEos: true })) {
        if (ev.type === 'done') done = ev.result;
      }
      const toks: number[] = done.sequences[0].tokens;
      expect(toks.length).toBe(12);
      for (let i = 0; i < toks.length; i++) {
        const row = fresh(prompt.concat(toks.slice(0, i)));
        let best = 0;
        for (let v = 1; v < row.length; v++) if (row[v] > row[best]) best = v;
        expect(toks[i]).toBe(best);
      }
    });
    it(`${arch}: streamed text = result text = decode(tokens) with the real tokenizer (sampling and beams)`, async () => {
      const { model, tokenizer } = setup(arch, 11, 4);
      const eos = tokenizer.eos;
      for (const opts of [
        { maxNewTokens: 40, temperature: 1.5, seed: 9, ignoreEos: true },
        { maxNewTokens: 40, temperature: 1.2, seed: 10, stop: ['a', ' t'] },
        { maxNewTokens: 12, numBeams: 4, numReturnSequences: 2 },
      ]) {
        const events: GenerateEvent[] = [];
        for await (const ev of generate(model, tokenizer, [3, 4, 5], opts)) events.push(ev);
        const done = events.at(-1) as Extract<GenerateEvent, { type: 'done' }>;
        const best = done.result.sequences[0];
        const streamed = events
          .filter((e): e is Extract<GenerateEvent, { type: 'token' }> => e.type === 'token')
          .map((e) => e.text)
          .join('');
        expect(streamed).toBe(best.text);
        const full = tokenizer.decode(
          best.tokens.filter((t) => t !== eos),
          COMPLETION_TEXT,
        );
        if (best.finishReason === 'stop' && opts.stop) expect(full.startsWith(best.text)).toBe(true);
        else expect(best.text).toBe(full);
      }
    });
    it(`${arch}: beams share the prompt's KV blocks (copy-on-write) while they run`, async () => {
      const { model, tokenizer } = setup(arch, 21, 4);
      const free0 = model.freeBlocks();
      const bs = model.blockSize;
      const prompt = Array.from({ length: 3 * bs }, (_, i) => 5 + ((i * 7) % 250));
      let checked = 0;
      for await (const ev of generate(model, tokenizer, prompt, {
        numBeams: 4,
        maxNewTokens: 6,
        ignoreEos: true,
      })) {
        if (ev.type !== 'beams' || ev.beams.length === 0) continue;
        const used = free0 - model.freeBlocks();
        // shared prompt blocks + at most one or two private blocks per beam; separate copies would need 4 × 4
        expect(used).toBeLessThanOrEqual(3 + 4 * 2);
        checked++;
      }
      expect(checked).toBeGreaterThan(2);
      expect(model.freeBlocks()).toBe(free0);
    });
  }
});
