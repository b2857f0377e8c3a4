// Loading: hyper-parameter and tensor validation (typed errors naming the key or tensor), the memory
// budget refused before anything is allocated, and what `info` reports.
import { describe, expect, it } from 'vitest';
import { BudgetError, FormatError, OptionsError, UnsupportedError } from '../../runtime/errors.ts';
import { fromF32, GGMLType } from '../../runtime/ggml.ts';
import { type GGUFMetaValue, meta, parseGGUF, writeGGUF } from '../../runtime/gguf.ts';
import { Model } from '../../runtime/model.ts';
import { byteVocab, type RandomModelOptions, randomModel, randomWeights } from '../helpers/random-model.ts';
import { kernelImpls, load } from './model-helpers.ts';

const impls = kernelImpls();
const MiB = 1024 * 1024;

const llama: RandomModelOptions = {
  arch: 'llama',
  dim: 64,
  nLayers: 2,
  nHeads: 4,
  nKvHeads: 2,
  ffnDim: 96,
  vocab: 300,
  context: 128,
  seed: 50,
};
const gpt2: RandomModelOptions = {
  arch: 'gpt2',
  dim: 32,
  nLayers: 1,
  nHeads: 2,
  ffnDim: 64,
  vocab: 260,
  context: 32,
  seed: 51,
};

// the same model with some tensors replaced or dropped
function withTensors(
  o: RandomModelOptions,
  edit: (w: Map<string, { dims: number[]; data: Float32Array }>) => void,
  extraMeta: Array<[string, GGUFMetaValue]> = [],
): Uint8Array {
  const w = randomWeights(o);
  edit(w);
  const a = o.arch;
  const { tokens } = byteVocab(o.vocab);
  const md: Array<[string, GGUFMetaValue]> = [
    ['general.architecture', meta.str(a)],
    [`${a}.context_length`, meta.u32(o.context)],
    [`${a}.embedding_length`, meta.u32(o.dim)],
    [`${a}.block_count`, meta.u32(o.nLayers)],
    [`${a}.feed_forward_length`, meta.u32(o.ffnDim)],
    [`${a}.attention.head_count`, meta.u32(o.nHeads)],
    [`${a}.attention.head_count_kv`, meta.u32(o.nKvHeads ?? o.nHeads)],
    ['tokenizer.ggml.tokens', meta.arr('string', tokens)],
    ...extraMeta,
  ];
  return writeGGUF(
    md,
    [...w].map(([name, { dims, data }]) => ({
      name,
      dims,
      type: GGMLType.F32,
      data: fromF32(GGMLType.F32, data),
    })),
  );
}

