/**
 * Byte-level BPE trainer, GPT-2 style, and the GGUF tokenizer metadata for its result.
 *
 * Training, once through: pre-tokenise with GPT-2's pattern → count distinct pieces → each piece
 * becomes a list of byte symbols (token id = byte value for the first 256 tokens) → repeatedly merge
 * the most frequent adjacent pair, updating pair counts incrementally (only the words that hold the
 * merged pair are touched) with a lazy max-heap of pairs.
 *
 * Ties between pairs of equal count go to the smaller (left id, right id), so a run is deterministic.
 * By default no merge joins two digits (`splitDigits`): numbers stay one token per digit (" 2", "3"),
 * which is what lets a small model learn arithmetic on them. The runtime's gpt2 tokenizer needs no
 * special support for this: it only applies the merges it is given.
 */
import { type GGUFMetaValue, meta } from '../../runtime/gguf.ts';
import { ASSISTANT, CHAT_TEMPLATE, END, USER } from './instruct.ts';

/** GPT-2's pre-tokenizer pattern (used offline only; the runtime has its own scanner). */
export const GPT2_PATTERN = /'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/** End-of-text special token: document separator in pretraining, BOS of the GGUF. */
export const EOT = '<|endoftext|>';

let byteUnicodeTable: string[] | undefined;

/**
 * GPT-2's reversible byte → printable character map: printable Latin-1 bytes map to themselves,
 * the other 68 bytes to U+0100 upwards in byte order (so a space is 'Ġ', a newline 'Ċ').
 * @example
 * byteToUnicode()[32] // 'Ġ'
 */
export function byteToUnicode(): string[] {
  if (byteUnicodeTable) return byteUnicodeTable;
  const table: string[] = new Array(256);
  let next = 256;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    table[b] = String.fromCodePoint(printable ? b : next++);
  }
  byteUnicodeTable = table;
  return table;
}

export interface BPETrainOptions {
  /** Pairs seen fewer times than this are never merged (default 2). */
  minFrequency?: number;
  /** Never merge two digits into one token (default true). */
  splitDigits?: boolean;
  /** Called every `progressEvery` merges with (merges done, merges wanted). */
  onProgress?: (done: number, total: number) => void;
  progressEvery?: number;
}

export interface BPEVocab {
  /** Token strings in GPT-2 byte-unicode form; ids 0..255 are the single bytes 0..255. */
  tokens: string[];
  /** "left right" merges in rank order (rank 0 first). */
  merges: string[];
}

/**
 * Count GPT-2 pre-tokens of a text.
 * @example
 * countPieces('the cat the') // Map { 'the' => 1, ' cat' => 1, ' the' => 1 }
 */
export function countPieces(text: string, counts: Map<string, number> = new Map()): Map<string, number> {
  for (const m of text.matchAll(GPT2_PATTERN)) {
    const w = m[0];
    counts.set(w, (counts.get(w) ?? 0) + 1);
  }
  return counts;
}

// heap entries: pair count, left id, right id — max by count, then min left, then min right
class PairHeap {
  private c: number[] = [];
  private a: number[] = [];
  private b: number[] = [];
  get size(): number {
    return this.c.length;
  }
  private above(i: number, j: number): boolean {
    const { c, a, b } = this;
    if (c[i] !== c[j]) return c[i] > c[j];
    if (a[i] !== a[j]) return a[i] < a[j];
    return b[i] < b[j];
  }
  private swap(i: number, j: number): void {
    const { c, a, b } = this;
    [c[i], c[j]] = [c[j], c[i]];
    [a[i], a[j]] = [a[j], a[i]];
    [b[i], b[j]] = [b[j], b[i]];
  }
  push(count: number, left: number, right: number): void {
    this.c.push(count);
    this.a.push(left);
    this.b.push(right);
    let i = this.c.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.above(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }
  pop(): [number, number, number] {
    const top: [number, number, number] = [this.c[0], this.a[0], this.b[0]];
    const last = this.c.length - 1;
    this.swap(0, last);
    this.c.pop();
    this.a.pop();
    this.b.pop();
    const n = this.c.length;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < n && this.above(l, m)) m = l;
      if (r < n && this.above(r, m)) m = r;
      if (m === i) break;
      this.swap(i, m);
      i = m;
    }
    return top;
  }
}

