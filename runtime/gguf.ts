// GGUF, the one model format: a checked reader (v2 and v3) and a writer (v3) that llama.cpp accepts.
//
// Layout (little-endian throughout; v2 and v3 share it, v1 had 32-bit counts):
//   u32 magic "GGUF" | u32 version | u64 tensor_count | u64 kv_count
//   kv_count × { string key | u32 value_type | value }
//   tensor_count × { string name | u32 n_dims | u64 dims[n_dims] (fastest first) | u32 type | u64 offset }
//   padding to `general.alignment` (default 32) → data section; each tensor at data + offset
//   string = u64 byte length + UTF-8 bytes; array = u32 item type + u64 count + items
//
// Nothing from the file is trusted: every u64 is read as a BigInt and bounded before Number(),
// every count is capped and checked against the bytes left before anything proportional is
// allocated, every size is computed in checked arithmetic, and every tensor must lie inside the
// file, aligned, not overlapping another. Tensor data are views (subarray) of the input, no copy.

import { FormatError, UnsupportedError } from './errors.ts';
import { ggmlTypeName, isSupportedType, QK, tensorByteSize, unsupportedTensorType } from './ggml.ts';

export type GGUFValueType =
  | 'u8'
  | 'i8'
  | 'u16'
  | 'i16'
  | 'u32'
  | 'i32'
  | 'f32'
  | 'bool'
  | 'string'
  | 'u64'
  | 'i64'
  | 'f64'
  | 'array';

/**
 * One metadata value. u64/i64 values are bigint. For an array, `itemType` is set and `value` is an
 * array of plain values (numbers, bigints, booleans, strings); for an array of arrays (`itemType`
 * 'array') `value` is an array of GGUFMetaValue, each itself an array.
 */
export interface GGUFMetaValue {
  type: GGUFValueType;
  value: unknown;
  itemType?: GGUFValueType;
}

export interface GGUFTensor {
  name: string;
  /** fastest-varying first, as in the file: a linear weight (N out × K in) is [K, N] */
  dims: number[];
  type: number;
  /** byte offset of the data, relative to the start of the data section (`dataOffset`), as in GGUF */
  offset: number;
  byteSize: number;
  /** view of the input bytes (no copy) */
  data: Uint8Array;
}

export interface GGUFFile {
  version: number;
  alignment: number;
  /** absolute byte offset of the data section */
  dataOffset: number;
  metadata: Map<string, GGUFMetaValue>;
  tensors: GGUFTensor[];
  tensor(name: string): GGUFTensor | undefined;
  /** plain JS value (number, string, boolean, bigint, arrays); undefined when absent */
  get<T = unknown>(key: string): T | undefined;
  /** like get, but a missing key is a FormatError naming it */
  require<T = unknown>(key: string): T;
}

export interface GGUFWriteTensor {
  name: string;
  dims: number[];
  type: number;
  data: Uint8Array;
}

// ---- limits -------------------------------------------------------------------------------------

/** Caps on what a GGUF file may declare; anything beyond is a FormatError before allocation. */
export const GGUF_LIMITS = {
  maxKV: 100_000,
  maxTensors: 100_000,
  maxArrayLength: 1_000_000,
  // all array items in the metadata together: a JS value costs up to ~16× its bytes in the file (a
  // u8 or bool), so this bounds the heap a crafted file can claim (a 256k vocabulary needs ~1M)
  maxMetadataItems: 4_000_000,
  maxStringBytes: 1 << 20,
  maxNameBytes: 63, // tensor names < 64 bytes (ggml's GGML_MAX_NAME)
  maxDims: 4,
  maxArrayDepth: 3, // an array may hold arrays that hold arrays, no deeper
  defaultAlignment: 32,
  minAlignment: 8,
  maxAlignment: 1 << 20,
} as const;

const MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
const TRUNCATED = 'truncated download? compare the file size with the source';

// value type ids in the file
const TYPE_IDS: GGUFValueType[] = [
  'u8',
  'i8',
  'u16',
  'i16',
  'u32',
  'i32',
  'f32',
  'bool',
  'string',
  'array',
  'u64',
  'i64',
  'f64',
];
const TYPE_ID: Record<GGUFValueType, number> = Object.fromEntries(TYPE_IDS.map((t, i) => [t, i])) as Record<
  GGUFValueType,
  number
>;
// smallest encoding of one value of each type (string: its u64 length; array: item type + count)
const MIN_BYTES: Record<GGUFValueType, number> = {
  u8: 1,
  i8: 1,
  bool: 1,
  u16: 2,
  i16: 2,
  u32: 4,
  i32: 4,
  f32: 4,
  u64: 8,
  i64: 8,
  f64: 8,
  string: 8,
  array: 12,
};

// ---- reader -------------------------------------------------------------------------------------

// ignoreBOM: keep a leading U+FEFF (a token may be exactly that), as the short-string path does
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

// thrown (and caught by parseGGUFHeader) when a read goes past the prefix but not past the file
const NEED_MORE = Symbol('need more bytes');

