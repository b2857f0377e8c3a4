// Readers for the checkpoint formats `npm run convert` takes. Each returns a `Source`: the model's
// hyper-parameters as GGUF metadata and a list of tensors in GGUF naming and layout, whose data is
// read (and converted to f32) one tensor at a time, so a source is never held in memory whole.
//
// Layout conventions handled here:
// - llama2.c: weights (out, in) row-major as GGUF wants; RoPE over adjacent pairs as GGUF llama.
// - HF Llama: rotate-half RoPE; q/k rows are permuted into adjacent-pair order (per head, row
//   2i ← i and 2i+1 ← i + hd/2), the inverse of the permutation HF's own converter applies.
// - HF GPT-2: Conv1D stores (in, out): transposed to (out, in); c_attn stays fused as attn_qkv.
import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { basename, join } from 'node:path';
import { FormatError, UnsupportedError } from '../../runtime/errors.ts';
import { f16ToF32, toF32 } from '../../runtime/ggml.ts';
import { type GGUFFile, type GGUFMetaValue, meta } from '../../runtime/gguf.ts';
import { llama2cVocabMetadata, readLlama2cTokenizer } from '../lib/llama2c-tokenizer.ts';

export interface SourceTensor {
  name: string;
  /** GGUF dims, fastest first: a linear weight (out × in) is [in, out] */
  dims: number[];
  /** true for matrices the output type may quantise (2-D weights) */
  quantizable: boolean;
  /** reads the tensor as f32 in GGUF layout */
  read(): Float32Array;
  /** source type name, for the summary */
  sourceType: string;
}

export interface Source {
  architecture: 'llama' | 'gpt2';
  metadata: Array<[string, GGUFMetaValue]>;
  tensors: SourceTensor[];
  bytesIn: number;
  close(): void;
}

/** a file opened for positioned reads, each checked against its length */
class Reader {
  fd: number;
  size: number;
  constructor(
    readonly path: string,
    readonly name = basename(path),
  ) {
    if (!existsSync(path)) throw new FormatError(`${path}: no such file`);
    this.fd = openSync(path, 'r');
    this.size = fstatSync(this.fd).size;
  }
  bytes(offset: number, n: number, what: string): Uint8Array {
    if (offset + n > this.size)
      throw new FormatError(
        `${this.name}: ${what} needs bytes ${offset}..${offset + n} but the file has ${this.size}`,
        { offset, hint: 'truncated file, or a header that does not match the data' },
      );
    const b = new Uint8Array(n);
    let got = 0;
    while (got < n) got += readSync(this.fd, b, got, n - got, offset + got);
    return b;
  }
  f32(offset: number, n: number, what: string): Float32Array {
    const b = this.bytes(offset, n * 4, what);
    return new Float32Array(b.buffer, 0, n);
  }
  close() {
    closeSync(this.fd);
  }
}

const llamaMeta = (c: {
  dim: number;
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  ctx: number;
  eps: number;
  ropeBase: number;
  name: string;
}): Array<[string, GGUFMetaValue]> => [
  ['general.architecture', meta.str('llama')],
  ['general.name', meta.str(c.name)],
  ['llama.context_length', meta.u32(c.ctx)],
  ['llama.embedding_length', meta.u32(c.dim)],
  ['llama.block_count', meta.u32(c.layers)],
  ['llama.feed_forward_length', meta.u32(c.hidden)],
  ['llama.attention.head_count', meta.u32(c.heads)],
  ['llama.attention.head_count_kv', meta.u32(c.kvHeads)],
  ['llama.attention.layer_norm_rms_epsilon', meta.f32(c.eps)],
  ['llama.rope.freq_base', meta.f32(c.ropeBase)],
  ['llama.rope.dimension_count', meta.u32(c.dim / c.heads)],
];

function checkLlamaShape(
  name: string,
  c: {
    dim: number;
    hidden: number;
    layers: number;
    heads: number;
    kvHeads: number;
    vocab: number;
    ctx: number;
  },
) {
  const bad = (what: string) =>
    new FormatError(`${name}: ${what}`, { hint: 'is this a llama2.c checkpoint?' });
  for (const [k, v] of Object.entries(c))
    if (!Number.isInteger(v) || v <= 0 || v > 1 << 24) throw bad(`header field ${k} = ${v} is not plausible`);
  if (c.dim % c.heads !== 0) throw bad(`dim ${c.dim} is not a multiple of n_heads ${c.heads}`);
  if (c.heads % c.kvHeads !== 0) throw bad(`n_kv_heads ${c.kvHeads} does not divide n_heads ${c.heads}`);
  if ((c.dim / c.heads) % 2 !== 0) throw bad(`head size ${c.dim / c.heads} is odd (RoPE needs pairs)`);
}

