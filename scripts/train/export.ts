/**
 * Trained parameters → llama GGUF (F32 or Q8_0) with our writer: the llama.* shape keys, the
 * tokenizer metadata, and edgelm.train.* figures. Linear weights are (out × in) row-major, GGUF
 * dims [in, out]; token_embd dims [dim, vocab]; norms stay F32 in a Q8_0 file.
 */
import { fromF32, GGMLType, quantizeQ8_0 } from '../../runtime/ggml.ts';
import { type GGUFMetaValue, type GGUFWriteTensor, meta, writeGGUF } from '../../runtime/gguf.ts';
import { type ModelConfig, paramLayout } from './model.ts';

export interface TrainStats {
  steps: number;
  tokens: number;
  wallSeconds: number;
  valLoss: number;
}

/** GGUF bytes of a model. */
export function modelGGUF(
  cfg: ModelConfig,
  params: Float32Array,
  tokenizerKv: Array<[string, GGUFMetaValue]>,
  stats: TrainStats,
  opts: { type: 'f32' | 'q8_0'; name: string; extra?: Array<[string, GGUFMetaValue]> },
): Uint8Array {
  const kv: Array<[string, GGUFMetaValue]> = [
    ['general.architecture', meta.str('llama')],
    ['general.name', meta.str(opts.name)],
    ['general.file_type', meta.u32(opts.type === 'f32' ? 0 : 7)],
    ['llama.context_length', meta.u32(cfg.contextLength)],
    ['llama.embedding_length', meta.u32(cfg.dim)],
    ['llama.block_count', meta.u32(cfg.nLayers)],
    ['llama.feed_forward_length', meta.u32(cfg.ffnDim)],
    ['llama.attention.head_count', meta.u32(cfg.nHeads)],
    ['llama.attention.head_count_kv', meta.u32(cfg.nHeads)],
    ['llama.attention.layer_norm_rms_epsilon', meta.f32(cfg.normEps)],
    ['llama.rope.freq_base', meta.f32(cfg.ropeBase)],
    ['llama.rope.dimension_count', meta.u32(cfg.dim / cfg.nHeads)],
    ['llama.vocab_size', meta.u32(cfg.vocabSize)],
    ...tokenizerKv,
    ['edgelm.train.steps', meta.u32(stats.steps)],
    ['edgelm.train.tokens', meta.u64(stats.tokens)],
    ['edgelm.train.wall_seconds', meta.f32(stats.wallSeconds)],
    ['edgelm.train.val_loss', meta.f32(stats.valLoss)],
    ...(opts.extra ?? []),
  ];
  const tensors: GGUFWriteTensor[] = [];
  for (const t of paramLayout(cfg).tensors) {
    const data = params.slice(t.offset, t.offset + t.rows * t.cols);
    const dims = t.rows === 1 ? [t.cols] : [t.cols, t.rows];
    const quant = opts.type === 'q8_0' && t.rows > 1 && t.cols % 32 === 0;
    tensors.push({
      name: t.name,
      dims,
      type: quant ? GGMLType.Q8_0 : GGMLType.F32,
      data: quant ? quantizeQ8_0(data) : fromF32(GGMLType.F32, data),
    });
  }
  return writeGGUF(kv, tensors);
}
