/**
 * The SIMD kernels (build/kernels.wasm, build/kernels-relaxed.wasm) behind a small TypeScript
 * surface: one arena in the module's linear memory (grown once, bump-allocated, released in stack
 * order), pointers kept as plain numbers, typed views made on demand (a view over memory that has
 * grown is detached, so none is ever cached here).
 *
 * Kernels do not validate their arguments; this file checks what is cheap once, at the boundary
 * (shapes and sizes at prepare time, head sizes, ranges), and throws typed errors.
 *
 * Weight layouts: prepareLinear repacks GGUF's (N×K) row-major weights for the kernels —
 * f32 and f16 (converted to f32) into panels of 8 output rows, k-major; Q8_0 and Q4_0 into groups of
 * 4 rows interleaved block by block with the scales as f32 (see assembly/gemm.ts, assembly/quant.ts).
 * Embedding tables stay in their GGUF bytes and are dequantised one row at a time.
 */
import { BudgetError, FormatError, OptionsError, UnsupportedError } from './errors.ts';

export type WeightType = 'f32' | 'f16' | 'q8_0' | 'q4_0';

/**
 * Element type of the KV cache pools: 'f32' (4 bytes, exact) or 'f16' (2 bytes: each value rounded
 * to the nearest f16, ties to even; finite values beyond ±65504 clamped to ±65504; ±∞ and NaN kept).
 * Attention converts f16 K/V to f32 exactly on load; scores, softmax and accumulation stay f32.
 */
export type KvType = 'f32' | 'f16';

/** Bytes per KV element of `t`. OptionsError (field `kvType`) for anything but 'f32' / 'f16'. */
export function kvTypeBytes(t: unknown): 2 | 4 {
  if (t === 'f32') return 4;
  if (t === 'f16') return 2;
  throw new OptionsError(
    `kvType must be 'f32' or 'f16', got ${typeof t === 'string' ? `'${t}'` : String(t)}`,
    {
      field: 'kvType',
      hint: "use 'f32' (default, exact) or 'f16' (half the KV memory)",
    },
  );
}

/** A linear weight placed in the arena (layout private to the kernels). */
export interface LinearWeight {
  type: WeightType;
  ptr: number;
  n: number;
  k: number;
  bytes: number;
  /** q8_0 packed for the usdot kernels: every weight byte stored as w ^ 0x80 (w + 128, unsigned) */
  flipped?: boolean;
}

/** An embedding table placed in the arena, in its GGUF bytes. */
export interface EmbeddingTable {
  type: WeightType;
  ptr: number;
  rows: number;
  dim: number;
  bytes: number;
}

export interface Kernels {
  /** true when this instance runs the relaxed-SIMD build */
  readonly relaxed: boolean;
  /**
   * true when the quantised products run on the engine's unsigned-byte dot (one AVX-VNNI vpdpbusd
   * per 16 multiply-adds: V8 13+ on x86 with AVX-VNNI, e.g. Node 24 and recent workerd), chosen by a
   * probe of the relaxed build; the results are bit-identical to the portable relaxed kernels
   */
  readonly usdot: boolean;
  /** prepareLinear's weight alignment in bytes (KernelOptions.linearAlign, default LINEAR_ALIGN) */
  readonly linearAlign: number;
  readonly memory: WebAssembly.Memory;
  /** grow memory so that `totalBytes` more can be allocated (grow once, up front) */
  reserve(totalBytes: number): void;
  /** bump allocation, zero-filled, 64-byte aligned by default; BudgetError past the reserve */
  alloc(bytes: number, align?: number): number;
  mark(): number;
  /** free everything allocated after `mark` (stack discipline for scratch) */
  release(mark: number): void;
  f32(ptr: number, len: number): Float32Array;
  i32(ptr: number, len: number): Int32Array;
  u8(ptr: number, len: number): Uint8Array;
  /** arena bytes prepareLinear will take */
  linearBytes(type: WeightType, n: number, k: number): number;
  /** copy GGUF bytes of an (n×k) weight into the arena, repacked for the kernels */
  prepareLinear(type: WeightType, raw: Uint8Array, n: number, k: number): LinearWeight;
  /** out[m×n] = x[m×k]·Wᵀ (x quantised to Q8_0 internally for q8_0/q4_0 weights) */
  linear(out: number, x: number, w: LinearWeight, m: number): void;
  /** scratch that linear() takes from the top of the arena during a call (include it in reserve) */
  linearScratchBytes(maxM: number, maxK: number): number;
  /** arena bytes prepareEmbedding will take */
  embeddingBytes(type: WeightType, rows: number, dim: number): number;
  prepareEmbedding(type: WeightType, raw: Uint8Array, rows: number, dim: number): EmbeddingTable;
  /** out[dim] = row `row` of the table as f32 */
  embed(out: number, table: EmbeddingTable, row: number): void;
  rmsnorm(out: number, x: number, w: number, m: number, dim: number, eps: number): void;
  layernorm(out: number, x: number, w: number, b: number, m: number, dim: number, eps: number): void;
  /** RoPE in place; row r at position pos0 + r·posStride; neox: pairs (i, i+hd/2), else (2i, 2i+1) */
  rope(
    x: number,
    m: number,
    nHeads: number,
    headDim: number,
    pos0: number,
    posStride: number,
    freqBase: number,
    neox: boolean,
  ): void;
  /** RoPE in place; row r at position positions[r] (i32 array pointer) */
  ropeAt(
    x: number,
    m: number,
    nHeads: number,
    headDim: number,
    positions: number,
    freqBase: number,
    neox: boolean,
  ): void;
  /** out = silu(a)·b */
  siluMul(out: number, a: number, b: number, n: number): void;
  /** GELU, tanh form */
  gelu(out: number, x: number, n: number): void;
  add(out: number, a: number, b: number, n: number): void;
  /** x[r] += bias for m rows of n */
  addBias(x: number, bias: number, m: number, n: number): void;
  /** softmax in place over m rows of n */
  softmax(x: number, m: number, n: number): void;
  /**
   * store rows k[n][nKvHeads·headDim], v[...] (f32) at positions pos0.. of the sequence's block
   * table, as `kvType` elements (default 'f32'; the pools' element type, see KvType)
   */
  kvWrite(
    kPool: number,
    vPool: number,
    blockTable: number,
    pos0: number,
    n: number,
    k: number,
    v: number,
    nKvHeads: number,
    headDim: number,
    blockSize: number,
    kvType?: KvType,
  ): void;
  /**
   * causal attention: query i (at pos0+i) attends to positions 0..pos0+i, scale 1/√headDim; the
   * pools hold `kvType` elements (default 'f32')
   */
  attention(
    out: number,
    q: number,
    nQ: number,
    kPool: number,
    vPool: number,
    blockTable: number,
    pos0: number,
    nHeads: number,
    nKvHeads: number,
    headDim: number,
    blockSize: number,
    kvType?: KvType,
  ): void;
  /**
   * kvWrite of one row per sequence in one call: row b of k and v (rows [B][nKvHeads·headDim]) goes
   * to position positions[b] of the sequence whose block table is at tables[b]. `tables` points to B
   * i32 pointers to block tables, `positions` to B i32 positions.
   */
  kvWriteRows(
    kPool: number,
    vPool: number,
    tables: number,
    positions: number,
    B: number,
    k: number,
    v: number,
    nKvHeads: number,
    headDim: number,
    blockSize: number,
    kvType?: KvType,
  ): void;
  /**
   * B decode queries in one call: row b of q (rows [B][nHeads·headDim]) at position positions[b]
   * attends to positions 0..positions[b] of the sequence whose block table is at tables[b] (same
   * pointer arrays as kvWriteRows). Rows whose tables hold the same block at the same index (beams
   * sharing a prefix) read it once. Row b's result is bit-identical to
   * attention(out_b, q_b, 1, kPool, vPool, tables[b], positions[b], …). out must not overlap q.
   */
  attentionRows(
    out: number,
    q: number,
    B: number,
    kPool: number,
    vPool: number,
    tables: number,
    positions: number,
    nHeads: number,
    nKvHeads: number,
    headDim: number,
    blockSize: number,
    kvType?: KvType,
  ): void;
  argmax(x: number, n: number): number;
  /** the k largest, sorted descending (ties: lower index first); NaN never chosen (slots left: -1 / -Infinity) */
  topk(x: number, n: number, k: number, outIdx: number, outVal: number): void;
  /**
   * one decode row's statistics in two SIMD passes: its k largest entries above −∞ (sorted
   * descending, ties: lower index first — runtime/sample.ts's topKInto) into outIdx (i32) / outVal
   * (f32), and Σ exp(x − max) as f64 at outSum (NaN when the row holds a NaN or an infinity, or no
   * entry is above −∞). Returns how many entries were written; entry 0 is the row's argmax.
   */
  rowStats(x: number, n: number, k: number, outIdx: number, outVal: number, outSum: number): number;
  /** quantise k floats at src into GGUF blocks at dst (k % 32 == 0) */
  quantizeRow(type: 'q8_0' | 'q4_0', dst: number, src: number, k: number): void;
  /** k values of one GGUF row at src to f32 at dst */
  dequantizeRow(type: WeightType, dst: number, src: number, k: number): void;
}