// ---- llama2.c --------------------------------------------------------------------------------------

/**
 * Opens a llama2.c checkpoint: version 0 (seven int32 then f32 tensors; negative vocab_size =
 * unshared classifier), version 1 (magic "ak42", 256-byte header, f32) or version 2 (int8 groups
 * with f32 scales), with its tokenizer.bin.
 * @example
 * const src = openLlama2c('stories15M.bin', 'tokenizer.bin');
 */
export function openLlama2c(modelPath: string, tokenizerPath: string): Source {
  const r = new Reader(modelPath);
  const h = new DataView(r.bytes(0, Math.min(r.size, 256), 'the header').buffer);
  if (r.size < 28)
    throw new FormatError(`${r.name}: ${r.size} bytes is too short for a llama2.c header`, { offset: 0 });
  let version = 0;
  let off = 0;
  if (h.getUint32(0, true) === 0x616b3432) {
    version = h.getInt32(4, true);
    if (version !== 1 && version !== 2)
      throw new UnsupportedError(
        `${r.name}: llama2.c export version ${version} is not supported (1 and 2 are)`,
        {
          offset: 4,
        },
      );
    off = 8;
  }
  const hi = (i: number) => h.getInt32(off + 4 * i, true);
  let vocab = hi(5);
  let shared = vocab > 0;
  vocab = Math.abs(vocab);
  const c = { dim: hi(0), hidden: hi(1), layers: hi(2), heads: hi(3), kvHeads: hi(4), vocab, ctx: hi(6) };
  let groupSize = 0;
  if (version >= 1) {
    shared = h.getUint8(36) === 1;
    if (version === 2) groupSize = h.getInt32(37, true);
    if (version === 2 && (groupSize <= 0 || c.dim % groupSize !== 0))
      throw new FormatError(`${r.name}: group size ${groupSize} does not divide dim ${c.dim}`, {
        offset: 37,
      });
  }
  checkLlamaShape(r.name, c);
  const hd = c.dim / c.heads;
  const kvDim = hd * c.kvHeads;
  const L = c.layers;
  const tensors: SourceTensor[] = [];
  // tensor list in file order: [gguf name, dims (GGUF), quantizable]
  type Entry = { name: string; dims: number[]; q: boolean };
  const perLayer = (fmt: (l: number) => string, dims: number[], q: boolean): Entry[] =>
    Array.from({ length: L }, (_, l) => ({ name: fmt(l), dims, q }));
  const E = {
    embd: [{ name: 'token_embd.weight', dims: [c.dim, c.vocab], q: true }],
    attnNorm: perLayer((l) => `blk.${l}.attn_norm.weight`, [c.dim], false),
    ffnNorm: perLayer((l) => `blk.${l}.ffn_norm.weight`, [c.dim], false),
    outNorm: [{ name: 'output_norm.weight', dims: [c.dim], q: false }],
    wq: perLayer((l) => `blk.${l}.attn_q.weight`, [c.dim, c.dim], true),
    wk: perLayer((l) => `blk.${l}.attn_k.weight`, [c.dim, kvDim], true),
    wv: perLayer((l) => `blk.${l}.attn_v.weight`, [c.dim, kvDim], true),
    wo: perLayer((l) => `blk.${l}.attn_output.weight`, [c.dim, c.dim], true),
    w1: perLayer((l) => `blk.${l}.ffn_gate.weight`, [c.dim, c.hidden], true),
    w2: perLayer((l) => `blk.${l}.ffn_down.weight`, [c.hidden, c.dim], true),
    w3: perLayer((l) => `blk.${l}.ffn_up.weight`, [c.dim, c.hidden], true),
    cls: [{ name: 'output.weight', dims: [c.dim, c.vocab], q: true }],
  };
  const n = (e: Entry) => e.dims.reduce((a, b) => a * b, 1);
  let pos: number;
  const addF32 = (list: Entry[]) => {
    for (const e of list) {
      const at = pos;
      tensors.push({
        name: e.name,
        dims: e.dims,
        quantizable: e.q,
        sourceType: 'f32',
        read: () => r.f32(at, n(e), e.name),
      });
      pos += n(e) * 4;
    }
  };
  if (version === 0) {
    pos = 28;
    addF32(E.embd);
    addF32(E.attnNorm);
    addF32([...E.wq, ...E.wk, ...E.wv, ...E.wo]);
    addF32(E.ffnNorm);
    addF32([...E.w1, ...E.w2, ...E.w3]);
    addF32(E.outNorm);
    pos += 2 * c.ctx * (hd / 2) * 4; // freq_cis_real, freq_cis_imag: not needed
    if (!shared) addF32(E.cls);
  } else if (version === 1) {
    pos = 256;
    addF32([...E.attnNorm, ...E.ffnNorm, ...E.outNorm, ...E.embd]);
    addF32([...E.wq, ...E.wk, ...E.wv, ...E.wo, ...E.w1, ...E.w2, ...E.w3]);
    if (!shared) addF32(E.cls);
  } else {
    pos = 256;
    addF32([...E.attnNorm, ...E.ffnNorm, ...E.outNorm]);
    const qs = [
      ...E.embd,
      ...E.wq,
      ...E.wk,
      ...E.wv,
      ...E.wo,
      ...E.w1,
      ...E.w2,
      ...E.w3,
      ...(shared ? [] : E.cls),
    ];
    for (const e of qs) {
      const at = pos;
      const count = n(e);
      if (count % groupSize !== 0)
        throw new FormatError(
          `${r.name}: ${e.name} has ${count} values, not a multiple of group size ${groupSize}`,
        );
      tensors.push({
        name: e.name,
        dims: e.dims,
        quantizable: true,
        sourceType: `q8 (groups of ${groupSize})`,
        read: () => {
          const q = r.bytes(at, count, e.name);
          const s = r.f32(at + count, count / groupSize, `${e.name} scales`);
          const out = new Float32Array(count);
          for (let i = 0; i < count; i++) out[i] = ((q[i] << 24) >> 24) * s[(i / groupSize) | 0];
          return out;
        },
      });
      pos += count + (count / groupSize) * 4;
    }
  }
  if (pos !== r.size)
    throw new FormatError(
      `${r.name}: the header describes ${pos} bytes but the file has ${r.size}` +
        (pos > r.size ? ' (truncated download?)' : ' (wrong header, or not a llama2.c checkpoint)'),
      { offset: Math.min(pos, r.size) },
    );
  const tok = readLlama2cTokenizer(readFileSync(tokenizerPath), c.vocab, basename(tokenizerPath));
  return {
    architecture: 'llama',
    metadata: [
      ...llamaMeta({ ...c, eps: 1e-5, ropeBase: 10000, name: basename(modelPath).replace(/\.bin$/, '') }),
      ...llama2cVocabMetadata(tok),
      ['tokenizer.ggml.add_space_prefix', meta.bool(true)],
    ],
    tensors,
    bytesIn: r.size,
    close: () => r.close(),
  };
}

