// The decoder: configuration from GGUF metadata, weights placed in WASM memory once, a paged KV
// cache, and the forward pass for prefill (T prompt rows as matrix–matrix work) and decode (one row
// per live sequence, all sequences in one batch so each weight is read once per step).
//
// Shapes (GGUF stores linear weights as (out, in) row-major, dims fastest-first [in, out]):
//   V vocab, D dim (embedding length), H heads, Hkv kv heads, hd = D / H, F ffn dim, C context.
//
// One layer, llama:                           one layer, gpt2:
//   xb = rmsnorm(x) · attn_norm                 xb = layernorm(x) · attn_norm + b
//   q|k|v = xb·[Wq;Wk;Wv]ᵀ (stacked at load)    q|k|v = xb·Wqkvᵀ + b   (fused in the file)
//   rope(q, k) (adjacent pairs)                 (learned positions were added to x at the input)
//   kv cache ← k, v; att = causal attention     kv cache ← k, v; att = causal attention
//   x += att·Woᵀ                                x += att·Woᵀ + b
//   xb = rmsnorm(x) · ffn_norm                  xb = layernorm(x) · ffn_norm + b
//   g|u = xb·[Wg;Wu]ᵀ (stacked at load)        x += gelu(xb·Wuᵀ + b)·Wdᵀ + b
//   x += (silu(g) * u)·Wdᵀ
// then logits = norm(x)·Woutᵀ (Wout = token_embd when `output.weight` is absent).
import { BudgetError, FormatError, OptionsError, UnsupportedError } from './errors.ts';
import { GGMLType, ggmlTypeName, toF32, unsupportedTensorType } from './ggml.ts';
import type { GGUFFile, GGUFTensor } from './gguf.ts';
import {
  type EmbeddingTable,
  type Kernels,
  type KvType,
  kvTypeBytes,
  type LinearWeight,
  type WeightType,
} from './kernels.ts';
import { KvCache, type KvLayout, type KvSequence } from './kv-cache.ts';

export interface ModelInfo {
  architecture: 'llama' | 'gpt2';
  vocabSize: number;
  contextLength: number;
  dim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  ffnDim: number;
  quantization: string;
  parameters: number;
  memory: { weights: number; kvCache: number; scratch: number; total: number };
  /** element type of the KV cache (ModelOptions.kvType) */
  kvType: KvType;
}

/**
 * Per-row figures `decode` can compute in WASM while the logits are still there (each array ≥ B).
 * They follow runtime/sample.ts's `argmax` / `logSumExp` / `topKInto` on the returned rows.
 */
export interface RowStats {
  /** index of each row's largest logit: the first on ties, NaN never wins, −1 when none is above −∞ */
  argmax?: Int32Array;
  /**
   * log Σ exp(logits) of each row (f32 exps summed in f64 over chunks of 64): |error| ≲ 1e-5
   * against a float64 sum. NaN when the row holds a NaN or +∞, −∞ when every entry is −∞.
   */
  logSumExp?: Float64Array;
  /**
   * each row's k (1..64) largest logits above −∞, sorted descending, ties: lower index first (as
   * topKInto): row b's at [b·k, b·k + count[b]) of index / value (count[b] < k only when fewer
   * entries are above −∞).
   */
  topK?: { k: number; index: Int32Array; value: Float64Array; count: Int32Array };
}

/** Opaque handle to one sequence's KV cache. */
export interface Sequence {
  readonly id: number;
  readonly length: number;
}

export interface ModelOptions {
  /** cap on the context (default: the model's trained context) */
  maxContext?: number;
  /** sequences alive at once, and the most rows one decode step takes (default 16) */
  maxSequences?: number;
  /** refuse to load when weights + KV cache + scratch exceed this (default 128 MiB) */
  budgetBytes?: number;
  /**
   * KV blocks in the shared pool (default: maxSequences × ceil(context / blockSize), reduced to what
   * fits the budget but never below one full context)
   */
  kvBlocks?: number;
  /** prompt rows per forward chunk; scratch is sized for max(prefillChunk, maxSequences) rows (default 64) */
  prefillChunk?: number;
  /**
   * element type of the KV cache: 'f32' (default, exact) or 'f16' (half the KV bytes: keys and values
   * rounded to the nearest f16, ties to even, finite values beyond ±65504 clamped to ±65504;
   * attention converts them back to f32 exactly and computes in f32)
   */
  kvType?: KvType;
}

const MiB = 1024 * 1024;
const DEFAULT_BUDGET = 128 * MiB;
const DEFAULT_MAX_SEQUENCES = 16; // generate.ts allows up to 16 beams
const DEFAULT_PREFILL_CHUNK = 64;
const BLOCK_SIZE = 16;
const MAX_ALL_LOGITS = 1 << 25; // floats prefill(…, true) may return at once (128 MiB)
const MAX_LOGIT_ROWS = 16; // rows per lm-head product when all logits are asked for
const MAX_TOP_K = 64; // RowStats.topK.k at most

const WEIGHT_TYPES: Record<number, WeightType> = {
  [GGMLType.F32]: 'f32',
  [GGMLType.F16]: 'f16',
  [GGMLType.Q8_0]: 'q8_0',
  [GGMLType.Q4_0]: 'q4_0',
};

interface Config {
  arch: 'llama' | 'gpt2';
  vocab: number;
  trainedContext: number;
  context: number; // after maxContext
  dim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  ffn: number;
  eps: number;
  freqBase: number;
}

// a weight as found in the file, validated, not yet placed; `parts` are stacked along n (rows):
// q|k|v and gate|up of a layer become one product when they share a type
interface LinearPlan {
  name: string;
  type: WeightType;
  parts: Uint8Array[];
  n: number;
  k: number;
}
interface VecPlan {
  tensor: GGUFTensor;
  start: number; // element offset into the tensor (a slice of the fused gpt2 qkv bias)
  n: number;
}
interface LayerPlan {
  attnNorm: VecPlan;
  attnNormB?: VecPlan;
  qkv: LinearPlan[]; // [q|k|v] fused, or [q, k, v] when their types differ
  bqkv?: VecPlan;
  wo: LinearPlan;
  bo?: VecPlan;
  ffnNorm: VecPlan;
  ffnNormB?: VecPlan;
  ffnIn: LinearPlan[]; // llama: [gate|up] fused or [gate, up]; gpt2: [up]
  bUp?: VecPlan;
  wDown: LinearPlan;
  bDown?: VecPlan;
}