class Reader {
  pos = 0;
  items = 0; // array items read so far (GGUF_LIMITS.maxMetadataItems)
  readonly dv: DataView;
  /** `bytes` may be a prefix of a file of `total` bytes (parseGGUFHeader) */
  constructor(
    readonly bytes: Uint8Array,
    readonly total: number,
  ) {
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  /** bytes left in the file (not only in the prefix held) */
  get left(): number {
    return this.total - this.pos;
  }
  need(n: number, what: string): void {
    if (n > this.left) {
      throw new FormatError(
        `not enough data for ${what} at byte ${this.pos}: need ${n} bytes, ${this.left} left (file is ${this.total} bytes)`,
        { offset: this.pos, hint: TRUNCATED },
      );
    }
    if (this.pos + n > this.bytes.length) throw NEED_MORE;
  }
  u8(what: string): number {
    this.need(1, what);
    return this.bytes[this.pos++];
  }
  u32(what: string): number {
    this.need(4, what);
    const v = this.dv.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }
  u64(what: string): bigint {
    this.need(8, what);
    const v = this.dv.getBigUint64(this.pos, true);
    this.pos += 8;
    return v;
  }
  /** a u64 count or size, bounded by `cap` (< 2^32) before conversion to a number */
  count(what: string, cap: number, field?: string, suffix = ''): number {
    const at = this.pos;
    this.need(8, what);
    const lo = this.dv.getUint32(at, true);
    const hi = this.dv.getUint32(at + 4, true);
    if (hi !== 0 || lo > cap) {
      const v = (BigInt(hi) << 32n) | BigInt(lo);
      throw new FormatError(`${what}${suffix} ${v} at byte ${at} exceeds the limit of ${cap}`, {
        offset: at,
        field,
        hint: 'corrupt or hostile file; edgelm refuses counts that would allocate absurd memory',
      });
    }
    this.pos += 8;
    return lo;
  }
  /** a string: u64 length ≤ cap and ≤ bytes left, then strict UTF-8 */
  str(what: string, cap: number, field?: string): string {
    const at = this.pos;
    const n = this.count(what, cap, field, ' length');
    this.need(n, what);
    const start = this.pos;
    const s =
      n <= 64 ? decodeShort(this.bytes, start, start + n) : decodeLong(this.bytes.subarray(start, start + n));
    if (s === undefined) {
      throw new FormatError(`${what} at byte ${at} is not valid UTF-8`, {
        offset: at,
        field,
        hint: 'corrupt file',
      });
    }
    this.pos += n;
    return s;
  }
}

// All n strings of an array without a per-byte loop, when every one is shorter than 256 bytes and
// none starts or ends with a NUL (any real vocabulary): the array's bytes are copied, each 8-byte
// length (a u64 < 256) zeroed into 8 NULs, the copy decoded with one strict TextDecoder call and
// split at the runs of 8 NULs. The NULs between strings make a character cut at a string's end or a
// continuation byte at its start invalid UTF-8, so the decode succeeds exactly when every string is
// valid alone; NULs inside a string are found by the count of pieces (a run of 8 adds one), and
// cannot join a separator since no string starts or ends with one. Undefined when it does not apply
// or the text is not valid (r.pos unmoved): readStringsBulk and the string-by-string path then read
// the array and raise any error.
// One walk over the copy checks and zeroes the lengths (a cold loop costs more than the copy): the
// copy starts at a guess of the array's size (SPLIT_GUESS bytes a string) and doubles when short.
function splitStrings(r: Reader, n: number): string[] | undefined {
  if (n < 2) return undefined;
  const b = r.bytes;
  const start = r.pos;
  const avail = b.length - start;
  let size = Math.min(avail, n * SPLIT_GUESS);
  // a copy (not b.slice: on a Node Buffer that is a view, and the caller's bytes must stay as they are)
  let text = new Uint8Array(size);
  text.set(b.subarray(start, start + size));
  let q = 0;
  for (let i = 0; i < n; i++) {
    let len = q + 8 <= size ? text[q] : 0;
    if (q + 8 + len > size) {
      // past the copy: grow it (the part walked keeps its zeroed lengths)
      if (size === avail) return undefined;
      const grown = Math.min(avail, Math.max(2 * size, q + 8 + 256));
      const t = new Uint8Array(grown);
      t.set(text);
      t.set(b.subarray(start + size, start + grown), size);
      text = t;
      size = grown;
      len = text[q];
      if (q + 8 + len > size) return undefined;
    }
    // the length is a u64 < 256: its other 7 bytes are 0
    if (
      (text[q + 1] | text[q + 2] | text[q + 3] | text[q + 4] | text[q + 5] | text[q + 6] | text[q + 7]) !==
      0
    )
      return undefined;
    if (len > 0 && (text[q + 8] === 0 || text[q + 7 + len] === 0)) return undefined;
    text[q] = 0;
    q += 8 + len;
  }
  const all = decodeLong(text.subarray(0, q));
  if (all === undefined) return undefined;
  const parts = all.split(NULS8);
  // the text starts with a separator: parts[0] is empty, then one part per string
  if (parts.length !== n + 1) return undefined;
  parts.shift();
  r.pos = start + q;
  return parts;
}
// bytes a string of a vocabulary takes in the file, length field included, rather more than less
// (llama 32000 pieces: 14.6 on average; GPT-2 50257: 14.3)
const SPLIT_GUESS = 20;
const NULS8 = '\0'.repeat(8);

// Reads strings 0.. of an n-string array in one pass: lengths walked and bounded, the bytes gathered
// and decoded with one strict TextDecoder call, then sliced. Valid UTF-8 as a whole whose every
// (non-empty) string starts on a character boundary is exactly "every string valid on its own", so
// the result equals decoding each string alone. Returns how many strings it read (r.pos moved past
// them): it stops before the first string it cannot vouch for (too long, past the bytes held) and
// reads none when the text is not valid UTF-8, so that the caller's string-by-string path meets
// the bad string in the same state and raises the same error.
function readStringsBulk(r: Reader, n: number, value: unknown[]): number {
  const b = r.bytes;
  const end = b.length;
  const cap = GGUF_LIMITS.maxStringBytes;
  const dv = r.dv;
  let p = r.pos;
  let m = 0;
  let total = 0;
  for (; m < n; m++) {
    if (p + 8 > end) break;
    const lo = dv.getUint32(p, true);
    if (dv.getUint32(p + 4, true) !== 0 || lo > cap || p + 8 + lo > end) break;
    p += 8 + lo;
    total += lo;
  }
  if (m < 2) return 0;
  const text = new Uint8Array(total);
  const units = new Int32Array(m); // UTF-16 length of each string, if valid
  p = r.pos;
  let o = 0;
  let bad = false;
  for (let i = 0; i < m; i++) {
    const len = dv.getUint32(p, true);
    p += 8;
    // a string may not start inside a character (a continuation byte)
    if (len > 0 && (b[p] & 0xc0) === 0x80) bad = true;
    let u = len;
    for (let j = 0; j < len; j++) {
      const c = b[p + j];
      text[o + j] = c;
      // continuation bytes add no unit; a 4-byte lead adds two (a surrogate pair)
      if (c >= 0x80) u += (c & 0xc0) === 0x80 ? -1 : c >= 0xf0 ? 1 : 0;
    }
    units[i] = u;
    o += len;
    p += len;
  }
  if (bad) return 0;
  const all = decodeLong(text);
  if (all === undefined) return 0;
  let at = 0;
  for (let i = 0; i < m; i++) {
    const u = units[i];
    value[i] = all.slice(at, at + u);
    at += u;
  }
  r.pos = p;
  return m;
}

function decodeLong(b: Uint8Array): string | undefined {
  try {
    return utf8.decode(b);
  } catch {
    return undefined;
  }
}

const units: number[] = [];
// strict UTF-8 (no overlongs, surrogates or code points past U+10FFFF, as TextDecoder's fatal mode),
// by hand: a TextDecoder call costs more than decoding a short token
function decodeShort(b: Uint8Array, i: number, end: number): string | undefined {
  units.length = 0;
  while (i < end) {
    const c = b[i];
    if (c < 0x80) {
      units.push(c);
      i++;
      continue;
    }
    let cp: number;
    let n: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
      n = 1;
      cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      n = 2;
      cp = c & 0x0f;
      if (c === 0xe0) lo = 0xa0;
      else if (c === 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 3;
      cp = c & 0x07;
      if (c === 0xf0) lo = 0x90;
      else if (c === 0xf4) hi = 0x8f;
    } else return undefined;
    if (i + n >= end) return undefined; // cut sequence
    const c1 = b[i + 1];
    if (c1 < lo || c1 > hi) return undefined;
    cp = (cp << 6) | (c1 & 0x3f);
    for (let k = 2; k <= n; k++) {
      const ck = b[i + k];
      if (ck < 0x80 || ck > 0xbf) return undefined;
      cp = (cp << 6) | (ck & 0x3f);
    }
    i += n + 1;
    if (cp >= 0x10000) {
      cp -= 0x10000;
      units.push(0xd800 | (cp >> 10), 0xdc00 | (cp & 0x3ff));
    } else units.push(cp);
  }
  return String.fromCharCode.apply(null, units);
}

function valueType(r: Reader, what: string, field: string): GGUFValueType {
  const at = r.pos;
  const id = r.u32(what);
  const t = TYPE_IDS[id];
  if (t === undefined) {
    throw new FormatError(`unknown value type ${id} for ${field} at byte ${at}`, {
      offset: at,
      field,
      hint: 'corrupt file, or written by a newer GGUF version',
    });
  }
  return t;
}

function scalar(r: Reader, t: GGUFValueType, key: string): unknown {
  const p = r.pos;
  switch (t) {
    case 'u8':
      return r.u8(key);
    case 'i8':
      r.need(1, key);
      r.pos += 1;
      return r.dv.getInt8(p);
    case 'u16':
      r.need(2, key);
      r.pos += 2;
      return r.dv.getUint16(p, true);
    case 'i16':
      r.need(2, key);
      r.pos += 2;
      return r.dv.getInt16(p, true);
    case 'u32':
      return r.u32(key);
    case 'i32':
      r.need(4, key);
      r.pos += 4;
      return r.dv.getInt32(p, true);
    case 'f32':
      r.need(4, key);
      r.pos += 4;
      return r.dv.getFloat32(p, true);
    case 'u64':
      return r.u64(key);
    case 'i64':
      r.need(8, key);
      r.pos += 8;
      return r.dv.getBigInt64(p, true);
    case 'f64':
      r.need(8, key);
      r.pos += 8;
      return r.dv.getFloat64(p, true);
    case 'bool': {
      const v = r.u8(key);
      if (v > 1)
        throw new FormatError(`bool ${key} at byte ${p} is ${v}, not 0 or 1`, { offset: p, field: key });
      return v === 1;
    }
    case 'string':
      return r.str(`string value of ${key}`, GGUF_LIMITS.maxStringBytes, key);
    default:
      throw new Error('unreachable');
  }
}

// an array body (item type, count, items); nesting is bounded by maxArrayDepth, so recursion is too
function readArray(r: Reader, key: string, depth: number): GGUFMetaValue {
  const at = r.pos;
  if (depth > GGUF_LIMITS.maxArrayDepth) {
    throw new FormatError(`arrays nested deeper than ${GGUF_LIMITS.maxArrayDepth} in ${key} at byte ${at}`, {
      offset: at,
      field: key,
      hint: 'corrupt or hostile file',
    });
  }
  const itemType = valueType(r, `array item type of ${key}`, key);
  const countAt = r.pos;
  const n = r.count(`array length of ${key}`, GGUF_LIMITS.maxArrayLength, key);
  if (n * MIN_BYTES[itemType] > r.left) {
    throw new FormatError(
      `array ${key} at byte ${countAt} declares ${n} ${itemType} items, more than the ${r.left} bytes left can hold`,
      { offset: countAt, field: key, hint: TRUNCATED },
    );
  }
  r.items += n;
  if (r.items > GGUF_LIMITS.maxMetadataItems) {
    throw new FormatError(
      `array ${key} at byte ${countAt} brings the metadata to ${r.items} array items, over the limit of ${GGUF_LIMITS.maxMetadataItems}`,
      { offset: countAt, field: key, hint: 'corrupt or hostile file' },
    );
  }
  const split = itemType === 'string' ? splitStrings(r, n) : undefined;
  if (split !== undefined) return { type: 'array', itemType, value: split };
  if (n >= LAZY_MIN_ITEMS && itemType in TYPED_ARRAYS) {
    const w = MIN_BYTES[itemType];
    r.need(n * w, `items of ${key}`);
    const copy = new Uint8Array(n * w);
    copy.set(r.bytes.subarray(r.pos, r.pos + n * w));
    r.pos += n * w;
    return lazyNumbers(itemType, new TYPED_ARRAYS[itemType as keyof typeof TYPED_ARRAYS](copy.buffer));
  }
  const value: unknown[] = new Array(n);
  if (itemType === 'array') {
    for (let i = 0; i < n; i++) value[i] = readArray(r, key, depth + 1);
  } else {
    if (itemType === 'string') {
      const label = `string value of ${key}`;
      // as many as the bulk path can take, then one by one (which raises any error exactly there)
      for (let i = readStringsBulk(r, n, value); i < n; i++)
        value[i] = r.str(label, GGUF_LIMITS.maxStringBytes, key);
    } else if (itemType === 'bool') {
      for (let i = 0; i < n; i++) value[i] = scalar(r, itemType, key);
    } else {
      // fixed-size numbers: one bounds check for the whole array, then plain reads
      const w = MIN_BYTES[itemType];
      r.need(n * w, `items of ${key}`);
      const dv = r.dv;
      const p = r.pos;
      switch (itemType) {
        case 'u8':
          for (let i = 0; i < n; i++) value[i] = r.bytes[p + i];
          break;
        case 'i8':
          for (let i = 0; i < n; i++) value[i] = dv.getInt8(p + i);
          break;
        case 'u16':
          for (let i = 0; i < n; i++) value[i] = dv.getUint16(p + 2 * i, true);
          break;
        case 'i16':
          for (let i = 0; i < n; i++) value[i] = dv.getInt16(p + 2 * i, true);
          break;
        case 'u32':
          for (let i = 0; i < n; i++) value[i] = dv.getUint32(p + 4 * i, true);
          break;
        case 'i32':
          if (((r.bytes.byteOffset + p) & 3) === 0) {
            const v = new Int32Array(r.bytes.buffer, r.bytes.byteOffset + p, n);
            for (let i = 0; i < n; i++) value[i] = v[i];
          } else for (let i = 0; i < n; i++) value[i] = dv.getInt32(p + 4 * i, true);
          break;
        case 'f32':
          if (((r.bytes.byteOffset + p) & 3) === 0) {
            // aligned (the usual case: GGUF writers pad nothing here, but 32000 scores often land so)
            const f = new Float32Array(r.bytes.buffer, r.bytes.byteOffset + p, n);
            for (let i = 0; i < n; i++) value[i] = f[i];
          } else for (let i = 0; i < n; i++) value[i] = dv.getFloat32(p + 4 * i, true);
          break;
        case 'f64':
          for (let i = 0; i < n; i++) value[i] = dv.getFloat64(p + 8 * i, true);
          break;
        case 'u64':
          for (let i = 0; i < n; i++) value[i] = dv.getBigUint64(p + 8 * i, true);
          break;
        case 'i64':
          for (let i = 0; i < n; i++) value[i] = dv.getBigInt64(p + 8 * i, true);
          break;
      }
      r.pos = p + n * w;
    }
  }
  return { type: 'array', itemType, value };
}

// Long arrays of numbers are held as a typed array (one native copy of their bytes; GGUF is
// little-endian, as every WebAssembly host) and become the plain array of the contract when `value`
// is first read. Until then numericItems() hands out the typed array itself (the tokenizer reads
// scores and token types that way, never making the arrays); once `value` is read or set, only
// `value` counts.
const LAZY_MIN_ITEMS = 256;
const TYPED_ARRAYS = {
  u8: Uint8Array,
  i8: Int8Array,
  u16: Uint16Array,
  i16: Int16Array,
  u32: Uint32Array,
  i32: Int32Array,
  f32: Float32Array,
  f64: Float64Array,
  u64: BigUint64Array,
  i64: BigInt64Array,
} as const;
type NumberArray = InstanceType<(typeof TYPED_ARRAYS)[keyof typeof TYPED_ARRAYS]>;
const untouched = new WeakMap<GGUFMetaValue, NumberArray>();

function lazyNumbers(itemType: GGUFValueType, typed: NumberArray): GGUFMetaValue {
  let value: unknown[] | undefined;
  const v: GGUFMetaValue = {
    type: 'array',
    itemType,
    get value(): unknown[] {
      if (value === undefined) {
        value = Array.from(typed as ArrayLike<unknown>);
        untouched.delete(v);
      }
      return value;
    },
    set value(x: unknown[]) {
      value = x;
      untouched.delete(v);
    },
  };
  untouched.set(v, typed);
  return v;
}

/**
 * The items of a parsed numeric metadata array as the typed array parseGGUF holds them (Float32Array
 * for f32, Int32Array for i32, …), while its plain `value` has not been read or set; else undefined
 * (read `value`). For readers of long arrays (a vocabulary's scores) that need no JS array.
 * @example
 * const scores = numericItems(file.metadata.get('tokenizer.ggml.scores')) ?? file.get('tokenizer.ggml.scores')
 */
export function numericItems(v: GGUFMetaValue | undefined): ArrayLike<number | bigint> | undefined {
  return v === undefined ? undefined : untouched.get(v);
}

function plain(v: GGUFMetaValue): unknown {
  if (v.type !== 'array') return v.value;
  if (v.itemType === 'array') return (v.value as GGUFMetaValue[]).map(plain);
  return v.value;
}

function checkAlignment(v: GGUFMetaValue | undefined, offset?: number): number {
  if (v === undefined) return GGUF_LIMITS.defaultAlignment;
  const field = 'general.alignment';
  if (v.type !== 'u32') {
    throw new FormatError(`general.alignment has type ${v.type}, must be u32`, {
      field,
      offset,
      hint: 'corrupt file',
    });
  }
  const a = v.value as number;
  if (a < GGUF_LIMITS.minAlignment || a > GGUF_LIMITS.maxAlignment || (a & (a - 1)) !== 0) {
    throw new FormatError(
      `general.alignment ${a} is not a power of two from ${GGUF_LIMITS.minAlignment} to ${GGUF_LIMITS.maxAlignment}`,
      { field, offset, hint: 'corrupt file' },
    );
  }
  return a;
}

const pad = (x: number, a: number) => Math.ceil(x / a) * a;

/**
 * Parse a GGUF v2/v3 file held in memory. Checks everything (see the file header) and throws
 * FormatError / UnsupportedError with the byte `offset` or the `field` (key or tensor name) and a
 * hint. Tensor types other than F32, F16, Q8_0 and Q4_0 are an UnsupportedError naming the tensor.
 * @example
 * const file = parseGGUF(new Uint8Array(await res.arrayBuffer()))
 * const arch = file.require<string>('general.architecture')
 * const wq = file.tensor('blk.0.attn_q.weight')?.data
 */
export function parseGGUF(bytes: Uint8Array): GGUFFile {
  if (!(bytes instanceof Uint8Array)) throw new FormatError('GGUF input must be a Uint8Array');
  return parse(bytes, bytes.length);
}

/**
 * Parse and check the header (metadata and tensor infos) of a GGUF file from its first bytes, given
 * the whole file's length — to validate a model and size its memory before downloading the weights.
 * Every check of parseGGUF is made against `totalLength` (tensors must fit in it). Returns undefined
 * when `prefix` ends before the header does: read a longer prefix (say twice as long) and call again.
 * In the result every tensor's `data` is empty (unless the prefix is the whole file); the data of
 * tensor t are bytes `dataOffset + t.offset` to `dataOffset + t.offset + t.byteSize` of the file.
 * @example
 * const head = await (await bucket.get(key, { range: { offset: 0, length: 1 << 20 } }))!.arrayBuffer()
 * const file = parseGGUFHeader(new Uint8Array(head), object.size) // undefined: fetch more
 */
export function parseGGUFHeader(prefix: Uint8Array, totalLength: number): GGUFFile | undefined {
  if (!(prefix instanceof Uint8Array)) throw new FormatError('GGUF input must be a Uint8Array');
  if (!Number.isSafeInteger(totalLength) || totalLength < prefix.length) {
    throw new FormatError(
      `total length ${totalLength} is not an integer ≥ the prefix length ${prefix.length}`,
    );
  }
  try {
    return parse(prefix, totalLength);
  } catch (e) {
    if (e === NEED_MORE) return undefined;
    throw e;
  }
}

function parse(bytes: Uint8Array, total: number): GGUFFile {
  const r = new Reader(bytes, total);

  // header
  const magic = r.u32('magic');
  if (magic !== MAGIC) {
    const shown = Array.from(bytes.subarray(0, 4), (b) => b.toString(16).padStart(2, '0')).join(' ');
    throw new FormatError(`bad magic: expected "GGUF" (47 47 55 46), got ${shown}`, {
      offset: 0,
      hint: 'not a GGUF file (a safetensors or PyTorch checkpoint? convert it first)',
    });
  }
  const version = r.u32('version');
  const swapped =
    (((version & 0xff) << 24) | ((version & 0xff00) << 8) | ((version >>> 8) & 0xff00) | (version >>> 24)) >>>
    0;
  if (version !== swapped && swapped >= 1 && swapped <= 3) {
    throw new FormatError(`GGUF version reads as ${version}: the file is big-endian (version ${swapped})`, {
      offset: 4,
      hint: 'edgelm reads little-endian GGUF only; re-convert the model without --bigendian',
    });
  }
  if (version === 1) {
    throw new UnsupportedError('GGUF version 1 is not supported (it used 32-bit counts)', {
      offset: 4,
      hint: 're-convert the model with a current llama.cpp (GGUF v3)',
    });
  }
  if (version === 0 || version > 255) {
    throw new FormatError(`invalid GGUF version ${version}`, { offset: 4, hint: 'corrupt file' });
  }
  if (version > 3) {
    throw new UnsupportedError(`GGUF version ${version} is newer than this reader (2 and 3)`, {
      offset: 4,
      hint: 'upgrade edgelm or write the model as GGUF v3',
    });
  }
  const nTensorsAt = r.pos;
  const nTensors = r.count('tensor count', GGUF_LIMITS.maxTensors);
  const nKVAt = r.pos;
  const nKV = r.count('metadata key/value count', GGUF_LIMITS.maxKV);
  // smallest KV: 1-byte key and a u8 value (14 bytes); smallest tensor info: 1-byte name, 1 dim (33)
  if (nKV * 14 + nTensors * 33 > r.left) {
    throw new FormatError(
      `${nKV} metadata entries and ${nTensors} tensor infos cannot fit in the ${r.left} bytes left`,
      {
        offset: nTensors * 33 > r.left ? nTensorsAt : nKVAt,
        hint: TRUNCATED,
      },
    );
  }

  // metadata
  const metadata = new Map<string, GGUFMetaValue>();
  let alignmentAt: number | undefined;
  for (let i = 0; i < nKV; i++) {
    const at = r.pos;
    const key = r.str(`key of metadata entry ${i}`, GGUF_LIMITS.maxStringBytes);
    if (key.length === 0)
      throw new FormatError(`empty metadata key at byte ${at}`, { offset: at, hint: 'corrupt file' });
    if (metadata.has(key)) {
      throw new FormatError(`duplicate metadata key ${key} at byte ${at}`, {
        offset: at,
        field: key,
        hint: 'corrupt file',
      });
    }
    const t = valueType(r, `value type of ${key}`, key);
    if (key === 'general.alignment') alignmentAt = r.pos;
    const v: GGUFMetaValue = t === 'array' ? readArray(r, key, 1) : { type: t, value: scalar(r, t, key) };
    metadata.set(key, v);
  }
  const alignment = checkAlignment(metadata.get('general.alignment'), alignmentAt);

  // tensor infos
  const tensors: GGUFTensor[] = [];
  const byName = new Map<string, GGUFTensor>();
  for (let i = 0; i < nTensors; i++) {
    const at = r.pos;
    const name = r.str(`name of tensor ${i}`, GGUF_LIMITS.maxNameBytes);
    if (name.length === 0)
      throw new FormatError(`empty name of tensor ${i} at byte ${at}`, { offset: at, hint: 'corrupt file' });
    if (byName.has(name)) {
      throw new FormatError(`duplicate tensor ${name} at byte ${at}`, {
        offset: at,
        field: name,
        hint: 'corrupt file',
      });
    }
    const nDimsAt = r.pos;
    const nDims = r.u32(`dimension count of ${name}`);
    if (nDims < 1 || nDims > GGUF_LIMITS.maxDims) {
      throw new FormatError(`tensor ${name} has ${nDims} dimensions, must be 1 to ${GGUF_LIMITS.maxDims}`, {
        offset: nDimsAt,
        field: name,
        hint: 'corrupt file',
      });
    }
    const dims: number[] = [];
    let nElements = 1;
    for (let d = 0; d < nDims; d++) {
      const dAt = r.pos;
      const v = r.u64(`dimension ${d} of ${name}`);
      if (v < 1n || v > BigInt(Number.MAX_SAFE_INTEGER)) {
        throw new FormatError(`tensor ${name} dimension ${d} is ${v}`, {
          offset: dAt,
          field: name,
          hint: 'dimensions must be at least 1; corrupt file',
        });
      }
      const n = Number(v);
      if (nElements > Math.floor(Number.MAX_SAFE_INTEGER / n)) {
        throw new FormatError(`tensor ${name}: element count overflows`, {
          offset: dAt,
          field: name,
          hint: 'corrupt file',
        });
      }
      nElements *= n;
      dims.push(n);
    }
    const typeAt = r.pos;
    const type = r.u32(`type of ${name}`);
    if (!isSupportedType(type)) {
      const e = unsupportedTensorType(type, name);
      e.offset = typeAt;
      throw e;
    }
    if (type !== 0 && type !== 1 && dims[0] % QK !== 0) {
      throw new FormatError(
        `tensor ${name} (${ggmlTypeName(type)}) has rows of ${dims[0]}, not a multiple of ${QK}`,
        {
          offset: nDimsAt,
          field: name,
          hint: 'quantised rows must be a whole number of 32-element blocks',
        },
      );
    }
    let byteSize: number;
    try {
      byteSize = tensorByteSize(type, nElements);
    } catch {
      throw new FormatError(`tensor ${name}: byte size overflows`, {
        offset: nDimsAt,
        field: name,
        hint: 'corrupt file',
      });
    }
    const offAt = r.pos;
    const off = r.u64(`data offset of ${name}`);
    if (off > BigInt(total)) {
      throw new FormatError(`tensor ${name} data offset ${off} is past the end of the ${total}-byte file`, {
        offset: offAt,
        field: name,
        hint: TRUNCATED,
      });
    }
    const offset = Number(off);
    if (offset % alignment !== 0) {
      throw new FormatError(
        `tensor ${name} data offset ${offset} is not a multiple of the alignment ${alignment}`,
        {
          offset: offAt,
          field: name,
          hint: 'corrupt file',
        },
      );
    }
    const t: GGUFTensor = { name, dims, type, offset, byteSize, data: EMPTY };
    tensors.push(t);
    byName.set(name, t);
  }
  const dataOffset = pad(r.pos, alignment);

  // tensor data: in bounds (with the padding after each tensor, as llama.cpp reads it), no overlap
  const order = tensors.map((_, i) => i).sort((a, b) => tensors[a].offset - tensors[b].offset);
  let end = 0;
  let prev = '';
  for (const i of order) {
    const t = tensors[i];
    if (t.offset < end) {
      throw new FormatError(`tensor ${t.name} (data offset ${t.offset}) overlaps tensor ${prev}`, {
        offset: dataOffset + t.offset,
        field: t.name,
        hint: 'corrupt file',
      });
    }
    const stop = dataOffset + t.offset + pad(t.byteSize, alignment);
    if (stop > total) {
      throw new FormatError(
        `tensor ${t.name} ends past the end of the file (needs ${stop} bytes, file is ${total})`,
        { offset: dataOffset + t.offset, field: t.name, hint: TRUNCATED },
      );
    }
    if (total === bytes.length)
      t.data = bytes.subarray(dataOffset + t.offset, dataOffset + t.offset + t.byteSize);
    end = t.offset + t.byteSize;
    prev = t.name;
  }

  return {
    version,
    alignment,
    dataOffset,
    metadata,
    tensors,
    tensor: (name) => byName.get(name),
    get<T>(key: string): T | undefined {
      const v = metadata.get(key);
      return v === undefined ? undefined : (plain(v) as T);
    },
    require<T>(key: string): T {
      const v = metadata.get(key);
      if (v === undefined) {
        throw new FormatError(`missing required metadata key ${key}`, {
          field: key,
          hint: 'the model file lacks this key; was it converted for a different architecture?',
        });
      }
      return plain(v) as T;
    },
  };
}

const EMPTY = new Uint8Array(0);

// ---- writer -------------------------------------------------------------------------------------

const INT_RANGE: Partial<Record<GGUFValueType, [number, number]>> = {
  u8: [0, 0xff],
  i8: [-0x80, 0x7f],
  u16: [0, 0xffff],
  i16: [-0x8000, 0x7fff],
  u32: [0, 0xffffffff],
  i32: [-0x80000000, 0x7fffffff],
};

function wellFormed(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = s.charCodeAt(i + 1);
      if (!(d >= 0xdc00 && d <= 0xdfff)) return false;
      i++;
    } else if (c >= 0xdc00 && c <= 0xdfff) return false;
  }
  return true;
}

