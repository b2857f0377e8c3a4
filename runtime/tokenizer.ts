// Tokenizers built from GGUF metadata: "llama" (SentencePiece-style BPE over scores, ▁ for spaces,
// <0xNN> byte fallback) and "gpt2" (byte-level BPE over ranked merges, GPT-2 pre-tokenizer).
//
// Metadata is untrusted: every array is checked for type, length and range before use, and nothing
// from the file is ever compiled (no regex from `tokenizer.ggml.pre`). Text is untrusted too:
// merging is O(n log n) (tokenizer-bpe.ts), pre-tokenizing O(n) (tokenizer-gpt2.ts), and input is
// capped at MAX_INPUT_CHARS.

import { BudgetError, FormatError, OptionsError, UnsupportedError } from './errors.ts';
import { type GGUFFile, numericItems } from './gguf.ts';
import { BPEMerger, IntPairMap, PIECE_HASH_SEED, PieceTable, SymbolList } from './tokenizer-bpe.ts';
import { gpt2ByteToUnicode, gpt2Pieces } from './tokenizer-gpt2.ts';
import { SpecialMatcher } from './tokenizer-special.ts';

/** A tokenizer built by tokenizerFromGGUF. */
export interface Tokenizer {
  readonly vocabSize: number;
  readonly bos: number | undefined;
  readonly eos: number | undefined;
  readonly addBos: boolean;
  readonly model: 'llama' | 'gpt2';
  /**
   * Text → ids. Special-token strings (`<s>`, `<|endoftext|>`, added markers) are plain text unless
   * `parseSpecial` is true. `addBos` defaults to the model's `tokenizer.ggml.add_bos_token`.
   */
  encode(text: string, opts?: EncodeOptions): number[];
  /**
   * Like encode of the joined texts, but special-token strings are recognised only inside parts
   * with `parseSpecial` (a match never spans parts), and plain text is encoded as one run across
   * part boundaries. For chat prompts: template markers as special parts, user content as plain
   * parts, so a message cannot forge turns by containing marker text.
   */
  encodeParts(parts: ReadonlyArray<EncodePart>, opts?: { addBos?: boolean }): number[];
  /**
   * Ids → text. Special tokens are written as their text unless `skipSpecial`. For "llama" with
   * add_space_prefix, the one space the encoder put in front is removed (`stripLeadingSpace`,
   * default true), as SentencePiece does. Invalid UTF-8 from byte tokens becomes U+FFFD.
   */
  decode(ids: ArrayLike<number>, opts?: DecodeOptions): string;
  /** Raw bytes of one token (UTF-8 of its surface text; one byte for a byte token). */
  tokenBytes(id: number): Uint8Array;
  /**
   * Incremental decode: `push(id)` returns the text completed so far, holding back the bytes of a
   * UTF-8 character split across tokens; `flush()` returns what is left (U+FFFD for a broken tail).
   * The concatenation of all pushes and the flush equals `decode(ids, opts)`.
   */
  streamDecoder(opts?: DecodeOptions): { push(id: number): string; flush(): string };
  /** Control, unknown and user-defined tokens, and the bos/eos/padding ids. */
  isSpecial(id: number): boolean;
  /** Id of the token whose text is exactly `piece` (as stored in the vocabulary). */
  tokenId(piece: string): number | undefined;
}

/** One piece of text for encodeParts; special-token strings are recognised only where `parseSpecial`. */
export interface EncodePart {
  text: string;
  parseSpecial?: boolean;
}

export interface EncodeOptions {
  parseSpecial?: boolean;
  addBos?: boolean;
}

export interface DecodeOptions {
  skipSpecial?: boolean;
  stripLeadingSpace?: boolean;
}

/**
 * Longest text `encode` accepts, in UTF-16 code units. Merging needs ~40–80 bytes per symbol of the
 * longest run it merges at once (a gpt2 pre-token word counts UTF-8 bytes, a llama segment
 * characters), so one 1 Mi-character word of CJK can take ~100+ MB: hosts with a tight memory budget
 * should cap prompt text well below this (a context of a few thousand tokens never needs more than
 * tens of KB).
 */
export const MAX_INPUT_CHARS = 1 << 20;
/** Largest vocabulary accepted from metadata. */
export const MAX_VOCAB = 1_000_000;
/** Total text of special tokens accepted from metadata, in UTF-16 code units. */
export const MAX_SPECIAL_CHARS = 1 << 18;
/** Longest token text accepted from metadata, in UTF-16 code units. */
export const MAX_TOKEN_CHARS = 1024;

// GGUF token types (llama.cpp's llama_token_type)
export const TokenType = {
  undefined: 0,
  normal: 1,
  unknown: 2,
  control: 3,
  userDefined: 4,
  unused: 5,
  byte: 6,
} as const;

const K = {
  model: 'tokenizer.ggml.model',
  pre: 'tokenizer.ggml.pre',
  tokens: 'tokenizer.ggml.tokens',
  scores: 'tokenizer.ggml.scores',
  types: 'tokenizer.ggml.token_type',
  merges: 'tokenizer.ggml.merges',
  bos: 'tokenizer.ggml.bos_token_id',
  eos: 'tokenizer.ggml.eos_token_id',
  pad: 'tokenizer.ggml.padding_token_id',
  unk: 'tokenizer.ggml.unknown_token_id',
  addBos: 'tokenizer.ggml.add_bos_token',
  addSpacePrefix: 'tokenizer.ggml.add_space_prefix',
} as const;