// ---- safetensors ---------------------------------------------------------------------------------

interface StEntry {
  dtype: string;
  shape: number[];
  reader: Reader;
  begin: number;
  end: number;
}

const MAX_ST_HEADER = 100 * 1024 * 1024;

/** Opens `model.safetensors` or the shards listed by `model.safetensors.index.json` in `dir`. */
export function openSafetensors(dir: string): { entries: Map<string, StEntry>; readers: Reader[] } {
  const index = join(dir, 'model.safetensors.index.json');
  const files: string[] = [];
  if (existsSync(index)) {
    let map: Record<string, string>;
    try {
      map = JSON.parse(readFileSync(index, 'utf8')).weight_map;
    } catch (e) {
      throw new FormatError(`${index}: not valid JSON (${(e as Error).message})`);
    }
    if (!map || typeof map !== 'object') throw new FormatError(`${index}: no weight_map`);
    for (const f of new Set(Object.values(map))) files.push(join(dir, f));
  } else if (existsSync(join(dir, 'model.safetensors'))) files.push(join(dir, 'model.safetensors'));
  else throw new FormatError(`${dir}: neither model.safetensors nor model.safetensors.index.json is there`);
  const entries = new Map<string, StEntry>();
  const readers: Reader[] = [];
  for (const f of files) {
    const r = new Reader(f);
    readers.push(r);
    const lenBytes = r.bytes(0, 8, 'the header length');
    const hlen = new DataView(lenBytes.buffer).getBigUint64(0, true);
    if (hlen > BigInt(Math.min(MAX_ST_HEADER, r.size - 8)))
      throw new FormatError(`${r.name}: header length ${hlen} is larger than the file allows`, { offset: 0 });
    const n = Number(hlen);
    let header: Record<string, any>;
    try {
      header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(r.bytes(8, n, 'the header')));
    } catch (e) {
      throw new FormatError(`${r.name}: header is not valid JSON (${(e as Error).message})`, { offset: 8 });
    }
    const base = 8 + n;
    for (const [name, v] of Object.entries(header)) {
      if (name === '__metadata__') continue;
      const [b, e] = v?.data_offsets ?? [];
      if (!Array.isArray(v?.shape) || !Number.isInteger(b) || !Number.isInteger(e) || e < b)
        throw new FormatError(`${r.name}: tensor ${name} has a malformed header entry`);
      const count = v.shape.reduce((a: number, x: number) => a * x, 1);
      const width = { F32: 4, F16: 2, BF16: 2 }[v.dtype as string];
      if (!width)
        throw new UnsupportedError(
          `${r.name}: tensor ${name} has dtype ${v.dtype} (F32, F16, BF16 are supported)`,
        );
      if (e - b !== count * width)
        throw new FormatError(
          `${r.name}: tensor ${name} spans ${e - b} bytes but its shape needs ${count * width}`,
        );
      if (base + e > r.size)
        throw new FormatError(
          `${r.name}: tensor ${name} ends at byte ${base + e}, past the end (${r.size}): truncated?`,
          {
            offset: r.size,
          },
        );
      entries.set(name, { dtype: v.dtype, shape: v.shape, reader: r, begin: base + b, end: base + e });
    }
  }
  return { entries, readers };
}