// WebAssembly.validate probes (from wasm-feature-detect): a function returning a v128 built with
// i32x4.splat / i32x4.relaxed_dot... respectively
const SIMD_PROBE = [
  0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98,
  11,
];
const RELAXED_PROBE = [
  0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 15, 1, 13, 0, 65, 1, 253, 15, 65, 2,
  253, 15, 253, 128, 2, 11,
];

/**
 * Whether this engine accepts relaxed-SIMD instructions (no code generation: `WebAssembly.validate`).
 * @example
 * const mod = detectRelaxedSimd() ? relaxedModule : simdModule;
 */
export function detectRelaxedSimd(): boolean {
  try {
    return (
      WebAssembly.validate(new Uint8Array(SIMD_PROBE)) && WebAssembly.validate(new Uint8Array(RELAXED_PROBE))
    );
  } catch {
    return false;
  }
}

// exports of assembly/index.ts (pointers and sizes are plain numbers on the JS side)
interface Exports {
  memory: WebAssembly.Memory;
  heapBase(): number;
  relaxedBuild(): number;
  // assembly/quant.ts (absent from builds older than the usdot kernels)
  usdotProbe?(): number;
  setUsdot?(on: number): void;
  linearF32(out: number, x: number, w: number, m: number, n: number, k: number): void;
  linearQ8(out: number, x: number, w: number, m: number, n: number, k: number, s: number): void;
  linearQ4(out: number, x: number, w: number, m: number, n: number, k: number, s: number): void;
  quantScratchBytes(m: number, k: number): number;
  quantizeRowQ8_0(dst: number, src: number, k: number): void;
  quantizeRowQ4_0(dst: number, src: number, k: number): void;
  dequantizeRow(type: number, dst: number, src: number, k: number): void;
  add(out: number, a: number, b: number, n: number): void;
  addBias(x: number, bias: number, m: number, n: number): void;
  rmsnorm(out: number, x: number, w: number, m: number, dim: number, eps: number): void;
  layernorm(out: number, x: number, w: number, b: number, m: number, dim: number, eps: number): void;
  rope(
    x: number,
    m: number,
    h: number,
    hd: number,
    pos0: number,
    stride: number,
    base: number,
    neox: number,
  ): void;
  ropeAt(x: number, m: number, h: number, hd: number, positions: number, base: number, neox: number): void;
  siluMul(out: number, a: number, b: number, n: number): void;
  gelu(out: number, x: number, n: number): void;
  softmax(x: number, m: number, n: number): void;
  argmax(x: number, n: number): number;
  topk(x: number, n: number, k: number, outIdx: number, outVal: number): number;
  rowStats(x: number, n: number, k: number, outIdx: number, outVal: number, outSum: number): number;
  kvWrite(...args: number[]): void;
  attention(...args: number[]): void;
  // assembly/attention.ts (absent from builds older than them: the bindings loop over rows)
  kvWriteRows?(...args: number[]): void;
  attentionRows?(...args: number[]): void;
  attentionRowsMax?(nHeads: number): number;
  // f16 KV pools (absent from builds older than them: kvType 'f16' is then unsupported)
  kvWriteF16?(...args: number[]): void;
  attentionF16?(...args: number[]): void;
  kvWriteRowsF16?(...args: number[]): void;
  attentionRowsF16?(...args: number[]): void;
  // assembly/pack.ts (absent from builds older than it: prepareLinear then packs in JS)
  packQ8?(dst: number, src: number, rows: number, nb: number, flip: number): void;
  packQ4?(dst: number, src: number, rows: number, nb: number): void;
  packF32?(dst: number, src: number, rows: number, k: number, f16: number): void;
}

