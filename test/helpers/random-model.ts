// Random small llama / gpt2 models written as GGUF through our own writer, for tests and benchmarks.
//
// Weights are drawn in f32 from a seeded generator (the same seed gives the same f32 weights
// whatever the storage type), then stored as F32, F16, Q8_0 or Q4_0 (2-D weights only; norms and
// biases stay F32, as llama.cpp's converters keep them). A tiny gpt2-style byte-level vocabulary
// (256 byte tokens, merges, and <|endoftext|> last) makes the tokenizer loadable at any vocab ≥ 257.

import { fromF32, GGMLType } from '../../runtime/ggml.ts';
import { type GGUFMetaValue, type GGUFWriteTensor, meta, writeGGUF } from '../../runtime/gguf.ts';
import { createRng } from '../../runtime/prng.ts';

export type StorageType = 'f32' | 'f16' | 'q8_0' | 'q4_0';

export interface RandomModelOptions {
  arch: 'llama' | 'gpt2';
  dim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads?: number; // llama only (default nHeads)
  ffnDim: number;
  vocab: number; // ≥ 257
  context: number;
  type?: StorageType; // storage of 2-D weights (default f32)
  /** storage by tensor name suffix, e.g. { 'attn_v.weight': 'f16' } (mixed-type files) */
  typeOverrides?: Record<string, StorageType>;
  tied?: boolean; // no output.weight (default: llama false, gpt2 true)
  seed?: number;
  /** multiplies the output projection (token_embd when tied): larger → more peaked logits (default 1) */
  scale?: number;
  eps?: number;
  freqBase?: number;
  /**
   * zero the output rows of byte tokens 0x80–0xFF and of <|endoftext|>: such tokens never win, so
   * greedy text stays valid UTF-8 without EOS (llama.cpp's server cannot return invalid UTF-8)
   */
  asciiOnly?: boolean;
  /** with tied: also write output.weight, a copy of token_embd (an untied file with tied values) */
  outputCopy?: boolean;
  /** extra or overriding metadata, written after the standard keys */
  extraMeta?: Array<[string, GGUFMetaValue]>;
  /** metadata keys to leave out */
  dropMeta?: string[];
}

const STORAGE: Record<StorageType, number> = {
  f32: GGMLType.F32,
  f16: GGMLType.F16,
  q8_0: GGMLType.Q8_0,
  q4_0: GGMLType.Q4_0,
};

// GPT-2's bytes_to_unicode: printable bytes map to themselves, the rest to U+0100 upward
function byteChars(): string[] {
  const out: string[] = new Array(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    out[b] = String.fromCodePoint(printable ? b : 256 + extra++);
  }
  return out;
}

/**
 * A byte-level BPE vocabulary of exactly `vocab` tokens: the 256 byte tokens, then merged tokens
 * (breadth-first: existing token + lowercase letter or space), then <|endoftext|>.
 */
export function byteVocab(vocab: number): { tokens: string[]; types: number[]; merges: string[] } {
  if (vocab < 257) throw new RangeError('vocab must be at least 257');
  const chars = byteChars();
  const tokens = chars.slice();
  const seen = new Set(tokens);
  const merges: string[] = [];
  const letters = [chars[32], ...'etaoinshrdlcumwfgypbvkjxqz'.split('')]; // 'Ġ' first
  const want = vocab - 1;
  for (let i = 0; tokens.length < want; i++) {
    const base = i < letters.length ? letters[i] : tokens[256 + (i - letters.length)];
    for (const c of letters) {
      if (tokens.length >= want) break;
      const t = base + c;
      if (seen.has(t)) continue;
      seen.add(t);
      tokens.push(t);
      merges.push(`${base} ${c}`);
    }
  }
  tokens.push('<|endoftext|>');
  const types = tokens.map((_, i) => (i === vocab - 1 ? 3 : 1));
  return { tokens, types, merges };
}