function readSt(e: StEntry, name: string): Float32Array {
  const b = e.reader.bytes(e.begin, e.end - e.begin, name);
  const n = e.shape.reduce((a, x) => a * x, 1);
  if (e.dtype === 'F32') return new Float32Array(b.buffer, 0, n);
  const u16 = new Uint16Array(b.buffer, 0, n);
  const out = new Float32Array(n);
  if (e.dtype === 'F16') for (let i = 0; i < n; i++) out[i] = f16ToF32(u16[i]);
  else {
    const u32 = new Uint32Array(out.buffer);
    for (let i = 0; i < n; i++) u32[i] = u16[i] << 16; // bf16 is the top half of an f32
  }
  return out;
}

/** rows of a q or k projection from rotate-half order into adjacent pairs, head by head */
export function permuteRotateHalfRows(
  w: Float32Array,
  nHeads: number,
  rows: number,
  cols: number,
): Float32Array {
  const hd = rows / nHeads;
  const half = hd / 2;
  const out = new Float32Array(w.length);
  for (let h = 0; h < nHeads; h++)
    for (let i = 0; i < half; i++) {
      out.set(w.subarray((h * hd + i) * cols, (h * hd + i + 1) * cols), (h * hd + 2 * i) * cols);
      out.set(
        w.subarray((h * hd + half + i) * cols, (h * hd + half + i + 1) * cols),
        (h * hd + 2 * i + 1) * cols,
      );
    }
  return out;
}

function transpose(w: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(w.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = w[r * cols + c];
  return out;
}

// ---- Hugging Face --------------------------------------------------------------------------------

function readJson(path: string): any {
  if (!existsSync(path)) throw new FormatError(`${path}: no such file`);
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new FormatError(`${path}: not valid JSON (${(e as Error).message})`);
  }
}