const PAGE = 65536;
const MAX_MEMORY = 4 * 1024 * 1024 * 1024 - PAGE; // wasm32
const MAX_HEAD_DIM = 1024; // static scratch in assembly/simd.ts
const GGML_CODE: Record<WeightType, number> = { f32: 0, f16: 1, q4_0: 2, q8_0: 8 };
const TYPES: readonly WeightType[] = ['f32', 'f16', 'q8_0', 'q4_0'];

const alignUp = (v: number, a: number) => Math.ceil(v / a) * a;
/**
 * prepareLinear places each weight at a 4 KiB page boundary: the kernels read a weight as several
 * far-apart streams, and streams that start on a page boundary read faster from DRAM (the hardware
 * prefetcher works within pages): scripts/bench-stream.ts --align off,page, f32 768x2048 8.4 → 12.4
 * GB/s, 32000x768 11.2 → 13.2; 110M decode steps 3–10 % shorter. A weight may take up to
 * linearAlign − 64 bytes more arena than linearBytes says (Model.load budgets for it).
 */
export const LINEAR_ALIGN = 4096;
// GGUF bytes prepareLinear moves into the arena per WASM packing call (stays in L2 between copy and pack)
const PACK_CHUNK_BYTES = 256 * 1024;

function checkDims(what: string, type: WeightType, n: number, k: number, nName: string, kName: string): void {
  if (!TYPES.includes(type)) {
    throw new UnsupportedError(`${what}: weight type ${String(type)} is not supported`, {
      field: 'type',
      hint: 'use f32, f16, q8_0 or q4_0',
    });
  }
  for (const [v, name] of [
    [n, nName],
    [k, kName],
  ] as const) {
    if (!Number.isSafeInteger(v) || v < 1 || v > 1 << 30) {
      throw new FormatError(`${what}: ${name} = ${v} is not a positive integer in range`, { field: name });
    }
  }
  if ((type === 'q8_0' || type === 'q4_0') && k % 32 !== 0) {
    throw new UnsupportedError(`${what}: ${type} needs ${kName} to be a multiple of 32, got ${k}`, {
      field: kName,
      hint: 'quantised GGUF blocks hold 32 values; store this tensor as f16 or f32',
    });
  }
}

/** GGUF bytes of n rows of k values */
function ggufBytes(type: WeightType, n: number, k: number): number {
  switch (type) {
    case 'f32':
      return n * k * 4;
    case 'f16':
      return n * k * 2;
    case 'q8_0':
      return n * (k / 32) * 34;
    case 'q4_0':
      return n * (k / 32) * 18;
  }
}

// f16 bits to f32 value (exact), through a table of all 65536 values made on first use (256 KiB)
let halfTable: Float32Array | undefined;
function halfToFloat(h: number): number {
  if (!halfTable) {
    halfTable = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) {
      const s = i & 0x8000 ? -1 : 1;
      const e = (i >> 10) & 0x1f;
      const f = i & 0x3ff;
      if (e === 0) halfTable[i] = s * f * 2 ** -24;
      else if (e === 31) halfTable[i] = f ? Number.NaN : s * Number.POSITIVE_INFINITY;
      else halfTable[i] = s * (1 + f / 1024) * 2 ** (e - 15);
    }
  }
  return halfTable[h];
}

export interface KernelOptions {
  /**
   * use the unsigned-byte dot kernels where the probe finds them (default true); false keeps the
   * portable relaxed kernels (same results, for comparison)
   */
  usdot?: boolean;
  /** where prepareLinear places weights: a power of two from 64 to 65536 bytes (default LINEAR_ALIGN) */
  linearAlign?: number;
}

// relaxed_dot_i8x16_i7x16_add_s on usdotProbe's operands when bytes of its second operand multiply
// as unsigned 0..255 and nothing saturates (assembly/quant.ts)
const USDOT_EXPECTED = [129547, -130567, 9015, 301];

function probeUsdot(e: Exports): boolean {
  if (!e.usdotProbe || !e.setUsdot || e.relaxedBuild() !== 1) return false;
  const p = e.usdotProbe();
  const got = new Int32Array(e.memory.buffer, p, 4);
  return USDOT_EXPECTED.every((v, i) => got[i] === v);
}

/**
 * Instantiates the kernels synchronously from a compiled module (a Worker imports the `.wasm` as a
 * `WebAssembly.Module`; it may not compile bytes at run time).
 * @example
 * const k = createKernels(new WebAssembly.Module(readFileSync('build/kernels.wasm')));
 * k.reserve(1 << 20);
 * const x = k.alloc(4 * 8);
 * k.f32(x, 8).fill(1);
 * k.softmax(x, 1, 8);
 */
