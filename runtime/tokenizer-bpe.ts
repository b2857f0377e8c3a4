// BPE merging shared by both tokenizers: a doubly linked list of symbols and a 4-ary min-heap of
// candidate pairs, with stale entries skipped on pop. Each merge costs O(log n), so a word of n
// symbols costs O(n log n) whatever its content.
// Order: the pair with the best priority first (for llama the highest score, as SentencePiece's
// bpe_model.cc agenda; for gpt2 the lowest merge rank, as tiktoken), ties to the leftmost pair.
// Priority and left position are packed into one float64 key, `prio · 2^bits + left` (exact while
// prio < 2^(53 - bits) and left < 2^bits; bits is 24 unless the merger is made with fewer), so a
// comparison is one number and an entry is 16 bytes.

/** A candidate lookup: for adjacent symbols l and r, a code ≥ 0 for their merge, or -1. */
export type PairLookup = (l: number, r: number) => number;

/** Positions (symbols) per merge call; MAX_INPUT_CHARS × 3 UTF-8 bytes stays below it. */
export const MAX_SYMBOLS = 2 ** 24;

/** Growable 4-ary min-heap of (key, end, code). */
class PairHeap {
  key = new Float64Array(256);
  end = new Int32Array(256);
  code = new Int32Array(256);
  size = 0;

  reset(): void {
    this.size = 0;
  }

  /** Drops buffers grown past `small` entries, so one long input does not pin memory. */
  trim(small: number): void {
    if (this.key.length <= small) return;
    this.key = new Float64Array(small);
    this.end = new Int32Array(small);
    this.code = new Int32Array(small);
    this.size = 0;
  }

  private grow(): void {
    const cap = this.key.length * 2;
    const k = new Float64Array(cap);
    k.set(this.key);
    this.key = k;
    const e = new Int32Array(cap);
    e.set(this.end);
    this.end = e;
    const c = new Int32Array(cap);
    c.set(this.code);
    this.code = c;
  }

  push(key: number, end: number, code: number): void {
    if (this.size === this.key.length) this.grow();
    const K = this.key;
    let i = this.size++;
    // sift up: move parents down until the slot fits
    while (i > 0) {
      const p = (i - 1) >> 2;
      if (K[p] <= key) break;
      K[i] = K[p];
      this.end[i] = this.end[p];
      this.code[i] = this.code[p];
      i = p;
    }
    K[i] = key;
    this.end[i] = end;
    this.code[i] = code;
  }

  /** Makes room for `cap` entries (exactly, when it must grow). */
  reserve(cap: number): void {
    if (cap <= this.key.length) return;
    const k = new Float64Array(cap);
    k.set(this.key.subarray(0, this.size));
    this.key = k;
    const e = new Int32Array(cap);
    e.set(this.end.subarray(0, this.size));
    this.end = e;
    const c = new Int32Array(cap);
    c.set(this.code.subarray(0, this.size));
    this.code = c;
  }

  /** Appends without ordering; call heapify() before the next pop(). */
  append(key: number, end: number, code: number): void {
    if (this.size === this.key.length) this.grow();
    const i = this.size++;
    this.key[i] = key;
    this.end[i] = end;
    this.code[i] = code;
  }

  /** Orders the whole array in O(n) (Floyd's bottom-up construction). */
  heapify(): void {
    for (let i = (this.size - 2) >> 2; i >= 0; i--)
      this.siftDown(i, this.key[i], this.end[i], this.code[i], this.size);
  }

  // the top entry is read from slot 0 before calling pop()
  pop(): void {
    const n = --this.size;
    if (n === 0) return;
    this.siftDown(0, this.key[n], this.end[n], this.code[n], n);
  }

  // places (key, end, code) at slot i or below, in a heap of n entries
  private siftDown(i: number, key: number, end: number, code: number, n: number): void {
    const K = this.key;
    const E = this.end;
    const C = this.code;
    for (;;) {
      const a = 4 * i + 1;
      if (a >= n) break;
      // smallest of up to four children
      let c = a;
      let kc = K[a];
      const last = Math.min(a + 4, n);
      for (let j = a + 1; j < last; j++) {
        if (K[j] < kc) {
          c = j;
          kc = K[j];
        }
      }
      if (kc >= key) break;
      K[i] = kc;
      E[i] = E[c];
      C[i] = C[c];
      i = c;
    }
    K[i] = key;
    E[i] = end;
    C[i] = code;
  }
}

/**
 * Symbols of one word or text segment during merging. `start`/`end` are positions in the caller's
 * units (UTF-16 indices or byte indices), `id` the symbol's token id (-1 when not in the vocabulary).
 */
