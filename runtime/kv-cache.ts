// Paged KV cache: one pool of fixed-size blocks shared by every sequence of a model.
//
// Per layer there is a K pool and a V pool, each `nBlocks` blocks; a block holds `blockSize`
// positions laid out [kvHead][blockSize][headDim] of the layout's `kvType` (f32 by default, or f16:
// 2 bytes an element; the layout kernels.kvWrite/attention read with the same kvType).
// A sequence owns a block table (i32 block indices, one slot of `maxBlocksPerSeq` entries in WASM
// memory) and a length. `fork` shares every block of the parent (refcount + 1); a write into a
// block that another sequence still references copies that block first (copy-on-write), so
// forked beams diverge without recomputing their common prefix.
import { BudgetError, ContextLengthError, OptionsError } from './errors.ts';
import { type Kernels, type KvType, kvTypeBytes } from './kernels.ts';

export interface KvLayout {
  nLayers: number;
  nKvHeads: number;
  headDim: number;
  blockSize: number;
  nBlocks: number; // blocks in the pool (per layer, per K/V)
  context: number; // positions one sequence may hold
  maxBlocksPerSeq: number; // ceil(context / blockSize)
  maxSequences: number; // live sequences at once (block-table slots)
  /** element type of the pools (default 'f32') */
  kvType?: KvType;
}

/** One sequence's state. Opaque to callers (they see `id` and `length`). */
export class KvSequence {
  readonly id: number;
  /** positions written so far */
  length = 0;
  /** block index per block of positions [i*blockSize, (i+1)*blockSize) */
  readonly blocks: number[] = [];
  readonly slot: number;
  /** byte pointer of this sequence's i32 block table in WASM memory */
  readonly tablePtr: number;
  alive = true;
  readonly owner: KvCache;
  constructor(owner: KvCache, id: number, slot: number, tablePtr: number) {
    this.owner = owner;
    this.id = id;
    this.slot = slot;
    this.tablePtr = tablePtr;
  }
}

/**
 * The paged block pool. Sizes are fixed at construction; nothing here allocates WASM memory after
 * that.
 * @example
 * const kv = new KvCache(kernels, layout);
 * const s = kv.newSequence(); kv.reserve([s], [5]); // …kvWrite positions 0..4…; kv.commit(s, 5)
 */
export class KvCache {
  readonly layout: KvLayout;
  readonly kPools: number[] = []; // per layer, byte pointer of the K pool
  readonly vPools: number[] = [];
  readonly blockBytes: number; // bytes of one block in one pool
  readonly kvType: KvType;
  private readonly k: Kernels;
  private readonly refs: Int32Array;
  private readonly freeList: Int32Array; // stack of free block indices
  private nFree: number;
  private readonly tables: number; // i32[maxSequences][maxBlocksPerSeq]
  private readonly batch: number; // i32[maxSequences]: table pointers of one decode batch (batchTables)
  private readonly freeSlots: number[] = [];
  private nextId = 1;
  // scratch for reserve(): blocks whose refcount is provisionally lowered, and by how much
  private readonly simBlocks: number[] = [];
  private readonly simDrops: number[] = [];

  /** Bytes of WASM memory a cache of this layout takes (pools + block tables + alignment). */
  static bytes(l: KvLayout): number {
    const pool = l.nBlocks * l.nKvHeads * l.blockSize * l.headDim * kvTypeBytes(l.kvType ?? 'f32');
    return (
      2 * l.nLayers * (pool + 64) + l.maxSequences * l.maxBlocksPerSeq * 4 + 64 + l.maxSequences * 4 + 64
    );
  }

  constructor(k: Kernels, layout: KvLayout) {
    this.k = k;
    this.layout = layout;
    const { nLayers, nKvHeads, headDim, blockSize, nBlocks, maxBlocksPerSeq, maxSequences } = layout;
    this.kvType = layout.kvType ?? 'f32';
    this.blockBytes = nKvHeads * blockSize * headDim * kvTypeBytes(this.kvType);
    for (let l = 0; l < nLayers; l++) {
      this.kPools.push(k.alloc(nBlocks * this.blockBytes));
      this.vPools.push(k.alloc(nBlocks * this.blockBytes));
    }
    this.tables = k.alloc(maxSequences * maxBlocksPerSeq * 4);
    this.batch = k.alloc(maxSequences * 4);
    this.refs = new Int32Array(nBlocks);
    this.freeList = new Int32Array(nBlocks);
    // pop from the end: hand out low block indices first
    for (let i = 0; i < nBlocks; i++) this.freeList[i] = nBlocks - 1 - i;
    this.nFree = nBlocks;
    for (let s = maxSequences - 1; s >= 0; s--) this.freeSlots.push(s);
  }

  /** Blocks left in the pool. */
  freeBlocks(): number {
    return this.nFree;
  }

  /** Sequences that can still be created. */
  freeSequenceSlots(): number {
    return this.freeSlots.length;
  }

  newSequence(): KvSequence {
    const slot = this.freeSlots.pop();
    if (slot === undefined) {
      throw new BudgetError(`all ${this.layout.maxSequences} sequence slots are in use`, {
        field: 'maxSequences',
        hint: 'free finished sequences, or load the model with a larger maxSequences',
      });
    }
    return new KvSequence(this, this.nextId++, slot, this.tables + slot * this.layout.maxBlocksPerSeq * 4);
  }