// a layer as placed in WASM memory: linear weights, and f32 vectors by pointer (0: absent)
interface Layer {
  attnNorm: number; // (D)
  attnNormB: number; // (D) gpt2
  qkv: LinearWeight[]; // (D + 2·Hkv·hd, D) fused, or (D, D), (Hkv·hd, D), (Hkv·hd, D)
  bqkv: number; // (D + 2·Hkv·hd) gpt2
  wo: LinearWeight; // (D, H·hd)
  bo: number; // (D) gpt2
  ffnNorm: number; // (D)
  ffnNormB: number; // (D) gpt2
  ffnIn: LinearWeight[]; // llama (2F, D) fused gate|up or (F, D) twice; gpt2 up (F, D)
  bUp: number; // (F) gpt2
  wDown: LinearWeight; // (D, F)
  bDown: number; // (D) gpt2
}

// activations, each sized for `rows` rows; byte pointers into the arena
interface Scratch {
  rows: number; // max rows of one forward pass: max(prefill chunk, maxSequences)
  logitRows: number; // rows of the logits buffer
  x: number; // (rows, D) residual stream
  xb: number; // (rows, D) normed x / projection output
  qkv: number; // (rows, D + 2·Hkv·hd) output of the fused q|k|v product
  q: number; // (rows, H·hd) queries, split out of qkv when rows > 1
  kb: number; // (rows, Hkv·hd) keys of the new rows
  vb: number; // (rows, Hkv·hd) values of the new rows
  att: number; // (rows, H·hd) attention output
  hb: number; // (rows, 2F) ffn hidden: gate|up per row, then silu(gate)·up compacted to (rows, F)
  tmp: number; // (D) a position embedding row (gpt2)
  pos: number; // i32 (rows) positions of the decode rows
  stats: number; // per decode row: MAX_TOP_K i32 indices, MAX_TOP_K f32 values, one f64 sum
  logits: number; // (logitRows, V)
}

const align64 = (b: number) => Math.ceil(b / 64) * 64 + 64; // an allocation plus its worst alignment gap

/**
 * A loaded decoder-only model (llama or gpt2 family) with its paged KV cache.
 * @example
 * const model = Model.load(kernels, parseGGUF(bytes), { maxContext: 512 });
 * const seq = model.newSequence();
 * const logits = model.prefill(seq, promptIds); // [vocab] for the last prompt token
 * const next = model.decode([seq], [argmax(logits)]); // [1 × vocab]
 */
export class Model {
  readonly info: ModelInfo;
  /** decode fills a caller's `out` and per-row `stats` (see RowStats); generate/beam use it */
  readonly rowStats = true;
  readonly blockSize = BLOCK_SIZE;
  private readonly k: Kernels;
  private readonly c: Config;
  private readonly kv: KvCache;
  private readonly s: Scratch;
  private readonly prefillChunk: number;
  private readonly maxSequences: number;
  private readonly tokEmbd: EmbeddingTable | undefined; // absent when tied: rows come from `output`
  private readonly posEmbd: EmbeddingTable | undefined;
  private readonly layers: Layer[];
  private readonly outNorm: number;
  private readonly outNormB: number;
  private readonly output: LinearWeight;
  private readonly ones: Int32Array;
  private mem: Float32Array; // view of all WASM memory (re-made if the memory ever grows)

  private constructor(
    k: Kernels,
    c: Config,
    info: ModelInfo,
    kv: KvCache,
    s: Scratch,
    prefillChunk: number,
    maxSequences: number,
    w: {
      tokEmbd?: EmbeddingTable;
      posEmbd?: EmbeddingTable;
      layers: Layer[];
      outNorm: number;
      outNormB: number;
      output: LinearWeight;
    },
  ) {
    this.k = k;
    this.c = c;
    this.info = info;
    this.kv = kv;
    this.s = s;
    this.prefillChunk = prefillChunk;
    this.maxSequences = maxSequences;
    this.tokEmbd = w.tokEmbd;
    this.posEmbd = w.posEmbd;
    this.layers = w.layers;
    this.outNorm = w.outNorm;
    this.outNormB = w.outNormB;
    this.output = w.output;
    this.ones = new Int32Array(maxSequences).fill(1);
    this.mem = new Float32Array(k.memory.buffer);
  }

