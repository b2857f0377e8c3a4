/**
 * Random llama-architecture GGUF models in llama2.c's shapes, for benchmarks and cross-checks
 * against llama.cpp. The vocabulary is Llama 2's (from ../shared/data/llama2-tokenizer.bin) when
 * present, else a synthetic one of the same size. The embedding (tied to the output) has zero rows
 * for the byte tokens 0x80–0xFF, so greedy decoding never emits a lone UTF-8 continuation byte:
 * llama.cpp's server refuses to serialise invalid UTF-8.
 * @example
 * const bytes = randomLlamaGGUF(SHAPES['15M'], 'q8_0');
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fromF32, GGMLType } from '../../runtime/ggml.ts';
import { type GGUFMetaValue, meta, writeGGUF } from '../../runtime/gguf.ts';
import { llama2cVocabMetadata, readLlama2cTokenizer } from './llama2c-tokenizer.ts';

export interface LlamaShape {
  dim: number;
  layers: number;
  heads: number;
  kvHeads: number;
  ffn: number;
  vocab: number;
  ctx: number;
}

export const SHAPES: Record<string, LlamaShape> = {
  '15M': { dim: 288, layers: 6, heads: 6, kvHeads: 6, ffn: 768, vocab: 32000, ctx: 512 },
  '42M': { dim: 512, layers: 8, heads: 8, kvHeads: 8, ffn: 1376, vocab: 32000, ctx: 1024 },
  '110M': { dim: 768, layers: 12, heads: 12, kvHeads: 12, ffn: 2048, vocab: 32000, ctx: 1024 },
};

export const TYPE_IDS: Record<string, number> = {
  f32: GGMLType.F32,
  q8_0: GGMLType.Q8_0,
  q4_0: GGMLType.Q4_0,
};

/** where ../shared/data is, or undefined */
export function sharedDataDir(): string | undefined {
  for (const d of [join(process.cwd(), '..', 'shared', 'data'), '/work/shared/data'])
    if (existsSync(join(d, 'llama2-tokenizer.bin'))) return d;
  return undefined;
}

function vocabMetadata(n: number): Array<[string, GGUFMetaValue]> {
  const dir = sharedDataDir();
  if (dir && n === 32000)
    return llama2cVocabMetadata(readLlama2cTokenizer(readFileSync(join(dir, 'llama2-tokenizer.bin')), n));
  const tokens = ['<unk>', '<s>', '</s>'];
  for (let i = 0; i < 256; i++) tokens.push(`<0x${i.toString(16).toUpperCase().padStart(2, '0')}>`);
  tokens.push('▁');
  for (const c of 'abcdefghijklmnopqrstuvwxyz .,') tokens.push(c, `▁${c}`);
  while (tokens.length < n) tokens.push(`▁w${tokens.length}`);
  return [
    ['tokenizer.ggml.model', meta.str('llama')],
    ['tokenizer.ggml.tokens', meta.arr('string', tokens)],
    [
      'tokenizer.ggml.scores',
      meta.arr(
        'f32',
        tokens.map((_, i) => -i),
      ),
    ],
    [
      'tokenizer.ggml.token_type',
      meta.arr(
        'i32',
        tokens.map((_, i) => (i === 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 1)),
      ),
    ],
    ['tokenizer.ggml.bos_token_id', meta.u32(1)],
    ['tokenizer.ggml.eos_token_id', meta.u32(2)],
    ['tokenizer.ggml.add_bos_token', meta.bool(true)],
  ];
}

/** Writes a random llama model; `scale` multiplies every weight (larger: more peaked logits). */
export function randomLlamaGGUF(s: LlamaShape, type: string, seed = 1, scale = 1): Uint8Array {
  let st = seed >>> 0 || 1;
  // xorshift32 → approximately normal via the sum of 4 uniforms
  const u = () => {
    st ^= st << 13;
    st ^= st >>> 17;
    st ^= st << 5;
    return (st >>> 0) / 4294967296;
  };
  const randn = () => (u() + u() + u() + u() - 2) * 1.732;
  const t = GGMLType.F32;
  const q = TYPE_IDS[type];
  if (q === undefined) throw new Error(`unknown type ${type}`);
  const tensors: Array<{ name: string; dims: number[]; type: number; data: Uint8Array }> = [];
  const add = (name: string, dims: number[], std: number, ty: number, zeroRows?: [number, number]) => {
    const n = dims.reduce((a, b) => a * b, 1);
    const f = new Float32Array(n);
    if (dims.length === 1) f.fill(1);
    else for (let i = 0; i < n; i++) f[i] = randn() * std * scale;
    if (zeroRows) f.fill(0, zeroRows[0] * dims[0], zeroRows[1] * dims[0]);
    tensors.push({ name, dims, type: ty, data: fromF32(ty, f) });
  };
  const hd = s.dim / s.heads;
  const kvDim = hd * s.kvHeads;
  add('token_embd.weight', [s.dim, s.vocab], 1, q, [3 + 0x80, 3 + 0x100]);
  for (let l = 0; l < s.layers; l++) {
    const p = `blk.${l}.`;
    add(`${p}attn_norm.weight`, [s.dim], 0, t);
    add(`${p}attn_q.weight`, [s.dim, s.dim], 1 / Math.sqrt(s.dim), q);
    add(`${p}attn_k.weight`, [s.dim, kvDim], 1 / Math.sqrt(s.dim), q);
    add(`${p}attn_v.weight`, [s.dim, kvDim], 1 / Math.sqrt(s.dim), q);
    add(`${p}attn_output.weight`, [s.dim, s.dim], 1 / Math.sqrt(s.dim), q);
    add(`${p}ffn_norm.weight`, [s.dim], 0, t);
    add(`${p}ffn_gate.weight`, [s.dim, s.ffn], 1 / Math.sqrt(s.dim), q);
    add(`${p}ffn_up.weight`, [s.dim, s.ffn], 1 / Math.sqrt(s.dim), q);
    add(`${p}ffn_down.weight`, [s.ffn, s.dim], 1 / Math.sqrt(s.ffn), q);
  }
  add('output_norm.weight', [s.dim], 0, t);
  const md: Array<[string, GGUFMetaValue]> = [
    ['general.architecture', meta.str('llama')],
    ['general.name', meta.str(`random-llama-${s.dim}x${s.layers}`)],
    ['llama.context_length', meta.u32(s.ctx)],
    ['llama.embedding_length', meta.u32(s.dim)],
    ['llama.block_count', meta.u32(s.layers)],
    ['llama.feed_forward_length', meta.u32(s.ffn)],
    ['llama.attention.head_count', meta.u32(s.heads)],
    ['llama.attention.head_count_kv', meta.u32(s.kvHeads)],
    ['llama.attention.layer_norm_rms_epsilon', meta.f32(1e-5)],
    ['llama.rope.freq_base', meta.f32(10000)],
    ['llama.rope.dimension_count', meta.u32(hd)],
    ...vocabMetadata(s.vocab),
  ];
  return writeGGUF(md, tensors);
}