export class SymbolList {
  start = new Int32Array(64);
  end = new Int32Array(64);
  id = new Int32Array(64);
  next = new Int32Array(64);
  prev = new Int32Array(64);
  n = 0;

  /** Empties the list, making room for `capacity` symbols (exactly, when it must grow). */
  reset(capacity = 0): void {
    this.n = 0;
    if (capacity > this.start.length) this.alloc(capacity);
  }

  /** Drops buffers grown past `small` symbols, so one long input does not pin memory. */
  trim(small: number): void {
    if (this.start.length > small) this.alloc(small);
    this.n = 0;
  }

  private alloc(cap: number): void {
    this.start = new Int32Array(cap);
    this.end = new Int32Array(cap);
    this.id = new Int32Array(cap);
    this.next = new Int32Array(cap);
    this.prev = new Int32Array(cap);
  }

  add(start: number, end: number, id: number): void {
    if (this.n === this.start.length) {
      const cap = this.n * 2;
      for (const name of ['start', 'end', 'id', 'next', 'prev'] as const) {
        const a = new Int32Array(cap);
        a.set(this[name]);
        this[name] = a;
      }
    }
    const i = this.n++;
    this.start[i] = start;
    this.end[i] = end;
    this.id[i] = id;
    this.prev[i] = i - 1;
    this.next[i] = i + 1;
  }
}

/**
 * Merges `syms` in place. `lookup(l, r)` gives a code for the pair or -1; `prioOf(code)` its
 * priority, an integer in 0..2^(53 − leftBits) (lower merges first; 2^29 with the default 24 bits);
 * `tokenOf(code)` the id of the merged symbol. Afterwards walk the list from symbol 0 with `next` (a
 * merged-away symbol has `end` = -1). A merger made with `leftBits` takes fewer than 2^leftBits
 * symbols a call and priorities that many bits wider (llama: 21 bits of symbols, 32-bit priorities).
 */
export class BPEMerger {
  private heap = new PairHeap();
  private readonly scale: number;

  constructor(leftBits = 24) {
    this.scale = 2 ** leftBits;
  }

  /** Releases a heap grown past `small` entries. */
  trim(small: number): void {
    this.heap.trim(small);
  }

  merge(
    syms: SymbolList,
    lookup: PairLookup,
    prioOf: (code: number) => number,
    tokenOf: (code: number) => number,
  ): void {
    const n = syms.n;
    if (n === 0) return;
    syms.next[n - 1] = -1;
    if (n < 2) return;
    const LEFT_SCALE = this.scale;
    // callers bound their input below this (MAX_INPUT_CHARS); a key must stay exact
    if (n > LEFT_SCALE) throw new RangeError(`${n} symbols exceed the merger's ${LEFT_SCALE}`);
    const heap = this.heap;
    heap.reset();
    const { end, next, prev, id } = syms;
    // an entry stays valid while l is alive and its right neighbour still ends where it did
    const offer = (l: number, r: number): void => {
      const c = lookup(l, r);
      if (c >= 0) heap.push(prioOf(c) * LEFT_SCALE + l, end[r], c);
    };
    // initial pairs in one O(n) heap construction
    heap.reserve(n - 1);
    for (let i = 0; i + 1 < n; i++) {
      const c = lookup(i, i + 1);
      if (c >= 0) heap.append(prioOf(c) * LEFT_SCALE + i, end[i + 1], c);
    }
    heap.heapify();
    while (heap.size > 0) {
      const key = heap.key[0];
      const e = heap.end[0];
      const code = heap.code[0];
      heap.pop();
      const l = key - prioOf(code) * LEFT_SCALE; // exact, and cheaper than a float64 modulo
      if (end[l] < 0) continue;
      const r = next[l];
      if (r < 0 || end[r] !== e) continue;
      end[l] = e;
      id[l] = tokenOf(code);
      end[r] = -1;
      const rn = next[r];
      next[l] = rn;
      if (rn >= 0) prev[rn] = l;
      const lp = prev[l];
      if (lp >= 0) offer(lp, l);
      if (rn >= 0) offer(l, rn);
    }
  }
}

// ---- allocation-free lookups used inside the merge loops ---------------------------------------

function nextPow2(n: number): number {
  let c = 16;
  while (c < n) c *= 2;
  return c;
}

/**
 * Strings → ids in an open-addressing table, looked up by a range of another string so the merge
 * loop never allocates a substring (FNV-1a over UTF-16 code units). Built over a vocabulary without
 * copying it: the entries are `ids`, each keyed by `strings[id]`. The first id for a string wins.
 */