describe.each(impls)('model load on $name kernels', (impl) => {
  it('reports architecture, sizes, parameters and memory; uses no more arena than it reports', () => {
    const k = impl.create();
    const before = k.mark();
    const file = parseGGUF(randomModel({ ...llama, type: 'q8_0' }));
    const model = Model.load(k, file, { maxSequences: 2 });
    const i = model.info;
    expect(i).toMatchObject({
      architecture: 'llama',
      vocabSize: 300,
      contextLength: 128,
      dim: 64,
      nLayers: 2,
      nHeads: 4,
      nKvHeads: 2,
      ffnDim: 96,
      quantization: 'q8_0',
    });
    // parameters: every tensor's elements (token_embd, 2 × 9 layer tensors, output_norm, output)
    const expected = file.tensors.reduce((n, t) => n + t.dims.reduce((a, b) => a * b, 1), 0);
    expect(i.parameters).toBe(expected);
    const m = i.memory;
    expect(m.total).toBe(m.weights + m.kvCache + m.scratch);
    // KV: 2 sequences × 128 positions × 2 layers × (K and V) × 2 kv heads × 16 head dim × 4 bytes, plus tables
    const kvFloats = 2 * 128 * 2 * 2 * 2 * 16;
    expect(m.kvCache).toBeGreaterThanOrEqual(kvFloats * 4);
    expect(m.kvCache).toBeLessThan(kvFloats * 4 + 4096);
    expect(model.freeBlocks()).toBe((2 * 128) / model.blockSize);
    const used = k.mark() - before;
    expect(used).toBeLessThanOrEqual(m.total);
    expect(used).toBeGreaterThan(0.8 * (m.weights + m.kvCache));
    const g = load(impl, randomModel(gpt2)).info;
    expect(g).toMatchObject({ architecture: 'gpt2', vocabSize: 260, nKvHeads: 2, quantization: 'f32' });
  });

  it('refuses a model over the budget before allocating anything, with the numbers', () => {
    const k = impl.create();
    const mark = k.mark();
    const pages = k.memory.buffer.byteLength;
    const file = parseGGUF(randomModel(llama));
    let err: unknown;
    try {
      Model.load(k, file, { budgetBytes: 200_000 });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BudgetError);
    expect((err as BudgetError).field).toBe('budgetBytes');
    expect((err as Error).message).toMatch(
      /needs [\d.]+ MiB \(weights [\d.]+ MiB, KV cache [\d.]+ MiB .*budget is 0\.2 MiB/,
    );
    expect(k.mark()).toBe(mark);
    expect(k.memory.buffer.byteLength).toBe(pages);
    // a big context alone is refused too (default budget 128 MiB): 2^20 positions of KV
    expect(() => Model.load(k, file, { kvBlocks: 1 << 16 })).toThrow(BudgetError);
    expect(k.mark()).toBe(mark);
  });

  it('shrinks the default KV pool to fit the budget, but never below one full context', () => {
    const file = parseGGUF(randomModel(llama));
    const roomy = Model.load(impl.create(), file, { maxSequences: 8 });
    expect(roomy.freeBlocks()).toBe((8 * 128) / 16);
    const fits = roomy.info.memory.weights + roomy.info.memory.scratch;
    const perSeq = roomy.info.memory.kvCache / 8;
    const tight = Model.load(impl.create(), file, {
      maxSequences: 8,
      budgetBytes: Math.floor(fits + 3.5 * perSeq),
    });
    expect(tight.freeBlocks()).toBeGreaterThanOrEqual(128 / 16);
    expect(tight.freeBlocks()).toBeLessThan((8 * 128) / 16);
    expect(tight.info.memory.total).toBeLessThanOrEqual(Math.floor(fits + 3.5 * perSeq));
    expect(() =>
      Model.load(impl.create(), file, { maxSequences: 8, budgetBytes: Math.floor(fits + 0.5 * perSeq) }),
    ).toThrow(BudgetError);
  });

  it('rejects bad options', () => {
    const file = parseGGUF(randomModel(gpt2));
    for (const [key, v] of [
      ['maxSequences', 0],
      ['maxSequences', 1.5],
      ['budgetBytes', -1],
      ['maxContext', 0],
      ['kvBlocks', Number.NaN],
      ['prefillChunk', 0],
    ] as const) {
      let err: unknown;
      try {
        Model.load(impl.create(), file, { [key]: v });
      } catch (e) {
        err = e;
      }
      expect(err, `${key} = ${v}`).toBeInstanceOf(OptionsError);
      expect((err as OptionsError).field).toBe(key);
    }
  });

  const a = 'llama';
  const badMeta: Array<
    [string, RandomModelOptions, Array<[string, GGUFMetaValue]>, string[], string, typeof FormatError]
  > = [
    ['0 layers', llama, [[`${a}.block_count`, meta.u32(0)]], [], `${a}.block_count`, FormatError],
    [
      '0 heads',
      llama,
      [[`${a}.attention.head_count`, meta.u32(0)]],
      [],
      `${a}.attention.head_count`,
      FormatError,
    ],
    [
      'kv heads not dividing heads',
      llama,
      [[`${a}.attention.head_count_kv`, meta.u32(3)]],
      [],
      `${a}.attention.head_count_kv`,
      FormatError,
    ],
    [
      'more kv heads than heads',
      llama,
      [[`${a}.attention.head_count_kv`, meta.u32(8)]],
      [],
      `${a}.attention.head_count_kv`,
      FormatError,
    ],
    [
      'dim not a multiple of heads',
      llama,
      [[`${a}.attention.head_count`, meta.u32(6)]],
      [],
      `${a}.embedding_length`,
      FormatError,
    ],
    [
      'odd head size for RoPE',
      { ...llama, dim: 36, nHeads: 4, nKvHeads: 4 },
      [],
      [],
      `${a}.embedding_length`,
      FormatError,
    ],
    [
      'embedding length ≠ tensor',
      llama,
      [[`${a}.embedding_length`, meta.u32(128)]],
      [],
      `${a}.embedding_length`,
      FormatError,
    ],
    [
      'context 2^32',
      llama,
      [[`${a}.context_length`, meta.u64(2n ** 32n)]],
      [],
      `${a}.context_length`,
      FormatError,
    ],
    ['context 0', llama, [[`${a}.context_length`, meta.u32(0)]], [], `${a}.context_length`, FormatError],
    [
      'context as a string',
      llama,
      [[`${a}.context_length`, meta.str('128')]],
      [],
      `${a}.context_length`,
      FormatError,
    ],
    ['missing block_count', llama, [], [`${a}.block_count`], `${a}.block_count`, FormatError],
    [
      'negative eps',
      llama,
      [[`${a}.attention.layer_norm_rms_epsilon`, meta.f32(-1)]],
      [],
      `${a}.attention.layer_norm_rms_epsilon`,
      FormatError,
    ],
    [
      'NaN freq_base',
      llama,
      [[`${a}.rope.freq_base`, meta.f32(Number.NaN)]],
      [],
      `${a}.rope.freq_base`,
      FormatError,
    ],
    [
      'vocabulary ≠ embedding rows',
      llama,
      [['tokenizer.ggml.tokens', meta.arr('string', byteVocab(299).tokens)]],
      [],
      'tokenizer.ggml.tokens',
      FormatError,
    ],
    [
      'unknown architecture',
      llama,
      [['general.architecture', meta.str('mamba')]],
      [],
      'general.architecture',
      UnsupportedError,
    ],
    ['missing architecture', llama, [], ['general.architecture'], 'general.architecture', FormatError],
    [
      'RoPE scaling',
      llama,
      [[`${a}.rope.scaling.type`, meta.str('yarn')]],
      [],
      `${a}.rope.scaling.type`,
      UnsupportedError,
    ],
    [
      'mixture of experts',
      llama,
      [[`${a}.expert_count`, meta.u32(8)]],
      [],
      `${a}.expert_count`,
      UnsupportedError,
    ],
    [
      'partial RoPE',
      llama,
      [[`${a}.rope.dimension_count`, meta.u32(8)]],
      [],
      `${a}.rope.dimension_count`,
      UnsupportedError,
    ],
    [
      'gpt2 context past position_embd',
      gpt2,
      [['gpt2.context_length', meta.u32(64)]],
      [],
      'position_embd.weight',
      FormatError,
    ],
  ];
  it.each(badMeta)('%s: typed error naming the key', (_, o, extraMeta, dropMeta, field, cls) => {
    let err: unknown;
    try {
      load(impl, randomModel({ ...o, extraMeta, dropMeta }));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(cls);
    expect((err as FormatError).field).toBe(field);
  });

  const badTensors: Array<
    [string, RandomModelOptions, (w: Map<string, { dims: number[]; data: Float32Array }>) => void, string]
  > = [
    ['missing attn_k', llama, (w) => w.delete('blk.1.attn_k.weight'), 'blk.1.attn_k.weight'],
    ['attn_k transposed', llama, (w) => w.get('blk.0.attn_k.weight')!.dims.reverse(), 'blk.0.attn_k.weight'],
    [
      'ffn_down of the wrong size',
      llama,
      (w) => w.set('blk.0.ffn_down.weight', { dims: [95, 64], data: new Float32Array(95 * 64) }),
      'blk.0.ffn_down.weight',
    ],
    [
      'output with another vocabulary',
      llama,
      (w) => w.set('output.weight', { dims: [64, 299], data: new Float32Array(64 * 299) }),
      'output.weight',
    ],
    ['missing output_norm', llama, (w) => w.delete('output_norm.weight'), 'output_norm.weight'],
    ['gpt2 without qkv bias', gpt2, (w) => w.delete('blk.0.attn_qkv.bias'), 'blk.0.attn_qkv.bias'],
    ['gpt2 without positions', gpt2, (w) => w.delete('position_embd.weight'), 'position_embd.weight'],
  ];
  it.each(badTensors)('%s: FormatError naming the tensor', (_, o, edit, field) => {
    let err: unknown;
    try {
      load(impl, withTensors(o, edit));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(FormatError);
    expect((err as FormatError).field).toBe(field);
  });

  it('the intact hand-built file loads (the edits above are what fails)', () => {
    expect(
      load(
        impl,
        withTensors(llama, () => {}),
      ).info.nLayers,
    ).toBe(2);
    expect(
      load(
        impl,
        withTensors(gpt2, () => {}),
      ).info.nLayers,
    ).toBe(1);
  });

  it('an unsupported tensor type is UnsupportedError naming the tensor', () => {
    const file = parseGGUF(randomModel(llama));
    const t = file.tensor('blk.0.ffn_up.weight')!;
    (t as { type: number }).type = 12; // Q4_K, as a parser that let it through would hand it over
    let err: unknown;
    try {
      Model.load(impl.create(), file);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UnsupportedError);
    expect((err as UnsupportedError).field).toBe('blk.0.ffn_up.weight');
  });

  it('budget figures scale: a 1 MiB budget refuses a model whose weights alone are 1.5 MiB', () => {
    const o = { ...llama, dim: 128, nLayers: 4, ffnDim: 256, vocab: 600 };
    const file = parseGGUF(randomModel(o));
    const m = Model.load(impl.create(), file, { maxSequences: 1, maxContext: 16 });
    expect(m.info.memory.weights).toBeGreaterThan(1.5 * MiB);
    expect(() => Model.load(impl.create(), file, { budgetBytes: MiB })).toThrow(BudgetError);
  });
});