/** tokenizer.json (+ tokenizer_config.json) → GGUF tokenizer metadata */
function hfTokenizer(dir: string, vocabSize: number, arch: 'llama' | 'gpt2'): Array<[string, GGUFMetaValue]> {
  const tj = readJson(join(dir, 'tokenizer.json'));
  const cfgPath = join(dir, 'tokenizer_config.json');
  const tc = existsSync(cfgPath) ? readJson(cfgPath) : {};
  const model = tj.model;
  if (model?.type !== 'BPE' || typeof model.vocab !== 'object')
    throw new UnsupportedError(`${dir}/tokenizer.json: model type ${model?.type} (only BPE is supported)`);
  const tokens: string[] = new Array(vocabSize);
  const types: number[] = new Array(vocabSize).fill(1);
  for (const [piece, id] of Object.entries(model.vocab as Record<string, number>)) {
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize)
      throw new FormatError(
        `${dir}/tokenizer.json: token ${JSON.stringify(piece)} has id ${id}, outside the model's vocabulary of ${vocabSize}`,
      );
    tokens[id] = piece;
  }
  for (const t of tj.added_tokens ?? []) {
    if (t.id >= vocabSize)
      throw new FormatError(
        `${dir}/tokenizer.json: added token ${t.content} has id ${t.id} ≥ vocabulary size ${vocabSize}`,
      );
    tokens[t.id] = t.content;
    types[t.id] = t.special ? 3 : 4;
  }
  const merges: string[] = (model.merges ?? []).map((m: string | string[]) =>
    Array.isArray(m) ? m.join(' ') : m,
  );
  for (let i = 0; i < vocabSize; i++)
    if (tokens[i] === undefined) {
      tokens[i] = `[PAD${i}]`;
      types[i] = 5;
    }
  const idOf = (s: unknown) => {
    const str = typeof s === 'string' ? s : (s as any)?.content;
    const i = str === undefined ? -1 : tokens.indexOf(str);
    return i >= 0 ? i : undefined;
  };
  const md: Array<[string, GGUFMetaValue]> = [];
  if (arch === 'gpt2') {
    md.push(['tokenizer.ggml.model', meta.str('gpt2')], ['tokenizer.ggml.pre', meta.str('gpt-2')]);
    md.push(['tokenizer.ggml.merges', meta.arr('string', merges)]);
  } else {
    // SentencePiece-style: scores from merge ranks (a piece made by an earlier merge ranks higher)
    const rank = new Map<string, number>();
    merges.forEach((m, i) => {
      rank.set(m.replace(' ', ''), i);
    });
    const scores = tokens.map(
      (t) => -(rank.get(t) ?? (t.length > 1 && !/^<0x[0-9A-F]{2}>$/.test(t) ? merges.length : 0)),
    );
    tokens.forEach((t, i) => {
      if (/^<0x[0-9A-F]{2}>$/.test(t)) types[i] = 6;
    });
    md.push(['tokenizer.ggml.model', meta.str('llama')], ['tokenizer.ggml.scores', meta.arr('f32', scores)]);
    md.push(['tokenizer.ggml.add_space_prefix', meta.bool(true)]);
  }
  md.push(
    ['tokenizer.ggml.tokens', meta.arr('string', tokens)],
    ['tokenizer.ggml.token_type', meta.arr('i32', types)],
  );
  const bos = idOf(tc.bos_token);
  const eos = idOf(tc.eos_token);
  const unk = idOf(tc.unk_token);
  if (bos !== undefined) md.push(['tokenizer.ggml.bos_token_id', meta.u32(bos)]);
  if (eos !== undefined) md.push(['tokenizer.ggml.eos_token_id', meta.u32(eos)]);
  if (unk !== undefined) md.push(['tokenizer.ggml.unknown_token_id', meta.u32(unk)]);
  md.push(['tokenizer.ggml.add_bos_token', meta.bool(tc.add_bos_token ?? arch === 'llama')]);
  if (typeof tc.chat_template === 'string') md.push(['tokenizer.chat_template', meta.str(tc.chat_template)]);
  return md;
}

/**
 * Opens a Hugging Face model folder: config.json, model.safetensors (or shards), tokenizer.json,
 * for LlamaForCausalLM and GPT2LMHeadModel.
 * @example
 * const src = openHuggingFace('./TinyLlama');
 */