  /**
   * Validates the file's hyper-parameters and tensors, computes the memory it needs and refuses
   * (BudgetError, with the numbers) before allocating anything when that exceeds `budgetBytes`;
   * then reserves the arena once and places the weights.
   * @example
   * const model = Model.load(createKernels(wasmModule), parseGGUF(bytes), { budgetBytes: 64 << 20 });
   * console.log(model.info.memory.total);
   */
  static load(k: Kernels, file: GGUFFile, opts: ModelOptions = {}): Model {
    const maxSequences = optInt(opts.maxSequences, 'maxSequences', 1, 256) ?? DEFAULT_MAX_SEQUENCES;
    const budget = optInt(opts.budgetBytes, 'budgetBytes', 1, Number.MAX_SAFE_INTEGER) ?? DEFAULT_BUDGET;
    const maxContext = optInt(opts.maxContext, 'maxContext', 1, 1 << 24);
    const kvBlocksOpt = optInt(opts.kvBlocks, 'kvBlocks', 1, 1 << 24);
    const chunkOpt = optInt(opts.prefillChunk, 'prefillChunk', 1, 1 << 16) ?? DEFAULT_PREFILL_CHUNK;
    const kvType: KvType = opts.kvType === undefined ? 'f32' : opts.kvType;
    kvTypeBytes(kvType); // OptionsError naming kvType for anything but 'f32' / 'f16'

    const c = readConfig(file, maxContext);
    const { layers: layerPlans, tokEmbd, posEmbd, outNorm, outNormB, output, tied } = planTensors(file, c);

    // ---- memory, before any allocation ----
    const linearBytes = (p: LinearPlan | LinearPlan[]): number =>
      Array.isArray(p)
        ? p.reduce((n, q) => n + linearBytes(q), 0)
        : align64(k.linearBytes(p.type, p.n, p.k)) + k.linearAlign - 64; // aligned placement
    const vecBytes = (p: VecPlan | undefined) => (p ? align64(p.n * 4) : 0);
    const embBytes = (t: GGUFTensor) => align64(k.embeddingBytes(WEIGHT_TYPES[t.type], t.dims[1], t.dims[0]));
    // a tied output serves as the token embedding too: one copy, rows read back from the packed weight
    let weights = (tied ? 0 : embBytes(tokEmbd)) + (posEmbd ? embBytes(posEmbd) : 0);
    weights += vecBytes(outNorm) + vecBytes(outNormB) + linearBytes(output);
    for (const L of layerPlans) {
      weights += linearBytes(L.qkv) + linearBytes(L.wo) + linearBytes(L.ffnIn) + linearBytes(L.wDown);
      for (const v of [L.attnNorm, L.attnNormB, L.bqkv, L.bo, L.ffnNorm, L.ffnNormB, L.bUp, L.bDown]) {
        weights += vecBytes(v);
      }
    }
    const chunk = Math.min(chunkOpt, c.context);
    const rows = Math.max(chunk, maxSequences);
    const logitRows = Math.max(maxSequences, Math.min(chunk, MAX_LOGIT_ROWS));
    const kvDim = c.nKvHeads * c.headDim;
    const scratch =
      4 * align64(rows * c.dim * 4) +
      align64(rows * (c.dim + 2 * kvDim) * 4) +
      2 * align64(rows * kvDim * 4) +
      align64(rows * 2 * c.ffn * 4) +
      align64(c.dim * 4) +
      align64(rows * 4) +
      align64(maxSequences * (MAX_TOP_K * 8 + 8)) +
      align64(logitRows * c.vocab * 4) +
      align64(k.linearScratchBytes(rows, Math.max(c.dim, c.ffn)));
    const maxBlocksPerSeq = Math.ceil(c.context / BLOCK_SIZE);
    const layout = (nBlocks: number): KvLayout => ({
      nLayers: c.nLayers,
      nKvHeads: c.nKvHeads,
      headDim: c.headDim,
      blockSize: BLOCK_SIZE,
      nBlocks,
      context: c.context,
      maxBlocksPerSeq,
      maxSequences,
      kvType,
    });
    let nBlocks = kvBlocksOpt ?? maxSequences * maxBlocksPerSeq;
    if (kvBlocksOpt === undefined && weights + scratch + KvCache.bytes(layout(nBlocks)) > budget) {
      // shrink the default pool to what fits, keeping at least one full context
      const perBlock = KvCache.bytes(layout(1)) - KvCache.bytes(layout(0));
      const room = budget - weights - scratch - KvCache.bytes(layout(0));
      nBlocks = Math.max(maxBlocksPerSeq, Math.floor(room / perBlock));
    }
    const kvCache = KvCache.bytes(layout(nBlocks));
    const total = weights + kvCache + scratch;
    if (total > budget) {
      const m = (b: number) => `${(b / MiB).toFixed(1)} MiB`;
      throw new BudgetError(
        `model needs ${m(total)} (weights ${m(weights)}, KV cache ${m(kvCache)} for ${nBlocks} blocks of ` +
          `${BLOCK_SIZE} positions, scratch ${m(scratch)}) but the budget is ${m(budget)}`,
        {
          field: 'budgetBytes',
          hint: 'use a smaller or more quantised model, a smaller maxContext/maxSequences/kvBlocks, or a larger budgetBytes',
        },
      );
    }

    // ---- place ----
    k.reserve(total);
    const placeVec = (p: VecPlan | undefined): number => {
      if (!p) return 0;
      const all = toF32(p.tensor.type, p.tensor.data, elementCount(p.tensor));
      const ptr = k.alloc(p.n * 4);
      k.f32(ptr, p.n).set(all.subarray(p.start, p.start + p.n));
      return ptr;
    };
    let stackBuf = new Uint8Array(0); // one temporary for every stacked weight (no garbage per layer)
    const placeLinear = (p: LinearPlan): LinearWeight => {
      const total = p.parts.reduce((n, q) => n + q.length, 0);
      let raw = contiguous(p.parts, total);
      if (!raw) {
        // stack the parts' rows (q|k|v or gate|up of one layer): the file does not hold them back to back
        if (stackBuf.length < total) stackBuf = new Uint8Array(total);
        raw = stackBuf.subarray(0, total);
        let o = 0;
        for (const q of p.parts) {
          raw.set(q, o);
          o += q.length;
        }
      }
      return k.prepareLinear(p.type, raw, p.n, p.k);
    };
    const placeEmb = (t: GGUFTensor): EmbeddingTable =>
      k.prepareEmbedding(WEIGHT_TYPES[t.type], t.data, t.dims[1], t.dims[0]);
    const tokTable = tied ? undefined : placeEmb(tokEmbd);
    const posTable = posEmbd ? placeEmb(posEmbd) : undefined;
    const layers: Layer[] = layerPlans.map((L) => ({
      attnNorm: placeVec(L.attnNorm),
      attnNormB: placeVec(L.attnNormB),
      qkv: L.qkv.map(placeLinear),
      bqkv: placeVec(L.bqkv),
      wo: placeLinear(L.wo),
      bo: placeVec(L.bo),
      ffnNorm: placeVec(L.ffnNorm),
      ffnNormB: placeVec(L.ffnNormB),
      ffnIn: L.ffnIn.map(placeLinear),
      bUp: placeVec(L.bUp),
      wDown: placeLinear(L.wDown),
      bDown: placeVec(L.bDown),
    }));
    const w = {
      tokEmbd: tokTable,
      posEmbd: posTable,
      layers,
      outNorm: placeVec(outNorm),
      outNormB: placeVec(outNormB),
      output: placeLinear(output),
    };
    const kv = new KvCache(k, layout(nBlocks));
    const s: Scratch = {
      rows,
      logitRows,
      x: k.alloc(rows * c.dim * 4),
      xb: k.alloc(rows * c.dim * 4),
      qkv: k.alloc(rows * (c.dim + 2 * kvDim) * 4),
      q: k.alloc(rows * c.dim * 4),
      kb: k.alloc(rows * kvDim * 4),
      vb: k.alloc(rows * kvDim * 4),
      att: k.alloc(rows * c.dim * 4),
      hb: k.alloc(rows * 2 * c.ffn * 4),
      tmp: k.alloc(c.dim * 4),
      pos: k.alloc(rows * 4),
      stats: k.alloc(maxSequences * (MAX_TOP_K * 8 + 8)),
      logits: k.alloc(logitRows * c.vocab * 4),
    };

    // parameters: every distinct tensor read (a tied output counts once)
    let parameters = 0;
    for (const t of file.tensors) if (usedTensor(t.name, c)) parameters += elementCount(t);
    const info: ModelInfo = {
      architecture: c.arch,
      vocabSize: c.vocab,
      contextLength: c.context,
      dim: c.dim,
      nLayers: c.nLayers,
      nHeads: c.nHeads,
      nKvHeads: c.nKvHeads,
      ffnDim: c.ffn,
      quantization: dominantType(layerPlans, output),
      parameters,
      memory: { weights, kvCache, scratch, total },
      kvType,
    };
    return new Model(k, c, info, kv, s, chunk, maxSequences, w);
  }

  /**
   * A new, empty sequence. BudgetError when `maxSequences` are alive.
   * @example
   * const seq = model.newSequence();
   */
  newSequence(): Sequence {
    return this.kv.newSequence();
  }

  /**
   * A new sequence sharing every KV block of `seq` (copy-on-write): both continue independently.
   * @example
   * const beam2 = model.fork(beam1);
   */
  fork(seq: Sequence): Sequence {
    return this.kv.fork(seq as KvSequence);
  }

  /**
   * Returns the sequence's blocks (those no other sequence shares) to the pool.
   * @example
   * model.free(seq);
   */
  free(seq: Sequence): void {
    this.kv.free(seq as KvSequence);
  }