const SPACE_MARK = '\u2581'; // ▁
// merge buffers up to this many symbols stay allocated between calls; larger ones are dropped
const SCRATCH_KEEP = 1 << 16;
const CORRUPT = 'corrupt or mis-converted tokenizer metadata; re-convert the model';

type MetadataSource = Pick<GGUFFile, 'get'>;

// ---- metadata checks ----------------------------------------------------------------------------

function isArrayLike(v: unknown): v is ArrayLike<unknown> {
  return Array.isArray(v) || (ArrayBuffer.isView(v) && !(v instanceof DataView));
}

function readStrings(
  file: MetadataSource,
  key: string,
  required: boolean,
  maxChars: number,
): string[] | undefined {
  const v = file.get(key);
  if (v === undefined) {
    if (required) throw new FormatError(`missing metadata key ${key}`, { field: key, hint: CORRUPT });
    return undefined;
  }
  if (!Array.isArray(v))
    throw new FormatError(`${key} must be an array of strings`, { field: key, hint: CORRUPT });
  if (v.length > MAX_VOCAB) {
    throw new FormatError(`${key} has ${v.length} entries, more than the cap of ${MAX_VOCAB}`, {
      field: key,
      hint: CORRUPT,
    });
  }
  for (let i = 0; i < v.length; i++) {
    const s = v[i];
    if (typeof s !== 'string') {
      throw new FormatError(`${key}[${i}] is a ${typeof s}, must be a string`, { field: key, hint: CORRUPT });
    }
    if (s.length > maxChars) {
      throw new FormatError(`${key}[${i}] is ${s.length} characters long, more than the cap of ${maxChars}`, {
        field: key,
        hint: CORRUPT,
      });
    }
  }
  return v as string[];
}

function readNumbers(
  file: MetadataSource,
  key: string,
  n: number,
  integer: boolean,
): Float64Array | undefined {
  const v = file.get(key);
  if (v === undefined) return undefined;
  if (!isArrayLike(v))
    throw new FormatError(`${key} must be an array of numbers`, { field: key, hint: CORRUPT });
  if (v.length !== n) {
    throw new FormatError(`${key} has ${v.length} entries but tokenizer.ggml.tokens has ${n}`, {
      field: key,
      hint: CORRUPT,
    });
  }
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const x = v[i];
    const num = typeof x === 'bigint' ? Number(x) : x;
    if (typeof num !== 'number' || Number.isNaN(num) || (integer && !Number.isInteger(num))) {
      throw new FormatError(`${key}[${i}] is not a ${integer ? 'integer' : 'number'}`, {
        field: key,
        hint: CORRUPT,
      });
    }
    out[i] = num;
  }
  return out;
}

function readId(file: MetadataSource, key: string, n: number): number | undefined {
  const v = file.get(key);
  if (v === undefined) return undefined;
  const num = typeof v === 'bigint' ? (v >= 0n && v < BigInt(n) ? Number(v) : -1) : v;
  if (typeof num !== 'number' || !Number.isInteger(num) || num < 0 || num >= n) {
    throw new FormatError(`${key} = ${String(v)} is not a token id in 0..${n - 1}`, {
      field: key,
      hint: CORRUPT,
    });
  }
  return num;
}

function readBool(file: MetadataSource, key: string, fallback: boolean): boolean {
  const v = file.get(key);
  if (v === undefined) return fallback;
  if (typeof v !== 'boolean') throw new FormatError(`${key} must be a bool`, { field: key, hint: CORRUPT });
  return v;
}

// value of one hex digit's char code, else -1
function hexDigit(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const l = c | 0x20; // A–F as a–f
  return l >= 0x61 && l <= 0x66 ? l - 0x61 + 10 : -1;
}

