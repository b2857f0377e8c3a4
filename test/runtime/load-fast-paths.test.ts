// The load-time fast paths against plain references: string arrays decoded in bulk (gguf.ts) against
// a strict TextDecoder per string, with the same FormatError at the same offset for bad bytes; f32 /
// i32 arrays read through typed views and through DataView (both alignments); score ranks from a
// typed sort against the Set / Map / comparator-sort they replaced.
import { describe, expect, it } from 'vitest';
import { FormatError, UnsupportedError } from '../../runtime/errors.ts';
import { numericItems, parseGGUF, parseGGUFHeader } from '../../runtime/gguf.ts';
import { mergePriority, scoreRanks, tokenizerFromGGUF } from '../../runtime/tokenizer.ts';
import { RawBytes, seededRandom, VT } from '../helpers/gguf-fixtures.ts';
import {
  fakeGGUF,
  ggufFromMeta,
  llamaMeta,
  metaEntries,
  sharedDataDir,
  type TokenizerMeta,
  tokenizerCorpus,
} from '../helpers/tokenizer-fixtures.ts';

const fatal = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }); // GGUF strings keep a BOM

// a file whose one KV "k" is an array of the given byte strings; offsets of each string's length field
function stringArrayFile(items: number[][]): { bytes: Uint8Array; at: number[] } {
  const r = new RawBytes().header(0, 1).str('k').u32(VT.array).u32(VT.string).u64(items.length);
  const at: number[] = [];
  for (const s of items) {
    at.push(r.length);
    r.str(s);
  }
  return { bytes: r.build(), at };
}

// what reading the strings one by one with a strict decoder gives: the strings, or the first bad index
function reference(items: number[][]): string[] | number {
  const out: string[] = [];
  for (let i = 0; i < items.length; i++) {
    try {
      out.push(fatal.decode(Uint8Array.from(items[i])));
    } catch {
      return i;
    }
  }
  return out;
}

const PIECES = [
  [0x61],
  [0x20],
  [0xc3, 0xa9], // é
  [0xe2, 0x96, 0x81], // ▁
  [0xef, 0xbb, 0xbf], // BOM
  [0xf0, 0x9f, 0x98, 0x80], // 😀 (a surrogate pair in UTF-16)
  [0xe6, 0xa8, 0xa1], // 模
  [0xf4, 0x8f, 0xbf, 0xbf], // U+10FFFF
];

function randomItems(rnd: () => number, n: number, pBad: number): number[][] {
  const items: number[][] = [];
  for (let i = 0; i < n; i++) {
    const s: number[] = [];
    const len = Math.floor(rnd() * (i % 17 === 0 ? 90 : 6)); // some empty, some long (> 64 bytes)
    while (s.length < len) {
      if (rnd() < pBad) s.push(Math.floor(rnd() * 256));
      else s.push(...PIECES[Math.floor(rnd() * PIECES.length)]);
    }
    items.push(s);
  }
  return items;
}

function check(items: number[][]): void {
  const { bytes, at } = stringArrayFile(items);
  const want = reference(items);
  if (typeof want !== 'number') {
    expect(parseGGUF(bytes).get('k')).toEqual(want);
    return;
  }
  try {
    parseGGUF(bytes);
  } catch (e) {
    expect(e).toBeInstanceOf(FormatError);
    const f = e as FormatError;
    expect(f.field).toBe('k');
    expect(f.offset).toBe(at[want]);
    expect(f.message).toMatch(/not valid UTF-8/);
    return;
  }
  throw new Error(`string ${want} is not valid UTF-8 but the file parsed`);
}