  /**
   * KV blocks left in the pool (each holds `blockSize` positions of one sequence).
   * @example
   * if (model.freeBlocks() * model.blockSize < promptLength + maxNewTokens) refuseAdmission();
   */
  freeBlocks(): number {
    return this.kv.freeBlocks();
  }

  /**
   * Runs `tokens` through the model after what `seq` already holds, filling its KV cache. Returns
   * the logits of the last token ([V], a fresh array), or of every token ([T × V]) when `allLogits`.
   * @example
   * const logits = model.prefill(seq, [1, 15043, 29871]);
   */
  prefill(seq: Sequence, tokens: ArrayLike<number>, allLogits = false): Float32Array {
    const s = seq as KvSequence;
    this.kv.check(s);
    const T = tokens.length;
    if (T === 0) throw new OptionsError('prefill needs at least one token', { field: 'tokens' });
    this.checkTokens(tokens);
    const V = this.c.vocab;
    if (allLogits && T * V > MAX_ALL_LOGITS) {
      throw new BudgetError(`all logits of ${T} tokens would take ${((T * V * 4) / MiB).toFixed(0)} MiB`, {
        field: 'tokens',
        hint: `prefill at most ${Math.floor(MAX_ALL_LOGITS / V)} tokens per call; the sequence continues across calls`,
      });
    }
    this.kv.reserve([s], [T]);
    const out = new Float32Array(allLogits ? T * V : V);
    for (let t0 = 0; t0 < T; t0 += this.prefillChunk) {
      const m = Math.min(this.prefillChunk, T - t0);
      const pos0 = s.length;
      for (let r = 0; r < m; r++) this.embedRow(r, tokens[t0 + r], pos0 + r);
      this.forward(m, s, pos0, null);
      this.kv.commit(s, m);
      if (allLogits) this.logitsRows(0, m, out, t0 * V);
      else if (t0 + m === T) this.logitsRows(m - 1, 1, out, 0);
    }
    return out;
  }

  /**
   * Advances B sequences by one token each, as one B-row batch (each weight is read once for all
   * of them). Returns [B × V] logits, row b for `seqs[b]`: a fresh array, or `out` (its first B × V
   * entries, as a subarray when it is longer) when given. A loop that reuses one `out` spares an
   * allocation and its garbage collection per step (~0.1 ms a token on a 15M model, ~0.4 ms for
   * 8 beams: scripts/profile-decode.ts). `stats` asks for each row's argmax and log-sum-exp, computed
   * in WASM (~50 µs a 32k row, against ~200 µs for a JS pass of exps).
   * @example
   * const logits = model.decode([beamA, beamB], [tokA, tokB]);
   * const buf = new Float32Array(2 * model.info.vocabSize);
   * const again = model.decode([beamA, beamB], [tokC, tokD], buf); // === buf
   * const st = { argmax: new Int32Array(2), logSumExp: new Float64Array(2) };
   * model.decode([beamA, beamB], [tokE, tokF], buf, st); // log p(v | beam b) = buf[b·V + v] − st.logSumExp[b]
   */
  decode(seqs: Sequence[], tokens: ArrayLike<number>, out?: Float32Array, stats?: RowStats): Float32Array {
    const B = seqs.length;
    if (B === 0 || B > this.maxSequences) {
      throw new OptionsError(`decode takes 1 to ${this.maxSequences} sequences, got ${B}`, { field: 'seqs' });
    }
    if (tokens.length !== B) {
      throw new OptionsError(`decode got ${B} sequences but ${tokens.length} tokens`, { field: 'tokens' });
    }
    const n = B * this.c.vocab;
    if (
      out !== undefined &&
      (!(out instanceof Float32Array) || out.length < n || out.buffer === this.k.memory.buffer)
    ) {
      throw new OptionsError(
        `decode's out must be a Float32Array of at least ${B} × ${this.c.vocab} entries, outside the model's WASM memory`,
        {
          field: 'out',
          hint: 'allocate maxBeams × vocabSize floats once and pass the same buffer every step',
        },
      );
    }
    if (stats !== undefined) {
      if (stats.argmax !== undefined && !(stats.argmax instanceof Int32Array && stats.argmax.length >= B))
        throw new OptionsError(`decode's argmax must be an Int32Array of at least ${B}`, { field: 'argmax' });
      const l = stats.logSumExp;
      if (l !== undefined && !(l instanceof Float64Array && l.length >= B))
        throw new OptionsError(`decode's logSumExp must be a Float64Array of at least ${B}`, {
          field: 'logSumExp',
        });
      const t = stats.topK;
      if (t !== undefined) {
        if (!Number.isInteger(t.k) || t.k < 1 || t.k > Math.min(MAX_TOP_K, this.c.vocab))
          throw new OptionsError(
            `decode's topK.k must be an integer from 1 to ${Math.min(MAX_TOP_K, this.c.vocab)}`,
            {
              field: 'topK.k',
            },
          );
        if (
          !(t.index instanceof Int32Array && t.index.length >= B * t.k) ||
          !(t.value instanceof Float64Array && t.value.length >= B * t.k) ||
          !(t.count instanceof Int32Array && t.count.length >= B)
        )
          throw new OptionsError(
            `decode's topK needs index (Int32Array) and value (Float64Array) of at least ${B} × ${t.k} and count (Int32Array) of at least ${B}`,
            { field: 'topK' },
          );
      }
    }
    const ss = seqs as KvSequence[];
    for (let b = 0; b < B; b++) {
      this.kv.check(ss[b]);
      for (let j = 0; j < b; j++) {
        if (ss[j] === ss[b])
          throw new OptionsError('a sequence appears twice in one decode batch', { field: 'seqs' });
      }
    }
    this.checkTokens(tokens);
    this.kv.reserve(ss, this.ones);
    const pos = this.k.i32(this.s.pos, B);
    for (let b = 0; b < B; b++) {
      pos[b] = ss[b].length;
      this.embedRow(b, tokens[b], ss[b].length);
    }
    this.forward(B, null, 0, ss);
    for (let b = 0; b < B; b++) this.kv.commit(ss[b], 1);
    const dst = out === undefined ? new Float32Array(n) : out.length === n ? out : out.subarray(0, n);
    this.logitsRows(0, B, dst, 0);
    if (stats?.argmax || stats?.logSumExp || stats?.topK) this.fillRowStats(B, dst, stats);
    return dst;
  }