function parseByteToken(s: string): number {
  // exactly <0xNN> with two hex digits (char codes: no regex or substring per token at load)
  if (s.length !== 6 || s.charCodeAt(0) !== 0x3c || s.charCodeAt(1) !== 0x30 || s.charCodeAt(2) !== 0x78)
    return -1;
  if (s.charCodeAt(5) !== 0x3e) return -1;
  const hi = hexDigit(s.charCodeAt(3));
  const lo = hexDigit(s.charCodeAt(4));
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

// ---- shared parts -------------------------------------------------------------------------------

interface Vocab {
  tokens: string[];
  types: Uint8Array;
  /** the scores (empty when `prio` holds what a tokenizer needs of them) */
  scores: Float64Array;
  bos: number | undefined;
  eos: number | undefined;
  pad: number | undefined;
  unk: number | undefined;
  addBos: boolean;
  /** 1 for control, unknown and user-defined tokens (bos/eos/pad/unk are added by the tokenizer) */
  special: Uint8Array;
  /** total length of the tokens flagged in `special` */
  specialChars: number;
  /** pieces a llama merge may produce: normal and user-defined tokens that are not empty */
  pieces: Int32Array;
  nPieces: number;
  /** or those pieces already in PieceTable slots (the one-pass path, llama) */
  pieceSlots?: Int32Array;
  maxPiece: number;
  /** id of the first <0xNN> byte token of each byte value, else -1 */
  byteIds: Int32Array;
  /** llama merge priorities from float32 score bits when made on the way (else scoreRanks) */
  prio?: Uint32Array;
}

type VocabTables = Pick<
  Vocab,
  'special' | 'specialChars' | 'pieces' | 'nPieces' | 'pieceSlots' | 'maxPiece' | 'byteIds'
>;

function newTables(n: number, withPieces = true): VocabTables {
  return {
    special: new Uint8Array(n),
    specialChars: 0,
    pieces: new Int32Array(withPieces ? n : 0),
    nPieces: 0,
    maxPiece: 1,
    byteIds: new Int32Array(256).fill(-1),
  };
}

// the per-token tables of a checked vocabulary (the step-by-step path; the one-pass path builds the
// same tables while it checks)
function vocabTables(tokens: string[], types: Uint8Array): VocabTables {
  const v = newTables(tokens.length);
  for (let i = 0; i < tokens.length; i++) {
    const t = types[i];
    const s = tokens[i];
    if (t === TokenType.control || t === TokenType.unknown || t === TokenType.userDefined) {
      v.special[i] = 1;
      v.specialChars += s.length;
    }
    if ((t === TokenType.normal || t === TokenType.userDefined) && s.length > 0) {
      v.pieces[v.nPieces++] = i;
      if (s.length > v.maxPiece) v.maxPiece = s.length;
    } else if (t === TokenType.byte) {
      const b = parseByteToken(s);
      if (v.byteIds[b] < 0) v.byteIds[b] = i;
    }
  }
  return v;
}

/**
 * One pass over plain arrays of tokens, scores and types (what parseGGUF gives): every check of the
 * step-by-step path (readStrings, readNumbers, the type checks) on the same values, building the
 * tables as it goes. Undefined at the first thing it does not vouch for (a bad value, another kind
 * of array): the step-by-step path then runs and raises the error it always raised.
 */
// a plain array, or a typed array of numbers (not of bigints)
function isNumberList(v: unknown): v is ArrayLike<unknown> {
  return (
    Array.isArray(v) ||
    (ArrayBuffer.isView(v) &&
      !(v instanceof DataView) &&
      !(v instanceof BigInt64Array || v instanceof BigUint64Array))
  );
}

function vocabOnePass(
  tokens: unknown,
  scores: unknown,
  types: unknown,
  llama: boolean,
): (VocabTables & Pick<Vocab, 'tokens' | 'types' | 'scores' | 'prio'>) | undefined {
  if (!Array.isArray(tokens) || !isNumberList(scores) || !isNumberList(types)) return undefined;
  const n = tokens.length;
  if (n === 0 || n > MAX_VOCAB || scores.length !== n || types.length !== n) return undefined;
  const tab = newTables(n, false);
  const { special, byteIds } = tab;
  // llama: the merge pieces go straight into a PieceTable (as its constructor inserts them: in id
  // order, first id of a string only), while each token is at hand
  const slots = llama ? PieceTable.emptySlots(n) : undefined;
  const mask = slots === undefined ? 0 : slots.length - 1;
  // the hash of each filled slot's string: a probe compares strings only when the hashes agree
  const slotHash = slots === undefined ? undefined : new Int32Array(slots.length);
  const typesOut = new Uint8Array(n);
  // float32 scores (as parseGGUF holds GGUF's): converted and checked for NaN natively, and the
  // merge priorities read from their bits; others one by one (priorities while each is a float32)
  const f32 = scores instanceof Float32Array ? scores : undefined;
  if (f32?.includes(Number.NaN)) return undefined;
  const bits = f32 !== undefined ? new Uint32Array(f32.buffer, f32.byteOffset, n) : undefined;
  let prio: Uint32Array | undefined = llama ? new Uint32Array(n) : undefined;
  // llama with float32 scores needs only prio; else the scores as doubles (copied natively from f32)
  const scoresOut =
    f32 === undefined ? new Float64Array(n) : llama ? new Float64Array(0) : new Float64Array(f32);
  const f1 = new Float32Array(1);
  const u1 = new Uint32Array(f1.buffer);
  let specialChars = 0;
  let maxPiece = 1;
  const byteTokens: number[] = [];
  const NORMAL = TokenType.normal;
  const USER = TokenType.userDefined;
  const BYTE = TokenType.byte;
  const CONTROL = TokenType.control;
  const UNKNOWN = TokenType.unknown;
  const maxChars = MAX_TOKEN_CHARS;
  // the hash seed as an int32: a double there sends the optimised loop back (deopt "not int32")
  const seed32 = PIECE_HASH_SEED | 0;
  // one loop does everything: on a cold load each loop over the vocabulary costs its own warm-up
  for (let i = 0; i < n; i++) {
    const s = tokens[i];
    const t = types[i];
    if (typeof s !== 'string') return undefined;
    const len = s.length;
    if (len > maxChars) return undefined;
    if (typeof t !== 'number' || !(t >= 0 && t <= 6) || (t | 0) !== t) return undefined;
    typesOut[i] = t;
    if (bits !== undefined) {
      if (prio !== undefined) {
        const b = bits[i]; // mergePriority, inlined
        prio[i] = b > 0x80000000 ? b : 0x7fffffff - (b === 0x80000000 ? 0 : b);
      }
    } else {
      const x = scores[i];
      if (typeof x !== 'number' || Number.isNaN(x)) return undefined;
      scoresOut[i] = x;
      if (prio !== undefined) {
        f1[0] = x;
        if (f1[0] !== x) prio = undefined;
        else prio[i] = mergePriority(u1[0]);
      }
    }
    if (t === NORMAL || t === USER) {
      if (t === USER) {
        special[i] = 1;
        specialChars += len;
      }
      if (len > 0) {
        if (len > maxPiece) maxPiece = len;
        if (slots !== undefined) {
          // the PieceTable hash (FNV-1a over UTF-16 units); y · 0x01000193 mod 2^32 without a call:
          // y · 403 + (y << 24) is below 2^41, exact in a double, and | 0 keeps its low 32 bits
          let h = seed32;
          for (let c = 0; c < len; c++) {
            const y = h ^ s.charCodeAt(c);
            h = (y * 403 + (y << 24)) | 0;
          }
          let j = h & mask;
          for (;;) {
            const o = slots[j];
            if (o < 0) {
              slots[j] = i;
              slotHash![j] = h;
              break;
            }
            if (slotHash![j] === h && tokens[o] === s) break; // an earlier id has this string
            j = (j + 1) & mask;
          }
        }
      }
    } else if (t === BYTE) {
      byteTokens.push(i); // parsed after the loop, which stays small to compile
    } else if (t === CONTROL || t === UNKNOWN) {
      special[i] = 1;
      specialChars += len;
    }
  }
  for (const i of byteTokens) {
    const b = parseByteToken(tokens[i]);
    if (b < 0) return undefined;
    if (byteIds[b] < 0) byteIds[b] = i;
  }
  tab.maxPiece = maxPiece;
  tab.specialChars = specialChars;
  tab.pieceSlots = slots;
  return { ...tab, tokens: tokens as string[], types: typesOut, scores: scoresOut, prio };
}

/** Replaces lone surrogates with U+FFFD (what TextEncoder would write for them). */
function wellFormed(s: string): string {
  const n = s.length;
  let parts: string[] | undefined;
  let last = 0;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c < 0xd800 || c > 0xdfff) continue;
    if (c < 0xdc00 && i + 1 < n) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        i++;
        continue;
      }
    }
    // a lone surrogate
    if (parts === undefined) parts = [];
    parts.push(s.slice(last, i), '\ufffd');
    last = i + 1;
  }
  if (parts === undefined) return s;
  parts.push(s.slice(last));
  return parts.join('');
}