describe('string arrays decoded in bulk', () => {
  it('equal a strict per-string decoder on 300 random arrays of multi-byte text', () => {
    const rnd = seededRandom(5);
    for (let t = 0; t < 300; t++) check(randomItems(rnd, 2 + Math.floor(rnd() * 60), 0));
  });

  it('raise the per-string FormatError at the first bad string on 600 arrays with random bytes', () => {
    const rnd = seededRandom(6);
    let bad = 0;
    for (let t = 0; t < 600; t++) {
      const items = randomItems(rnd, 2 + Math.floor(rnd() * 40), 0.02);
      if (typeof reference(items) === 'number') bad++;
      check(items);
    }
    expect(bad).toBeGreaterThan(100); // the bad-byte case is exercised, not only valid text
  });

  it('a vocabulary-sized array equals the per-string decoder; a bad string deep in it is found', () => {
    const rnd = seededRandom(12);
    const items = randomItems(rnd, 12000, 0); // ~100 KB with the lengths
    check(items);
    for (const at of [4000, 8001, 11999]) {
      const bad = items.map((x) => x.slice());
      bad[at] = [0x61, 0xc3]; // a cut character
      check(bad);
      const lead = items.map((x) => x.slice());
      lead[at] = [0xa9, 0x61]; // a continuation byte first
      check(lead);
    }
  });

  it('strings the NUL-separated split cannot take (≥ 256 bytes, NULs at an edge, runs of 8+ NULs) read the same', () => {
    const rnd = seededRandom(8);
    const odd = [
      Array.from({ length: 300 }, (_, i) => 0x61 + (i % 26)),
      [0x00, 0x61],
      [0x61, 0x00],
      [0x00],
      [0x61, ...new Array(8).fill(0), 0x62],
      [0x61, ...new Array(17).fill(0), 0x62],
      [0x61, ...new Array(7).fill(0), 0x62],
    ];
    for (let t = 0; t < 200; t++) {
      const items = randomItems(rnd, 2 + Math.floor(rnd() * 30), t % 3 === 0 ? 0.02 : 0);
      const at = Math.floor(rnd() * items.length);
      items.splice(at, 0, odd[t % odd.length]);
      if (t % 5 === 0) items.push([]); // empty strings next to the odd one
      check(items);
    }
  });

  it('arrays of long strings (30–255 bytes) with more KVs after them read the same', () => {
    const rnd = seededRandom(21);
    for (let t = 0; t < 60; t++) {
      // strings of 30–255 bytes, then another KV: the bulk split must stop at the array's end
      const items = Array.from({ length: 2 + Math.floor(rnd() * 80) }, () => {
        const s: number[] = [];
        const len = 30 + Math.floor(rnd() * 220);
        while (s.length < len) s.push(...PIECES[Math.floor(rnd() * PIECES.length)]);
        return s.length > 255 ? s.slice(0, 252) : s;
      });
      if (t % 4 === 1) items[Math.floor(rnd() * items.length)].push(0xc3); // a cut character somewhere
      const r = new RawBytes().header(0, 2).str('k').u32(VT.array).u32(VT.string).u64(items.length);
      const at: number[] = [];
      for (const x of items) {
        at.push(r.length);
        r.str(x);
      }
      const bytes = r.str('z').u32(VT.u32).u32(7).build();
      const want = reference(items);
      if (typeof want === 'number') {
        let err: unknown;
        try {
          parseGGUF(bytes);
        } catch (e) {
          err = e;
        }
        expect(err).toBeInstanceOf(FormatError);
        expect((err as FormatError).offset).toBe(at[want]);
      } else {
        const f = parseGGUF(bytes);
        expect(f.get('k')).toEqual(want);
        expect(f.get('z')).toBe(7);
      }
    }
  });

  it('leaves the input bytes as they were, also when they are a Node Buffer (whose slice is a view)', () => {
    const { bytes } = stringArrayFile(randomItems(seededRandom(2), 50, 0));
    for (const input of [Buffer.from(bytes), bytes.slice()]) {
      const before = Uint8Array.from(input);
      const a = parseGGUF(input).get('k');
      expect(Uint8Array.from(input)).toEqual(before);
      expect(parseGGUF(input).get('k')).toEqual(a);
    }
  });

  it('a character split across two strings is an error in the first (each string must be valid alone)', () => {
    // 'x' + first two bytes of ▁ | last byte of ▁ + 'y': valid UTF-8 when joined
    check([[0x61], [0x78, 0xe2, 0x96], [0x81, 0x79], [0x62]]);
    check([[0x61], [0x81, 0x79]]); // a string starting on a continuation byte
    check([[0x61], [0xe2, 0x96]]); // the last string cut
    const { bytes, at } = stringArrayFile([[0x61], [0x78, 0xe2, 0x96], [0x81, 0x79]]);
    expect(() => parseGGUF(bytes)).toThrow(FormatError);
    expect(at).toHaveLength(3);
  });

  it('a string running past the end: the same truncation error; a prefix: undefined from parseGGUFHeader', () => {
    const items = [[0x61], [0xe2, 0x96, 0x81], [0x62, 0x63, 0x64, 0x65]];
    const { bytes, at } = stringArrayFile(items);
    const cut = bytes.subarray(0, bytes.length - 2);
    let err: unknown;
    try {
      parseGGUF(cut);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(FormatError);
    expect((err as FormatError).offset).toBe(at[2] + 8); // where the string's bytes start
    for (let p = 0; p < bytes.length; p++)
      expect(parseGGUFHeader(bytes.subarray(0, p), bytes.length)).toBeUndefined();
    expect(parseGGUFHeader(bytes, bytes.length)?.get('k')).toEqual(reference(items));
  });

  it('a string over the length cap is refused at its length field', () => {
    const r = new RawBytes().header(0, 1).str('k').u32(VT.array).u32(VT.string).u64(3).str('a').str('b');
    const at = r.length;
    r.u64(2 ** 21).zeros(16);
    let err: unknown;
    try {
      parseGGUF(r.build());
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(FormatError);
    expect((err as FormatError).offset).toBe(at);
  });
});

describe('long numeric arrays held as typed arrays', () => {
  it('value reads as the plain array DataView gives, for every numeric type; numericItems until it is read', () => {
    const n = 300; // over the lazy threshold
    const types: Array<[number, number, (dv: DataView, o: number) => unknown]> = [
      [VT.u8, 1, (dv, o) => dv.getUint8(o)],
      [VT.i8, 1, (dv, o) => dv.getInt8(o)],
      [VT.u16, 2, (dv, o) => dv.getUint16(o, true)],
      [VT.i16, 2, (dv, o) => dv.getInt16(o, true)],
      [VT.u32, 4, (dv, o) => dv.getUint32(o, true)],
      [VT.i32, 4, (dv, o) => dv.getInt32(o, true)],
      [VT.f32, 4, (dv, o) => dv.getFloat32(o, true)],
      [VT.f64, 8, (dv, o) => dv.getFloat64(o, true)],
      [VT.u64, 8, (dv, o) => dv.getBigUint64(o, true)],
      [VT.i64, 8, (dv, o) => dv.getBigInt64(o, true)],
    ];
    const rnd = seededRandom(11);
    for (const [vt, w, read] of types) {
      for (const pad of [0, 1, 3]) {
        const items = Array.from({ length: n * w }, () => Math.floor(rnd() * 256));
        const r = new RawBytes()
          .header(0, 1)
          .str(`k${'x'.repeat(pad)}`)
          .u32(VT.array)
          .u32(vt)
          .u64(n);
        const at = r.length;
        r.bytes(items);
        const bytes = r.build();
        const dv = new DataView(bytes.buffer);
        const want = Array.from({ length: n }, (_, i) => read(dv, at + i * w));
        const file = parseGGUF(Buffer.from(bytes)); // a Buffer at an arbitrary offset
        const mv = file.metadata.get(`k${'x'.repeat(pad)}`)!;
        const typed = numericItems(mv);
        expect(typed).toBeDefined();
        expect(Array.from(typed!)).toEqual(want);
        const got = file.get<unknown[]>(`k${'x'.repeat(pad)}`)!;
        expect(Array.isArray(got)).toBe(true);
        expect(got.length).toBe(n);
        for (let i = 0; i < n; i++) expect(Object.is(got[i], want[i])).toBe(true);
        expect(numericItems(mv)).toBeUndefined(); // read: only value counts now
        expect(mv.value).toBe(got);
      }
    }
  });

  it('setting value replaces it, and the tokenizer then reads the new value', () => {
    const m = {
      model: 'llama' as const,
      tokens: [
        '<unk>',
        'a',
        'b',
        ...Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`),
        ...Array.from({ length: 100 }, (_, i) => `w${i}`),
      ],
      scores: [] as number[],
      types: [] as number[],
      unk: 0,
    };
    m.scores = m.tokens.map((_, i) => -i);
    m.types = m.tokens.map((t, i) => (i === 0 ? 2 : t.startsWith('<0x') ? 6 : 1));
    const file = ggufFromMeta(m);
    const mv = file.metadata.get('tokenizer.ggml.token_type')!;
    expect(numericItems(mv)).toBeDefined();
    mv.value = m.types.map((t, i) => (i === 1 ? 9 : t)); // a bad type, set by the caller
    expect(numericItems(mv)).toBeUndefined();
    expect(() => tokenizerFromGGUF(file)).toThrow(/token_type\[1\] = 9/);
  });
});

describe('numeric arrays through typed views', () => {
  it('f32 and i32 arrays read the same at a 4-byte-aligned and an unaligned position', () => {
    const f = [0, -0, 1.5, -2.25e-30, 3.4e38, Number.POSITIVE_INFINITY, Number.NaN, 1e-45];
    const ints = [0, -1, 2147483647, -2147483648, 12345];
    for (const keyLen of [1, 2, 3, 4]) {
      const r = new RawBytes().header(0, 2).str('k'.repeat(keyLen)).u32(VT.array).u32(VT.f32).u64(f.length);
      for (const x of f) r.f32(x);
      r.str('i').u32(VT.array).u32(VT.i32).u64(ints.length);
      for (const x of ints) r.u32(x >>> 0);
      const file = parseGGUF(r.build());
      const got = file.get<number[]>('k'.repeat(keyLen))!;
      expect(got).toHaveLength(f.length);
      for (let i = 0; i < f.length; i++) expect(Object.is(got[i], Math.fround(f[i]))).toBe(true);
      expect(file.get('i')).toEqual(ints);
      expect(Array.isArray(got)).toBe(true);
    }
  });
});

describe('score ranks', () => {
  // the construction it replaced: distinct scores sorted high to low, rank = index
  const reference = (s: Float64Array) => {
    const distinct = Array.from(new Set(s)).sort((a, b) => b - a);
    const rankOf = new Map(distinct.map((x, i) => [x, i] as const));
    return Int32Array.from(s, (x) => rankOf.get(x)!);
  };
  it('equal the Set / Map ranks on random scores with ties, ±0 and infinities', () => {
    const rnd = seededRandom(9);
    for (let t = 0; t < 200; t++) {
      const n = 1 + Math.floor(rnd() * 300);
      const levels = 1 + Math.floor(rnd() * n);
      const s = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        const u = rnd();
        s[i] =
          u < 0.05
            ? 0
            : u < 0.1
              ? -0
              : u < 0.12
                ? Number.NEGATIVE_INFINITY
                : u < 0.13
                  ? Number.POSITIVE_INFINITY
                  : -Math.floor(rnd() * levels) / 7;
      }
      // odd trials: every score a float32 (GGUF's f32 scores; the sorted-key path), even: not
      if (t % 2) for (let i = 0; i < n; i++) s[i] = Math.fround(s[i]);
      expect(scoreRanks(s)).toEqual(reference(s));
    }
    expect(scoreRanks(new Float64Array(0))).toEqual(new Int32Array(0));
  });

  it('float32 merge priorities order every pair of scores as the ranks do (ties, ±0, ±∞, both signs)', () => {
    const rnd = seededRandom(10);
    for (let t = 0; t < 100; t++) {
      const n = 1 + Math.floor(rnd() * 120);
      const levels = 1 + Math.floor(rnd() * n);
      const f = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        const u = rnd();
        f[i] =
          u < 0.05
            ? 0
            : u < 0.1
              ? -0
              : u < 0.12
                ? Number.NEGATIVE_INFINITY
                : u < 0.13
                  ? Number.POSITIVE_INFINITY
                  : u < 0.15
                    ? (rnd() - 0.5) * 1e-40 // subnormal
                    : (Math.floor(rnd() * levels) - levels / 2) * (t % 3 === 0 ? 1e-3 : 7.5);
      }
      const ranks = reference(Float64Array.from(f));
      const prio = Array.from(new Uint32Array(f.buffer), mergePriority);
      const bad: string[] = [];
      for (let i = 0; i < n; i++) {
        if (!(Number.isInteger(prio[i]) && prio[i] >= 0 && prio[i] < 2 ** 32))
          bad.push(`prio[${i}] = ${prio[i]}`);
        for (let j = 0; j < n; j++)
          if (Math.sign(prio[i] - prio[j]) !== Math.sign(ranks[i] - ranks[j])) bad.push(`${f[i]} vs ${f[j]}`);
      }
      expect(bad).toEqual([]);
    }
  });
});

describe('tokenizer: the one-pass vocabulary check equals the step-by-step one', () => {
  // plain arrays take the one-pass path, and so does a parsed GGUF (scores and types as typed arrays);
  // types as bigints (which readNumbers accepts) take the step-by-step path
  const both = (m: TokenizerMeta) => {
    const entries = Object.fromEntries(metaEntries(m).map(([k, v]) => [k, v.value]));
    const stepwise = { ...entries, 'tokenizer.ggml.token_type': BigInt64Array.from(m.types!, BigInt) };
    return [
      tokenizerFromGGUF(fakeGGUF(entries)),
      tokenizerFromGGUF(fakeGGUF(stepwise)),
      tokenizerFromGGUF(ggufFromMeta(m)),
    ] as const;
  };
  const compare = (m: TokenizerMeta, texts: readonly string[]) => {
    const [fast, slow, parsed] = both(m);
    for (const t of texts.slice(0, 50))
      expect(parsed.encode(t, { parseSpecial: true })).toEqual(slow.encode(t, { parseSpecial: true }));
    for (let id = 0; id < m.tokens.length; id++) {
      expect(fast.isSpecial(id)).toBe(slow.isSpecial(id));
      expect(fast.tokenBytes(id)).toEqual(slow.tokenBytes(id));
    }
    for (const t of texts) {
      expect(fast.encode(t)).toEqual(slow.encode(t));
      expect(fast.encode(t, { parseSpecial: true })).toEqual(slow.encode(t, { parseSpecial: true }));
    }
    for (const piece of m.tokens.slice(0, 400)) expect(fast.tokenId(piece)).toBe(slow.tokenId(piece));
  };

  it('on a synthetic llama vocabulary with user-defined, control, unused, empty and duplicate tokens', () => {
    const tokens = ['<unk>', '<s>', '</s>', '<|user|>', '', 'ab', 'ab', '\u2581', 'zz-unused'];
    const types = [2, 3, 3, 4, 1, 1, 1, 1, 5];
    for (let b = 0; b < 256; b++) {
      tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
      types.push(6);
    }
    const rnd = seededRandom(3);
    const alphabet = 'abcdeé模😀 ';
    while (tokens.length < 2000) {
      let s = '';
      const len = 1 + Math.floor(rnd() * 4);
      for (let i = 0; i < len; i++) s += [...alphabet][Math.floor(rnd() * [...alphabet].length)];
      tokens.push(s.replaceAll(' ', '\u2581'));
      types.push(rnd() < 0.05 ? 4 : 1);
    }
    const scores = tokens.map((_, i) => (i < 9 ? 0 : Math.fround(-Math.floor(rnd() * 500) / 3)));
    const m: TokenizerMeta = { model: 'llama', tokens, scores, types, bos: 1, eos: 2, unk: 0, addBos: true };
    const texts = ['', 'ab ab', '<|user|> hi <s>', 'é模😀 abcde', 'x\u0000y', ...tokenizerCorpus(150, 4)];
    compare(m, texts);
  });

  it('with scores of both signs, ±0 and ±∞ (float32 merge priorities against ranks)', () => {
    const tokens = ['<unk>', '<s>', '</s>'];
    const types = [2, 3, 3];
    for (let b = 0; b < 256; b++) {
      tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
      types.push(6);
    }
    const rnd = seededRandom(13);
    const seen = new Set(tokens);
    while (tokens.length < 1500) {
      let s = '';
      const len = 1 + Math.floor(rnd() * 5);
      for (let i = 0; i < len; i++) s += 'abcé▁'[Math.floor(rnd() * 5)];
      if (seen.has(s)) continue;
      seen.add(s);
      tokens.push(s);
      types.push(1);
    }
    // many ±0 (equal scores: the leftmost pair merges first whichever zero each has)
    const special = [0, -0, 0, -0, 0, -0, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY];
    const scores = tokens.map((_, i) =>
      i < 3
        ? 0
        : rnd() < 0.4
          ? special[Math.floor(rnd() * 8)]
          : Math.fround((Math.floor(rnd() * 60) - 30) / 4),
    );
    const m: TokenizerMeta = { model: 'llama', tokens, scores, types, bos: 1, eos: 2, unk: 0, addBos: true };
    // text over the vocabulary's alphabet, so that pieces of tied scores meet and overlap
    const own = Array.from({ length: 200 }, () =>
      Array.from({ length: 3 + Math.floor(rnd() * 30) }, () => 'abcé '[Math.floor(rnd() * 5)]).join(''),
    );
    compare(m, ['abc', 'a bé cab', 'ééé aaa ccc bbb', ...own, ...tokenizerCorpus(50, 14)]);
  });

  it.skipIf(!sharedDataDir())('on Llama 2’s vocabulary (../shared/data)', () => {
    compare(llamaMeta(`${sharedDataDir()}/llama2-tokenizer.bin`), tokenizerCorpus(200, 8));
  });

  it('bad values: the same error from both paths', () => {
    const base = () => {
      const tokens = ['<unk>', 'a', 'b'];
      for (let b = 0; b < 256; b++) tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
      return {
        tokens,
        scores: tokens.map(() => 0),
        types: tokens.map((_, i): number => (i === 0 ? 2 : i < 3 ? 1 : 6)),
      };
    };
    const cases: Array<(v: ReturnType<typeof base>) => void> = [
      (v) => (v.types[1] = 7),
      (v) => (v.types[1] = 1.5),
      (v) => (v.types[2] = 6), // a byte token that is not <0xNN>
      (v) => (v.scores[2] = Number.NaN),
      (v) => (v.tokens[1] = 'x'.repeat(1025)),
      (v) => ((v.tokens as unknown[])[1] = 3),
      (v) => ((v.scores as unknown[])[1] = '3'),
      (v) => (v.scores.length = 2),
    ];
    for (const mutate of cases) {
      const v = base();
      mutate(v);
      const entries = {
        'tokenizer.ggml.model': 'llama',
        'tokenizer.ggml.tokens': v.tokens,
        'tokenizer.ggml.scores': v.scores,
        'tokenizer.ggml.token_type': v.types,
      };
      let err: unknown;
      try {
        tokenizerFromGGUF(fakeGGUF(entries));
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(FormatError);
      // the message the step-by-step path gives when handed the same values one check at a time
      expect((err as FormatError).message).toMatch(/tokenizer\.ggml\.(tokens|scores|token_type)/);
    }
  });
});

describe('byte tokens <0xNN> read by char codes', () => {
  // the regex reading it replaced
  const ref = (s: string) => {
    if (s.length !== 6 || !s.startsWith('<0x') || s[5] !== '>') return -1;
    const hex = s.slice(3, 5);
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return -1;
    return Number.parseInt(hex, 16);
  };
  const tokenAs6 = (piece: string): number => {
    const tokens = ['<unk>', 'a', 'b', piece];
    const entries = {
      'tokenizer.ggml.model': 'llama',
      'tokenizer.ggml.tokens': tokens,
      'tokenizer.ggml.scores': [0, 0, 0, 0],
      'tokenizer.ggml.token_type': [2, 1, 1, 6],
      'tokenizer.ggml.unknown_token_id': 0,
    };
    try {
      return tokenizerFromGGUF(fakeGGUF(entries)).tokenBytes(3)[0];
    } catch (e) {
      expect(e).toBeInstanceOf(FormatError);
      return -1;
    }
  };
  it('agrees with the regex on every pair of ASCII characters and on near misses', () => {
    const chars: string[] = [];
    for (let c = 0; c < 0x80; c++) chars.push(String.fromCharCode(c));
    chars.push('\u00c1', '\u0141', '\uff21');
    let valid = 0;
    for (const a of chars) {
      for (const b of chars) {
        const s = `<0x${a}${b}>`;
        const want = ref(s);
        if (want >= 0) valid++;
        expect(tokenAs6(s)).toBe(want);
      }
    }
    expect(valid).toBe(22 * 22);
    for (const s of ['<0X41>', '[0x41>', '<1x41>', '<0x41]', '<0x4>', '<0x411>', '0x41>', '<0x41> '])
      expect(tokenAs6(s)).toBe(ref(s));
  });
});

describe('special-token text cap counted in the one pass', () => {
  // 256 user-defined tokens of 1024 characters fill MAX_SPECIAL_CHARS (2^18) exactly; a bos id adds
  // its text only when it is not special already
  const vocab = (bosId: number) => {
    const tokens = ['<unk>', 'b'];
    const types = [2, 1];
    for (let i = 0; i < 256; i++) {
      tokens.push(`${i}`.padStart(4, '0').repeat(256));
      types.push(4);
    }
    for (let b = 0; b < 256; b++) {
      tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
      types.push(6);
    }
    return {
      'tokenizer.ggml.model': 'llama',
      'tokenizer.ggml.tokens': tokens.map((t, i) => (i === 0 ? '' : t)), // an empty <unk>: 0 characters
      'tokenizer.ggml.scores': tokens.map(() => 0),
      'tokenizer.ggml.token_type': types,
      'tokenizer.ggml.bos_token_id': bosId,
      'tokenizer.ggml.eos_token_id': bosId,
    };
  };
  it('at the cap is accepted; one character more (a normal bos) is refused, by both paths', () => {
    for (const stepwise of [false, true]) {
      const make = (bos: number) => {
        const e: Record<string, unknown> = vocab(bos);
        if (stepwise)
          e['tokenizer.ggml.token_type'] = BigInt64Array.from(
            e['tokenizer.ggml.token_type'] as number[],
            BigInt,
          );
        return tokenizerFromGGUF(fakeGGUF(e));
      };
      expect(make(2).isSpecial(2)).toBe(true); // bos is one of the user-defined tokens: counted once
      expect(() => make(1)).toThrow(UnsupportedError); // bos 'b' (normal): 2^18 + 1
    }
  });
});
