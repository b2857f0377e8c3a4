// Beam search (runtime/beam.ts: batched, KV forks) against the plain reference in
// test/helpers/ref-beam.ts (recomputes every hypothesis from scratch) over hundreds of random tiny
// models and settings. Both run in float64 on the same logits, summing in the same order, so
// sequences must be identical and scores agree to 1e-9 (absolute; they are O(1–30)).
import { describe, expect, it } from 'vitest';
import { type BeamConfig, beamSearch } from '../../runtime/beam.ts';
import { createRng } from '../../runtime/prng.ts';
import { type RefBeamConfig, refBeamSearch, refStepLogprobs } from '../helpers/ref-beam.ts';
import { TinyLM, tinyTokenizer } from '../helpers/tiny-lm.ts';

const TOL = 1e-9;

async function run(model: TinyLM, tok: ReturnType<typeof tinyTokenizer>, prompt: number[], cfg: BeamConfig) {
  const it = beamSearch(model, tok, prompt, cfg);
  const events = [];
  let r = await it.next();
  while (!r.done) {
    events.push(r.value);
    r = await it.next();
  }
  return { result: r.value, events };
}

function pick<T>(rng: { next(): number }, xs: readonly T[]): T {
  return xs[Math.floor(rng.next() * xs.length)];
}