const utf8 = new TextEncoder();

abstract class BaseTokenizer implements Tokenizer {
  abstract readonly model: 'llama' | 'gpt2';
  readonly vocabSize: number;
  readonly bos: number | undefined;
  readonly eos: number | undefined;
  readonly addBos: boolean;
  protected readonly v: Vocab;
  private readonly special: Uint8Array;
  private ids: Map<string, number> | undefined; // built on the first tokenId (subclasses may call it)
  private matcher: SpecialMatcher | undefined; // built on the first parseSpecial
  private bytesCache: Array<Uint8Array | undefined> | undefined; // made on the first tokenBytes

  constructor(v: Vocab) {
    this.v = v;
    this.vocabSize = v.tokens.length;
    this.bos = v.bos;
    this.eos = v.eos;
    this.addBos = v.addBos && v.bos !== undefined;
    this.special = v.special;
    let specialChars = v.specialChars;
    for (const id of [v.bos, v.eos, v.pad, v.unk]) {
      if (id !== undefined && this.special[id] === 0) {
        this.special[id] = 1;
        specialChars += v.tokens[id].length;
      }
    }
    // the parseSpecial matcher takes ~50 bytes per character of special text: bound it here
    if (specialChars > MAX_SPECIAL_CHARS) {
      throw new UnsupportedError(
        `special tokens (${K.types} control, unknown, user-defined) total ${specialChars} characters, more than ${MAX_SPECIAL_CHARS}`,
        { field: K.types, hint: 'a real vocabulary has at most a few thousand short special tokens' },
      );
    }
  }

  isSpecial(id: number): boolean {
    return Number.isInteger(id) && id >= 0 && id < this.vocabSize && this.special[id] === 1;
  }

  tokenId(piece: string): number | undefined {
    if (this.ids === undefined) {
      const ids = new Map<string, number>();
      const tokens = this.v.tokens;
      for (let i = 0; i < tokens.length; i++) if (!ids.has(tokens[i])) ids.set(tokens[i], i);
      this.ids = ids;
    }
    return this.ids.get(piece);
  }

