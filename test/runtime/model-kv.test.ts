// The KV cache through the model: prefill + decode equals one full prefill at every position,
// batched decode of sequences at different positions, fork with copy-on-write, block accounting,
// and the errors a caller can hit (pool exhausted, context, slots, bad tokens and handles).
import { describe, expect, it } from 'vitest';
import { BudgetError, ContextLengthError, OptionsError } from '../../runtime/errors.ts';
import { parseGGUF, writeGGUF } from '../../runtime/gguf.ts';
import type { Model } from '../../runtime/model.ts';
import { argmax, logSumExp, topKInto } from '../../runtime/sample.ts';
import { type RandomModelOptions, randomModel } from '../helpers/random-model.ts';
import { kernelImpls, load, maxDiff, tokenSeq } from './model-helpers.ts';

const impls = kernelImpls();

const models: Array<[string, RandomModelOptions]> = [
  [
    'llama f32',
    {
      arch: 'llama',
      dim: 64,
      nLayers: 2,
      nHeads: 4,
      nKvHeads: 2,
      ffnDim: 96,
      vocab: 300,
      context: 64,
      seed: 21,
    },
  ],
  [
    'llama q8_0',
    {
      arch: 'llama',
      dim: 64,
      nLayers: 2,
      nHeads: 4,
      nKvHeads: 2,
      ffnDim: 96,
      vocab: 300,
      context: 64,
      seed: 22,
      type: 'q8_0',
    },
  ],
  [
    'gpt2 f32',
    { arch: 'gpt2', dim: 48, nLayers: 2, nHeads: 4, ffnDim: 80, vocab: 270, context: 64, seed: 23 },
  ],
  [
    'gpt2 q4_0',
    {
      arch: 'gpt2',
      dim: 64,
      nLayers: 2,
      nHeads: 4,
      ffnDim: 96,
      vocab: 270,
      context: 64,
      seed: 24,
      type: 'q4_0',
    },
  ],
];

// tolerance for the same logits computed through different row batches (prefill chunks vs decode
// rows): the kernels may tile differently, so allow f32 rounding, relative to the largest logit
const TOL = 1e-4;

function expectRowsClose(
  got: Float32Array,
  gotRow: number,
  want: Float32Array,
  wantRow: number,
  V: number,
  what: string,
) {
  const { diff, scale, at } = maxDiff(
    got.subarray(gotRow * V, (gotRow + 1) * V),
    want.subarray(wantRow * V, (wantRow + 1) * V),
  );
  expect(diff, `${what}: token ${at} |diff| ${diff} vs scale ${scale}`).toBeLessThanOrEqual(TOL * scale);
}

// decode with RowStats over 3 sequences for a few steps; each row's figures against runtime/sample.ts
// (an independent float64 pass over the returned logits): argmax identical, log-sum-exp within 1e-5
// (relative above 1), NaN and ±∞ cases identical
function expectRowStats(model: Model, V: number): void {
  const seqs = [model.newSequence(), model.newSequence(), model.newSequence()];
  seqs.forEach((q, i) => {
    model.prefill(q, tokenSeq(3 + 5 * i, V, 30 + i));
  });
  const K = 5;
  const topK = {
    k: K,
    index: new Int32Array(4 * K),
    value: new Float64Array(4 * K),
    count: new Int32Array(4),
  };
  const st = { argmax: new Int32Array(4).fill(-9), logSumExp: new Float64Array(4).fill(-9), topK };
  const wantIdx = new Int32Array(K);
  const wantVal = new Float64Array(K);
  for (let step = 0; step < 6; step++) {
    const rows = model.decode(
      seqs,
      seqs.map((_, i) => (step * 31 + i * 7) % V),
      undefined,
      st,
    );
    for (let b = 0; b < 3; b++) {
      const row = rows.subarray(b * V, (b + 1) * V);
      expect(st.argmax[b], `argmax row ${b}`).toBe(argmax(row));
      // top K: identical indices and values to topKInto's (ties: lower index first; NaN, −∞ skipped)
      const n = topKInto(row, K, wantIdx, wantVal);
      expect(topK.count[b], `top-k count row ${b}`).toBe(n);
      expect(Array.from(topK.index.subarray(b * K, b * K + n)), `top-k row ${b}`).toEqual(
        Array.from(wantIdx.subarray(0, n)),
      );
      expect(Array.from(topK.value.subarray(b * K, b * K + n))).toEqual(Array.from(wantVal.subarray(0, n)));
      const want = logSumExp(row);
      const got = st.logSumExp[b];
      if (Number.isFinite(want))
        expect(Math.abs(got - want), `lse row ${b}: ${got} vs ${want}`).toBeLessThanOrEqual(
          1e-5 * Math.max(1, Math.abs(want)),
        );
      else expect(got).toBe(want); // NaN, or −∞ for an all −∞ row (toBe treats NaN as equal)
    }
    expect([st.argmax[3], st.logSumExp[3]]).toEqual([-9, -9]); // entries past B untouched
  }
}