export function createKernels(mod: WebAssembly.Module, options: KernelOptions = {}): Kernels {
  const inst = new WebAssembly.Instance(mod, {
    env: {
      abort() {
        throw new Error('edgelm kernels aborted');
      },
    },
  });
  const e = inst.exports as unknown as Exports;
  const kvSets = kvKernelSets(e);
  for (const key of Object.keys(options)) {
    if (key !== 'usdot' && key !== 'linearAlign') {
      throw new OptionsError(`createKernels: unknown option ${key}`, {
        field: key,
        hint: 'the options are usdot and linearAlign',
      });
    }
  }
  const usdot = options.usdot !== false && probeUsdot(e);
  const linearAlign = options.linearAlign ?? LINEAR_ALIGN;
  if (
    !Number.isInteger(linearAlign) ||
    linearAlign < 64 ||
    linearAlign > PAGE ||
    (linearAlign & (linearAlign - 1)) !== 0
  ) {
    throw new OptionsError(
      `createKernels: linearAlign ${linearAlign} is not a power of two from 64 to ${PAGE}`,
      {
        field: 'linearAlign',
      },
    );
  }
  if (usdot) e.setUsdot?.(1);
  const memory = e.memory;
  const base = alignUp(e.heapBase(), 64);
  let top = base;
  // memory at or above `fresh` has never been handed out: still zero from memory.grow
  let fresh = base;
  const hi = () => memory.buffer.byteLength;

  const allocRaw = (bytes: number, align: number): number => {
    const p = alignUp(top, align);
    if (p + bytes > hi()) {
      throw new BudgetError(
        `kernel arena exhausted: ${bytes} bytes requested, ${Math.max(0, hi() - p)} left`,
        { hint: 'reserve() the total (weights, KV cache, scratch, linearScratchBytes) before allocating' },
      );
    }
    top = p + bytes;
    return p;
  };
  // scratch taken by allocRaw (linear, prepareEmbedding) may leave data behind
  const dirty = (end: number) => {
    fresh = Math.max(fresh, end);
  };

  // an i32 view of all of memory for the row kernels' argument checks, re-made when memory grows
  let i32view = new Int32Array(memory.buffer);
  const i32all = () => {
    if (i32view.buffer !== memory.buffer) i32view = new Int32Array(memory.buffer);
    return i32view;
  };

  const k: Kernels = {
    relaxed: e.relaxedBuild() === 1,
    usdot,
    linearAlign,
    memory,
    reserve(totalBytes) {
      if (!Number.isSafeInteger(totalBytes) || totalBytes < 0) {
        throw new BudgetError(`reserve: ${totalBytes} is not a byte count`, { field: 'totalBytes' });
      }
      // 64 bytes of alignment slack per call keeps a reserve of the exact align64 sum sufficient
      const need = alignUp(top, 64) + totalBytes + 64;
      if (need <= hi()) return;
      if (need > MAX_MEMORY) {
        throw new BudgetError(`reserve: ${need} bytes exceed the 4 GiB of 32-bit WebAssembly memory`, {
          hint: 'use a smaller or more quantised model, or a shorter context',
        });
      }
      try {
        memory.grow(Math.ceil((need - hi()) / PAGE));
      } catch (err) {
        throw new BudgetError(
          `reserve: the engine refused to grow memory to ${need} bytes (${String(err)})`,
          {
            hint: 'the platform memory limit is lower than this model needs',
          },
        );
      }
    },
    alloc(bytes, align = 64) {
      if (!Number.isSafeInteger(bytes) || bytes < 0) {
        throw new BudgetError(`alloc: ${bytes} is not a byte count`, { field: 'bytes' });
      }
      if (!Number.isSafeInteger(align) || align < 1 || align > PAGE) {
        throw new BudgetError(`alloc: alignment ${align} is not an integer in 1..${PAGE}`, {
          field: 'align',
        });
      }
      const p = allocRaw(bytes, align);
      if (p < fresh) new Uint8Array(memory.buffer, p, Math.min(bytes, fresh - p)).fill(0);
      fresh = Math.max(fresh, p + bytes);
      return p;
    },
    mark: () => top,
    release(m) {
      if (!(m >= base && m <= top))
        throw new RangeError(`release: mark ${m} is not below the arena top ${top}`);
      top = m;
    },
    f32: (ptr, len) => new Float32Array(memory.buffer, ptr, len),
    i32: (ptr, len) => new Int32Array(memory.buffer, ptr, len),
    u8: (ptr, len) => new Uint8Array(memory.buffer, ptr, len),

    linearBytes(type, n, k_) {
      checkDims('linearBytes', type, n, k_, 'n', 'k');
      if (type === 'q8_0') return Math.ceil(n / 4) * (k_ / 32) * 144;
      if (type === 'q4_0') return Math.ceil(n / 4) * (k_ / 32) * 80;
      return Math.ceil(n / 8) * k_ * 32;
    },

    prepareLinear(type, raw, n, kk) {
      checkDims('prepareLinear', type, n, kk, 'n', 'k');
      // the usdot kernels read q8_0 weights as unsigned bytes w + 128: stored so, they skip a xor per
      // weight vector (tiles 5–7 % faster)
      const flip = usdot && type === 'q8_0';
      const want = ggufBytes(type, n, kk);
      if (raw.byteLength !== want) {
        throw new FormatError(
          `prepareLinear: ${type} weight of ${n}×${kk} needs ${want} bytes, got ${raw.byteLength}`,
          { field: 'raw' },
        );
      }
      const bytes = k.linearBytes(type, n, kk);
      // in WASM: GGUF rows copied a chunk at a time to free arena memory above the weight (a block
      // memcpy), then repacked there by assembly/pack.ts, which writes every byte of the weight
      // (so no zero-fill); JS packing when the build lacks the packers or there is no room
      const group = type === 'f32' || type === 'f16' ? 8 : 4;
      const rowBytes = ggufBytes(type, 1, kk);
      const p = alignUp(top, linearAlign);
      const room = hi() - alignUp(p + bytes, 64);
      const chunk = Math.min(room, Math.max(PACK_CHUNK_BYTES, group * rowBytes));
      const chunkRows = Math.floor(chunk / (group * rowBytes)) * group;
      const wasmPack = type === 'f32' || type === 'f16' ? e.packF32 : type === 'q8_0' ? e.packQ8 : e.packQ4;
      if (wasmPack === undefined || !(chunkRows > 0)) {
        const ptr = k.alloc(bytes, linearAlign);
        packLinearJs(memory, type, ptr, raw, n, kk, flip);
        return { type, ptr, n, k: kk, bytes, flipped: flip };
      }
      const ptr = allocRaw(bytes, linearAlign);
      const scratch = alignUp(ptr + bytes, 64);
      const mem = new Uint8Array(memory.buffer);
      // destination bytes per packed group of rows
      const groupBytes = type === 'q8_0' ? (kk / 32) * 144 : type === 'q4_0' ? (kk / 32) * 80 : kk * 32;
      const arg = type === 'f32' || type === 'f16' ? kk : kk / 32;
      for (let r0 = 0; r0 < n; r0 += chunkRows) {
        const r1 = Math.min(n, r0 + chunkRows);
        mem.set(raw.subarray(r0 * rowBytes, r1 * rowBytes), scratch);
        wasmPack(ptr + (r0 / group) * groupBytes, scratch, r1 - r0, arg, type === 'f16' || flip ? 1 : 0);
      }
      dirty(scratch + Math.min(n, chunkRows) * rowBytes);
      return { type, ptr, n, k: kk, bytes, flipped: flip };
    },

    linear(out, x, w, m) {
      if (!Number.isSafeInteger(m) || m < 0 || m > 1 << 20) {
        throw new OptionsError(`linear: row count m = ${m} is not an integer in 0..${1 << 20}`, {
          field: 'm',
        });
      }
      if (m === 0) return;
      if (w.type === 'f32' || w.type === 'f16') {
        e.linearF32(out, x, w.ptr, m, w.n, w.k);
        return;
      }
      // scratch just above the arena top, without moving it: a call cut off midway (CPU limit)
      // leaves the arena as it was
      const bytes = e.quantScratchBytes(m, w.k);
      const mk = top;
      const s = allocRaw(bytes, 64);
      top = mk;
      dirty(s + bytes);
      if (w.type === 'q8_0') e.linearQ8(out, x, w.ptr, m, w.n, w.k, s);
      else e.linearQ4(out, x, w.ptr, m, w.n, w.k, s);
    },

    linearScratchBytes(maxM, maxK) {
      return e.quantScratchBytes(maxM, alignUp(maxK, 32)) + 64;
    },

    embeddingBytes(type, rows, dim) {
      checkDims('embeddingBytes', type, rows, dim, 'rows', 'dim');
      return ggufBytes(type, rows, dim);
    },

    prepareEmbedding(type, raw, rows, dim) {
      checkDims('prepareEmbedding', type, rows, dim, 'rows', 'dim');
      const bytes = ggufBytes(type, rows, dim);
      if (raw.byteLength !== bytes) {
        throw new FormatError(
          `prepareEmbedding: ${type} table of ${rows}×${dim} needs ${bytes} bytes, got ${raw.byteLength}`,
          { field: 'raw' },
        );
      }
      const ptr = allocRaw(bytes, 64);
      dirty(ptr + bytes);
      new Uint8Array(memory.buffer, ptr, bytes).set(raw);
      return { type, ptr, rows, dim, bytes };
    },

    embed(out, t, row) {
      if (!Number.isInteger(row) || row < 0 || row >= t.rows) {
        throw new OptionsError(`token id ${row} is outside the embedding table (0..${t.rows - 1})`, {
          field: 'row',
        });
      }
      const rowBytes = t.bytes / t.rows;
      e.dequantizeRow(GGML_CODE[t.type], out, t.ptr + row * rowBytes, t.dim);
    },

    rmsnorm: (out, x, w, m, dim, eps) => e.rmsnorm(out, x, w, m, dim, eps),
    layernorm: (out, x, w, b, m, dim, eps) => e.layernorm(out, x, w, b, m, dim, eps),
    rope(x, m, nHeads, headDim, pos0, posStride, freqBase, neox) {
      checkHeadDim(headDim);
      e.rope(x, m, nHeads, headDim, pos0, posStride, freqBase, neox ? 1 : 0);
    },
    ropeAt(x, m, nHeads, headDim, positions, freqBase, neox) {
      checkHeadDim(headDim);
      e.ropeAt(x, m, nHeads, headDim, positions, freqBase, neox ? 1 : 0);
    },
    siluMul: (out, a, b, n) => e.siluMul(out, a, b, n),
    gelu: (out, x, n) => e.gelu(out, x, n),
    add: (out, a, b, n) => e.add(out, a, b, n),
    addBias: (x, bias, m, n) => e.addBias(x, bias, m, n),
    softmax: (x, m, n) => e.softmax(x, m, n),
    kvWrite(kPool, vPool, blockTable, pos0, n, kp, vp, nKvHeads, headDim, blockSize, kvType = 'f32') {
      const kw = pickKv(kvSets, kvType).kvWrite;
      if (!(blockSize >= 1)) throw new UnsupportedError(`kvWrite: block size ${blockSize} must be ≥ 1`);
      kw(kPool, vPool, blockTable, pos0, n, kp, vp, nKvHeads, headDim, blockSize);
    },
    attention(
      out,
      q,
      nQ,
      kPool,
      vPool,
      blockTable,
      pos0,
      nHeads,
      nKvHeads,
      headDim,
      blockSize,
      kvType = 'f32',
    ) {
      const att = pickKv(kvSets, kvType).attention;
      checkHeadDim(headDim);
      if (!(nKvHeads >= 1) || nHeads % nKvHeads !== 0) {
        throw new UnsupportedError(`attention: ${nKvHeads} KV heads do not divide ${nHeads} heads`, {
          field: 'nKvHeads',
        });
      }
      if (!(blockSize >= 1)) throw new UnsupportedError(`attention: block size ${blockSize} must be ≥ 1`);
      att(out, q, nQ, kPool, vPool, blockTable, pos0, nHeads, nKvHeads, headDim, blockSize);
    },
    kvWriteRows(kPool, vPool, tables, positions, B, kp, vp, nKvHeads, headDim, blockSize, kvType = 'f32') {
      const kk = pickKv(kvSets, kvType);
      checkHeadDim(headDim);
      if (!(Number.isInteger(nKvHeads) && nKvHeads >= 1)) {
        throw new UnsupportedError(`kvWriteRows: ${nKvHeads} KV heads`, { field: 'nKvHeads' });
      }
      const rowBytes = nKvHeads * headDim * 4;
      checkRows(
        'kvWriteRows',
        i32all(),
        B,
        tables,
        positions,
        kPool,
        vPool,
        nKvHeads * blockSize * headDim * kk.bytes,
        blockSize,
        true,
      );
      checkSpan('kvWriteRows', hi(), 'k', kp, B * rowBytes);
      checkSpan('kvWriteRows', hi(), 'v', vp, B * rowBytes);
      if (kk.kvWriteRows) {
        kk.kvWriteRows(kPool, vPool, tables, positions, B, kp, vp, nKvHeads, headDim, blockSize);
        return;
      }
      const I = i32all();
      for (let b = 0; b < B; b++) {
        const o = b * rowBytes;
        const t = I[(tables >> 2) + b];
        kk.kvWrite(kPool, vPool, t, I[(positions >> 2) + b], 1, kp + o, vp + o, nKvHeads, headDim, blockSize);
      }
    },
    attentionRows(
      out,
      q,
      B,
      kPool,
      vPool,
      tables,
      positions,
      nHeads,
      nKvHeads,
      headDim,
      blockSize,
      kvType = 'f32',
    ) {
      const kk = pickKv(kvSets, kvType);
      checkHeadDim(headDim);
      if (
        !(Number.isInteger(nKvHeads) && nKvHeads >= 1 && Number.isInteger(nHeads) && nHeads >= 1) ||
        nHeads % nKvHeads !== 0
      ) {
        throw new UnsupportedError(`attentionRows: ${nKvHeads} KV heads do not divide ${nHeads} heads`, {
          field: 'nKvHeads',
        });
      }
      const rowBytes = nHeads * headDim * 4;
      checkRows(
        'attentionRows',
        i32all(),
        B,
        tables,
        positions,
        kPool,
        vPool,
        nKvHeads * blockSize * headDim * kk.bytes,
        blockSize,
        false,
      );
      checkSpan('attentionRows', hi(), 'q', q, B * rowBytes);
      checkSpan('attentionRows', hi(), 'out', out, B * rowBytes);
      if (out < q + B * rowBytes && q < out + B * rowBytes) {
        throw new OptionsError('attentionRows: out overlaps q', { field: 'out' });
      }
      // batches larger than the kernel's per-call state go in pieces; builds without it, row by row
      const step = kk.attentionRows && e.attentionRowsMax ? e.attentionRowsMax(nHeads) : 0;
      if (step < 1) {
        const I = i32all();
        for (let b = 0; b < B; b++) {
          const o = b * rowBytes;
          const t = I[(tables >> 2) + b];
          const p = I[(positions >> 2) + b];
          kk.attention(out + o, q + o, 1, kPool, vPool, t, p, nHeads, nKvHeads, headDim, blockSize);
        }
        return;
      }
      for (let b0 = 0; b0 < B; b0 += step) {
        const n = Math.min(step, B - b0);
        const o = b0 * rowBytes;
        kk.attentionRows?.(
          out + o,
          q + o,
          n,
          kPool,
          vPool,
          tables + b0 * 4,
          positions + b0 * 4,
          nHeads,
          nKvHeads,
          headDim,
          blockSize,
        );
      }
    },
    argmax: (x, n) => e.argmax(x, n),
    topk(x, n, kk, outIdx, outVal) {
      if (!Number.isInteger(kk) || kk < 1 || kk > n) {
        throw new OptionsError(`top-k: k = ${kk} must be an integer in 1..${n}`, { field: 'k' });
      }
      const got = e.topk(x, n, kk, outIdx, outVal);
      if (got < kk) {
        new Int32Array(memory.buffer, outIdx + got * 4, kk - got).fill(-1);
        new Float32Array(memory.buffer, outVal + got * 4, kk - got).fill(Number.NEGATIVE_INFINITY);
      }
    },
    rowStats(x, n, kk, outIdx, outVal, outSum) {
      if (!Number.isInteger(kk) || kk < 1 || kk > n) {
        throw new OptionsError(`rowStats: k = ${kk} must be an integer in 1..${n}`, { field: 'k' });
      }
      return e.rowStats(x, n, kk, outIdx, outVal, outSum);
    },
    quantizeRow(type, dst, src, kk) {
      checkDims('quantizeRow', type, 1, kk, 'n', 'k');
      if (type === 'q8_0') e.quantizeRowQ8_0(dst, src, kk);
      else if (type === 'q4_0') e.quantizeRowQ4_0(dst, src, kk);
      else
        throw new UnsupportedError(`quantizeRow: ${String(type)} is not a quantised type`, { field: 'type' });
    },
    dequantizeRow(type, dst, src, kk) {
      checkDims('dequantizeRow', type, 1, kk, 'n', 'k');
      e.dequantizeRow(GGML_CODE[type], dst, src, kk);
    },
  };
  return k;
}