  protected checkId(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
      throw new OptionsError(`token id ${id} is not in 0..${this.vocabSize - 1}`, {
        field: 'ids',
        hint: 'pass ids produced by this model’s tokenizer',
      });
    }
  }

  tokenBytes(id: number): Uint8Array {
    this.checkId(id);
    this.bytesCache ??= new Array(this.vocabSize);
    let b = this.bytesCache[id];
    if (b === undefined) {
      b = this.computeBytes(id);
      this.bytesCache[id] = b;
    }
    return b;
  }

  protected abstract computeBytes(id: number): Uint8Array;
  /** Encodes one run of plain text; `first` is true at the start of the input or after a special token. */
  protected abstract encodePlain(text: string, first: boolean, out: number[]): void;
  /** Whether decoding strips a leading space from the first text token. */
  protected abstract stripsSpace(): boolean;

  encode(text: string, opts: EncodeOptions = {}): number[] {
    return this.encodeParts([{ text, parseSpecial: opts.parseSpecial }], opts);
  }

  encodeParts(parts: ReadonlyArray<EncodePart>, opts: { addBos?: boolean } = {}): number[] {
    if (!Array.isArray(parts)) {
      throw new OptionsError('parts to encode must be an array', {
        field: 'parts',
        hint: `got ${typeof parts}`,
      });
    }
    let total = 0;
    for (const p of parts) {
      if (typeof p?.text !== 'string') {
        throw new OptionsError('text to encode must be a string', {
          field: 'text',
          hint: `got ${typeof p?.text}`,
        });
      }
      total += p.text.length;
    }
    if (total > MAX_INPUT_CHARS) {
      throw new BudgetError(
        `text is ${total} characters, more than the tokenizer cap of ${MAX_INPUT_CHARS}`,
        {
          field: 'text',
          hint: 'split the input or shorten it',
        },
      );
    }
    const out: number[] = [];
    if ((opts.addBos ?? this.addBos) && this.bos !== undefined) out.push(this.bos);
    // plain text runs are encoded whole, across part boundaries; a special token ends a run, and the
    // run after it is "first" again (llama puts its space prefix there, as llama.cpp does)
    let pending: string[] = [];
    const flush = () => {
      if (pending.length === 0) return;
      const run = pending.length === 1 ? pending[0] : pending.join('');
      pending = [];
      if (run.length > 0) this.encodePlain(run, true, out);
    };
    try {
      for (const p of parts) {
        const s = wellFormed(p.text);
        if (!p.parseSpecial) {
          pending.push(s);
          continue;
        }
        let at = 0;
        for (const m of this.specialMatcher().find(s)) {
          pending.push(s.slice(at, m.start));
          flush();
          out.push(m.id);
          at = m.end;
        }
        pending.push(at === 0 ? s : s.slice(at));
      }
      flush();
    } finally {
      this.trimScratch();
    }
    return out;
  }

  /** Releases merge buffers grown by a long input (kept while small, for reuse). */
  protected abstract trimScratch(): void;

  private specialMatcher(): SpecialMatcher {
    if (this.matcher === undefined) {
      const specials: Array<[string, number]> = [];
      for (let i = 0; i < this.vocabSize; i++) if (this.special[i]) specials.push([this.v.tokens[i], i]);
      this.matcher = new SpecialMatcher(specials);
    }
    return this.matcher;
  }

  private decodeInto(opts: DecodeOptions) {
    const skip = opts.skipSpecial ?? false;
    let strip = (opts.stripLeadingSpace ?? true) && this.stripsSpace();
    return (id: number): Uint8Array | undefined => {
      this.checkId(id);
      if (this.special[id]) return skip ? undefined : this.tokenBytes(id);
      let b = this.tokenBytes(id);
      if (strip) {
        // only the first text token of the output loses its leading space
        strip = false;
        if (this.v.types[id] !== TokenType.byte && b.length > 0 && b[0] === 0x20) b = b.subarray(1);
      }
      return b;
    };
  }

  decode(ids: ArrayLike<number>, opts: DecodeOptions = {}): string {
    const next = this.decodeInto(opts);
    const parts: Uint8Array[] = [];
    let total = 0;
    for (let i = 0; i < ids.length; i++) {
      const b = next(ids[i]);
      if (b === undefined) continue;
      parts.push(b);
      total += b.length;
    }
    const all = new Uint8Array(total);
    let o = 0;
    for (const p of parts) {
      all.set(p, o);
      o += p.length;
    }
    return new TextDecoder('utf-8', { ignoreBOM: true }).decode(all);
  }

  streamDecoder(opts: DecodeOptions = {}): { push(id: number): string; flush(): string } {
    const next = this.decodeInto(opts);
    // TextDecoder in stream mode holds back an incomplete UTF-8 sequence until the next bytes
    const dec = new TextDecoder('utf-8', { ignoreBOM: true });
    return {
      push(id: number): string {
        const b = next(id);
        return b === undefined ? '' : dec.decode(b, { stream: true });
      },
      flush(): string {
        return dec.decode();
      },
    };
  }
}

// ---- llama: SentencePiece-style BPE -------------------------------------------------------------

const ID_SPAN = 2 ** 20; // > MAX_VOCAB

// order key of a float32 score: an unsigned integer that sorts as the floats do (-0 as 0)
function orderKey(bits: number): number {
  const b = bits === 0x80000000 ? 0 : bits;
  return b >= 0x80000000 ? ~b >>> 0 : b + 0x80000000;
}

/**
 * A llama merge priority from a float32 score's bits (never a NaN's): lower for a higher score, equal
 * for equal scores (-0 as 0), an integer below 2^32 — the order of scoreRanks without a sort (the
 * merger takes 32-bit priorities for llama, LLAMA_LEFT_BITS).
 * @example
 * const bits = new Uint32Array(Float32Array.of(-1, 0, 2).buffer)
 * Array.from(bits, mergePriority) // [0xbf800000, 0x7fffffff, 0x3fffffff]: 2 merges first, -1 last
 */
export function mergePriority(bits: number): number {
  return bits > 0x80000000 ? bits : 0x7fffffff - (bits === 0x80000000 ? 0 : bits);
}

// symbols of one llama merge call: at most MAX_INPUT_CHARS + 1 (the space prefix) < 2^21, which
// leaves 32 bits of a heap key for mergePriority
const LLAMA_LEFT_BITS = 21;

// `orderKey(score) · 2^20 + id` per token, or undefined unless every score is a float32
function scoreKeys(scores: Float64Array): Float64Array | undefined {
  const n = scores.length;
  if (n > ID_SPAN) return undefined;
  const f = new Float32Array(scores); // native conversion
  const bits = new Uint32Array(f.buffer);
  const keys = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    if (f[i] !== scores[i]) return undefined;
    keys[i] = orderKey(bits[i]) * ID_SPAN + i;
  }
  return keys;
}

