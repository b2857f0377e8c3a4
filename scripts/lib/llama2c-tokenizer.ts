/**
 * llama2.c's tokenizer.bin: int32 max_token_length, then per token a float32 score, an int32 byte
 * length and the bytes. Returned as GGUF `llama` tokenizer metadata (token types: <unk> unknown,
 * <s>/</s> control, <0xNN> byte, the rest normal).
 * @example
 * const vocab = readLlama2cTokenizer(readFileSync('tokenizer.bin'), 32000);
 */
import { FormatError } from '../../runtime/errors.ts';
import { type GGUFMetaValue, meta } from '../../runtime/gguf.ts';

export interface Llama2cVocab {
  tokens: string[];
  scores: number[];
  types: number[];
  maxTokenLength: number;
}

export function readLlama2cTokenizer(
  bytes: Uint8Array,
  vocabSize: number,
  name = 'tokenizer.bin',
): Llama2cVocab {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const need = (off: number, n: number) => {
    if (off + n > bytes.length)
      throw new FormatError(`${name}: ends at byte ${bytes.length}, inside token data`, {
        offset: off,
        hint: 'truncated file, or a vocabulary size that does not match the checkpoint',
      });
  };
  need(0, 4);
  const maxTokenLength = dv.getInt32(0, true);
  if (maxTokenLength <= 0 || maxTokenLength > 4096)
    throw new FormatError(`${name}: max_token_length ${maxTokenLength} is not plausible`, { offset: 0 });
  const dec = new TextDecoder('utf-8', { fatal: false });
  const tokens: string[] = [];
  const scores: number[] = [];
  const types: number[] = [];
  let off = 4;
  for (let i = 0; i < vocabSize; i++) {
    need(off, 8);
    const score = dv.getFloat32(off, true);
    const len = dv.getInt32(off + 4, true);
    off += 8;
    if (len < 0 || len > maxTokenLength)
      throw new FormatError(`${name}: token ${i} has length ${len} (max_token_length ${maxTokenLength})`, {
        offset: off - 4,
      });
    need(off, len);
    // llama2.c's export wrote SentencePiece's ▁ as a plain space: put it back
    const piece = dec.decode(bytes.subarray(off, off + len)).replaceAll(' ', '▁');
    off += len;
    tokens.push(piece);
    scores.push(score);
    types.push(
      i === 0 ? 2 : piece === '<s>' || piece === '</s>' ? 3 : /^<0x[0-9A-F]{2}>$/.test(piece) ? 6 : 1,
    );
  }
  if (off !== bytes.length)
    throw new FormatError(
      `${name}: ${bytes.length - off} bytes left after ${vocabSize} tokens: the vocabulary size does not match`,
      { offset: off },
    );
  return { tokens, scores, types, maxTokenLength };
}

/** GGUF metadata for a llama2.c vocabulary (BOS 1, EOS 2, unknown 0, BOS added). */
export function llama2cVocabMetadata(v: Llama2cVocab): Array<[string, GGUFMetaValue]> {
  return [
    ['tokenizer.ggml.model', meta.str('llama')],
    ['tokenizer.ggml.tokens', meta.arr('string', v.tokens)],
    ['tokenizer.ggml.scores', meta.arr('f32', v.scores)],
    ['tokenizer.ggml.token_type', meta.arr('i32', v.types)],
    ['tokenizer.ggml.bos_token_id', meta.u32(1)],
    ['tokenizer.ggml.eos_token_id', meta.u32(2)],
    ['tokenizer.ggml.unknown_token_id', meta.u32(0)],
    ['tokenizer.ggml.add_bos_token', meta.bool(true)],
  ];
}