  // argmax / log-sum-exp / top-k of the B decode rows still in s.logits (dst holds the same values):
  // one kernel call per row (SIMD max and top-k filter, then Σ exp(x − max)), no JS pass over the
  // vocabulary unless the row holds a NaN or an infinity
  private fillRowStats(B: number, dst: Float32Array, stats: RowStats): void {
    const { k, s } = this;
    const V = this.c.vocab;
    const tk = stats.topK;
    const K = tk ? tk.k : 1;
    const idx = s.stats;
    const val = idx + MAX_TOP_K * 4;
    const sumPtr = val + MAX_TOP_K * 4;
    for (let b = 0; b < B; b++) {
      const row = s.logits + b * V * 4;
      const n = k.rowStats(row, V, K, idx, val, sumPtr);
      const I = k.i32(idx, n);
      if (stats.argmax) stats.argmax[b] = n > 0 ? I[0] : -1;
      if (tk) {
        const F = k.f32(val, n);
        tk.count[b] = n;
        for (let j = 0; j < n; j++) {
          tk.index[b * K + j] = I[j];
          tk.value[b * K + j] = F[j];
        }
      }
      if (!stats.logSumExp) continue;
      const sum = new Float64Array(k.memory.buffer, sumPtr, 1)[0];
      let lse: number;
      if (n === 0) lse = Number.NEGATIVE_INFINITY;
      else if (!Number.isNaN(sum)) lse = k.f32(val, 1)[0] + Math.log(sum);
      else lse = logSumExpSlow(dst, b * V, V, dst[b * V + k.i32(idx, 1)[0]]); // a NaN or an infinity somewhere
      stats.logSumExp[b] = lse;
    }
  }

  private checkTokens(tokens: ArrayLike<number>): void {
    const V = this.c.vocab;
    for (let i = 0; i < tokens.length; i++) {
      const t = tokens[i];
      if (!Number.isInteger(t) || t < 0 || t >= V) {
        throw new OptionsError(`token ${i} is ${t}; ids run from 0 to ${V - 1}`, { field: 'tokens' });
      }
    }
  }

  // x[r] = token embedding (+ position embedding for gpt2)
  private embedRow(r: number, token: number, pos: number): void {
    const { k, s } = this;
    const xr = s.x + r * this.c.dim * 4;
    if (this.tokEmbd) k.embed(xr, this.tokEmbd, token);
    else this.linearRow(xr, this.output, token);
    if (this.posEmbd) {
      k.embed(s.tmp, this.posEmbd, pos);
      k.add(xr, xr, s.tmp, this.c.dim);
    }
  }

  // out[K] = row `row` of a placed linear weight (the tied token embedding), as f32
  private linearRow(out: number, w: LinearWeight, row: number): void {
    const own = (this.k as Partial<{ linearRow(out: number, w: LinearWeight, row: number): void }>).linearRow;
    if (own) {
      own.call(this.k, out, w, row);
      return;
    }
    if (this.mem.buffer !== this.k.memory.buffer) this.mem = new Float32Array(this.k.memory.buffer);
    unpackRow(this.mem, out, w, row);
  }

  // every layer over m rows of s.x. Prefill: the rows are positions pos0.. of `seq`. Decode: row b is
  // the next position of seqs[b] (its length; s.pos holds the same numbers for RoPE).
  private forward(m: number, seq: KvSequence | null, pos0: number, seqs: KvSequence[] | null): void {
    const { k, s, c, kv } = this;
    const { dim, nHeads, nKvHeads, headDim, ffn, freqBase } = c;
    const kvDim = nKvHeads * headDim;
    const qkvDim = dim + 2 * kvDim;
    const llama = c.arch === 'llama';
    const bs = BLOCK_SIZE;
    const kvType = kv.kvType;
    let tables = 0; // decode: the rows' block-table pointers (KvCache.batchTables)
    for (let l = 0; l < c.nLayers; l++) {
      const L = this.layers[l];
      const kPool = kv.kPools[l];
      const vPool = kv.vPools[l];
      // attention norm → q, k, v
      this.norm(s.xb, s.x, L.attnNorm, L.attnNormB, m);
      let q = s.q;
      let kb = s.kb;
      let vb = s.vb;
      if (L.qkv.length === 1) {
        k.linear(s.qkv, s.xb, L.qkv[0], m);
        if (L.bqkv) k.addBias(s.qkv, L.bqkv, m, qkvDim);
        if (m === 1) {
          q = s.qkv; // one row: q, k, v are already contiguous pieces of it
          kb = s.qkv + dim * 4;
          vb = kb + kvDim * 4;
        } else {
          this.splitQkv(m);
        }
      } else {
        k.linear(s.q, s.xb, L.qkv[0], m);
        k.linear(s.kb, s.xb, L.qkv[1], m);
        k.linear(s.vb, s.xb, L.qkv[2], m);
      }
      if (llama) {
        // RoPE on q and k (adjacent pairs): prefill rows are consecutive positions, decode rows each at its own
        if (q === s.qkv) {
          // one fused row: its q heads and k heads are adjacent, one call rotates both
          k.rope(q, 1, nHeads + nKvHeads, headDim, seq ? pos0 : seqs![0].length, 0, freqBase, false);
        } else if (seq) {
          k.rope(q, m, nHeads, headDim, pos0, 1, freqBase, false);
          k.rope(kb, m, nKvHeads, headDim, pos0, 1, freqBase, false);
        } else {
          k.ropeAt(q, m, nHeads, headDim, s.pos, freqBase, false);
          k.ropeAt(kb, m, nKvHeads, headDim, s.pos, freqBase, false);
        }
      }
      // kv cache ← k, v; causal attention over each sequence's own blocks
      if (seq) {
        k.kvWrite(kPool, vPool, seq.tablePtr, pos0, m, kb, vb, nKvHeads, headDim, bs, kvType);
        k.attention(s.att, q, m, kPool, vPool, seq.tablePtr, pos0, nHeads, nKvHeads, headDim, bs, kvType);
      } else if (k.attentionRows && k.kvWriteRows) {
        // every row in one call each: beams that share prefix blocks read them once
        if (l === 0) tables = kv.batchTables(seqs!);
        k.kvWriteRows(kPool, vPool, tables, s.pos, m, kb, vb, nKvHeads, headDim, bs, kvType);
        k.attentionRows(s.att, q, m, kPool, vPool, tables, s.pos, nHeads, nKvHeads, headDim, bs, kvType);
      } else {
        for (let b = 0; b < m; b++) {
          const sq = seqs![b];
          const kr = kb + b * kvDim * 4;
          const vr = vb + b * kvDim * 4;
          k.kvWrite(kPool, vPool, sq.tablePtr, sq.length, 1, kr, vr, nKvHeads, headDim, bs, kvType);
          const qr = q + b * dim * 4;
          const ar = s.att + b * dim * 4;
          k.attention(ar, qr, 1, kPool, vPool, sq.tablePtr, sq.length, nHeads, nKvHeads, headDim, bs, kvType);
        }
      }
      // output projection, residual
      k.linear(s.xb, s.att, L.wo, m);
      if (L.bo) k.addBias(s.xb, L.bo, m, dim);
      k.add(s.x, s.x, s.xb, m * dim);
      // ffn norm → feed-forward, residual
      this.norm(s.xb, s.x, L.ffnNorm, L.ffnNormB, m);
      if (llama) {
        if (L.ffnIn.length === 1) {
          // fused gate|up: row r holds gate then up; silu(gate)·up is compacted to row r of (rows, F).
          // Row r's output [rF, rF+F) lies at or below its own input [2rF, 2rF+2F): rows in order never
          // overwrite an input not yet read
          k.linear(s.hb, s.xb, L.ffnIn[0], m);
          for (let r = 0; r < m; r++) {
            const row = s.hb + 2 * r * ffn * 4;
            k.siluMul(s.hb + r * ffn * 4, row, row + ffn * 4, ffn);
          }
        } else {
          const up = s.hb + m * ffn * 4;
          k.linear(s.hb, s.xb, L.ffnIn[0], m);
          k.linear(up, s.xb, L.ffnIn[1], m);
          k.siluMul(s.hb, s.hb, up, m * ffn);
        }
        k.linear(s.xb, s.hb, L.wDown, m);
      } else {
        k.linear(s.hb, s.xb, L.ffnIn[0], m);
        k.addBias(s.hb, L.bUp, m, ffn);
        k.gelu(s.hb, s.hb, m * ffn);
        k.linear(s.xb, s.hb, L.wDown, m);
        k.addBias(s.xb, L.bDown, m, dim);
      }
      k.add(s.x, s.x, s.xb, m * dim);
    }
  }