/**
 * Rank of each score among the distinct scores, highest first (equal scores, equal rank; -0 and +0
 * are one score, as SameValueZero); scores are never NaN (readNumbers refuses them).
 * Scores that are all float32 values (GGUF stores f32) are ranked by one native sort of keys
 * `order(score) · 2^20 + id` (exact in a double: order < 2^32, ids < 2^20) and one pass over them;
 * others through a sorted copy of the distinct values and a binary search per token.
 * @example
 * scoreRanks(Float64Array.of(-1, 0, -1, -2)) // Int32Array [1, 0, 1, 2]
 */
export function scoreRanks(scores: Float64Array, keys = scoreKeys(scores)): Int32Array {
  const n = scores.length;
  const out = new Int32Array(n);
  if (keys !== undefined) {
    keys.sort();
    let r = -1;
    let prev = -1;
    for (let j = n - 1; j >= 0; j--) {
      const v = keys[j];
      const o = (v / ID_SPAN) >>> 0; // exact: v / 2^20 < 2^32
      if (o !== prev) {
        r++;
        prev = o;
      }
      out[v - o * ID_SPAN] = r;
    }
    return out;
  }
  const sorted = scores.slice().sort();
  let m = 0; // distinct values, ascending, in sorted[0..m)
  for (let i = 0; i < n; i++) if (m === 0 || sorted[i] !== sorted[m - 1]) sorted[m++] = sorted[i];
  for (let i = 0; i < n; i++) {
    const x = scores[i];
    let lo = 0;
    let hi = m - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (sorted[mid] < x) lo = mid + 1;
      else hi = mid;
    }
    out[i] = m - 1 - lo;
  }
  return out;
}
class LlamaTokenizer extends BaseTokenizer {
  readonly model = 'llama' as const;
  private readonly addSpacePrefix: boolean;
  // pieces a merge may produce: normal and user-defined tokens (SentencePiece's merge candidates)
  private readonly mergeable: PieceTable;
  // merge priority per token: lower for a higher score, equal scores equal priority
  private readonly prio: Uint32Array | Int32Array;
  private readonly byteIds: Int32Array;
  private readonly maxPiece: number;
  private readonly merger = new BPEMerger(LLAMA_LEFT_BITS);
  private readonly syms = new SymbolList();

  constructor(v: Vocab, addSpacePrefix: boolean) {
    super(v);
    this.addSpacePrefix = addSpacePrefix;
    this.byteIds = v.byteIds;
    this.maxPiece = v.maxPiece;
    this.mergeable =
      v.pieceSlots !== undefined
        ? PieceTable.fromSlots(v.tokens, v.pieceSlots)
        : new PieceTable(v.tokens, v.pieces.subarray(0, v.nPieces));
    // float32 scores: their bits order the merges (no sort); else ranks of the distinct scores
    this.prio = v.prio ?? scoreRanks(v.scores);
    if (v.unk === undefined) {
      const missing = this.byteIds.indexOf(-1);
      if (missing >= 0) {
        throw new FormatError(
          `llama vocabulary (${K.tokens}) has no byte token <0x${missing.toString(16).toUpperCase().padStart(2, '0')}> and no ${K.unk}`,
          { field: K.unk, hint: 'byte fallback needs all 256 <0xNN> tokens, or an unknown token' },
        );
      }
    }
  }

  protected stripsSpace(): boolean {
    return this.addSpacePrefix;
  }

  protected trimScratch(): void {
    this.syms.trim(SCRATCH_KEEP);
    this.merger.trim(SCRATCH_KEEP);
  }

  protected computeBytes(id: number): Uint8Array {
    const t = this.v.types[id];
    const s = this.v.tokens[id];
    if (t === TokenType.byte) return Uint8Array.of(parseByteToken(s));
    if (t === TokenType.normal || t === TokenType.userDefined || t === TokenType.undefined) {
      return utf8.encode(s.replaceAll(SPACE_MARK, ' '));
    }
    return utf8.encode(s);
  }

  protected encodePlain(text: string, first: boolean, out: number[]): void {
    if (text.length === 0) return;
    let s = this.addSpacePrefix && first ? ` ${text}` : text;
    s = s.replaceAll(' ', SPACE_MARK);
    const syms = this.syms;
    syms.reset(s.length);
    for (let i = 0; i < s.length; ) {
      const c = s.charCodeAt(i);
      const w = c >= 0xd800 && c < 0xdc00 && i + 1 < s.length ? 2 : 1;
      syms.add(i, i + w, this.mergeable.get(s, i, i + w));
      i += w;
    }
    const { start, end } = syms;
    const maxPiece = this.maxPiece;
    const mergeable = this.mergeable;
    const prio = this.prio;
    this.merger.merge(
      syms,
      (l, r) => (end[r] - start[l] > maxPiece ? -1 : mergeable.get(s, start[l], end[r])),
      (id) => prio[id],
      (id) => id,
    );
    let lastUnk = false;
    for (let i = 0; i >= 0; i = syms.next[i]) {
      const id = syms.id[i];
      if (id >= 0) {
        out.push(id);
        lastUnk = false;
        continue;
      }
      // not in the vocabulary (always one character): byte fallback, else one <unk> per run
      const bytes = utf8.encode(s.slice(start[i], syms.end[i]));
      for (const b of bytes) {
        const bid = this.byteIds[b];
        if (bid >= 0) {
          out.push(bid);
          lastUnk = false;
        } else if (!lastUnk) {
          out.push(this.v.unk!);
          lastUnk = true;
        }
      }
    }
  }
}