const utf8e = new TextEncoder();
const CHUNK = 1 << 16;

function badValue(key: string, v: unknown, t: GGUFValueType): FormatError {
  return new FormatError(`metadata ${key}: ${String(v)} is not a valid ${t}`, {
    field: key,
    hint: 'fix the value or its type',
  });
}

class Writer {
  chunks: Uint8Array[] = [];
  size = 0;
  private buf = new Uint8Array(CHUNK);
  private dv = new DataView(this.buf.buffer);
  private pos = 0;
  private room(n: number): void {
    if (this.pos + n > this.buf.length) {
      this.flush();
      if (n > this.buf.length) {
        this.buf = new Uint8Array(n);
        this.dv = new DataView(this.buf.buffer);
      }
    }
  }
  flush(): void {
    if (this.pos > 0) this.chunks.push(this.buf.slice(0, this.pos));
    this.pos = 0;
  }
  bytes(b: Uint8Array): void {
    this.flush();
    this.chunks.push(b);
    this.size += b.length;
  }
  zeros(n: number): void {
    if (n > 0) this.bytes(new Uint8Array(n));
  }
  num(t: GGUFValueType, v: unknown, key: string): void {
    const range = INT_RANGE[t];
    if (range) {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < range[0] || v > range[1])
        throw badValue(key, v, t);
    }
    const w = MIN_BYTES[t];
    this.room(w);
    const p = this.pos;
    switch (t) {
      case 'u8':
        this.dv.setUint8(p, v as number);
        break;
      case 'i8':
        this.dv.setInt8(p, v as number);
        break;
      case 'u16':
        this.dv.setUint16(p, v as number, true);
        break;
      case 'i16':
        this.dv.setInt16(p, v as number, true);
        break;
      case 'u32':
        this.dv.setUint32(p, v as number, true);
        break;
      case 'i32':
        this.dv.setInt32(p, v as number, true);
        break;
      case 'f32':
        if (typeof v !== 'number') throw badValue(key, v, t);
        this.dv.setFloat32(p, v, true);
        break;
      case 'f64':
        if (typeof v !== 'number') throw badValue(key, v, t);
        this.dv.setFloat64(p, v, true);
        break;
      case 'bool':
        if (typeof v !== 'boolean') throw badValue(key, v, t);
        this.dv.setUint8(p, v ? 1 : 0);
        break;
      case 'u64':
      case 'i64': {
        let b: bigint;
        if (typeof v === 'bigint') b = v;
        else if (typeof v === 'number' && Number.isSafeInteger(v)) b = BigInt(v);
        else throw badValue(key, v, t);
        const ok = t === 'u64' ? b >= 0n && b < 1n << 64n : b >= -(1n << 63n) && b < 1n << 63n;
        if (!ok) throw badValue(key, v, t);
        if (t === 'u64') this.dv.setBigUint64(p, b, true);
        else this.dv.setBigInt64(p, b, true);
        break;
      }
      default:
        throw new Error('unreachable');
    }
    this.pos += w;
    this.size += w;
  }
  str(s: unknown, key: string, cap: number): void {
    if (typeof s !== 'string' || !wellFormed(s)) {
      throw new FormatError(`metadata ${key}: not a well-formed string`, {
        field: key,
        hint: 'lone surrogate?',
      });
    }
    const tooLong = (n: number) =>
      new FormatError(`${key}: string of ${n} bytes exceeds ${cap}`, { field: key });
    if (s.length * 3 + 8 > CHUNK) {
      const b = utf8e.encode(s);
      if (b.length > cap) throw tooLong(b.length);
      this.num('u64', b.length, key);
      this.bytes(b);
      return;
    }
    // short string: encoded in place after its length (ASCII by hand, else encodeInto)
    this.room(8 + s.length * 3);
    const at = this.pos + 8;
    let n = s.length;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) {
        n = utf8e.encodeInto(s, this.buf.subarray(at)).written;
        break;
      }
      this.buf[at + i] = c;
    }
    if (n > cap) throw tooLong(n);
    this.dv.setUint32(this.pos, n, true);
    this.dv.setUint32(this.pos + 4, 0, true);
    this.pos += 8 + n;
    this.size += 8 + n;
  }
  nestedArrays = false;
  value(v: GGUFMetaValue, key: string, depth: number): void {
    if (v.type === 'array') {
      if (depth > 1 && !this.nestedArrays) {
        throw new FormatError(`metadata ${key}: an array of arrays, which llama.cpp cannot read`, {
          field: key,
          hint: 'flatten it, or pass { nestedArrays: true } to writeGGUF for edgelm-only files',
        });
      }
      if (depth > GGUF_LIMITS.maxArrayDepth) {
        throw new FormatError(`metadata ${key}: arrays nested deeper than ${GGUF_LIMITS.maxArrayDepth}`, {
          field: key,
        });
      }
      const it = v.itemType;
      const items = v.value;
      if (it === undefined || TYPE_ID[it] === undefined || !Array.isArray(items)) {
        throw new FormatError(`metadata ${key}: an array needs an itemType and an array value`, {
          field: key,
        });
      }
      if (items.length > GGUF_LIMITS.maxArrayLength) {
        throw new FormatError(`metadata ${key}: ${items.length} items exceed ${GGUF_LIMITS.maxArrayLength}`, {
          field: key,
        });
      }
      this.num('u32', TYPE_ID[it], key);
      this.num('u64', items.length, key);
      for (const x of items) {
        if (it === 'array') {
          if (!x || (x as GGUFMetaValue).type !== 'array') {
            throw new FormatError(`metadata ${key}: items of an array of arrays must be array values`, {
              field: key,
            });
          }
          this.value(x as GGUFMetaValue, key, depth + 1);
        } else if (it === 'string') this.str(x, key, GGUF_LIMITS.maxStringBytes);
        else this.num(it, x, key);
      }
    } else if (v.type === 'string') this.str(v.value, key, GGUF_LIMITS.maxStringBytes);
    else if (TYPE_ID[v.type] !== undefined) this.num(v.type, v.value, key);
    else throw new FormatError(`metadata ${key}: unknown value type ${String(v.type)}`, { field: key });
  }
  result(): Uint8Array {
    this.flush();
    const out = new Uint8Array(this.size);
    let p = 0;
    for (const c of this.chunks) {
      out.set(c, p);
      p += c.length;
    }
    return out;
  }
}

