// Small GGUF files for tests: a raw byte builder (for malformed files), a tiny valid file with every
// value type and every supported tensor type, and tiny random llama / gpt2 models.

import { fromF32, GGMLType } from '../../runtime/ggml.ts';
import { type GGUFMetaValue, type GGUFWriteTensor, meta, writeGGUF } from '../../runtime/gguf.ts';

/** Deterministic PRNG (mulberry32) returning floats in [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Float32Array of `n` values uniform in [-scale, scale), seeded. */
export function randomF32(n: number, seed: number, scale = 1): Float32Array {
  const rnd = seededRandom(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (rnd() * 2 - 1) * scale;
  return out;
}

/** Value type ids as written in a GGUF file. */
export const VT = {
  u8: 0,
  i8: 1,
  u16: 2,
  i16: 3,
  u32: 4,
  i32: 5,
  f32: 6,
  bool: 7,
  string: 8,
  array: 9,
  u64: 10,
  i64: 11,
  f64: 12,
} as const;

/** Little-endian byte builder for hand-made (often malformed) GGUF files. */
export class RawBytes {
  private parts: number[] = [];
  u8(v: number): this {
    this.parts.push(v & 0xff);
    return this;
  }
  u32(v: number): this {
    for (let i = 0; i < 4; i++) this.parts.push((v >>> (8 * i)) & 0xff);
    return this;
  }
  u64(v: bigint | number): this {
    let b = BigInt.asUintN(64, BigInt(v));
    for (let i = 0; i < 8; i++) {
      this.parts.push(Number(b & 0xffn));
      b >>= 8n;
    }
    return this;
  }
  f32(v: number): this {
    const b = new Uint8Array(new Float32Array([v]).buffer);
    return this.bytes(b);
  }
  bytes(b: ArrayLike<number>): this {
    for (let i = 0; i < b.length; i++) this.parts.push(b[i] & 0xff);
    return this;
  }
  /** a GGUF string: u64 byte length + bytes (a JS string is UTF-8 encoded) */
  str(s: string | ArrayLike<number>): this {
    const b = typeof s === 'string' ? new TextEncoder().encode(s) : s;
    return this.u64(b.length).bytes(b);
  }
  /** header: magic, version, tensor count, kv count */
  header(nTensors: bigint | number, nKV: bigint | number, version = 3): this {
    return this.bytes([0x47, 0x47, 0x55, 0x46]).u32(version).u64(nTensors).u64(nKV);
  }
  /** one tensor info */
  tensorInfo(
    name: string | ArrayLike<number>,
    dims: Array<bigint | number>,
    type: number,
    offset: bigint | number,
  ): this {
    this.str(name).u32(dims.length);
    for (const d of dims) this.u64(d);
    return this.u32(type).u64(offset);
  }
  /** zero bytes up to a multiple of `a` */
  align(a: number): this {
    while (this.parts.length % a) this.parts.push(0);
    return this;
  }
  zeros(n: number): this {
    for (let i = 0; i < n; i++) this.parts.push(0);
    return this;
  }
  get length(): number {
    return this.parts.length;
  }
  build(): Uint8Array {
    return Uint8Array.from(this.parts);
  }
}

/**
 * Metadata with one key of every value type and arrays of several types; with `nested`, also an
 * array of arrays (which llama.cpp rejects: write it with { nestedArrays: true }).
 */
export function allTypesMetadata(nested = true): Array<[string, GGUFMetaValue]> {
  const md: Array<[string, GGUFMetaValue]> = [
    ['general.architecture', meta.str('llama')],
    ['general.name', meta.str('tiny ✓ 模型')],
    ['t.u8', meta.u8(250)],
    ['t.i8', meta.i8(-100)],
    ['t.u16', meta.u16(65000)],
    ['t.i16', meta.i16(-32000)],
    ['t.u32', meta.u32(4000000000)],
    ['t.i32', meta.i32(-2000000000)],
    ['t.f32', meta.f32(0.5)],
    ['t.bool', meta.bool(true)],
    ['t.u64', meta.u64(2n ** 64n - 1n)],
    ['t.i64', meta.i64(-(2n ** 63n))],
    ['t.f64', meta.f64(Math.PI)],
    ['t.arr.str', meta.arr('string', ['<unk>', '<s>', '</s>', '▁the', ''])],
    ['t.arr.f32', meta.arr('f32', [0, -1.5, 2.25])],
    ['t.arr.i32', meta.arr('i32', [1, -2, 3])],
    ['t.arr.bool', meta.arr('bool', [true, false])],
    ['t.arr.u64', meta.arr('u64', [0n, 2n ** 64n - 1n])],
    ['t.arr.empty', meta.arr('u8', [])],
  ];
  if (nested) {
    md.push([
      't.arr.nested',
      meta.arr('array', [meta.arr('i32', [1, 2]), meta.arr('string', ['a', 'é']), meta.arr('u8', [])]),
    ]);
  }
  return md;
}

/** One tensor of each supported type (F32, F16, Q8_0, Q4_0), seeded. */
export function allTypesTensors(seed = 1): GGUFWriteTensor[] {
  const t = (name: string, dims: number[], type: number, s: number): GGUFWriteTensor => ({
    name,
    dims,
    type,
    data: fromF32(
      type,
      randomF32(
        dims.reduce((a, b) => a * b, 1),
        seed + s,
      ),
    ),
  });
  return [
    t('a.f32', [5, 3], GGMLType.F32, 1),
    t('b.f16', [7], GGMLType.F16, 2),
    t('c.q8_0', [64, 2], GGMLType.Q8_0, 3),
    t('d.q4_0', [32, 3], GGMLType.Q4_0, 4),
  ];
}

/** A tiny valid GGUF v3 file: every metadata type (nested array included), every supported tensor type. */
export function tinyGGUF(alignment = 32): Uint8Array {
  return writeGGUF(allTypesMetadata(), allTypesTensors(), alignment, { nestedArrays: true });
}

/** An even smaller valid file (two KVs, two small tensors), for byte-by-byte sweeps. */
export function microGGUF(): Uint8Array {
  return writeGGUF(
    [
      ['general.architecture', meta.str('llama')],
      ['a', meta.arr('i32', [1, 2])],
    ],
    [
      { name: 'x', dims: [3], type: GGMLType.F32, data: fromF32(GGMLType.F32, new Float32Array([1, 2, 3])) },
      { name: 'q', dims: [32], type: GGMLType.Q8_0, data: fromF32(GGMLType.Q8_0, randomF32(32, 9)) },
    ],
    8,
  );
}

export interface TinyModelOptions {
  arch?: 'llama' | 'gpt2';
  dim?: number;
  nLayers?: number;
  nHeads?: number;
  nKvHeads?: number; // llama only
  ffnDim?: number;
  vocab?: number;
  contextLength?: number;
  /** type of the 2-D weight matrices (norms, biases stay F32) */
  type?: number;
  seed?: number;
  /** llama: write a separate output.weight (else tied to token_embd) */
  untied?: boolean;
  extraMetadata?: Array<[string, GGUFMetaValue]>;
  /** data alignment (default 32) */
  alignment?: number;
  /** llama: byte tokens <0x00>…<0x7F> only, plus '▁', so that generated text is always valid UTF-8
   * (prompts must then be ASCII) */
  asciiBytes?: boolean;
}

/**
 * A tiny random model in GGUF, with the tensor names and keys of llama.cpp's `llama` or `gpt2`
 * architecture, and a byte-level toy vocabulary (tokens "<unk>", "<s>", "</s>", then `<0x00>`…`<0xFF>`
 * for llama, or single characters for gpt2, padded to `vocab`). Weights ~ U(-0.5, 0.5)/sqrt(dim).
 */
export function tinyModelGGUF(o: TinyModelOptions = {}): Uint8Array {
  const arch = o.arch ?? 'llama';
  const dim = o.dim ?? 64;
  const nLayers = o.nLayers ?? 2;
  const nHeads = o.nHeads ?? 4;
  const nKv = arch === 'llama' ? (o.nKvHeads ?? 2) : nHeads;
  const ffn = o.ffnDim ?? 128;
  const vocab = o.vocab ?? 288;
  const ctx = o.contextLength ?? 128;
  const type = o.type ?? GGMLType.F32;
  const headDim = dim / nHeads;
  let seed = o.seed ?? 1;
  const scale = 1 / Math.sqrt(dim);
  const tensors: GGUFWriteTensor[] = [];
  // dims fastest first: a (N out × K in) weight is [K, N]
  const mat = (name: string, k: number, n: number) =>
    tensors.push({ name, dims: [k, n], type, data: fromF32(type, randomF32(k * n, seed++, scale)) });
  const vec = (name: string, n: number, base = 0) => {
    const v = randomF32(n, seed++, 0.1);
    for (let i = 0; i < n; i++) v[i] += base;
    tensors.push({ name, dims: [n], type: GGMLType.F32, data: fromF32(GGMLType.F32, v) });
  };
  const md: Array<[string, GGUFMetaValue]> = [
    ['general.architecture', meta.str(arch)],
    ['general.name', meta.str(`tiny-${arch}`)],
    [`${arch}.context_length`, meta.u32(ctx)],
    [`${arch}.embedding_length`, meta.u32(dim)],
    [`${arch}.block_count`, meta.u32(nLayers)],
    [`${arch}.feed_forward_length`, meta.u32(ffn)],
    [`${arch}.attention.head_count`, meta.u32(nHeads)],
  ];
  if (arch === 'llama') {
    md.push(
      ['llama.attention.head_count_kv', meta.u32(nKv)],
      ['llama.attention.layer_norm_rms_epsilon', meta.f32(1e-5)],
      ['llama.rope.freq_base', meta.f32(10000)],
      ['llama.rope.dimension_count', meta.u32(headDim)],
    );
  } else {
    md.push(['gpt2.attention.layer_norm_epsilon', meta.f32(1e-5)]);
  }
  // toy vocabulary
  const tokens: string[] = [];
  const scores: number[] = [];
  const ttypes: number[] = [];
  if (arch === 'llama') {
    tokens.push('<unk>', '<s>', '</s>');
    ttypes.push(2, 3, 3);
    for (let b = 0; b < (o.asciiBytes ? 128 : 256); b++) {
      tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
      ttypes.push(6);
    }
    if (o.asciiBytes) {
      tokens.push('▁'); // the SentencePiece space, so that no prompt needs a byte token above 0x7F
      ttypes.push(1);
    }
    for (let i = tokens.length; i < vocab; i++) {
      tokens.push(`▁t${i}`);
      ttypes.push(1);
    }
  } else {
    for (let i = 0; i < vocab - 1; i++) {
      tokens.push(String.fromCodePoint(0x100 + i));
      ttypes.push(1);
    }
    tokens.push('<|endoftext|>');
    ttypes.push(3);
  }
  tokens.length = Math.min(tokens.length, vocab);
  ttypes.length = tokens.length;
  for (let i = 0; i < tokens.length; i++) scores.push(-i);
  md.push(
    ['tokenizer.ggml.model', meta.str(arch === 'llama' ? 'llama' : 'gpt2')],
    ['tokenizer.ggml.tokens', meta.arr('string', tokens)],
    ['tokenizer.ggml.token_type', meta.arr('i32', ttypes)],
  );
  if (arch === 'llama') {
    md.push(
      ['tokenizer.ggml.scores', meta.arr('f32', scores)],
      ['tokenizer.ggml.bos_token_id', meta.u32(1)],
      ['tokenizer.ggml.eos_token_id', meta.u32(2)],
      ['tokenizer.ggml.unknown_token_id', meta.u32(0)],
    );
  } else {
    md.push(
      ['tokenizer.ggml.merges', meta.arr('string', [])],
      ['tokenizer.ggml.bos_token_id', meta.u32(tokens.length - 1)],
      ['tokenizer.ggml.eos_token_id', meta.u32(tokens.length - 1)],
    );
  }
  md.push(...(o.extraMetadata ?? []));

  mat('token_embd.weight', dim, tokens.length);
  if (arch === 'gpt2') mat('position_embd.weight', dim, ctx);
  for (let l = 0; l < nLayers; l++) {
    const p = `blk.${l}.`;
    if (arch === 'llama') {
      vec(`${p}attn_norm.weight`, dim, 1);
      mat(`${p}attn_q.weight`, dim, nHeads * headDim);
      mat(`${p}attn_k.weight`, dim, nKv * headDim);
      mat(`${p}attn_v.weight`, dim, nKv * headDim);
      mat(`${p}attn_output.weight`, nHeads * headDim, dim);
      vec(`${p}ffn_norm.weight`, dim, 1);
      mat(`${p}ffn_gate.weight`, dim, ffn);
      mat(`${p}ffn_up.weight`, dim, ffn);
      mat(`${p}ffn_down.weight`, ffn, dim);
    } else {
      vec(`${p}attn_norm.weight`, dim, 1);
      vec(`${p}attn_norm.bias`, dim);
      mat(`${p}attn_qkv.weight`, dim, 3 * dim);
      vec(`${p}attn_qkv.bias`, 3 * dim);
      mat(`${p}attn_output.weight`, dim, dim);
      vec(`${p}attn_output.bias`, dim);
      vec(`${p}ffn_norm.weight`, dim, 1);
      vec(`${p}ffn_norm.bias`, dim);
      mat(`${p}ffn_up.weight`, dim, ffn);
      vec(`${p}ffn_up.bias`, ffn);
      mat(`${p}ffn_down.weight`, ffn, dim);
      vec(`${p}ffn_down.bias`, dim);
    }
  }
  vec('output_norm.weight', dim, 1);
  if (arch === 'gpt2') vec('output_norm.bias', dim);
  if (arch === 'llama' && o.untied) mat('output.weight', dim, tokens.length);
  return writeGGUF(md, tensors, o.alignment);
}