// ---- gpt2: byte-level BPE -----------------------------------------------------------------------

const WORD_CACHE_MAX = 16_384;
const WORD_CACHE_MAX_CHARS = 64;

class GPT2Tokenizer extends BaseTokenizer {
  readonly model = 'gpt2' as const;
  // pair (left id, right id) → merge rank; mergeResult[rank] = id of the merged token
  private readonly pairRank: IntPairMap;
  private readonly mergeResult: Int32Array;
  private readonly byteIds = new Int32Array(256);
  private readonly unicodeToByte = new Map<number, number>();
  private readonly merger = new BPEMerger();
  private readonly syms = new SymbolList();
  private readonly cache = new Map<string, number[]>();
  private buf = new Uint8Array(256);

  constructor(v: Vocab, merges: string[]) {
    super(v);
    const b2u = gpt2ByteToUnicode();
    const ids = { get: (s: string) => this.tokenId(s) };
    for (let b = 0; b < 256; b++) {
      this.unicodeToByte.set(b2u[b].charCodeAt(0), b);
      const id = ids.get(b2u[b]);
      if (id === undefined) {
        throw new FormatError(
          `gpt2 vocabulary (${K.tokens}) has no token for byte 0x${b.toString(16).padStart(2, '0')}`,
          {
            field: K.tokens,
            hint: 'a byte-level BPE vocabulary must contain all 256 byte characters',
          },
        );
      }
      this.byteIds[b] = id;
    }
    this.mergeResult = new Int32Array(merges.length);
    this.pairRank = new IntPairMap(merges.length);
    for (let r = 0; r < merges.length; r++) {
      const m = merges[r];
      const sp = m.indexOf(' ');
      const left = sp > 0 ? ids.get(m.slice(0, sp)) : undefined;
      const right = sp > 0 ? ids.get(m.slice(sp + 1)) : undefined;
      const merged = sp > 0 ? ids.get(m.slice(0, sp) + m.slice(sp + 1)) : undefined;
      if (left === undefined || right === undefined || merged === undefined) {
        throw new FormatError(
          `${K.merges}[${r}] = ${JSON.stringify(m.slice(0, 40))} is not "left right" with both parts and their join in the vocabulary`,
          { field: K.merges, hint: CORRUPT },
        );
      }
      this.pairRank.add(left, right, r);
      this.mergeResult[r] = merged;
    }
  }

  protected stripsSpace(): boolean {
    return false;
  }

  protected trimScratch(): void {
    this.syms.trim(SCRATCH_KEEP);
    this.merger.trim(SCRATCH_KEEP);
    if (this.buf.length > 3 * SCRATCH_KEEP) this.buf = new Uint8Array(256);
  }

  protected computeBytes(id: number): Uint8Array {
    const t = this.v.types[id];
    const s = this.v.tokens[id];
    if (
      t !== TokenType.normal &&
      t !== TokenType.byte &&
      t !== TokenType.undefined &&
      t !== TokenType.unused
    ) {
      return utf8.encode(s);
    }
    // byte-level text back to bytes; a character outside the table stays as its UTF-8
    const out: number[] = [];
    for (const ch of s) {
      const b = this.unicodeToByte.get(ch.codePointAt(0)!);
      if (b !== undefined) out.push(b);
      else for (const x of utf8.encode(ch)) out.push(x);
    }
    return Uint8Array.from(out);
  }

  // UTF-8 of s[a, b) (well-formed) into this.buf; returns the byte count
  private toUtf8(s: string, a: number, b: number): number {
    if (this.buf.length < (b - a) * 3) this.buf = new Uint8Array((b - a) * 3);
    const buf = this.buf;
    let o = 0;
    for (let i = a; i < b; i++) {
      let c = s.charCodeAt(i);
      if (c < 0x80) buf[o++] = c;
      else if (c < 0x800) {
        buf[o++] = 0xc0 | (c >> 6);
        buf[o++] = 0x80 | (c & 63);
      } else if (c >= 0xd800 && c < 0xdc00) {
        c = ((c - 0xd800) << 10) + (s.charCodeAt(++i) - 0xdc00) + 0x10000;
        buf[o++] = 0xf0 | (c >> 18);
        buf[o++] = 0x80 | ((c >> 12) & 63);
        buf[o++] = 0x80 | ((c >> 6) & 63);
        buf[o++] = 0x80 | (c & 63);
      } else {
        buf[o++] = 0xe0 | (c >> 12);
        buf[o++] = 0x80 | ((c >> 6) & 63);
        buf[o++] = 0x80 | (c & 63);
      }
    }
    return o;
  }

  private encodeWord(s: string, a: number, b: number, out: number[]): void {
    const cacheable = b - a <= WORD_CACHE_MAX_CHARS;
    const word = cacheable ? s.slice(a, b) : '';
    if (cacheable) {
      const hit = this.cache.get(word);
      if (hit !== undefined) {
        for (const id of hit) out.push(id);
        return;
      }
    }
    const nb = this.toUtf8(s, a, b);
    const syms = this.syms;
    syms.reset(nb);
    for (let i = 0; i < nb; i++) syms.add(i, i + 1, this.byteIds[this.buf[i]]);
    const ids = syms.id;
    const pairRank = this.pairRank;
    const mergeResult = this.mergeResult;
    this.merger.merge(
      syms,
      (l, r) => pairRank.get(ids[l], ids[r]),
      (rank) => rank,
      (rank) => mergeResult[rank],
    );
    const res: number[] = [];
    for (let i = 0; i >= 0; i = syms.next[i]) res.push(syms.id[i]);
    if (cacheable) {
      if (this.cache.size >= WORD_CACHE_MAX) this.cache.clear();
      this.cache.set(word, res);
    }
    for (const id of res) out.push(id);
  }

