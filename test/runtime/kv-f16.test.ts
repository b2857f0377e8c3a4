// The f16 KV cache through the model (ModelOptions.kvType 'f16'), on the JS reference kernels and
// both WASM builds: logits close to the f32 cache's, half the KV bytes, prefill + decode = a full
// prefill with the same f16 cache, forks (copy-on-write of f16 blocks) and beam search against
// recomputation from scratch, and a bad kvType refused.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { OptionsError } from '../../runtime/errors.ts';
import { generate } from '../../runtime/generate.ts';
import { parseGGUF } from '../../runtime/gguf.ts';
import { createRuntime } from '../../runtime/index.ts';
import { createKernels, type KvType } from '../../runtime/kernels.ts';
import { Model } from '../../runtime/model.ts';
import { tokenizerFromGGUF } from '../../runtime/tokenizer.ts';
import { type RandomModelOptions, randomModel } from '../helpers/random-model.ts';
import { refBeamSearch } from '../helpers/ref-beam.ts';
import { argmax, kernelImpls, load, maxDiff, tokenSeq } from './model-helpers.ts';

const impls = kernelImpls();
const F16 = { kvType: 'f16' as KvType };

const models: Array<[string, RandomModelOptions]> = [
  [
    'llama GQA 4/2 f32',
    {
      arch: 'llama',
      dim: 64,
      nLayers: 2,
      nHeads: 4,
      nKvHeads: 2,
      ffnDim: 96,
      vocab: 300,
      context: 64,
      seed: 41,
    },
  ],
  [
    'gpt2 q8_0',
    {
      arch: 'gpt2',
      dim: 64,
      nLayers: 2,
      nHeads: 4,
      ffnDim: 96,
      vocab: 270,
      context: 64,
      seed: 42,
      type: 'q8_0',
    },
  ],
];

// f16 vs f32 cache. Each K/V element moves by at most 2^-11 relative (≈ 4.9e-4, f16's half ulp);
// attention is a convex combination of V with weights softmax(q·k/√d), so its output moves by about
// that much relative to |v|, plus the weight changes from the scores (|Δs| ≲ 4.9e-4 · |q||k|/√d);
// through two layers and the output projection this stays around 1e-3 of the logit scale (measured
// 1.6e-3 here). 1e-2 of the largest |logit| leaves a 6× margin, yet is far below what a broken f16
// path gives (garbage K/V: differences of the order of the scale itself).
// Quantised weights: the WASM kernels quantise the activations entering a q8_0/q4_0 product to 8
// bits per 32-block (step ≈ 0.8% of the block's max), so a K/V change that flips one of those
// roundings moves the product by a whole step: measured 3.2e-2 on the WASM kernels (1.6e-3 on the
// JS kernels, which keep activations f32); 1e-1 for them.
const f16VsF32 = (o: RandomModelOptions) => (o.type === 'q8_0' || o.type === 'q4_0' ? 1e-1 : 1e-2);
// the same f16 cache through different row batches (prefill chunks vs decode rows): the K/V rows
// may differ in their last f32 bits before rounding, which flips an f16 rounding now and then
// (one element by 2^-10 relative): 1e-3 of the scale (model-kv.test.ts uses 1e-4 for f32 caches)
const SAME_CACHE = 1e-3;

function fullLogits(model: Model, tokens: number[]): Float32Array {
  const s = model.newSequence();
  const out = model.prefill(s, tokens, true);
  model.free(s);
  return out;
}

function expectRowsClose(
  got: Float32Array,
  gotRow: number,
  want: Float32Array,
  wantRow: number,
  V: number,
  tol: number,
  what: string,
) {
  const { diff, scale, at } = maxDiff(
    got.subarray(gotRow * V, (gotRow + 1) * V),
    want.subarray(wantRow * V, (wantRow + 1) * V),
  );
  expect(diff, `${what}: token ${at} |diff| ${diff} vs scale ${scale}`).toBeLessThanOrEqual(tol * scale);
  return diff / scale;
}