const MAX_ROWS = 1 << 16;

// [ptr, ptr + bytes) inside memory of `size` bytes
function checkSpan(what: string, size: number, field: string, ptr: number, bytes: number): void {
  if (!Number.isSafeInteger(ptr) || ptr < 0 || ptr + bytes > size) {
    throw new OptionsError(`${what}: ${field} (${bytes} bytes at ${ptr}) lies outside the kernel memory`, {
      field,
    });
  }
}

// the exports behind one KV element type (validated: OptionsError naming kvType for anything else,
// UnsupportedError for f16 on a build without the f16 kernels)
interface KvKernels {
  bytes: 2 | 4;
  kvWrite: (...args: number[]) => void;
  attention: (...args: number[]) => void;
  kvWriteRows?: (...args: number[]) => void;
  attentionRows?: (...args: number[]) => void;
}
function kvKernelSets(e: Exports): { f32: KvKernels; f16?: KvKernels } {
  const f32: KvKernels = {
    bytes: 4,
    kvWrite: e.kvWrite,
    attention: e.attention,
    kvWriteRows: e.kvWriteRows,
    attentionRows: e.attentionRows,
  };
  if (!e.kvWriteF16 || !e.attentionF16) return { f32 };
  const f16: KvKernels = {
    bytes: 2,
    kvWrite: e.kvWriteF16,
    attention: e.attentionF16,
    kvWriteRows: e.kvWriteRowsF16,
    attentionRows: e.attentionRowsF16,
  };
  return { f32, f16 };
}
function pickKv(sets: { f32: KvKernels; f16?: KvKernels }, kvType: unknown): KvKernels {
  if (kvType === 'f32') return sets.f32; // the common case first: no further checks
  kvTypeBytes(kvType);
  if (!sets.f16) {
    throw new UnsupportedError("kvType 'f16' needs kernels built with the f16 KV kernels", {
      field: 'kvType',
      hint: "rebuild the kernels (npm run build) or use kvType 'f32'",
    });
  }
  return sets.f16;
}