/**
 * Write a GGUF v3 file: header, metadata, tensor infos, padding to the alignment, then each
 * tensor's data at an aligned offset, padded (the layout llama.cpp's reader requires: contiguous,
 * in order). `general.alignment` is written when `alignment` is not 32 (or kept if given in
 * `metadata`, where it must agree). Validates what it writes as the reader would (FormatError).
 * Arrays of arrays are refused (llama.cpp rejects files holding them) unless `opts.nestedArrays`.
 * @example
 * const bytes = writeGGUF(
 *   [['general.architecture', meta.str('llama')], ['llama.block_count', meta.u32(2)]],
 *   [{ name: 'token_embd.weight', dims: [64, 256], type: GGMLType.F32, data: fromF32(GGMLType.F32, emb) }],
 * )
 */
export function writeGGUF(
  metadata: Array<[string, GGUFMetaValue]>,
  tensors: GGUFWriteTensor[],
  alignment: number = GGUF_LIMITS.defaultAlignment,
  opts: { nestedArrays?: boolean } = {},
): Uint8Array {
  const given = metadata.find(([k]) => k === 'general.alignment');
  if (given) {
    const a = checkAlignment(given[1]);
    if (alignment !== GGUF_LIMITS.defaultAlignment && alignment !== a) {
      throw new FormatError(`alignment ${alignment} disagrees with general.alignment ${a}`, {
        field: 'general.alignment',
      });
    }
    alignment = a;
  } else {
    checkAlignment(meta.u32(alignment));
  }
  const kvs =
    given || alignment === GGUF_LIMITS.defaultAlignment
      ? metadata
      : [...metadata, ['general.alignment', meta.u32(alignment)] as [string, GGUFMetaValue]];
  if (kvs.length > GGUF_LIMITS.maxKV)
    throw new FormatError(`${kvs.length} metadata entries exceed ${GGUF_LIMITS.maxKV}`);
  if (tensors.length > GGUF_LIMITS.maxTensors) {
    throw new FormatError(`${tensors.length} tensors exceed ${GGUF_LIMITS.maxTensors}`);
  }

  const w = new Writer();
  w.nestedArrays = opts.nestedArrays === true;
  w.num('u32', MAGIC, 'magic');
  w.num('u32', 3, 'version');
  w.num('u64', tensors.length, 'tensor count');
  w.num('u64', kvs.length, 'kv count');
  const keys = new Set<string>();
  for (const [key, v] of kvs) {
    if (typeof key !== 'string' || key.length === 0) throw new FormatError('empty metadata key');
    if (keys.has(key)) throw new FormatError(`duplicate metadata key ${key}`, { field: key });
    keys.add(key);
    w.str(key, key, GGUF_LIMITS.maxStringBytes);
    if (!v || TYPE_ID[v.type] === undefined) {
      throw new FormatError(`metadata ${key}: unknown value type ${String(v?.type)}`, { field: key });
    }
    w.num('u32', TYPE_ID[v.type], key);
    w.value(v, key, 1);
  }

  const names = new Set<string>();
  let offset = 0;
  for (const t of tensors) {
    const name = t.name;
    if (typeof name !== 'string' || name.length === 0) throw new FormatError('empty tensor name');
    if (names.has(name)) throw new FormatError(`duplicate tensor ${name}`, { field: name });
    names.add(name);
    if (!Array.isArray(t.dims) || t.dims.length < 1 || t.dims.length > GGUF_LIMITS.maxDims) {
      throw new FormatError(`tensor ${name}: needs 1 to ${GGUF_LIMITS.maxDims} dimensions`, { field: name });
    }
    let n = 1;
    for (const d of t.dims) {
      if (!Number.isSafeInteger(d) || d < 1 || n > Math.floor(Number.MAX_SAFE_INTEGER / d)) {
        throw new FormatError(`tensor ${name}: bad dimensions [${t.dims.join(', ')}]`, { field: name });
      }
      n *= d;
    }
    if (!isSupportedType(t.type)) throw unsupportedTensorType(t.type, name);
    if (t.type !== 0 && t.type !== 1 && t.dims[0] % QK !== 0) {
      throw new FormatError(`tensor ${name}: rows of ${t.dims[0]} are not a multiple of ${QK}`, {
        field: name,
      });
    }
    const size = tensorByteSize(t.type, n);
    if (!(t.data instanceof Uint8Array) || t.data.length !== size) {
      throw new FormatError(`tensor ${name}: data is ${t.data?.length} bytes, expected ${size}`, {
        field: name,
      });
    }
    w.str(name, name, GGUF_LIMITS.maxNameBytes);
    w.num('u32', t.dims.length, name);
    for (const d of t.dims) w.num('u64', d, name);
    w.num('u32', t.type, name);
    w.num('u64', offset, name);
    offset += pad(size, alignment);
  }
  w.zeros(pad(w.size, alignment) - w.size);
  for (const t of tensors) {
    w.bytes(t.data);
    w.zeros(pad(t.data.length, alignment) - t.data.length);
  }
  return w.result();
}