const PAIR_BASE = 1 << 21; // ids stay below 2^21, so left*BASE+right is an exact double

/**
 * Train a GPT-2-style byte-level BPE vocabulary of `vocabSize` tokens (256 byte tokens + merges).
 * Stops early if no pair reaches `minFrequency`. Every byte sequence stays encodable.
 * `text` may also be a list of documents, or a precomputed piece-count map.
 * @example
 * const { tokens, merges } = trainByteBPE('low lower lowest', 260);
 * // merges[0] === 'l o', tokens[256] === 'lo'
 */
export function trainByteBPE(
  text: string | string[] | Map<string, number>,
  vocabSize: number,
  opts: BPETrainOptions = {},
): BPEVocab {
  if (!Number.isInteger(vocabSize) || vocabSize < 256 || vocabSize >= PAIR_BASE) {
    throw new RangeError(`vocabSize must be an integer in [256, ${PAIR_BASE}), got ${vocabSize}`);
  }
  const minFrequency = opts.minFrequency ?? 2;
  const splitDigits = opts.splitDigits ?? true;
  const b2u = byteToUnicode();

  let pieceCounts: Map<string, number>;
  if (text instanceof Map) pieceCounts = text;
  else {
    pieceCounts = new Map();
    for (const t of typeof text === 'string' ? [text] : text) countPieces(t, pieceCounts);
  }

  // distinct pieces as byte-id symbol lists, sorted so the run does not depend on Map order
  const encoder = new TextEncoder();
  const keys = [...pieceCounts.keys()].sort();
  const words: number[][] = [];
  const freq: number[] = [];
  for (const k of keys) {
    words.push(Array.from(encoder.encode(k)));
    freq.push(pieceCounts.get(k)!);
  }

  const tokens = b2u.slice();
  const tokenId = new Map<string, number>(tokens.map((t, i) => [t, i]));
  const digits: number[] = tokens.map((_, i) => (i >= 48 && i <= 57 ? 1 : 0)); // digits per token
  const merges: string[] = [];

  const pairCount = new Map<number, number>();
  const pairWhere = new Map<number, Set<number>>();
  const addPair = (key: number, delta: number, w: number): void => {
    pairCount.set(key, (pairCount.get(key) ?? 0) + delta);
    if (delta > 0) {
      let s = pairWhere.get(key);
      if (!s) {
        s = new Set();
        pairWhere.set(key, s);
      }
      s.add(w);
    }
  };
  for (let w = 0; w < words.length; w++) {
    const s = words[w];
    for (let i = 0; i + 1 < s.length; i++) addPair(s[i] * PAIR_BASE + s[i + 1], freq[w], w);
  }
  const mergeable = (l: number, r: number): boolean => !splitDigits || digits[l] + digits[r] < 2;

  const heap = new PairHeap();
  for (const [key, c] of pairCount) {
    const l = Math.floor(key / PAIR_BASE);
    const r = key % PAIR_BASE;
    if (mergeable(l, r)) heap.push(c, l, r);
  }

  const wanted = vocabSize - 256;
  const every = opts.progressEvery ?? 256;
  while (tokens.length < vocabSize && heap.size > 0) {
    const [stored, l, r] = heap.pop();
    const key = l * PAIR_BASE + r;
    const cur = pairCount.get(key) ?? 0;
    if (cur !== stored) {
      // stale: counts of old pairs only fall, so re-queue with the current count; a count that rose
      // (pairs with a re-used token) already has a fresher entry in the heap
      if (cur > 0 && cur < stored) heap.push(cur, l, r);
      continue;
    }
    if (cur < minFrequency) break;

    const str = tokens[l] + tokens[r];
    let x = tokenId.get(str);
    if (x === undefined) {
      x = tokens.length;
      tokens.push(str);
      tokenId.set(str, x);
      digits.push(digits[l] + digits[r]);
    }
    merges.push(`${tokens[l]} ${tokens[r]}`);

    // rewrite every word holding (l, r); pairs that involve x are queued once at the end
    const touched = new Set<number>();
    for (const w of pairWhere.get(key) ?? []) {
      const s = words[w];
      const f = freq[w];
      let i = 0;
      while (i + 1 < s.length) {
        if (s[i] !== l || s[i + 1] !== r) {
          i++;
          continue;
        }
        if (i > 0) {
          addPair(s[i - 1] * PAIR_BASE + l, -f, w);
          const k2 = s[i - 1] * PAIR_BASE + x;
          addPair(k2, f, w);
          touched.add(k2);
        }
        if (i + 2 < s.length) {
          addPair(r * PAIR_BASE + s[i + 2], -f, w);
          const k2 = x * PAIR_BASE + s[i + 2];
          addPair(k2, f, w);
          touched.add(k2);
        }
        addPair(key, -f, w);
        s.splice(i, 2, x);
        i++;
      }
    }
    pairWhere.delete(key);
    for (const k2 of touched) {
      const c = pairCount.get(k2)!;
      const a = Math.floor(k2 / PAIR_BASE);
      const b = k2 % PAIR_BASE;
      if (c > 0 && mergeable(a, b)) heap.push(c, a, b);
    }
    if (opts.onProgress && merges.length % every === 0) opts.onProgress(merges.length, wanted);
  }
  return { tokens, merges };
}