  // rows of s.qkv (q|k|v each) → s.q, s.kb, s.vb, which the kernels read as contiguous rows
  private splitQkv(m: number): void {
    if (this.mem.buffer !== this.k.memory.buffer) this.mem = new Float32Array(this.k.memory.buffer);
    const F = this.mem;
    const { dim } = this.c;
    const kvDim = this.c.nKvHeads * this.c.headDim;
    const w = dim + 2 * kvDim;
    const src = this.s.qkv >> 2;
    const q = this.s.q >> 2;
    const kb = this.s.kb >> 2;
    const vb = this.s.vb >> 2;
    for (let r = 0; r < m; r++) {
      const o = src + r * w;
      F.copyWithin(q + r * dim, o, o + dim);
      F.copyWithin(kb + r * kvDim, o + dim, o + dim + kvDim);
      F.copyWithin(vb + r * kvDim, o + dim + kvDim, o + w);
    }
  }

  private norm(out: number, x: number, w: number, b: number, m: number): void {
    if (this.c.arch === 'llama') this.k.rmsnorm(out, x, w, m, this.c.dim, this.c.eps);
    else this.k.layernorm(out, x, w, b, m, this.c.dim, this.c.eps);
  }

  // final norm + lm head for rows [r0, r0+n) of s.x, copied into dst at dstOffset (n × V)
  private logitsRows(r0: number, n: number, dst: Float32Array, dstOffset: number): void {
    const { k, s } = this;
    const { dim, vocab } = this.c;
    for (let g = 0; g < n; g += s.logitRows) {
      const mm = Math.min(s.logitRows, n - g);
      this.norm(s.xb, s.x + (r0 + g) * dim * 4, this.outNorm, this.outNormB, mm);
      k.linear(s.logits, s.xb, this.output, mm);
      dst.set(k.f32(s.logits, mm * vocab), dstOffset + g * vocab);
    }
  }
}

// the parts as one view when they lie back to back in one buffer (one part; or a file that stores
// q, k, v in a row with no alignment padding between them), else undefined
function contiguous(parts: Uint8Array[], total: number): Uint8Array | undefined {
  const first = parts[0];
  if (parts.length === 1) return first;
  let end = first.byteOffset + first.length;
  for (let i = 1; i < parts.length; i++) {
    if (parts[i].buffer !== first.buffer || parts[i].byteOffset !== end) return undefined;
    end += parts[i].length;
  }
  return new Uint8Array(first.buffer, first.byteOffset, total);
}

// log Σ exp over x[o, o+n) whose largest non-NaN entry is mx (> −∞), for rows holding a NaN or an
// infinity: NaN if any entry is NaN or mx is +∞ (as runtime/sample.ts's logSumExp), else in float64
function logSumExpSlow(x: Float32Array, o: number, n: number, mx: number): number {
  if (mx === Number.POSITIVE_INFINITY) return Number.NaN;
  let sum = 0;
  for (let j = o; j < o + n; j++) {
    const v = x[j];
    if (Number.isNaN(v)) return Number.NaN;
    sum += Math.exp(v - mx);
  }
  return mx + Math.log(sum);
}

// ---- configuration and validation ------------------------------------------------------------

function optInt(v: number | undefined, field: string, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new OptionsError(`${field} must be an integer from ${min} to ${max}, got ${String(v)}`, { field });
  }
  return v;
}

function metaInt(file: GGUFFile, key: string, min: number, max: number, def?: number): number {
  const v = file.get<unknown>(key);
  if (v === undefined) {
    if (def !== undefined) return def;
    throw new FormatError(`missing metadata key ${key}`, {
      field: key,
      hint: 'the file lacks a required hyper-parameter',
    });
  }
  let n: number;
  if (typeof v === 'bigint') {
    n = v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER) ? Number.NaN : Number(v);
    if (Number.isNaN(n)) n = v > 0n ? Number.POSITIVE_INFINITY : Number.NEGATIVE_INFINITY;
  } else if (typeof v === 'number' && Number.isInteger(v)) {
    n = v;
  } else {
    throw new FormatError(`metadata ${key} must be an integer, got ${describe(v)}`, { field: key });
  }
  if (n < min || n > max) {
    throw new FormatError(`metadata ${key} = ${String(v)} is out of range (${min} to ${max})`, {
      field: key,
    });
  }
  return n;
}

function metaFloat(file: GGUFFile, key: string, min: number, max: number, def: number): number {
  const v = file.get<unknown>(key);
  if (v === undefined) return def;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= min || v > max) {
    throw new FormatError(`metadata ${key} must be a number in (${min}, ${max}], got ${describe(v)}`, {
      field: key,
    });
  }
  return v;
}

function describe(v: unknown): string {
  if (Array.isArray(v)) return `an array of ${v.length}`;
  return typeof v === 'string' ? JSON.stringify(v.slice(0, 40)) : `${typeof v} ${String(v).slice(0, 40)}`;
}