// the per-row arguments of kvWriteRows / attentionRows: B i32 table pointers and B i32 positions,
// each position ≥ 0, each table long enough to hold its position's block, and every block it lists up
// to there (lastOnly: the position's own block, all kvWriteRows touches) inside both pools, so the
// kernel reads and writes nothing outside memory
function checkRows(
  what: string,
  mem: Int32Array,
  B: number,
  tables: number,
  positions: number,
  kPool: number,
  vPool: number,
  blockBytes: number,
  blockSize: number,
  lastOnly: boolean,
): void {
  const size = mem.byteLength;
  if (!Number.isInteger(blockSize) || blockSize < 1) {
    throw new UnsupportedError(`${what}: block size ${blockSize} must be ≥ 1`, { field: 'blockSize' });
  }
  if (!Number.isInteger(B) || B < 1 || B > MAX_ROWS) {
    throw new OptionsError(`${what}: row count B = ${B} is not an integer in 1..${MAX_ROWS}`, { field: 'B' });
  }
  checkSpan(what, size, 'tables', tables, B * 4);
  checkSpan(what, size, 'positions', positions, B * 4);
  if (tables % 4 !== 0 || positions % 4 !== 0) {
    throw new OptionsError(
      `${what}: tables (${tables}) and positions (${positions}) must be 4-byte aligned`,
      {
        field: tables % 4 !== 0 ? 'tables' : 'positions',
      },
    );
  }
  // one view of the whole memory (no allocation per call: this runs for every layer of every step)
  const T = tables >> 2;
  const P = positions >> 2;
  let maxBlock = 0;
  for (let b = 0; b < B; b++) {
    const pos = mem[P + b];
    const t = mem[T + b];
    const n = Math.floor(pos / blockSize) + 1; // table entries the row reads
    if (pos < 0) {
      throw new OptionsError(`${what}: position ${pos} of row ${b} is negative`, { field: 'positions' });
    }
    if (t < 0 || t % 4 !== 0 || t + n * 4 > size) {
      throw new OptionsError(
        `${what}: block table ${t} of row ${b} (${n} entries for position ${pos}) lies outside the kernel memory`,
        { field: 'tables' },
      );
    }
    // attention reads entries 0..n-1; kvWrite only entry n-1
    for (let i = (t >> 2) + (lastOnly ? n - 1 : 0), end = (t >> 2) + n; i < end; i++) {
      const blk = mem[i];
      if (blk < 0) {
        throw new OptionsError(`${what}: row ${b} lists block ${blk} at table index ${i - (t >> 2)}`, {
          field: 'tables',
        });
      }
      if (blk > maxBlock) maxBlock = blk;
    }
  }
  const poolBytes = (maxBlock + 1) * blockBytes;
  if (kPool < 0 || vPool < 0 || kPool + poolBytes > size || vPool + poolBytes > size) {
    throw new OptionsError(
      `${what}: block ${maxBlock} lies outside the kernel memory (pools at ${kPool}, ${vPool}, ${blockBytes} bytes per block)`,
      { field: 'tables', hint: 'block indices must be below the pool size the KV cache was allocated with' },
    );
  }
}