/** PieceTable's hash, FNV-1a over UTF-16 code units: a builder filling slots itself (fromSlots) hashes so. */
export const PIECE_HASH_SEED = 0x811c9dc5;
export const PIECE_HASH_PRIME = 0x01000193;

export class PieceTable {
  private readonly strings: ArrayLike<string>;
  private readonly slots: Int32Array; // an id, or -1 for an empty slot
  private readonly mask: number;

  /** Empty slots for up to `capacity` entries, for a builder that inserts as the constructor does. */
  static emptySlots(capacity: number): Int32Array {
    return new Int32Array(nextPow2(capacity * 2)).fill(-1);
  }

  /**
   * A table over slots filled elsewhere (the tokenizer's one-pass vocabulary check): each id at
   * `hash(strings[id]) & (slots.length - 1)` or the next free slot after it, the first id of a string only.
   */
  static fromSlots(strings: ArrayLike<string>, slots: Int32Array): PieceTable {
    return new PieceTable(strings, [], slots);
  }

  constructor(strings: ArrayLike<string>, ids: ArrayLike<number>, filled?: Int32Array) {
    this.strings = strings;
    if (filled !== undefined) {
      this.slots = filled;
      this.mask = filled.length - 1;
      return;
    }
    const size = nextPow2(ids.length * 2);
    const slots = new Int32Array(size).fill(-1);
    const mask = size - 1;
    const seed = PIECE_HASH_SEED;
    const prime = PIECE_HASH_PRIME;
    for (let j = 0; j < ids.length; j++) {
      const id = ids[j];
      const k = strings[id];
      const len = k.length;
      // PieceTable.hash inlined (a call per entry costs more than hashing a short piece, cold)
      let h = seed;
      for (let c = 0; c < len; c++) h = Math.imul(h ^ k.charCodeAt(c), prime);
      let i = (h >>> 0) & mask;
      for (;;) {
        const o = slots[i];
        if (o < 0) {
          slots[i] = id;
          break;
        }
        if (strings[o] === k) break; // an earlier id has this string
        i = (i + 1) & mask;
      }
    }
    this.slots = slots;
    this.mask = mask;
  }

  private static hash(s: string, a: number, b: number): number {
    let h = PIECE_HASH_SEED;
    for (let i = a; i < b; i++) h = Math.imul(h ^ s.charCodeAt(i), PIECE_HASH_PRIME);
    return h >>> 0;
  }

  /** Id of the string s[a, b), or -1. */
  get(s: string, a: number, b: number): number {
    const len = b - a;
    let i = PieceTable.hash(s, a, b) & this.mask;
    for (;;) {
      const id = this.slots[i];
      if (id < 0) return -1;
      const key = this.strings[id];
      if (key.length === len) {
        let j = 0;
        while (j < len && key.charCodeAt(j) === s.charCodeAt(a + j)) j++;
        if (j === len) return id;
      }
      i = (i + 1) & this.mask;
    }
  }
}

/** (int, int) → non-negative int in an open-addressing table of typed arrays; first value wins. */
export class IntPairMap {
  private readonly ka: Int32Array;
  private readonly kb: Int32Array;
  private readonly val: Int32Array;
  private readonly mask: number;

  constructor(capacity: number) {
    const size = nextPow2(capacity * 2);
    this.ka = new Int32Array(size);
    this.kb = new Int32Array(size);
    this.val = new Int32Array(size).fill(-1);
    this.mask = size - 1;
  }

  private slot(a: number, b: number): number {
    let h = Math.imul(a, 0x9e3779b1) ^ Math.imul(b + 0x7f4a7c15, 0x85ebca77);
    h ^= h >>> 15;
    return Math.imul(h, 0x2c1b3c6d) & this.mask;
  }

  /** Sets (a, b) → v unless (a, b) is already present. */
  add(a: number, b: number, v: number): void {
    let i = this.slot(a, b);
    while (this.val[i] >= 0) {
      if (this.ka[i] === a && this.kb[i] === b) return;
      i = (i + 1) & this.mask;
    }
    this.ka[i] = a;
    this.kb[i] = b;
    this.val[i] = v;
  }

  /** Value for (a, b), or -1. */
  get(a: number, b: number): number {
    let i = this.slot(a, b);
    for (;;) {
      const v = this.val[i];
      if (v < 0) return -1;
      if (this.ka[i] === a && this.kb[i] === b) return v;
      i = (i + 1) & this.mask;
    }
  }
}