function toBigInt(v: bigint | number, t: string): bigint {
  if (typeof v === 'bigint') return v;
  if (!Number.isSafeInteger(v)) throw new FormatError(`meta.${t}: ${v} is not a safe integer; pass a bigint`);
  return BigInt(v);
}

/**
 * Typed metadata values for writeGGUF.
 * @example
 * meta.arr('string', ['<unk>', '<s>', '</s>'])
 */
export const meta = {
  u8: (v: number): GGUFMetaValue => ({ type: 'u8', value: v }),
  i8: (v: number): GGUFMetaValue => ({ type: 'i8', value: v }),
  u16: (v: number): GGUFMetaValue => ({ type: 'u16', value: v }),
  i16: (v: number): GGUFMetaValue => ({ type: 'i16', value: v }),
  u32: (v: number): GGUFMetaValue => ({ type: 'u32', value: v }),
  i32: (v: number): GGUFMetaValue => ({ type: 'i32', value: v }),
  f32: (v: number): GGUFMetaValue => ({ type: 'f32', value: v }),
  f64: (v: number): GGUFMetaValue => ({ type: 'f64', value: v }),
  bool: (v: boolean): GGUFMetaValue => ({ type: 'bool', value: v }),
  str: (v: string): GGUFMetaValue => ({ type: 'string', value: v }),
  u64: (v: bigint | number): GGUFMetaValue => ({ type: 'u64', value: toBigInt(v, 'u64') }),
  i64: (v: bigint | number): GGUFMetaValue => ({ type: 'i64', value: toBigInt(v, 'i64') }),
  /** an array; for an array of arrays pass itemType 'array' and GGUFMetaValue items (meta.arr(...)) */
  arr: (itemType: GGUFValueType, v: unknown[]): GGUFMetaValue => ({ type: 'array', itemType, value: v }),
};