/** Deterministic f32 weights of a random model, by GGUF tensor name (shape as GGUF dims). */
export function randomWeights(o: RandomModelOptions): Map<string, { dims: number[]; data: Float32Array }> {
  const rng = createRng(o.seed ?? 1);
  const uniform = () => rng.next() * 2 - 1; // U(-1, 1), variance 1/3
  const w = new Map<string, { dims: number[]; data: Float32Array }>();
  // linear (n out × k in): entries with std 1/sqrt(k), so activations stay O(1)
  const lin = (name: string, k: number, n: number, scale = 1) => {
    const a = new Float32Array(n * k);
    const s = (Math.sqrt(3) / Math.sqrt(k)) * scale;
    for (let i = 0; i < a.length; i++) a[i] = uniform() * s;
    w.set(name, { dims: [k, n], data: a });
  };
  const vec = (name: string, n: number, mean: number, spread: number) => {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = mean + uniform() * spread;
    w.set(name, { dims: [n], data: a });
  };
  const { dim, ffnDim: ffn, vocab } = o;
  const headDim = dim / o.nHeads;
  const kvDim = (o.arch === 'llama' ? (o.nKvHeads ?? o.nHeads) : o.nHeads) * headDim;
  const tied = o.tied ?? o.arch === 'gpt2';
  const scale = o.scale ?? 1;
  // token embedding: rows of O(1) entries (scaled when it doubles as the output projection)
  const emb = new Float32Array(vocab * dim);
  const es = tied ? (Math.sqrt(3) / Math.sqrt(dim)) * scale : 1;
  for (let i = 0; i < emb.length; i++) emb[i] = uniform() * es;
  w.set('token_embd.weight', { dims: [dim, vocab], data: emb });
  if (o.arch === 'gpt2') {
    const pos = new Float32Array(o.context * dim);
    for (let i = 0; i < pos.length; i++) pos[i] = uniform() * 0.5;
    w.set('position_embd.weight', { dims: [dim, o.context], data: pos });
  }
  for (let l = 0; l < o.nLayers; l++) {
    const p = `blk.${l}.`;
    vec(`${p}attn_norm.weight`, dim, 1, 0.2);
    if (o.arch === 'llama') {
      lin(`${p}attn_q.weight`, dim, dim, 2); // larger q gives attention something to choose
      lin(`${p}attn_k.weight`, dim, kvDim, 2);
      lin(`${p}attn_v.weight`, dim, kvDim);
      lin(`${p}attn_output.weight`, dim, dim);
      vec(`${p}ffn_norm.weight`, dim, 1, 0.2);
      lin(`${p}ffn_gate.weight`, dim, ffn);
      lin(`${p}ffn_up.weight`, dim, ffn);
      lin(`${p}ffn_down.weight`, ffn, dim);
    } else {
      vec(`${p}attn_norm.bias`, dim, 0, 0.1);
      lin(`${p}attn_qkv.weight`, dim, dim + 2 * kvDim, 2);
      vec(`${p}attn_qkv.bias`, dim + 2 * kvDim, 0, 0.1);
      lin(`${p}attn_output.weight`, dim, dim);
      vec(`${p}attn_output.bias`, dim, 0, 0.1);
      vec(`${p}ffn_norm.weight`, dim, 1, 0.2);
      vec(`${p}ffn_norm.bias`, dim, 0, 0.1);
      lin(`${p}ffn_up.weight`, dim, ffn);
      vec(`${p}ffn_up.bias`, ffn, 0, 0.1);
      lin(`${p}ffn_down.weight`, ffn, dim);
      vec(`${p}ffn_down.bias`, dim, 0, 0.1);
    }
  }
  vec('output_norm.weight', dim, 1, 0.2);
  if (o.arch === 'gpt2') vec('output_norm.bias', dim, 0, 0.1);
  if (!tied) lin('output.weight', dim, vocab, scale);
  if (tied && o.outputCopy) w.set('output.weight', { dims: [dim, vocab], data: emb.slice() });
  if (o.asciiOnly) {
    const out = w.get(tied ? 'token_embd.weight' : 'output.weight')!.data;
    for (const t of [...Array.from({ length: 128 }, (_, i) => 128 + i), vocab - 1])
      out.fill(0, t * dim, (t + 1) * dim);
  }
  return w;
}

/**
 * GGUF bytes of a random model.
 * @example
 * const bytes = randomModel({ arch: 'llama', dim: 64, nLayers: 2, nHeads: 4, ffnDim: 96, vocab: 300, context: 64 });
 */
export function randomModel(o: RandomModelOptions): Uint8Array {
  const a = o.arch;
  const type = STORAGE[o.type ?? 'f32'];
  const { tokens, types, merges } = byteVocab(o.vocab);
  const md: Array<[string, GGUFMetaValue]> = [
    ['general.architecture', meta.str(a)],
    ['general.name', meta.str(`random-${a}`)],
    [`${a}.context_length`, meta.u32(o.context)],
    [`${a}.embedding_length`, meta.u32(o.dim)],
    [`${a}.block_count`, meta.u32(o.nLayers)],
    [`${a}.feed_forward_length`, meta.u32(o.ffnDim)],
    [`${a}.attention.head_count`, meta.u32(o.nHeads)],
  ];
  if (a === 'llama') {
    md.push(
      ['llama.attention.head_count_kv', meta.u32(o.nKvHeads ?? o.nHeads)],
      ['llama.attention.layer_norm_rms_epsilon', meta.f32(o.eps ?? 1e-5)],
      ['llama.rope.freq_base', meta.f32(o.freqBase ?? 10000)],
    );
  } else {
    md.push(['gpt2.attention.layer_norm_epsilon', meta.f32(o.eps ?? 1e-5)]);
  }
  // no tokenizer.ggml.pre: llama.cpp names GPT-2's pre-tokenizer 'gpt-2' (and rejects 'gpt2'); absent,
  // both llama.cpp and edgelm fall back to a GPT-2-style split
  md.push(
    ['tokenizer.ggml.model', meta.str('gpt2')],
    ['tokenizer.ggml.tokens', meta.arr('string', tokens)],
    ['tokenizer.ggml.token_type', meta.arr('i32', types)],
    ['tokenizer.ggml.merges', meta.arr('string', merges)],
    ['tokenizer.ggml.bos_token_id', meta.u32(o.vocab - 1)],
    ['tokenizer.ggml.eos_token_id', meta.u32(o.vocab - 1)],
    ['tokenizer.ggml.add_bos_token', meta.bool(false)],
  );
  for (const [key, v] of o.extraMeta ?? []) {
    const i = md.findIndex(([k2]) => k2 === key);
    if (i >= 0) md[i] = [key, v];
    else md.push([key, v]);
  }
  const kept = md.filter(([key]) => !o.dropMeta?.includes(key));
  const tensors: GGUFWriteTensor[] = [];
  for (const [name, { dims, data }] of randomWeights(o)) {
    const over = Object.entries(o.typeOverrides ?? {}).find(([suffix]) => name.endsWith(suffix));
    const t = dims.length !== 2 ? GGMLType.F32 : over ? STORAGE[over[1]] : type;
    tensors.push({ name, dims, type: t, data: fromF32(t, data) });
  }
  return writeGGUF(kept, tensors);
}