function readConfig(file: GGUFFile, maxContext: number | undefined): Config {
  const arch = file.get<unknown>('general.architecture');
  if (arch === undefined) {
    throw new FormatError('missing metadata key general.architecture', { field: 'general.architecture' });
  }
  if (arch !== 'llama' && arch !== 'gpt2') {
    throw new UnsupportedError(`architecture ${describe(arch)} is not supported`, {
      field: 'general.architecture',
      hint: 'edgelm runs llama and gpt2 models',
    });
  }
  const a = arch;
  const trainedContext = metaInt(file, `${a}.context_length`, 1, 1 << 24);
  const dim = metaInt(file, `${a}.embedding_length`, 1, 1 << 16);
  const nLayers = metaInt(file, `${a}.block_count`, 1, 4096);
  const ffn = metaInt(file, `${a}.feed_forward_length`, 1, 1 << 20);
  const nHeads = metaInt(file, `${a}.attention.head_count`, 1, 4096);
  const nKvHeads = metaInt(file, `${a}.attention.head_count_kv`, 1, 4096, nHeads);
  if (nKvHeads > nHeads || nHeads % nKvHeads !== 0) {
    throw new FormatError(
      `${a}.attention.head_count_kv = ${nKvHeads} does not divide head_count = ${nHeads}`,
      {
        field: `${a}.attention.head_count_kv`,
      },
    );
  }
  if (dim % nHeads !== 0) {
    throw new FormatError(`${a}.embedding_length = ${dim} is not a multiple of head_count = ${nHeads}`, {
      field: `${a}.embedding_length`,
    });
  }
  const headDim = dim / nHeads;
  if (headDim > 1024) {
    throw new UnsupportedError(`head size ${headDim} is above the kernels' 1024`, {
      field: `${a}.attention.head_count`,
    });
  }
  const keyLength = metaInt(file, `${a}.attention.key_length`, 1, 1 << 16, headDim);
  const valueLength = metaInt(file, `${a}.attention.value_length`, 1, 1 << 16, headDim);
  if (keyLength !== headDim || valueLength !== headDim) {
    throw new UnsupportedError(
      `head size ${keyLength}/${valueLength} differs from embedding_length / head_count`,
      {
        field: `${a}.attention.key_length`,
      },
    );
  }
  const experts = metaInt(file, `${a}.expert_count`, 0, 1 << 16, 0);
  if (experts > 0) {
    throw new UnsupportedError(`mixture-of-experts models (${experts} experts) are not supported`, {
      field: `${a}.expert_count`,
    });
  }
  let eps: number;
  let freqBase = 10000;
  if (a === 'llama') {
    if (headDim % 2 !== 0) {
      throw new FormatError(`head size ${headDim} is odd; RoPE rotates pairs`, {
        field: 'llama.embedding_length',
      });
    }
    eps = metaFloat(file, 'llama.attention.layer_norm_rms_epsilon', 0, 1, 1e-5);
    freqBase = metaFloat(file, 'llama.rope.freq_base', 0, 1e12, 10000);
    const ropeDims = metaInt(file, 'llama.rope.dimension_count', 1, 1 << 16, headDim);
    if (ropeDims !== headDim) {
      throw new UnsupportedError(`partial RoPE (${ropeDims} of ${headDim} dimensions) is not supported`, {
        field: 'llama.rope.dimension_count',
      });
    }
    const scaling = file.get<unknown>('llama.rope.scaling.type');
    if (scaling !== undefined && scaling !== 'none') {
      throw new UnsupportedError(`RoPE scaling ${describe(scaling)} is not supported`, {
        field: 'llama.rope.scaling.type',
      });
    }
  } else {
    eps = metaFloat(file, 'gpt2.attention.layer_norm_epsilon', 0, 1, 1e-5);
  }
  const context = Math.min(trainedContext, maxContext ?? trainedContext);
  return {
    arch: a,
    vocab: 0, // from token_embd, in planTensors
    trainedContext,
    context,
    dim,
    nLayers,
    nHeads,
    nKvHeads,
    headDim,
    ffn,
    eps,
    freqBase,
  };
}

function elementCount(t: GGUFTensor): number {
  let n = 1;
  for (const d of t.dims) n *= d;
  return n;
}