function checkHeadDim(hd: number): void {
  if (!Number.isInteger(hd) || hd < 2 || hd % 2 !== 0 || hd > MAX_HEAD_DIM) {
    throw new UnsupportedError(`head dimension ${hd} is not supported`, {
      field: 'headDim',
      hint: `use an even head dimension up to ${MAX_HEAD_DIM}`,
    });
  }
}

// ---- packing (JS, straight into the arena: no temporary copy of the raw tensor) -------------
// The fallback of prepareLinear when the WASM packers (assembly/pack.ts) cannot run, and the
// reference they are tested against byte for byte.

/**
 * Packs GGUF bytes of an (n×k) weight into the kernels' layout at `ptr` in JS (test reference and
 * fallback of prepareLinear). Assumes zero-filled destination memory of linearBytes(type, n, k).
 * flip (q8_0): every weight byte stored as w ^ 0x80, as prepareLinear does for the usdot kernels.
 * @example
 * const ptr = k.alloc(k.linearBytes('q8_0', n, kk));
 * packLinearJs(k.memory, 'q8_0', ptr, raw, n, kk);
 */
export function packLinearJs(
  memory: WebAssembly.Memory,
  type: WeightType,
  ptr: number,
  raw: Uint8Array,
  n: number,
  k: number,
  flip = false,
): void {
  if (type === 'f32' || type === 'f16') packF32(memory, ptr, raw, n, k, type === 'f16');
  else if (type === 'q8_0') packQ8(memory, ptr, raw, n, k, flip);
  else packQ4(memory, ptr, raw, n, k);
}