/** Options for {@link tokenizerMetadata}. */
export interface TokenizerMetadataOptions {
  /** BOS special (default `<|endoftext|>` if among the specials, else none). */
  bos?: string;
  /** EOS special (default `<|end|>` if present, else `<|endoftext|>`, else none). */
  eos?: string;
  /** Whether the runtime should prepend BOS when encoding (default false). */
  addBos?: boolean;
  /**
   * `tokenizer.ggml.pre`, written only when given. llama.cpp names our pattern "gpt-2" and loads a
   * file without the key with a warning; edgelm's runtime accepts the key absent.
   */
  pre?: string;
}

/**
 * GGUF tokenizer metadata for a byte-level BPE vocabulary: `tokenizer.ggml.model = "gpt2"`, tokens,
 * token types (1 normal; specials appended after the BPE tokens as 3 control), merges, BOS/EOS ids,
 * and `tokenizer.chat_template` when the specials include the chat markers.
 * @example
 * const { tokens, merges } = trainByteBPE(text, 4096);
 * const kv = tokenizerMetadata(tokens, merges, ['<|endoftext|>', '<|user|>', '<|assistant|>', '<|end|>']);
 * writeGGUF([...modelKv, ...kv], tensors);
 */
export function tokenizerMetadata(
  tokens: string[],
  merges: string[],
  specials: string[],
  opts: TokenizerMetadataOptions = {},
): Array<[string, GGUFMetaValue]> {
  const all = [...tokens, ...specials];
  const seen = new Set<string>();
  for (const t of all) {
    if (seen.has(t)) throw new RangeError(`duplicate token ${JSON.stringify(t)} in vocabulary`);
    seen.add(t);
  }
  const idOf = (s: string | undefined): number | undefined => {
    if (s === undefined) return undefined;
    const i = specials.indexOf(s);
    if (i < 0) throw new RangeError(`${s} is not one of the specials`);
    return tokens.length + i;
  };
  const bos = idOf(opts.bos ?? (specials.includes(EOT) ? EOT : undefined));
  const eos = idOf(opts.eos ?? (specials.includes(END) ? END : specials.includes(EOT) ? EOT : undefined));
  const types = all.map((_, i) => (i < tokens.length ? 1 : 3));

  const kv: Array<[string, GGUFMetaValue]> = [
    ['tokenizer.ggml.model', meta.str('gpt2')],
    ['tokenizer.ggml.tokens', meta.arr('string', all)],
    ['tokenizer.ggml.token_type', meta.arr('i32', types)],
    ['tokenizer.ggml.merges', meta.arr('string', merges)],
  ];
  if (opts.pre !== undefined) kv.push(['tokenizer.ggml.pre', meta.str(opts.pre)]);
  if (bos !== undefined) kv.push(['tokenizer.ggml.bos_token_id', meta.u32(bos)]);
  if (eos !== undefined) kv.push(['tokenizer.ggml.eos_token_id', meta.u32(eos)]);
  kv.push(['tokenizer.ggml.add_bos_token', meta.bool(opts.addBos ?? false)]);
  if ([USER, ASSISTANT, END].every((s) => specials.includes(s))) {
    kv.push(['tokenizer.chat_template', meta.str(CHAT_TEMPLATE)]);
  }
  return kv;
}