  /** A new sequence sharing every written block of `parent` (copy-on-write). */
  fork(parent: KvSequence): KvSequence {
    this.check(parent);
    const s = this.newSequence();
    const bs = this.layout.blockSize;
    // share only the blocks that hold written positions; blocks reserved past the length stay private
    const n = Math.ceil(parent.length / bs);
    const table = this.k.i32(s.tablePtr, this.layout.maxBlocksPerSeq);
    for (let i = 0; i < n; i++) {
      const b = parent.blocks[i];
      this.refs[b]++;
      s.blocks.push(b);
      table[i] = b;
    }
    s.length = parent.length;
    return s;
  }

  free(s: KvSequence): void {
    this.check(s);
    for (const b of s.blocks) this.release(b);
    s.blocks.length = 0;
    s.length = 0;
    s.alive = false;
    this.freeSlots.push(s.slot);
  }

  /** Throws unless `s` is a live sequence of this cache. */
  check(s: KvSequence): void {
    if (!(s instanceof KvSequence) || s.owner !== this || !s.alive) {
      throw new OptionsError('unknown or freed sequence', {
        field: 'seq',
        hint: 'pass a sequence returned by newSequence/fork of this model and not yet freed',
      });
    }
  }

  /**
   * Makes room to write `counts[i]` positions after `seqs[i].length`, for every i at once: either
   * every sequence gets its blocks (copying a shared block it would write into), or nothing changes
   * and a BudgetError / ContextLengthError is thrown.
   */
  reserve(seqs: readonly KvSequence[], counts: ArrayLike<number>): void {
    const bs = this.layout.blockSize;
    const maxLen = this.layout.context;
    let needed = 0;
    this.simBlocks.length = 0;
    this.simDrops.length = 0;
    for (let i = 0; i < seqs.length; i++) {
      const s = seqs[i];
      const n = counts[i];
      if (n === 0) continue;
      if (s.length + n > maxLen) {
        throw new ContextLengthError(
          `sequence ${s.id} would reach ${s.length + n} positions; the context holds ${maxLen}`,
          { field: 'tokens', hint: 'shorten the prompt or the number of new tokens' },
        );
      }
      const bi = Math.floor(s.length / bs);
      if (bi < s.blocks.length && this.simRefs(s.blocks[bi]) > 1) {
        needed++; // copy-on-write: this sequence gets its own copy, the others keep the original
        this.simDrop(s.blocks[bi]);
      }
      needed += Math.max(0, Math.ceil((s.length + n) / bs) - s.blocks.length);
    }
    if (needed > this.nFree) {
      throw new BudgetError(`KV cache full: ${needed} blocks needed, ${this.nFree} free`, {
        field: 'kvBlocks',
        hint: 'free finished sequences, admit fewer requests, or load the model with more kvBlocks',
      });
    }
    for (let i = 0; i < seqs.length; i++) {
      const s = seqs[i];
      const n = counts[i];
      if (n === 0) continue;
      const bi = Math.floor(s.length / bs);
      const want = Math.ceil((s.length + n) / bs);
      const cow = bi < s.blocks.length && this.refs[s.blocks[bi]] > 1;
      if (!cow && s.blocks.length >= want) continue; // the common decode step: nothing to do
      const table = this.k.i32(s.tablePtr, this.layout.maxBlocksPerSeq);
      if (cow) {
        const old = s.blocks[bi];
        const b = this.take();
        if (s.length % bs !== 0) this.copyBlock(b, old); // positions before length are live: copy them
        this.refs[old]--;
        s.blocks[bi] = b;
        table[bi] = b;
      }
      while (s.blocks.length < want) {
        const b = this.take();
        table[s.blocks.length] = b;
        s.blocks.push(b);
      }
    }
  }

  /**
   * The block-table pointers of `seqs` as an i32 array in WASM memory (the `tables` argument of
   * kernels.kvWriteRows / attentionRows), valid until the next call. At most maxSequences entries.
   */
  batchTables(seqs: readonly KvSequence[]): number {
    if (seqs.length > this.layout.maxSequences) {
      throw new OptionsError(`batchTables takes at most ${this.layout.maxSequences} sequences`, {
        field: 'seqs',
      });
    }
    const t = this.k.i32(this.batch, seqs.length);
    for (let b = 0; b < seqs.length; b++) t[b] = seqs[b].tablePtr;
    return this.batch;
  }

  /** Marks `n` more positions of `s` as written (after reserve and kvWrite). */
  commit(s: KvSequence, n: number): void {
    s.length += n;
  }

  private simRefs(b: number): number {
    let r = this.refs[b];
    for (let j = 0; j < this.simBlocks.length; j++) if (this.simBlocks[j] === b) r -= this.simDrops[j];
    return r;
  }

  private simDrop(b: number): void {
    for (let j = 0; j < this.simBlocks.length; j++) {
      if (this.simBlocks[j] === b) {
        this.simDrops[j]++;
        return;
      }
    }
    this.simBlocks.push(b);
    this.simDrops.push(1);
  }

  private take(): number {
    const b = this.freeList[--this.nFree];
    this.refs[b] = 1;
    return b;
  }

  private release(b: number): void {
    if (--this.refs[b] === 0) this.freeList[this.nFree++] = b;
  }

  private copyBlock(dst: number, src: number): void {
    const u8 = new Uint8Array(this.k.memory.buffer);
    const bb = this.blockBytes;
    for (let l = 0; l < this.layout.nLayers; l++) {
      u8.copyWithin(this.kPools[l] + dst * bb, this.kPools[l] + src * bb, this.kPools[l] + (src + 1) * bb);
      u8.copyWithin(this.vPools[l] + dst * bb, this.vPools[l] + src * bb, this.vPools[l] + (src + 1) * bb);
    }
  }
}