// f32 / f16 rows → panels of 8 rows, k-major: dst[(p·k + kk)·8 + j] = W[8p + j][kk]
function packF32(
  memory: WebAssembly.Memory,
  ptr: number,
  raw: Uint8Array,
  n: number,
  k: number,
  f16: boolean,
) {
  const np = Math.ceil(n / 8);
  const dst = new Float32Array(memory.buffer, ptr, np * k * 8);
  const row = new Float32Array(k);
  const rowU8 = new Uint8Array(row.buffer);
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  for (let r = 0; r < np * 8; r++) {
    if (r >= n) row.fill(0);
    else if (f16) for (let i = 0; i < k; i++) row[i] = halfToFloat(dv.getUint16((r * k + i) * 2, true));
    else rowU8.set(raw.subarray(r * k * 4, (r + 1) * k * 4));
    const p = r >> 3;
    let d = p * k * 8 + (r & 7);
    for (let i = 0; i < k; i++, d += 8) dst[d] = row[i];
  }
}

// Q8_0 rows → groups of 4 rows × block: 128 bytes (step s: [row0 k4s..4s+3 | row1 | row2 | row3]) + 4 f32 scales.
// four bytes move as one u32 (little-endian on every WebAssembly host); ptr is 64-byte aligned.
function packQ8(
  memory: WebAssembly.Memory,
  ptr: number,
  raw: Uint8Array,
  n: number,
  k: number,
  flip: boolean,
) {
  const nb = k / 32;
  const ng = Math.ceil(n / 4);
  const fx = flip ? 0x80808080 : 0;
  if (flip) {
    // rows missing from the last group: weight bytes 0x80 (= 0) instead of the zero fill
    const u32 = new Uint32Array(memory.buffer, ptr, (ng * nb * 144) / 4);
    for (let g = 0; g < ng; g++)
      for (let i = 0; i < 4; i++)
        if (g * 4 + i >= n)
          for (let b = 0; b < nb; b++) for (let t = 0; t < 8; t++) u32[(g * nb + b) * 36 + t * 4 + i] = fx;
  }
  const d32 = new Uint32Array(memory.buffer, ptr, (ng * nb * 144) / 4);
  const f32 = new Float32Array(memory.buffer, ptr, (ng * nb * 144) / 4);
  if ((raw.byteOffset & 1) === 0) {
    // word at a time through a u16 view of the 34-byte blocks (GGUF data is aligned, so the
    // usual case); the byte path below is the fallback for odd offsets
    const s16 = new Uint16Array(raw.buffer, raw.byteOffset, raw.byteLength >> 1);
    for (let g = 0; g < ng; g++) {
      for (let b = 0; b < nb; b++) {
        const d = (g * nb + b) * 36;
        for (let i = 0; i < 4; i++) {
          const r = g * 4 + i;
          if (r >= n) continue;
          const s = (r * nb + b) * 17;
          f32[d + 32 + i] = halfToFloat(s16[s]);
          for (let t = 0; t < 8; t++) {
            let w = (s16[s + 1 + 2 * t] | (s16[s + 2 + 2 * t] << 16)) >>> 0;
            // -128 clamped to -127 (a zero byte of w ^ 0x80808080 marks a 0x80)
            const x = (w ^ 0x80808080) >>> 0;
            if (((x - 0x01010101) & ~x & 0x80808080) !== 0) {
              for (let sh = 0; sh < 32; sh += 8) if (((w >>> sh) & 0xff) === 0x80) w = (w + (1 << sh)) >>> 0;
            }
            d32[d + t * 4 + i] = (w ^ fx) >>> 0;
          }
        }
      }
    }
    return;
  }
  const src = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  for (let g = 0; g < ng; g++) {
    for (let b = 0; b < nb; b++) {
      const d = ((g * nb + b) * 144) / 4;
      for (let i = 0; i < 4; i++) {
        const r = g * 4 + i;
        if (r >= n) continue; // zero-filled by alloc: zero weights, zero scale
        const s = (r * nb + b) * 34;
        f32[d + 32 + i] = halfToFloat(src.getUint16(s, true));
        for (let t = 0; t < 8; t++) {
          const o = s + 2 + t * 4;
          let w = (raw[o] | (raw[o + 1] << 8) | (raw[o + 2] << 16) | (raw[o + 3] << 24)) >>> 0;
          // -128 clamped to -127: the relaxed kernels flip signs of weights
          if ((w & 0x80808080) !== 0) {
            for (let sh = 0; sh < 32; sh += 8) if (((w >>> sh) & 0xff) === 0x80) w = (w + (1 << sh)) >>> 0;
          }
          d32[d + t * 4 + i] = (w ^ fx) >>> 0;
        }
      }
    }
  }
}

// Q4_0 rows → groups of 4 rows × block: 64 bytes (vector t: [row0 bytes 4t..4t+3 | row1 | row2 | row3]) + 4 f32 scales
function packQ4(memory: WebAssembly.Memory, ptr: number, raw: Uint8Array, n: number, k: number) {
  const nb = k / 32;
  const ng = Math.ceil(n / 4);
  const d32 = new Uint32Array(memory.buffer, ptr, (ng * nb * 80) / 4);
  const f32 = new Float32Array(memory.buffer, ptr, (ng * nb * 80) / 4);
  const src = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  for (let g = 0; g < ng; g++) {
    for (let b = 0; b < nb; b++) {
      const d = ((g * nb + b) * 80) / 4;
      for (let i = 0; i < 4; i++) {
        const r = g * 4 + i;
        if (r >= n) {
          for (let t = 0; t < 4; t++) d32[d + t * 4 + i] = 0x88888888; // nibbles 8: value 0
          continue;
        }
        const s = (r * nb + b) * 18;
        f32[d + 16 + i] = halfToFloat(src.getUint16(s, true));
        for (let t = 0; t < 4; t++) {
          const o = s + 2 + t * 4;
          d32[d + t * 4 + i] = (raw[o] | (raw[o + 1] << 8) | (raw[o + 2] << 16) | (raw[o + 3] << 24)) >>> 0;
        }
      }
    }
  }
}