describe('beam search = reference beam search', () => {
  it('agrees on 400 random models and settings (sequences exact, scores within 1e-9)', async () => {
    const rng = createRng(2024);
    const counts = { eosMid: 0, early: 0, stopStr: 0, multi: 0 };
    for (let trial = 0; trial < 400; trial++) {
      const V = 3 + Math.floor(rng.next() * 6);
      const model = new TinyLM({
        vocab: V,
        seed: 1000 + trial,
        scale: pick(rng, [0.5, 1.5, 3]),
        eos: 0,
        eosBias: pick(rng, [-2, 0, 1, 2]),
        contextLength: 32,
      });
      const tok = tinyTokenizer(V);
      const B = 1 + Math.floor(rng.next() * 6);
      const maxNew = 1 + Math.floor(rng.next() * 7);
      const useEos = rng.next() < 0.85;
      const extraStop = rng.next() < 0.2 ? [1 + Math.floor(rng.next() * (V - 1))] : [];
      const eosIds = [...(useEos ? [0] : []), ...extraStop];
      const stop = rng.next() < 0.2 ? [pick(rng, ['ab', 'b', 'ca', ' a', 'cc'])] : [];
      const common = {
        numBeams: B,
        lengthPenalty: pick(rng, [1, 1, 0, 0.5, 2, -0.7, 1.3]),
        earlyStopping: pick(rng, [true, false, 'never'] as const),
        maxNewTokens: maxNew,
        minNewTokens: rng.next() < 0.3 ? Math.floor(rng.next() * (maxNew + 1)) : 0,
        noRepeatNgramSize: rng.next() < 0.3 ? 1 + Math.floor(rng.next() * 3) : 0,
        repetitionPenalty: rng.next() < 0.15 ? 1.4 : 1,
        presencePenalty: rng.next() < 0.1 ? 0.6 : 0,
        frequencyPenalty: rng.next() < 0.1 ? 0.3 : 0,
        eosIds,
        stop,
        numReturnSequences: 1 + Math.floor(rng.next() * B),
      };
      const cfg: BeamConfig = { ...common, vocabLimit: V };
      const prompt = Array.from({ length: 1 + Math.floor(rng.next() * 3) }, () => Math.floor(rng.next() * V));
      const decode = (ids: number[]) => tok.decode(ids, { skipSpecial: true });
      const ref = refBeamSearch((p) => model.fullLogits(p), V, prompt, common as RefBeamConfig, decode);
      const { result } = await run(model, tok, prompt, cfg);
      const got = result.hypotheses;
      const label = JSON.stringify({ trial, V, prompt, ...common });
      expect(
        got.map((h) => h.tokens),
        label,
      ).toEqual(ref.map((h) => h.tokens));
      expect(
        got.map((h) => h.finishReason),
        label,
      ).toEqual(ref.map((h) => h.reason));
      for (let i = 0; i < ref.length; i++) {
        expect(Math.abs(got[i].score - ref[i].score), label).toBeLessThanOrEqual(TOL);
        // the score is the recomputed sum of processed log-probs divided by length^lengthPenalty
        let sum = 0;
        for (let j = 0; j < got[i].tokens.length; j++) {
          sum += refStepLogprobs((p) => model.fullLogits(p), prompt, got[i].tokens.slice(0, j), common)[
            got[i].tokens[j]
          ];
        }
        expect(
          Math.abs(got[i].score - sum / got[i].tokens.length ** common.lengthPenalty),
          label,
        ).toBeLessThanOrEqual(TOL);
      }
      // every sequence was freed; decode ran one batch per step, never more than B rows
      expect(model.stats.live).toBe(0);
      expect(model.stats.maxDecodeRows).toBeLessThanOrEqual(B);
      expect(model.stats.maxLive).toBeLessThanOrEqual(B);
      expect(model.stats.decodeCalls).toBeLessThanOrEqual(Math.max(0, result.steps - 1));
      expect(model.stats.prefillCalls).toBe(1);
      if (got.some((h) => h.finishReason === 'stop' && h.tokens.length < maxNew)) counts.eosMid++;
      if (result.steps < maxNew) counts.early++;
      if (stop.length && got.some((h) => h.finishReason === 'stop' && !eosIds.includes(h.tokens.at(-1)!)))
        counts.stopStr++;
      if (got.length > 1) counts.multi++;
    }
    // the settings really exercised the interesting paths
    expect(counts.eosMid).toBeGreaterThan(50);
    expect(counts.early).toBeGreaterThan(20);
    expect(counts.stopStr).toBeGreaterThan(3);
    expect(counts.multi).toBeGreaterThan(50);
  });
  it('agrees on long generations with stop strings (the tail-window stop check; 60 cases)', async () => {
    const rng = createRng(77);
    let stops = 0;
    for (let trial = 0; trial < 60; trial++) {
      const V = 4 + Math.floor(rng.next() * 8);
      const model = new TinyLM({
        vocab: V,
        seed: 5000 + trial,
        scale: 1,
        eos: 0,
        eosBias: -3,
        contextLength: 48,
      });
      const tok = tinyTokenizer(V);
      const B = 2 + Math.floor(rng.next() * 3);
      const common = {
        numBeams: B,
        lengthPenalty: 1,
        earlyStopping: pick(rng, [true, false, 'never'] as const),
        maxNewTokens: 20 + Math.floor(rng.next() * 10),
        minNewTokens: 0,
        noRepeatNgramSize: 0,
        repetitionPenalty: 1,
        eosIds: [0],
        stop: [pick(rng, ['abc', 'cab', 'bb', 'a b', 'xy z', 'ééé'])],
        numReturnSequences: B,
      };
      const cfg: BeamConfig = { ...common, presencePenalty: 0, frequencyPenalty: 0, vocabLimit: V };
      const prompt = [1, 2];
      const decode = (ids: number[]) => tok.decode(ids, { skipSpecial: true });
      const ref = refBeamSearch((p) => model.fullLogits(p), V, prompt, common as RefBeamConfig, decode);
      const { result } = await run(model, tok, prompt, cfg);
      const label = JSON.stringify({ trial, V, ...common });
      expect(
        result.hypotheses.map((h) => h.tokens),
        label,
      ).toEqual(ref.map((h) => h.tokens));
      if (ref.some((h) => h.reason === 'stop' && h.tokens.length > 14)) stops++;
    }
    expect(stops).toBeGreaterThan(5);
  });
});