function fullLogits(model: Model, tokens: number[]): Float32Array {
  const s = model.newSequence();
  const out = model.prefill(s, tokens, true);
  model.free(s);
  return out;
}

describe.each(impls)('KV cache on $name kernels', (impl) => {
  describe.each(models)('%s', (_, o) => {
    const bytes = randomModel(o);
    const V = o.vocab;

    it('prefill then decode one token at a time equals one full prefill, at every position', () => {
      const model = load(impl, bytes, { prefillChunk: 5 });
      const tokens = tokenSeq(40, V, 5);
      const full = fullLogits(model, tokens);
      const seq = model.newSequence();
      const P = 7;
      const last = model.prefill(seq, tokens.slice(0, P));
      expectRowsClose(last, 0, full, P - 1, V, `prefill position ${P - 1}`);
      // a one-token prefill continues the sequence too (the single-row path)
      expectRowsClose(model.prefill(seq, [tokens[P]]), 0, full, P, V, `prefill position ${P}`);
      for (let t = P + 1; t < tokens.length; t++) {
        const step = model.decode([seq], [tokens[t]]);
        expect(step.length).toBe(V);
        expectRowsClose(step, 0, full, t, V, `decode position ${t}`);
      }
      expect(seq.length).toBe(tokens.length);
    });

    it('a batch of sequences at different positions decodes as each would alone', () => {
      const model = load(impl, bytes, { maxSequences: 3, prefillChunk: 8 });
      const lists = [tokenSeq(20, V, 1), tokenSeq(34, V, 2), tokenSeq(26, V, 3)];
      const starts = [3, 17, 9]; // prompt lengths; then 12 steps together (crossing block edges at different steps)
      const full = lists.map((l) => fullLogits(model, l));
      const seqs = lists.map(() => model.newSequence());
      for (let i = 0; i < 3; i++) model.prefill(seqs[i], lists[i].slice(0, starts[i]));
      for (let step = 0; step < 12; step++) {
        const toks = seqs.map((s, i) => lists[i][s.length]);
        const logits = model.decode(seqs, toks);
        expect(logits.length).toBe(3 * V);
        for (let b = 0; b < 3; b++) {
          const pos = starts[b] + step;
          expectRowsClose(logits, b, full[b], pos, V, `sequence ${b} position ${pos}`);
        }
      }
    });

    it('decode row stats: argmax exactly and log-sum-exp within 1e-5 of the float64 JS functions on the returned rows', () => {
      const model = load(impl, bytes, { maxSequences: 3 });
      expectRowStats(model, V);
    });

    it('forks share blocks, copy on write, diverge like independent sequences; blocks all return on free', () => {
      const model = load(impl, bytes, { maxSequences: 4, kvBlocks: 16 });
      const bs = model.blockSize;
      expect(model.freeBlocks()).toBe(16);
      const prompt = tokenSeq(20, V, 9); // 20 positions: one full block and one partly filled (16 + 4)
      const a = model.newSequence();
      model.prefill(a, prompt);
      expect(model.freeBlocks()).toBe(16 - Math.ceil(20 / bs));
      const b = model.fork(a);
      expect(b.length).toBe(20);
      expect(model.freeBlocks()).toBe(16 - 2); // fork takes no block
      const ta = tokenSeq(15, V, 31);
      const tb = tokenSeq(15, V, 32);
      const fullA = fullLogits(model, [...prompt, ...ta]);
      const fullB = fullLogits(model, [...prompt, ...tb]);
      // first step together in one batch: both would write into the shared partial block; only one copy is needed
      const first = model.decode([a, b], [ta[0], tb[0]]);
      expect(model.freeBlocks()).toBe(16 - 3);
      expectRowsClose(first, 0, fullA, 20, V, 'fork a, position 20');
      expectRowsClose(first, 1, fullB, 20, V, 'fork b, position 20');
      // then separately, b first (it now owns the original block, a owns the copy)
      for (let t = 1; t < 15; t++) {
        const lb = model.decode([b], [tb[t]]);
        expectRowsClose(lb, 0, fullB, 20 + t, V, `fork b, position ${20 + t}`);
        const la = model.decode([a], [ta[t]]);
        expectRowsClose(la, 0, fullA, 20 + t, V, `fork a, position ${20 + t}`);
      }
      // a fork of a fork at a block edge (35 → mid-block) keeps working after its parent is freed
      const c = model.fork(a);
      model.free(a);
      const lc = model.decode([c], [ta[0]]);
      const fullC = fullLogits(model, [...prompt, ...ta, ta[0]]);
      expectRowsClose(lc, 0, fullC, 35, V, 'fork c, position 35');
      model.free(b);
      model.free(c);
      expect(model.freeBlocks()).toBe(16);
    });
  });

  it.each(['f32', 'q8_0', 'q4_0'] as const)(
    '%s: q|k|v and gate|up stacked from back-to-back tensors (a view) or scattered ones (a copy) give the same logits, bit for bit',
    (type) => {
      const bytes = randomModel({
        arch: 'llama',
        dim: 64,
        nLayers: 2,
        nHeads: 4,
        nKvHeads: 2,
        ffnDim: 96,
        vocab: 300,
        context: 32,
        seed: 62,
        type,
      });
      const f = parseGGUF(bytes);
      const adjacent = (a: string, b: string) => {
        const x = f.tensor(a)!.data;
        return x.byteOffset + x.length === f.tensor(b)!.data.byteOffset;
      };
      // the helper writes q, k, v and gate, up back to back; the rewrite below stores them in reverse
      expect(adjacent('blk.0.attn_q.weight', 'blk.0.attn_k.weight')).toBe(true);
      expect(adjacent('blk.0.ffn_gate.weight', 'blk.0.ffn_up.weight')).toBe(true);
      const reversed = writeGGUF(
        [...f.metadata],
        f.tensors.toReversed().map((t) => ({ name: t.name, dims: t.dims, type: t.type, data: t.data })),
      );
      const g = parseGGUF(reversed);
      expect(g.tensor('blk.0.attn_k.weight')!.data.byteOffset).toBeLessThan(
        g.tensor('blk.0.attn_q.weight')!.data.byteOffset,
      );
      const tokens = tokenSeq(20, 300, 63);
      const run = (b: Uint8Array) => {
        const m = load(impl, b, { maxSequences: 1 });
        return m.prefill(m.newSequence(), tokens, true);
      };
      expect(run(reversed)).toEqual(run(bytes));
    },
  );

  it.each(['f32', 'f16', 'q8_0', 'q4_0'] as const)(
    '%s: a tied output read back as the token embedding equals a separate copy of the table, bit for bit',
    (type) => {
      const o: RandomModelOptions = {
        arch: 'llama',
        dim: 64,
        nLayers: 1,
        nHeads: 2,
        ffnDim: 64,
        vocab: 300,
        context: 32,
        seed: 60,
        type,
        tied: true,
      };
      const tokens = tokenSeq(20, 300, 61);
      const run = (bytes: Uint8Array) => {
        const m = load(impl, bytes, { maxSequences: 1 });
        return m.prefill(m.newSequence(), tokens, true);
      };
      expect(run(randomModel(o))).toEqual(run(randomModel({ ...o, outputCopy: true })));
    },
  );

  describe('errors', () => {
    const o: RandomModelOptions = {
      arch: 'llama',
      dim: 32,
      nLayers: 1,
      nHeads: 2,
      ffnDim: 48,
      vocab: 260,
      context: 64,
      seed: 40,
    };
    const bytes = randomModel(o);

    it('an exhausted pool is a BudgetError that leaves every sequence as it was', () => {
      const model = load(impl, bytes, { maxSequences: 3, kvBlocks: 3 });
      const a = model.newSequence();
      model.prefill(a, tokenSeq(47, 260, 1)); // 3 blocks, one position left in the last
      expect(model.freeBlocks()).toBe(0);
      const b = model.newSequence();
      expect(() => model.prefill(b, [1])).toThrow(BudgetError);
      expect(b.length).toBe(0);
      // a has room for one more position, b none: the batch fails as a whole, a does not advance
      expect(() => model.decode([a, b], [1, 2])).toThrow(BudgetError);
      expect(a.length).toBe(47);
      model.decode([a], [1]);
      expect(a.length).toBe(48);
      expect(() => model.decode([a], [1])).toThrow(BudgetError);
      const f = model.fork(a);
      expect(() => model.decode([f], [3])).toThrow(BudgetError);
      model.free(a);
      model.free(f);
      model.free(b);
      expect(model.freeBlocks()).toBe(3);
    });

    it('two forks writing into their shared block in one batch need one free block, not two', () => {
      const model = load(impl, bytes, { maxSequences: 2, kvBlocks: 3 });
      const a = model.newSequence();
      model.prefill(a, tokenSeq(20, 260, 3)); // blocks: one full, one with 4 positions
      const b = model.fork(a);
      expect(model.freeBlocks()).toBe(1);
      model.decode([a, b], [1, 2]);
      expect(model.freeBlocks()).toBe(0);
      expect([a.length, b.length]).toEqual([21, 21]);
    });

    it('the context is enforced (ContextLengthError) and maxContext caps it', () => {
      const model = load(impl, bytes, { maxContext: 20 });
      expect(model.info.contextLength).toBe(20);
      const s = model.newSequence();
      expect(() => model.prefill(s, tokenSeq(33, 260, 2))).toThrow(ContextLengthError);
      expect(s.length).toBe(0);
      model.prefill(s, tokenSeq(32, 260, 2).slice(0, 20));
      expect(() => model.decode([s], [5])).toThrow(ContextLengthError);
    });

    it('sequence slots, freed handles, bad tokens and bad batches are refused', () => {
      const model = load(impl, bytes, { maxSequences: 2 });
      const a = model.newSequence();
      const b = model.newSequence();
      expect(() => model.newSequence()).toThrow(BudgetError);
      expect(() => model.fork(a)).toThrow(BudgetError);
      model.free(b);
      expect(() => model.free(b)).toThrow(OptionsError);
      expect(() => model.prefill(b, [1])).toThrow(OptionsError);
      const other = load(impl, bytes);
      expect(() => other.prefill(a, [1])).toThrow(OptionsError);
      for (const bad of [-1, 260, 1.5, Number.NaN])
        expect(() => model.prefill(a, [1, bad])).toThrow(OptionsError);
      expect(() => model.prefill(a, [])).toThrow(OptionsError);
      // all logits of a prompt too long to return at once: BudgetError before any work or allocation
      const big = load(impl, randomModel({ ...o, vocab: 70_000, context: 1024, dim: 32 }), {
        maxSequences: 1,
      });
      expect(() => big.prefill(big.newSequence(), new Array(500).fill(1), true)).toThrow(BudgetError);
      expect(a.length).toBe(0);
      const c = model.newSequence();
      expect(() => model.decode([a, a], [1, 2])).toThrow(OptionsError);
      expect(() => model.decode([a, c], [1])).toThrow(OptionsError);
      expect(() => model.decode([], [])).toThrow(OptionsError);
      expect(model.decode([a, c], [1, 2]).length).toBe(2 * 260);
    });

    it('decode row stats on logits with ±∞ (output scale 3e38) and all NaN (scale ∞) match the JS functions', () => {
      for (const scale of [3e38, Number.POSITIVE_INFINITY]) {
        const model = load(impl, randomModel({ ...o, scale, seed: 41 }), { maxSequences: 3 });
        expectRowStats(model, 260);
      }
    });

    it('decode row stats: short or mistyped arrays are refused before anything advances', () => {
      const model = load(impl, bytes, { maxSequences: 2 });
      const a = model.newSequence();
      const b = model.newSequence();
      const bads = [
        { argmax: new Int32Array(1) },
        { argmax: new Float64Array(2) as unknown as Int32Array },
        { logSumExp: new Float64Array(1) },
        { logSumExp: new Float32Array(2) as unknown as Float64Array },
      ];
      for (const bad of bads)
        expect(() => model.decode([a, b], [1, 2], undefined, bad)).toThrow(OptionsError);
      expect([a.length, b.length]).toEqual([0, 0]);
    });

    it('decode into a caller buffer gives the same logits as a fresh array; a short or wrong buffer is refused', () => {
      const model = load(impl, bytes, { maxSequences: 4 });
      const prompt = tokenSeq(9, 260, 4);
      const fresh = [model.newSequence(), model.newSequence()];
      const into = [model.newSequence(), model.newSequence()];
      for (const s of [...fresh, ...into]) model.prefill(s, prompt);
      const buf = new Float32Array(3 * 260).fill(Number.NaN); // longer than 2 rows: a subarray comes back
      for (let step = 0; step < 20; step++) {
        const toks = [(step * 7) % 260, (step * 13 + 1) % 260];
        const want = model.decode(fresh, toks);
        const got = model.decode(into, toks, buf);
        expect(got.buffer).toBe(buf.buffer);
        expect(got.length).toBe(2 * 260);
        // the same rows through the same kernels: bit-identical
        expect(Array.from(got)).toEqual(Array.from(want));
      }
      expect(Number.isNaN(buf[2 * 260])).toBe(true); // past B×V untouched
      const exact = new Float32Array(260);
      expect(model.decode([into[0]], [5], exact)).toBe(exact);
      const len = into[0].length;
      // a view of the model's own WASM memory could overlap its scratch
      const mem = (model as unknown as { k: { memory: WebAssembly.Memory } }).k.memory;
      for (const bad of [
        new Float32Array(2 * 260 - 1),
        new Float64Array(2 * 260) as unknown as Float32Array,
        new Float32Array(mem.buffer, 0, 2 * 260),
      ]) {
        expect(() => model.decode(into, [1, 2], bad)).toThrow(OptionsError);
      }
      expect(into[0].length).toBe(len); // refused before anything advanced
    });
  });
});