describe.each(impls)('f16 KV cache on $name kernels', (impl) => {
  describe.each(models)('%s', (_, o) => {
    const bytes = randomModel(o);
    const V = o.vocab;

    it('logits stay within 1e-2 (quantised: 1e-1) of the f32 cache logits (relative to the largest logit); greedy picks agree where the f32 margin is clear', () => {
      const bound = f16VsF32(o);
      const a = load(impl, bytes, { prefillChunk: 16 });
      const h = load(impl, bytes, { prefillChunk: 16, ...F16 });
      const tokens = tokenSeq(48, V, 7);
      const la = fullLogits(a, tokens);
      const lh = fullLogits(h, tokens);
      let worst = 0;
      for (let t = 0; t < tokens.length; t++)
        worst = Math.max(worst, expectRowsClose(lh, t, la, t, V, bound, `prefill row ${t}`));
      // decode, teacher-forced on the f32 model's greedy tokens
      const sa = a.newSequence();
      const sh = h.newSequence();
      let ra = a.prefill(sa, tokens.slice(0, 20));
      let rh = h.prefill(sh, tokens.slice(0, 20));
      let compared = 0;
      for (let step = 0; step < 24; step++) {
        const { diff, scale } = maxDiff(rh, ra);
        expect(diff, `decode step ${step}`).toBeLessThanOrEqual(bound * scale);
        worst = Math.max(worst, diff / scale);
        const best = argmax(ra);
        let second = Number.NEGATIVE_INFINITY;
        for (let v = 0; v < V; v++) if (v !== best && ra[v] > second) second = ra[v];
        // each logit moved by at most `diff`: a margin above 2·diff cannot flip the pick
        if (ra[best] - second > 2 * diff) {
          expect(argmax(rh), `greedy pick at step ${step}`).toBe(best);
          compared++;
        }
        ra = a.decode([sa], [best]);
        rh = h.decode([sh], [best]);
      }
      expect(compared).toBeGreaterThan(12);
      // the f16 cache is really in use: the logits differ (f32 noise alone would give exact equality,
      // both models run the same kernels on the same inputs)
      expect(worst).toBeGreaterThan(0);
    });

    it('info reports kvType and half the KV pool bytes; a tight budget holds twice the blocks', () => {
      const opts = { maxSequences: 2, kvBlocks: 12 };
      const a = load(impl, bytes, opts);
      const h = load(impl, bytes, { ...opts, ...F16 });
      expect(a.info.kvType).toBe('f32');
      expect(h.info.kvType).toBe('f16');
      const nKv = o.nKvHeads ?? o.nHeads;
      const hd = o.dim / o.nHeads;
      // K and V pools of every layer: blocks × KV heads × block size × head dim × (4 or 2) bytes
      const f16Pools = 2 * o.nLayers * 12 * nKv * a.blockSize * hd * 2;
      expect(a.info.memory.kvCache - h.info.memory.kvCache).toBe(f16Pools);
      expect(a.info.memory.weights).toBe(h.info.memory.weights);
      // the default pool shrinks to the budget: the same budget holds about twice the f16 blocks
      const budget = a.info.memory.weights + a.info.memory.scratch + 2 * f16Pools;
      const tight = { maxSequences: 16, budgetBytes: budget };
      const ba = load(impl, bytes, tight).freeBlocks();
      const bh = load(impl, bytes, { ...tight, ...F16 }).freeBlocks();
      expect(bh).toBeGreaterThanOrEqual(2 * ba - 1);
      expect(bh).toBeLessThanOrEqual(2 * ba + 2);
    });

    it('prefill then decode one token at a time equals one full prefill with the f16 cache', () => {
      const model = load(impl, bytes, { prefillChunk: 5, ...F16 });
      const tokens = tokenSeq(40, V, 5);
      const full = fullLogits(model, tokens);
      const seq = model.newSequence();
      const P = 7;
      expectRowsClose(model.prefill(seq, tokens.slice(0, P)), 0, full, P - 1, V, SAME_CACHE, 'prefill');
      for (let t = P; t < tokens.length; t++) {
        expectRowsClose(model.decode([seq], [tokens[t]]), 0, full, t, V, SAME_CACHE, `decode position ${t}`);
      }
    });

    it('forks share f16 blocks, copy on write, and diverge like independent sequences', () => {
      const model = load(impl, bytes, { maxSequences: 4, kvBlocks: 16, ...F16 });
      const prompt = tokenSeq(20, V, 9); // one full block and one partly filled
      const a = model.newSequence();
      model.prefill(a, prompt);
      const b = model.fork(a);
      const ta = tokenSeq(15, V, 31);
      const tb = tokenSeq(15, V, 32);
      const fullA = fullLogits(model, [...prompt, ...ta]);
      const fullB = fullLogits(model, [...prompt, ...tb]);
      const free = model.freeBlocks();
      for (let t = 0; t < ta.length; t++) {
        const rows = model.decode([a, b], [ta[t], tb[t]]);
        if (t === 0) expect(model.freeBlocks()).toBe(free - 1); // one copy of the shared partial block
        expectRowsClose(rows, 0, fullA, prompt.length + t, V, SAME_CACHE, `a at ${t}`);
        expectRowsClose(rows, 1, fullB, prompt.length + t, V, SAME_CACHE, `b at ${t}`);
      }
      model.free(a);
      model.free(b);
      expect(model.freeBlocks()).toBe(16);
    });
  });
});