export function openHuggingFace(dir: string): Source {
  const cfg = readJson(join(dir, 'config.json'));
  const arch = cfg.architectures?.[0] ?? cfg.model_type;
  const { entries, readers } = openSafetensors(dir);
  const close = () => {
    for (const r of readers) r.close();
  };
  const bytesIn = readers.reduce((a, r) => a + r.size, 0);
  const get = (names: string[], shape: number[]): StEntry & { name: string } => {
    for (const n of names) {
      const e = entries.get(n);
      if (!e) continue;
      if (e.shape.length !== shape.length || e.shape.some((x, i) => x !== shape[i]))
        throw new FormatError(
          `${dir}: tensor ${n} has shape [${e.shape}] but config.json implies [${shape}]`,
        );
      return { ...e, name: n };
    }
    throw new FormatError(`${dir}: tensor ${names[0]} is missing`, {
      hint: 'incomplete download or another architecture',
    });
  };
  try {
    if (arch === 'LlamaForCausalLM' || arch === 'llama') {
      const c = {
        dim: cfg.hidden_size,
        hidden: cfg.intermediate_size,
        layers: cfg.num_hidden_layers,
        heads: cfg.num_attention_heads,
        kvHeads: cfg.num_key_value_heads ?? cfg.num_attention_heads,
        vocab: cfg.vocab_size,
        ctx: cfg.max_position_embeddings ?? 2048,
      };
      checkLlamaShape(`${dir}/config.json`, c);
      const hd = c.dim / c.heads;
      const kvDim = hd * c.kvHeads;
      const tensors: SourceTensor[] = [];
      const add = (
        gguf: string,
        names: string[],
        shape: number[],
        fix?: (w: Float32Array) => Float32Array,
      ) => {
        const e = get(names, shape);
        tensors.push({
          name: gguf,
          dims: [...shape].reverse(),
          quantizable: shape.length === 2,
          sourceType: e.dtype.toLowerCase(),
          read: () => (fix ? fix(readSt(e, e.name)) : readSt(e, e.name)),
        });
      };
      const p = (s: string) => [`model.${s}`, s];
      add('token_embd.weight', p('embed_tokens.weight'), [c.vocab, c.dim]);
      for (let l = 0; l < c.layers; l++) {
        const m = (s: string) => p(`layers.${l}.${s}`);
        add(`blk.${l}.attn_norm.weight`, m('input_layernorm.weight'), [c.dim]);
        add(`blk.${l}.attn_q.weight`, m('self_attn.q_proj.weight'), [c.dim, c.dim], (w) =>
          permuteRotateHalfRows(w, c.heads, c.dim, c.dim),
        );
        add(`blk.${l}.attn_k.weight`, m('self_attn.k_proj.weight'), [kvDim, c.dim], (w) =>
          permuteRotateHalfRows(w, c.kvHeads, kvDim, c.dim),
        );
        add(`blk.${l}.attn_v.weight`, m('self_attn.v_proj.weight'), [kvDim, c.dim]);
        add(`blk.${l}.attn_output.weight`, m('self_attn.o_proj.weight'), [c.dim, c.dim]);
        add(`blk.${l}.ffn_norm.weight`, m('post_attention_layernorm.weight'), [c.dim]);
        add(`blk.${l}.ffn_gate.weight`, m('mlp.gate_proj.weight'), [c.hidden, c.dim]);
        add(`blk.${l}.ffn_up.weight`, m('mlp.up_proj.weight'), [c.hidden, c.dim]);
        add(`blk.${l}.ffn_down.weight`, m('mlp.down_proj.weight'), [c.dim, c.hidden]);
      }
      add('output_norm.weight', p('norm.weight'), [c.dim]);
      if (!cfg.tie_word_embeddings && entries.has('lm_head.weight'))
        add('output.weight', ['lm_head.weight'], [c.vocab, c.dim]);
      else if (!cfg.tie_word_embeddings && cfg.tie_word_embeddings !== undefined)
        throw new FormatError(`${dir}: lm_head.weight is missing and tie_word_embeddings is false`);
      return {
        architecture: 'llama',
        metadata: [
          ...llamaMeta({
            ...c,
            eps: cfg.rms_norm_eps ?? 1e-6,
            ropeBase: cfg.rope_theta ?? 10000,
            name: cfg._name_or_path ?? 'hf-llama',
          }),
          ...hfTokenizer(dir, c.vocab, 'llama'),
        ],
        tensors,
        bytesIn,
        close,
      };
    }
    if (arch === 'GPT2LMHeadModel' || arch === 'gpt2') {
      const D = cfg.n_embd;
      const L = cfg.n_layer;
      const H = cfg.n_head;
      const V = cfg.vocab_size;
      const C = cfg.n_positions ?? cfg.n_ctx ?? 1024;
      const F = cfg.n_inner ?? 4 * D;
      for (const [k, v] of Object.entries({ n_embd: D, n_layer: L, n_head: H, vocab_size: V }))
        if (!Number.isInteger(v) || (v as number) <= 0)
          throw new FormatError(`${dir}/config.json: ${k} = ${v} is not plausible`);
      if (D % H !== 0)
        throw new FormatError(`${dir}/config.json: n_embd ${D} is not a multiple of n_head ${H}`);
      const tensors: SourceTensor[] = [];
      // Conv1D weights are (in, out): transpose to (out, in)
      const add = (gguf: string, name: string, shape: number[], conv1d = false) => {
        const e = get([`transformer.${name}`, name], shape);
        tensors.push({
          name: gguf,
          dims: conv1d ? [shape[0], shape[1]] : [...shape].reverse(),
          quantizable: shape.length === 2 && gguf !== 'position_embd.weight',
          sourceType: e.dtype.toLowerCase(),
          read: () => (conv1d ? transpose(readSt(e, e.name), shape[0], shape[1]) : readSt(e, e.name)),
        });
      };
      add('token_embd.weight', 'wte.weight', [V, D]);
      add('position_embd.weight', 'wpe.weight', [C, D]);
      for (let l = 0; l < L; l++) {
        const h = (s: string) => `h.${l}.${s}`;
        add(`blk.${l}.attn_norm.weight`, h('ln_1.weight'), [D]);
        add(`blk.${l}.attn_norm.bias`, h('ln_1.bias'), [D]);
        add(`blk.${l}.attn_qkv.weight`, h('attn.c_attn.weight'), [D, 3 * D], true);
        add(`blk.${l}.attn_qkv.bias`, h('attn.c_attn.bias'), [3 * D]);
        add(`blk.${l}.attn_output.weight`, h('attn.c_proj.weight'), [D, D], true);
        add(`blk.${l}.attn_output.bias`, h('attn.c_proj.bias'), [D]);
        add(`blk.${l}.ffn_norm.weight`, h('ln_2.weight'), [D]);
        add(`blk.${l}.ffn_norm.bias`, h('ln_2.bias'), [D]);
        add(`blk.${l}.ffn_up.weight`, h('mlp.c_fc.weight'), [D, F], true);
        add(`blk.${l}.ffn_up.bias`, h('mlp.c_fc.bias'), [F]);
        add(`blk.${l}.ffn_down.weight`, h('mlp.c_proj.weight'), [F, D], true);
        add(`blk.${l}.ffn_down.bias`, h('mlp.c_proj.bias'), [D]);
      }
      add('output_norm.weight', 'ln_f.weight', [D]);
      add('output_norm.bias', 'ln_f.bias', [D]);
      return {
        architecture: 'gpt2',
        metadata: [
          ['general.architecture', meta.str('gpt2')],
          ['general.name', meta.str(cfg._name_or_path ?? 'hf-gpt2')],
          ['gpt2.context_length', meta.u32(C)],
          ['gpt2.embedding_length', meta.u32(D)],
          ['gpt2.block_count', meta.u32(L)],
          ['gpt2.feed_forward_length', meta.u32(F)],
          ['gpt2.attention.head_count', meta.u32(H)],
          ['gpt2.attention.layer_norm_epsilon', meta.f32(cfg.layer_norm_epsilon ?? 1e-5)],
          ...hfTokenizer(dir, V, 'gpt2'),
        ],
        tensors,
        bytesIn,
        close,
      };
    }
  } catch (e) {
    close();
    throw e;
  }
  close();
  throw new UnsupportedError(
    `${dir}/config.json: architecture ${arch} is not supported (LlamaForCausalLM, GPT2LMHeadModel are)`,
  );
}

// ---- GGUF (re-quantisation) ------------------------------------------------------------------------

/** Opens a GGUF file as a source, to write it again with another tensor type. */
export function openGGUFSource(file: GGUFFile, bytesIn: number): Source {
  const arch = file.require<string>('general.architecture');
  if (arch !== 'llama' && arch !== 'gpt2')
    throw new UnsupportedError(`architecture ${arch} is not supported (llama, gpt2 are)`);
  const metadata = [...file.metadata.entries()].filter(
    ([k]) => k !== 'general.alignment' && k !== 'general.file_type',
  );
  return {
    architecture: arch,
    metadata,
    tensors: file.tensors.map((t) => ({
      name: t.name,
      dims: t.dims,
      quantizable: t.dims.length === 2 && t.name !== 'position_embd.weight',
      sourceType: ['f32', 'f16', 'q4_0', '', '', '', '', '', 'q8_0'][t.type] ?? String(t.type),
      read: () =>
        toF32(
          t.type,
          t.data,
          t.dims.reduce((a, b) => a * b, 1),
        ),
    })),
    bytesIn,
    close() {},
  };
}
