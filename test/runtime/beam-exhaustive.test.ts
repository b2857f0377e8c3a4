// Exhaustive search: with numBeams ≥ V^L, beam search must return exactly the most probable
// sequences, each with its score. Every sequence is enumerated and scored with the float64
// reference forward (TinyLM.fullLogits). Tolerance 1e-9 on scores (same float64 sums).
import { describe, expect, it } from 'vitest';
import { type BeamConfig, beamSearch } from '../../runtime/beam.ts';
import { TinyLM, tinyTokenizer } from '../helpers/tiny-lm.ts';

function logSoftmax(x: Float64Array): number[] {
  const m = Math.max(...x);
  const lse = m + Math.log(x.reduce((s, v) => s + Math.exp(v - m), 0));
  return Array.from(x, (v) => v - lse);
}

// all continuations of length 1..L (EOS only as the last token when `eos` is set; length L when not)
function enumerate(model: TinyLM, prompt: number[], V: number, L: number, eos: number | undefined) {
  const out: Array<{ tokens: number[]; sum: number }> = [];
  const walk = (tokens: number[], sum: number) => {
    const lp = logSoftmax(model.fullLogits(prompt.concat(tokens)));
    for (let v = 0; v < V; v++) {
      const next = tokens.concat(v);
      const s = sum + lp[v];
      if (v === eos || next.length === L) out.push({ tokens: next, sum: s });
      else walk(next, s);
    }
  };
  walk([], 0);
  return out;
}

async function search(model: TinyLM, prompt: number[], cfg: BeamConfig) {
  const it = beamSearch(model, tinyTokenizer(model.info.vocabSize), prompt, cfg);
  let r = await it.next();
  while (!r.done) r = await it.next();
  return r.value.hypotheses;
}

const base = {
  minNewTokens: 0,
  noRepeatNgramSize: 0,
  repetitionPenalty: 1,
  presencePenalty: 0,
  frequencyPenalty: 0,
  stop: [],
};

describe('beam search is exact when numBeams ≥ V^L', () => {
  for (const V of [3, 4, 5]) {
    for (const L of [2, 3, 4]) {
      it(`V=${V} L=${L}: every fixed-length sequence, ranked by probability`, async () => {
        const model = new TinyLM({ vocab: V, seed: V * 10 + L, scale: 1.5 });
        const prompt = [1];
        const all = enumerate(model, prompt, V, L, undefined).sort((a, b) => b.sum - a.sum);
        const B = V ** L;
        expect(all.length).toBe(B);
        const cfg: BeamConfig = {
          ...base,
          numBeams: B,
          lengthPenalty: 1,
          earlyStopping: 'never',
          maxNewTokens: L,
          numReturnSequences: B,
          eosIds: [],
          vocabLimit: V,
        };
        const got = await search(model, prompt, cfg);
        expect(got.map((h) => h.tokens)).toEqual(all.map((a) => a.tokens));
        for (let i = 0; i < B; i++)
          expect(Math.abs(got[i].sumLogprobs - all[i].sum)).toBeLessThanOrEqual(1e-9);
        // the probabilities of all sequences sum to 1 (tolerance 1e-9)
        expect(Math.abs(got.reduce((s, h) => s + Math.exp(h.sumLogprobs), 0) - 1)).toBeLessThanOrEqual(1e-9);
      });

      for (const lp of [0, 1, 2, 0.5]) {
        it(`V=${V} L=${L} with EOS mid-sequence, lengthPenalty ${lp}: ranked by sum / len^${lp}`, async () => {
          const model = new TinyLM({ vocab: V, seed: 77 + V * 10 + L, scale: 1.5, eos: 0, eosBias: 0.5 });
          const prompt = [2, 1];
          const all = enumerate(model, prompt, V, L, 0)
            .map((a) => ({ ...a, score: a.sum / a.tokens.length ** lp }))
            .sort((a, b) => b.score - a.score);
          const B = V ** L;
          const cfg: BeamConfig = {
            ...base,
            numBeams: B,
            lengthPenalty: lp,
            earlyStopping: 'never',
            maxNewTokens: L,
            numReturnSequences: B,
            eosIds: [0],
            vocabLimit: V,
          };
          const got = await search(model, prompt, cfg);
          expect(got.length).toBe(all.length);
          expect(got.map((h) => h.tokens)).toEqual(all.map((a) => a.tokens));
          for (let i = 0; i < all.length; i++)
            expect(Math.abs(got[i].score - all[i].score)).toBeLessThanOrEqual(1e-9);
          expect(got.some((h) => h.tokens.length < L)).toBe(true);
        });
      }
    }
  }
});