  protected encodePlain(text: string, _first: boolean, out: number[]): void {
    gpt2Pieces(text, (a, b) => this.encodeWord(text, a, b, out));
  }
}

// ---- construction -------------------------------------------------------------------------------

/**
 * Builds the tokenizer described by a GGUF file's `tokenizer.ggml.*` metadata, checking it first
 * (FormatError naming the key for inconsistent or out-of-range values, UnsupportedError for a
 * tokenizer model or pre-tokenizer edgelm does not implement).
 * @example
 * const tok = tokenizerFromGGUF(parseGGUF(bytes))
 * const ids = tok.encode('Hello world')          // [1, 15043, 3186] for Llama 2
 * tok.decode(ids, { skipSpecial: true })         // 'Hello world'
 */
export function tokenizerFromGGUF(file: MetadataSource): Tokenizer {
  const model = file.get(K.model);
  if (model === undefined)
    throw new FormatError(`missing metadata key ${K.model}`, { field: K.model, hint: CORRUPT });
  if (model !== 'llama' && model !== 'gpt2') {
    throw new UnsupportedError(
      `${K.model} = ${JSON.stringify(String(model).slice(0, 64))} is not supported`,
      {
        field: K.model,
        hint: 'edgelm implements "llama" (SentencePiece BPE) and "gpt2" (byte-level BPE)',
      },
    );
  }
  // scores and types as parseGGUF holds them (typed arrays) when it can, without making JS arrays
  const meta = (file as Partial<GGUFFile>).metadata;
  const numbers = (key: string) => numericItems(meta?.get(key)) ?? file.get(key);
  const checked =
    vocabOnePass(file.get(K.tokens), numbers(K.scores), numbers(K.types), model === 'llama') ??
    checkVocab(file, model);
  const { tokens, types } = checked;
  const n = tokens.length;
  let unk = readId(file, K.unk, n);
  if (unk === undefined) {
    const i = types.indexOf(TokenType.unknown);
    if (i >= 0) unk = i;
  }
  const v: Vocab = {
    ...checked,
    bos: readId(file, K.bos, n),
    eos: readId(file, K.eos, n),
    pad: readId(file, K.pad, n),
    unk,
    addBos: readBool(file, K.addBos, model === 'llama'),
  };
  if (model === 'llama') return new LlamaTokenizer(v, readBool(file, K.addSpacePrefix, true));

  const pre = file.get(K.pre);
  // "gpt-2" is llama.cpp's name for exactly this pattern; "default" and "gpt2" are accepted too
  // (llama.cpp's own "default" is a different multi-regex split: not implemented, read as GPT-2's)
  if (pre !== undefined && pre !== 'gpt-2' && pre !== 'gpt2' && pre !== 'default') {
    throw new UnsupportedError(`${K.pre} = ${JSON.stringify(String(pre).slice(0, 64))} is not supported`, {
      field: K.pre,
      hint: 'edgelm implements the GPT-2 pre-tokenizer ("gpt-2", "gpt2" or "default") only',
    });
  }
  const merges = readStrings(file, K.merges, true, 2 * MAX_TOKEN_CHARS + 1)!;
  return new GPT2Tokenizer(v, merges);
}

// the step-by-step checks of tokens, scores and types (FormatError naming the key at the first bad
// value), then the tables
function checkVocab(
  file: MetadataSource,
  model: 'llama' | 'gpt2',
): VocabTables & Pick<Vocab, 'tokens' | 'types' | 'scores'> {
  const tokens = readStrings(file, K.tokens, true, MAX_TOKEN_CHARS)!;
  const n = tokens.length;
  if (n === 0) throw new FormatError(`${K.tokens} is empty`, { field: K.tokens, hint: CORRUPT });
  const scoreArr = readNumbers(file, K.scores, n, false);
  const typeArr = readNumbers(file, K.types, n, true);
  if (model === 'llama' && scoreArr === undefined) {
    throw new FormatError(`missing metadata key ${K.scores}`, {
      field: K.scores,
      hint: 'llama tokenizers merge by score',
    });
  }
  const types = new Uint8Array(n).fill(TokenType.normal);
  if (typeArr !== undefined) {
    for (let i = 0; i < n; i++) {
      const t = typeArr[i];
      if (t < 0 || t > 6) {
        throw new FormatError(`${K.types}[${i}] = ${t} is not a token type 0..6`, {
          field: K.types,
          hint: CORRUPT,
        });
      }
      types[i] = t;
      if (t === TokenType.byte && parseByteToken(tokens[i]) < 0) {
        throw new FormatError(
          `${K.tokens}[${i}] = ${JSON.stringify(tokens[i].slice(0, 16))} is a byte token but not <0xNN>`,
          {
            field: K.tokens,
            hint: CORRUPT,
          },
        );
      }
    }
  } else if (model === 'llama') {
    // no types: byte fallback finds <0xNN> pieces by their text, as llama.cpp does
    for (let i = 0; i < n; i++) if (parseByteToken(tokens[i]) >= 0) types[i] = TokenType.byte;
  }
  const scores = scoreArr ?? new Float64Array(n);
  return { ...vocabTables(tokens, types), tokens, types, scores };
}