export interface GGUFSummary {
  architecture: string | undefined;
  name: string | undefined;
  version: number;
  alignment: number;
  metadataCount: number;
  tensorCount: number;
  /** tensor count per type name, e.g. { F32: 5, Q8_0: 14 } */
  types: Record<string, number>;
  /** total elements over all tensors */
  parameters: number;
  /** total tensor data bytes (without padding) */
  tensorBytes: number;
}

/**
 * A short summary of a parsed GGUF file, for scripts and logs.
 * @example
 * const s = describeGGUF(parseGGUF(bytes))
 * console.log(`${s.architecture}: ${s.parameters} parameters in ${s.tensorCount} tensors`, s.types)
 */
export function describeGGUF(file: GGUFFile): GGUFSummary {
  const types: Record<string, number> = {};
  let parameters = 0;
  let tensorBytes = 0;
  for (const t of file.tensors) {
    const k = ggmlTypeName(t.type);
    types[k] = (types[k] ?? 0) + 1;
    parameters += t.dims.reduce((a, b) => a * b, 1);
    tensorBytes += t.byteSize;
  }
  const str = (key: string) => {
    const v = file.metadata.get(key);
    return v?.type === 'string' ? (v.value as string) : undefined;
  };
  return {
    architecture: str('general.architecture'),
    name: str('general.name'),
    version: file.version,
    alignment: file.alignment,
    metadataCount: file.metadata.size,
    tensorCount: file.tensors.length,
    types,
    parameters,
    tensorBytes,
  };
}