describe('f16 KV cache: beam search and options', () => {
  const wasm = new WebAssembly.Module(readFileSync('build/kernels.wasm'));

  it('beam search (forks, copy-on-write) = the reference that recomputes every hypothesis with fresh prefills', async () => {
    const bytes = randomModel({
      arch: 'llama',
      dim: 32,
      nLayers: 2,
      nHeads: 4,
      ffnDim: 64,
      vocab: 300,
      context: 64,
      seed: 11,
      scale: 4,
    });
    const file = parseGGUF(bytes);
    const model = Model.load(createKernels(wasm), file, { maxSequences: 4, ...F16 });
    const tokenizer = tokenizerFromGGUF(file);
    const fresh = (prefix: number[]) => {
      const s = model.newSequence();
      try {
        return Float64Array.from(model.prefill(s, prefix));
      } finally {
        model.free(s);
      }
    };
    const free0 = model.freeBlocks();
    const prompt = [5, 17, 99, 42];
    const opts = {
      numBeams: 4,
      numReturnSequences: 4,
      maxNewTokens: 10,
      lengthPenalty: 1,
      earlyStopping: false,
      noRepeatNgramSize: 2,
    };
    let done: any;
    for await (const ev of generate(model, tokenizer, prompt, opts)) if (ev.type === 'done') done = ev.result;
    const ref = refBeamSearch(fresh, model.info.vocabSize, prompt, {
      ...opts,
      minNewTokens: 0,
      repetitionPenalty: 1,
      eosIds: [tokenizer.eos!],
      stop: [],
    });
    expect(done.sequences.map((s: any) => s.tokens)).toEqual(ref.map((r) => r.tokens));
    // scores are sums of log-probabilities (O(1–10)); the cached and fresh f16 paths differ only by
    // rare f16 rounding flips of the K/V rows (see SAME_CACHE)
    for (let i = 0; i < ref.length; i++)
      expect(Math.abs(done.sequences[i].score - ref[i].score)).toBeLessThanOrEqual(1e-3);
    expect(model.freeBlocks()).toBe(free0);
  });

  it('a kvType other than f32 / f16 is an OptionsError naming kvType (Model.load and loadModel)', () => {
    const bytes = randomModel({
      arch: 'gpt2',
      dim: 32,
      nLayers: 1,
      nHeads: 2,
      ffnDim: 32,
      vocab: 260,
      context: 16,
      seed: 1,
    });
    for (const bad of ['f8', 'F16', 'q8_0', '', 16, null]) {
      const call = () =>
        Model.load(createKernels(wasm), parseGGUF(bytes), { kvType: bad as unknown as KvType });
      expect(call).toThrow(OptionsError);
      expect(call).toThrow(/kvType/);
      try {
        call();
      } catch (e) {
        expect((e as OptionsError).field).toBe('kvType');
      }
      expect(() => createRuntime(wasm).loadModel(bytes, { kvType: bad as unknown as KvType })).toThrow(
        OptionsError,
      );
    }
    // undefined is the default
    expect(Model.load(createKernels(wasm), parseGGUF(bytes), { kvType: undefined }).info.kvType).toBe('f32');
  });
});