// dims compared with trailing 1s dropped ([n] equals [n, 1])
function sameDims(a: number[], b: number[]): boolean {
  const trim = (d: number[]) => {
    let n = d.length;
    while (n > 1 && d[n - 1] === 1) n--;
    return d.slice(0, n);
  };
  const x = trim(a);
  const y = trim(b);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

function getTensor(file: GGUFFile, name: string, dims: number[] | null): GGUFTensor {
  const t = file.tensor(name);
  if (!t)
    throw new FormatError(`missing tensor ${name}`, {
      field: name,
      hint: 'the file lacks a weight the architecture needs',
    });
  if (!WEIGHT_TYPES[t.type]) throw unsupportedTensorType(t.type, name);
  if (dims && !sameDims(t.dims, dims)) {
    throw new FormatError(`tensor ${name} has shape [${t.dims.join(', ')}], expected [${dims.join(', ')}]`, {
      field: name,
      hint: 'the tensor does not match the hyper-parameters in the metadata',
    });
  }
  return t;
}

function linearPlan(t: GGUFTensor, name = t.name): LinearPlan {
  const [k, n] = t.dims;
  if (t.type === GGMLType.Q8_0 || t.type === GGMLType.Q4_0) {
    if (k % 32 !== 0) {
      throw new FormatError(
        `tensor ${name}: ${ggmlTypeName(t.type)} rows of ${k} are not whole 32-element blocks`,
        {
          field: name,
        },
      );
    }
  }
  return { name, type: WEIGHT_TYPES[t.type], parts: [t.data], n, k };
}

// weights with the same input stacked into one product (their output rows one after another), when
// they share a type; else kept apart
function stack(ps: LinearPlan[]): LinearPlan[] {
  if (ps.some((p) => p.type !== ps[0].type || p.k !== ps[0].k)) return ps;
  return [
    {
      name: ps.map((p) => p.name).join('|'),
      type: ps[0].type,
      parts: ps.flatMap((p) => p.parts),
      n: ps.reduce((n, p) => n + p.n, 0),
      k: ps[0].k,
    },
  ];
}

const vec = (t: GGUFTensor, start = 0, n = elementCount(t)): VecPlan => ({ tensor: t, start, n });

function planTensors(file: GGUFFile, c: Config) {
  const { dim, ffn, nLayers, nKvHeads, headDim } = c;
  const kvDim = nKvHeads * headDim;
  const tokEmbd = getTensor(file, 'token_embd.weight', null);
  if (
    tokEmbd.dims.length !== 2 &&
    !(tokEmbd.dims.length > 2 && tokEmbd.dims.slice(2).every((d) => d === 1))
  ) {
    throw new FormatError(`tensor token_embd.weight has ${tokEmbd.dims.length} dims, expected 2`, {
      field: 'token_embd.weight',
    });
  }
  if (tokEmbd.dims[0] !== dim) {
    throw new FormatError(
      `${c.arch}.embedding_length = ${dim} but token_embd.weight rows have ${tokEmbd.dims[0]} elements`,
      { field: `${c.arch}.embedding_length` },
    );
  }
  const vocab = tokEmbd.dims[1];
  if (vocab < 1 || vocab > 1 << 22) {
    throw new FormatError(`vocabulary of ${vocab} tokens is out of range`, { field: 'token_embd.weight' });
  }
  const tokens = file.get<unknown>('tokenizer.ggml.tokens');
  if (Array.isArray(tokens) && tokens.length !== vocab) {
    throw new FormatError(`tokenizer has ${tokens.length} tokens but token_embd.weight has ${vocab} rows`, {
      field: 'tokenizer.ggml.tokens',
    });
  }
  c.vocab = vocab;
  const outputT = file.tensor('output.weight') ? getTensor(file, 'output.weight', [dim, vocab]) : undefined;
  const output = linearPlan(outputT ?? tokEmbd);
  let posEmbd: GGUFTensor | undefined;
  const layers: LayerPlan[] = [];
  const lin = (name: string, k: number, n: number) => linearPlan(getTensor(file, name, [k, n]));
  const v = (name: string, n: number) => vec(getTensor(file, name, [n]));
  if (c.arch === 'llama') {
    for (let i = 0; i < nLayers; i++) {
      const p = `blk.${i}.`;
      layers.push({
        attnNorm: v(`${p}attn_norm.weight`, dim),
        qkv: stack([
          lin(`${p}attn_q.weight`, dim, dim),
          lin(`${p}attn_k.weight`, dim, kvDim),
          lin(`${p}attn_v.weight`, dim, kvDim),
        ]),
        wo: lin(`${p}attn_output.weight`, dim, dim),
        ffnNorm: v(`${p}ffn_norm.weight`, dim),
        ffnIn: stack([lin(`${p}ffn_gate.weight`, dim, ffn), lin(`${p}ffn_up.weight`, dim, ffn)]),
        wDown: lin(`${p}ffn_down.weight`, ffn, dim),
      });
    }
    return {
      layers,
      tokEmbd,
      posEmbd,
      outNorm: v('output_norm.weight', dim),
      outNormB: undefined,
      output,
      tied: !outputT,
    };
  }
  posEmbd = getTensor(file, 'position_embd.weight', null);
  if (posEmbd.dims[0] !== dim || posEmbd.dims.length < 2 || posEmbd.dims[1] < c.trainedContext) {
    throw new FormatError(
      `tensor position_embd.weight has shape [${posEmbd.dims.join(', ')}], expected [${dim}, ≥ ${c.trainedContext}]`,
      { field: 'position_embd.weight' },
    );
  }
  for (let i = 0; i < nLayers; i++) {
    const p = `blk.${i}.`;
    layers.push({
      attnNorm: v(`${p}attn_norm.weight`, dim),
      attnNormB: v(`${p}attn_norm.bias`, dim),
      qkv: [lin(`${p}attn_qkv.weight`, dim, dim + 2 * kvDim)],
      bqkv: v(`${p}attn_qkv.bias`, dim + 2 * kvDim),
      wo: lin(`${p}attn_output.weight`, dim, dim),
      bo: v(`${p}attn_output.bias`, dim),
      ffnNorm: v(`${p}ffn_norm.weight`, dim),
      ffnNormB: v(`${p}ffn_norm.bias`, dim),
      ffnIn: [lin(`${p}ffn_up.weight`, dim, ffn)],
      bUp: v(`${p}ffn_up.bias`, ffn),
      wDown: lin(`${p}ffn_down.weight`, ffn, dim),
      bDown: v(`${p}ffn_down.bias`, dim),
    });
  }
  return {
    layers,
    tokEmbd,
    posEmbd,
    outNorm: v('output_norm.weight', dim),
    outNormB: v('output_norm.bias', dim),
    output,
    tied: !outputT,
  };
}

// Reads row `row` of a linear weight as packed by runtime/kernels.ts (prepareLinear), into f32 at
// byte pointer `out`. Mirrors its layouts, which are private to it: a kernels build that changes them
// should publish `linearRow(out, w, row)` (used instead when present). The tied-output tests compare
// against the float64 reference on every build, so a mismatch fails there.
//   f32/f16: panels of 8 rows, k-major: W[8p + j][kk] at f32 index (p·k + kk)·8 + j
//   q8_0: per 4-row group g and 32-block b, 144 bytes at (g·nb + b)·144: int8 q[j] of row i at
//         (j >> 2)·16 + i·4 + (j & 3), then 4 f32 scales at +128
//   q4_0: per group and block, 80 bytes at (g·nb + b)·80: byte t of row i at (t >> 2)·16 + i·4 + (t & 3)
//         (low nibble: element t, high: t + 16, value nibble − 8), then 4 f32 scales at +64
function unpackRow(F: Float32Array, out: number, w: LinearWeight, row: number): void {
  const k = w.k;
  const o = out >> 2;
  if (w.type === 'f32' || w.type === 'f16') {
    let src = (w.ptr >> 2) + (row >> 3) * k * 8 + (row & 7);
    for (let kk = 0; kk < k; kk++, src += 8) F[o + kk] = F[src];
    return;
  }
  const u8 = new Uint8Array(F.buffer);
  const nb = k / 32;
  const g = row >> 2;
  const i = row & 3;
  const q8 = w.type === 'q8_0';
  const blockBytes = q8 ? 144 : 80;
  for (let b = 0; b < nb; b++) {
    const d = w.ptr + (g * nb + b) * blockBytes;
    const scale = F[(d + (q8 ? 128 : 64) + i * 4) >> 2];
    const dst = o + b * 32;
    if (q8) {
      const fx = w.flipped ? 0x80 : 0; // stored w ^ 0x80 for the usdot kernels
      for (let j = 0; j < 32; j++)
        F[dst + j] = scale * (((u8[d + (j >> 2) * 16 + i * 4 + (j & 3)] ^ fx) << 24) >> 24);
    } else {
      for (let t = 0; t < 16; t++) {
        const byte = u8[d + (t >> 2) * 16 + i * 4 + (t & 3)];
        F[dst + t] = scale * ((byte & 15) - 8);
        F[dst + t + 16] = scale * ((byte >> 4) - 8);
      }
    }
  }
}

function usedTensor(name: string, c: Config): boolean {
  if (name === 'token_embd.weight' || name === 'position_embd.weight' || name === 'output.weight')
    return true;
  if (name === 'output_norm.weight' || name === 'output_norm.bias') return true;
  const m = /^blk\.(\d+)\./.exec(name);
  return m !== null && Number(m[1]) < c.nLayers;
}

// the weight type of most linear-weight elements
function dominantType(layers: LayerPlan[], output: LinearPlan): string {
  const count = new Map<string, number>();
  const add = (p: LinearPlan | undefined) => {
    if (p) count.set(p.type, (count.get(p.type) ?? 0) + p.n * p.k);
  };
  for (const L of layers) for (const p of [...L.qkv, L.wo, ...L.ffnIn, L.wDown]) add(p);
  add(output);
  let best = 'f32';
  let bestN = -1;
  for (const [t, n] of count) {
    if (n > bestN) {
      best = t;
      bestN = n;
    }
  }
  return best;
}
