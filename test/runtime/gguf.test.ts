// GGUF reader and writer: round trips, and every bad-file case of ../shared/RELIABILITY.md's GGUF
// section. Malformed files are built byte by byte with RawBytes (test/helpers/gguf-fixtures.ts).
import { describe, expect, it } from 'vitest';
import { type EdgeLMError, FormatError, UnsupportedError } from '../../runtime/errors.ts';
import { fromF32, GGMLType, toF32 } from '../../runtime/ggml.ts';
import {
  describeGGUF,
  GGUF_LIMITS,
  type GGUFMetaValue,
  meta,
  parseGGUF,
  parseGGUFHeader,
  writeGGUF,
} from '../../runtime/gguf.ts';
import {
  allTypesMetadata,
  allTypesTensors,
  microGGUF,
  RawBytes,
  randomF32,
  seededRandom,
  tinyGGUF,
  tinyModelGGUF,
  VT,
} from '../helpers/gguf-fixtures.ts';

// the error thrown by fn, checked to be of class C
function thrown<C extends new (...a: any[]) => EdgeLMError>(C: C, fn: () => unknown): InstanceType<C> {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(C);
    return e as InstanceType<C>;
  }
  throw new Error('expected a throw');
}
const formatErr = (fn: () => unknown) => thrown(FormatError, fn);

// a file with one KV whose value bytes are `body` (after the key and the value type)
const oneKV = (type: number, body: (r: RawBytes) => void, key = 'k') => {
  const r = new RawBytes().header(0, 1).str(key).u32(type);
  body(r);
  return r.build();
};
// a file with the given tensor infos and `dataBytes` of zeros after the aligned data start
const withTensors = (
  infos: Array<[string | number[], Array<bigint | number>, number, bigint | number]>,
  dataBytes: number,
  kv?: (r: RawBytes) => void,
  nKV = 0,
) => {
  const r = new RawBytes().header(infos.length, nKV);
  kv?.(r);
  for (const [n, d, t, o] of infos) r.tensorInfo(n, d, t, o);
  return r.align(32).zeros(dataBytes).build();
};

describe('round trip', () => {
  it('reads back every metadata type, nested arrays and every tensor type written by writeGGUF', () => {
    const md = allTypesMetadata();
    const ts = allTypesTensors();
    const bytes = writeGGUF(md, ts, 32, { nestedArrays: true });
    const f = parseGGUF(bytes);
    expect(f.version).toBe(3);
    expect(f.alignment).toBe(32);
    expect(f.dataOffset % 32).toBe(0);
    expect([...f.metadata.keys()]).toEqual(md.map(([k]) => k));
    for (const [k, v] of md) {
      const got = f.metadata.get(k)!;
      expect(got.type).toBe(v.type);
      expect(got.itemType).toBe(v.itemType);
      if (v.type === 'f32') expect(got.value).toBe(Math.fround(v.value as number));
      else if (v.itemType === 'f32') expect(got.value).toEqual((v.value as number[]).map(Math.fround));
      else expect(got.value).toEqual(v.value);
    }
    expect(f.get('t.u64')).toBe(2n ** 64n - 1n);
    expect(f.get('t.i64')).toBe(-(2n ** 63n));
    expect(f.get('general.name')).toBe('tiny ✓ 模型');
    expect(f.get('t.arr.nested')).toEqual([[1, 2], ['a', 'é'], []]);
    expect(f.get('missing')).toBeUndefined();
    expect(f.require<string>('general.architecture')).toBe('llama');
    const e = formatErr(() => f.require('llama.block_count'));
    expect(e.field).toBe('llama.block_count');

    expect(f.tensors.map((t) => t.name)).toEqual(ts.map((t) => t.name));
    let expectOffset = 0;
    for (const t of ts) {
      const g = f.tensor(t.name)!;
      expect(g.dims).toEqual(t.dims);
      expect(g.type).toBe(t.type);
      expect(g.byteSize).toBe(t.data.length);
      expect(Array.from(g.data)).toEqual(Array.from(t.data));
      // contiguous, each aligned, in order (what llama.cpp's reader demands)
      expect(g.offset).toBe(expectOffset);
      expectOffset += Math.ceil(t.data.length / 32) * 32;
      // a view of the input, not a copy
      expect(g.data.buffer).toBe(bytes.buffer);
      expect(g.data.byteOffset).toBe(f.dataOffset + g.offset);
    }
    expect(bytes.length).toBe(f.dataOffset + expectOffset); // padded after the last tensor too
    expect(f.tensor('nope')).toBeUndefined();
  });

  it('writing what was read gives the same bytes', () => {
    const bytes = tinyGGUF();
    const f = parseGGUF(bytes);
    const again = writeGGUF([...f.metadata], f.tensors, 32, { nestedArrays: true });
    expect(again).toEqual(bytes);
  });

  it('alignment 64 and 8: general.alignment written as u32, data aligned', () => {
    for (const a of [8, 64]) {
      const bytes = tinyGGUF(a);
      const f = parseGGUF(bytes);
      expect(f.alignment).toBe(a);
      expect(f.metadata.get('general.alignment')).toEqual({ type: 'u32', value: a });
      expect(f.dataOffset % a).toBe(0);
      for (const t of f.tensors) expect(t.offset % a).toBe(0);
    }
    expect(parseGGUF(tinyGGUF()).metadata.has('general.alignment')).toBe(false);
  });

  it('reads GGUF v2 (same layout) and input at a non-zero byteOffset', () => {
    const v3 = tinyGGUF();
    const v2 = v3.slice();
    v2[4] = 2;
    const f = parseGGUF(v2);
    expect(f.version).toBe(2);
    expect(f.tensors.length).toBe(4);
    const big = new Uint8Array(v3.length + 13);
    big.set(v3, 13);
    const g = parseGGUF(big.subarray(13));
    expect(toF32(GGMLType.F32, g.tensor('a.f32')!.data, 15)).toEqual(
      toF32(GGMLType.F32, parseGGUF(v3).tensor('a.f32')!.data, 15),
    );
  });

  it('a file with no tensors and no metadata is valid', () => {
    const f = parseGGUF(writeGGUF([], []));
    expect(f.tensors).toEqual([]);
    expect(f.metadata.size).toBe(0);
    expect(parseGGUF(new RawBytes().header(0, 0).build()).tensors.length).toBe(0);
  });

  it('describeGGUF counts parameters and types (checked against the shapes written)', () => {
    const shape = { dim: 64, nLayers: 2, nHeads: 4, nKvHeads: 2, ffnDim: 128, vocab: 300 };
    const s = describeGGUF(parseGGUF(tinyModelGGUF({ ...shape, type: GGMLType.Q8_0 })));
    const { dim, nLayers, ffnDim, vocab } = shape;
    const kv = 2 * (dim / 4);
    const perLayer = 2 * dim + dim * dim + 2 * dim * kv + dim * dim + 3 * dim * ffnDim;
    expect(s.parameters).toBe(vocab * dim + nLayers * perLayer + dim);
    expect(s.architecture).toBe('llama');
    expect(s.tensorCount).toBe(1 + nLayers * 9 + 1);
    expect(s.types).toEqual({ Q8_0: 1 + nLayers * 7, F32: nLayers * 2 + 1 });
  });
});

describe('header', () => {
  it('empty and short inputs: not enough data, offset 0..', () => {
    for (let n = 0; n < 24; n++) {
      const e = formatErr(() => parseGGUF(tinyGGUF().subarray(0, n)));
      expect(e.message).toMatch(/not enough data/);
      expect(e.hint).toMatch(/truncated/);
    }
  });
  it('bad magic names the bytes found', () => {
    const b = tinyGGUF();
    b[0] = 0x50;
    const e = formatErr(() => parseGGUF(b));
    expect(e.offset).toBe(0);
    expect(e.message).toMatch(/50 47 55 46/);
    expect(() => parseGGUF(new TextEncoder().encode('{"safetensors": 1}                '))).toThrow(
      FormatError,
    );
  });
  it('versions 0, 1, 4, 2^32−1 and a byte-swapped (big-endian) header', () => {
    const ver = (v: number) => new RawBytes().header(0, 0, v).build();
    expect(formatErr(() => parseGGUF(ver(0))).offset).toBe(4);
    const v1 = thrown(UnsupportedError, () => parseGGUF(ver(1)));
    expect(v1.message).toMatch(/version 1/);
    expect(thrown(UnsupportedError, () => parseGGUF(ver(4))).offset).toBe(4);
    expect(formatErr(() => parseGGUF(ver(0xffffffff))).offset).toBe(4);
    for (const v of [1, 2, 3]) {
      const e = formatErr(() => parseGGUF(ver(v * 0x1000000)));
      expect(e.message).toMatch(/big-endian/);
      expect(e.hint).toMatch(/little-endian/);
    }
    // a whole big-endian file: magic bytes as written by llama.cpp, then counts byte-swapped
    const be = new RawBytes()
      .bytes([0x47, 0x47, 0x55, 0x46, 0, 0, 0, 3])
      .bytes([0, 0, 0, 0, 0, 0, 0, 1])
      .build();
    expect(formatErr(() => parseGGUF(be)).message).toMatch(/big-endian/);
  });
  for (const [name, at] of [
    ['tensor', 8],
    ['KV', 16],
  ] as const) {
    it(`${name} counts 2^64−1, 2^63, 0xFFFFFFFF, cap+1 are rejected at the count, before allocation`, () => {
      const cap = name === 'tensor' ? GGUF_LIMITS.maxTensors : GGUF_LIMITS.maxKV;
      for (const n of [2n ** 64n - 1n, 2n ** 63n, 0xffffffffn, BigInt(cap + 1)]) {
        const b = name === 'tensor' ? new RawBytes().header(n, 0) : new RawBytes().header(0, n);
        const e = formatErr(() => parseGGUF(b.zeros(64).build()));
        expect(e.offset).toBe(at);
        expect(e.message).toMatch(/exceeds the limit/);
      }
      // at the cap but with too few bytes left: rejected at the count as well
      const b = name === 'tensor' ? new RawBytes().header(cap, 0) : new RawBytes().header(0, cap);
      const e = formatErr(() => parseGGUF(b.zeros(64).build()));
      expect(e.offset).toBe(at);
      expect(e.message).toMatch(/cannot fit/);
    });
  }
});

describe('metadata', () => {
  it('array lengths 2^64−1, 2^63, 0xFFFFFFFF, cap+1 and more than the bytes left: rejected at the count', () => {
    const countAt = 24 + 8 + 1 + 4 + 4; // header, key "k", value type, item type
    for (const n of [2n ** 64n - 1n, 2n ** 63n, 0xffffffffn, BigInt(GGUF_LIMITS.maxArrayLength + 1)]) {
      const e = formatErr(() => parseGGUF(oneKV(VT.array, (r) => r.u32(VT.u8).u64(n).zeros(100))));
      expect(e.offset).toBe(countAt);
      expect(e.field).toBe('k');
    }
    // within the cap, but 1,000,000 u8s declared with 100 bytes left; 10 strings need ≥ 80 bytes
    for (const [t, n, left] of [
      [VT.u8, 1_000_000, 100],
      [VT.string, 10, 79],
      [VT.array, 10, 119],
      [VT.u64, 10, 79],
    ]) {
      const e = formatErr(() => parseGGUF(oneKV(VT.array, (r) => r.u32(t).u64(n).zeros(left))));
      expect(e.offset).toBe(countAt);
      expect(e.message).toMatch(/bytes left/);
    }
  });

  it('string lengths 2^64−1, 1 MiB + 1 and more than the bytes left are rejected; 1 MiB is read', () => {
    for (const n of [2n ** 64n - 1n, 2n ** 63n, BigInt(GGUF_LIMITS.maxStringBytes + 1)]) {
      const e = formatErr(() => parseGGUF(oneKV(VT.string, (r) => r.u64(n).zeros(32))));
      expect(e.offset).toBe(24 + 9 + 4);
      expect(e.message).toMatch(/exceeds the limit/);
    }
    const e = formatErr(() => parseGGUF(oneKV(VT.string, (r) => r.u64(1000).zeros(999))));
    expect(e.message).toMatch(/not enough data/);
    // a key whose length is absurd
    const k = formatErr(() =>
      parseGGUF(
        new RawBytes()
          .header(0, 1)
          .u64(2n ** 64n - 1n)
          .zeros(32)
          .build(),
      ),
    );
    expect(k.offset).toBe(24);
    const big = 'x'.repeat(GGUF_LIMITS.maxStringBytes);
    expect(parseGGUF(writeGGUF([['s', meta.str(big)]], [])).get('s')).toBe(big);
  });

  it('nested arrays up to depth 3 are read; depth 4, and 100,000 nested headers, are rejected without recursion', () => {
    const d3 = meta.arr('array', [meta.arr('array', [meta.arr('i8', [-1, 2])]), meta.arr('array', [])]);
    expect(parseGGUF(writeGGUF([['n', d3]], [], 32, { nestedArrays: true })).get('n')).toEqual([
      [[-1, 2]],
      [],
    ]);
    // by default the writer refuses them: llama.cpp's reader rejects a file holding an array of arrays
    expect(formatErr(() => writeGGUF([['n', d3]], [])).hint).toMatch(/nestedArrays/);
    const deep = (levels: number) => {
      const r = new RawBytes().header(0, 1).str('n').u32(VT.array);
      for (let i = 0; i < levels; i++) r.u32(VT.array).u64(1);
      return r.u32(VT.u8).u64(0).build();
    };
    expect(parseGGUF(deep(2)).get('n')).toEqual([[[]]]);
    const e = formatErr(() => parseGGUF(deep(3)));
    expect(e.message).toMatch(/nested deeper/);
    expect(formatErr(() => parseGGUF(deep(100_000))).message).toMatch(/nested deeper/);
    expect(() => writeGGUF([['n', meta.arr('array', [d3])]], [], 32, { nestedArrays: true })).toThrow(
      FormatError,
    );
  });

  it('unknown value types (13, 2^32−1) as a value or an array item are rejected with the key', () => {
    for (const t of [13, 0xffffffff]) {
      const e = formatErr(() => parseGGUF(oneKV(t, (r) => r.zeros(16), 'my.key')));
      expect(e.field).toBe('my.key');
      expect(e.offset).toBe(24 + 8 + 6);
      expect(formatErr(() => parseGGUF(oneKV(VT.array, (r) => r.u32(t).u64(1).zeros(16)))).message).toMatch(
        /unknown value type/,
      );
    }
  });

  it('empty, duplicate and non-UTF-8 keys; non-UTF-8 string values; bool other than 0/1', () => {
    expect(formatErr(() => parseGGUF(oneKV(VT.u8, (r) => r.u8(1).zeros(8), ''))).message).toMatch(
      /empty metadata key/,
    );
    const dup = new RawBytes().header(0, 2).str('a').u32(VT.u8).u8(1).str('a').u32(VT.u8).u8(2).build();
    const e = formatErr(() => parseGGUF(dup));
    expect(e.field).toBe('a');
    expect(e.offset).toBe(24 + 9 + 4 + 1);
    // invalid UTF-8: a stray continuation byte, an overlong NUL, an encoded surrogate, a cut sequence
    for (const bad of [[0x80], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0x61, 0xe2, 0x82], [0xff]]) {
      const k = new RawBytes().header(0, 1).str(bad).u32(VT.u8).u8(1).build();
      expect(formatErr(() => parseGGUF(k)).message).toMatch(/UTF-8/);
      const v = oneKV(VT.string, (r) => r.str(bad));
      expect(formatErr(() => parseGGUF(v)).message).toMatch(/UTF-8/);
    }
    expect(formatErr(() => parseGGUF(oneKV(VT.bool, (r) => r.u8(2)))).field).toBe('k');
    // valid multi-byte keys pass
    expect(parseGGUF(oneKV(VT.u8, (r) => r.u8(7), 'ключ.✓')).get('ключ.✓')).toBe(7);
  });
});

describe('alignment', () => {
  const withAlign = (type: number, body: (r: RawBytes) => void) =>
    new RawBytes()
      .header(0, 1)
      .str('general.alignment')
      .u32(type)
      .bytes(
        (() => {
          const r = new RawBytes();
          body(r);
          return r.build();
        })(),
      )
      .build();
  it('absent: 32', () => {
    expect(parseGGUF(new RawBytes().header(0, 0).build()).alignment).toBe(32);
  });
  it('0, 13, 4, 2^31, 2 MiB and 2^32−1 are rejected naming general.alignment', () => {
    for (const a of [0, 13, 4, 2 ** 31, 2 ** 21, 0xffffffff]) {
      const e = formatErr(() => parseGGUF(withAlign(VT.u32, (r) => r.u32(a))));
      expect(e.field).toBe('general.alignment');
      expect(e.message).toMatch(/power of two/);
    }
  });
  it('wrong types (u64, i32, u16, string) are rejected', () => {
    for (const [t, body] of [
      [VT.u64, (r: RawBytes) => r.u64(32)],
      [VT.i32, (r: RawBytes) => r.u32(32)],
      [VT.u16, (r: RawBytes) => r.u8(32).u8(0)],
      [VT.string, (r: RawBytes) => r.str('32')],
    ] as const) {
      const e = formatErr(() => parseGGUF(withAlign(t, body)));
      expect(e.field).toBe('general.alignment');
      expect(e.message).toMatch(/must be u32/);
    }
  });
  it('8, 64 and 1 MiB are accepted (the data section starts on the boundary)', () => {
    for (const a of [8, 64, 1 << 20]) expect(parseGGUF(withAlign(VT.u32, (r) => r.u32(a))).alignment).toBe(a);
    const f = parseGGUF(tinyGGUF(1 << 20));
    expect(f.dataOffset).toBe(1 << 20);
    expect(f.tensors[1].offset).toBe(1 << 20);
  });
  it('the writer refuses bad alignments too', () => {
    for (const a of [0, 13, 4, 2 ** 21]) expect(() => writeGGUF([], [], a)).toThrow(FormatError);
    expect(() => writeGGUF([['general.alignment', meta.u64(32)]], [])).toThrow(FormatError);
  });
});

describe('tensor infos', () => {
  it('a valid hand-made file parses (the builder itself is right)', () => {
    const f = parseGGUF(withTensors([['w', [32, 2], GGMLType.Q8_0, 0]], 68 + 28));
    expect(f.tensor('w')!.byteSize).toBe(68);
  });
  it('empty, duplicate, non-UTF-8 and 64-byte names are rejected; 63 bytes is fine', () => {
    expect(formatErr(() => parseGGUF(withTensors([['', [4], 0, 0]], 32))).message).toMatch(/empty name/);
    const dup = formatErr(() =>
      parseGGUF(
        withTensors(
          [
            ['w', [4], 0, 0],
            ['w', [4], 0, 32],
          ],
          64,
        ),
      ),
    );
    expect(dup.field).toBe('w');
    expect(dup.message).toMatch(/duplicate tensor/);
    expect(formatErr(() => parseGGUF(withTensors([[[0x77, 0xff], [4], 0, 0]], 32))).message).toMatch(/UTF-8/);
    expect(formatErr(() => parseGGUF(withTensors([['n'.repeat(64), [4], 0, 0]], 32))).message).toMatch(
      /limit of 63/,
    );
    expect(parseGGUF(withTensors([['n'.repeat(63), [4], 0, 0]], 32)).tensors[0].name).toBe('n'.repeat(63));
    expect(() =>
      writeGGUF([], [{ name: 'n'.repeat(64), dims: [1], type: 0, data: new Uint8Array(4) }]),
    ).toThrow(FormatError);
  });
  it('n_dims 0, 5 and 2^32−1; dims 0, 2^64−1, 2^63 ("negative"); overflowing products', () => {
    for (const dims of [[], [1, 1, 1, 1, 1]]) {
      expect(formatErr(() => parseGGUF(withTensors([['w', dims, 0, 0]], 32))).field).toBe('w');
    }
    const nd = new RawBytes().header(1, 0).str('w').u32(0xffffffff).zeros(64).build();
    expect(formatErr(() => parseGGUF(nd)).message).toMatch(/dimensions/);
    for (const dims of [[0], [4, 0], [2n ** 64n - 1n], [2n ** 63n]]) {
      const e = formatErr(() => parseGGUF(withTensors([['w', dims, 0, 0]], 32)));
      expect(e.field).toBe('w');
      expect(e.message).toMatch(/dimension/);
    }
    for (const dims of [
      [2 ** 32, 2 ** 32],
      [2 ** 20, 2 ** 20, 2 ** 20],
      [2 ** 51, 4], // 2^53 elements
    ]) {
      expect(formatErr(() => parseGGUF(withTensors([['w', dims, 0, 0]], 32))).message).toMatch(/overflows/);
    }
    // 2^51 F32 elements: the product is safe but the byte size (2^53) is not
    expect(formatErr(() => parseGGUF(withTensors([['w', [2 ** 51], 0, 0]], 32))).message).toMatch(
      /byte size/,
    );
    // large but representable: rejected because the data lie past the end of the file
    expect(formatErr(() => parseGGUF(withTensors([['w', [2 ** 20, 2 ** 20], 0, 0]], 32))).message).toMatch(
      /past the end/,
    );
  });
  it('quantised rows that are not a multiple of 32 are rejected even when the total is', () => {
    for (const type of [GGMLType.Q8_0, GGMLType.Q4_0]) {
      const e = formatErr(() => parseGGUF(withTensors([['w', [48, 2], type, 0]], 128)));
      expect(e.message).toMatch(/not a multiple of 32/);
      expect(e.field).toBe('w');
    }
    expect(() => writeGGUF([], [{ name: 'w', dims: [48, 2], type: 8, data: new Uint8Array(102) }])).toThrow(
      FormatError,
    );
  });
  it('unsupported and out-of-range tensor types: UnsupportedError naming tensor and type', () => {
    for (const [type, name] of [
      [3, 'Q4_1'],
      [6, 'Q5_0'],
      [12, 'Q4_K'],
      [30, 'BF16'],
      [40, 'unknown type 40'],
      [0xffffffff, 'unknown type 4294967295'],
    ] as const) {
      const e = thrown(UnsupportedError, () =>
        parseGGUF(withTensors([['blk.0.attn_q.weight', [32], type, 0]], 64)),
      );
      expect(e.field).toBe('blk.0.attn_q.weight');
      expect(e.message).toContain(name);
      expect(e.message).toContain('blk.0.attn_q.weight');
      expect(e.offset).toBe(24 + 8 + 19 + 4 + 8);
    }
  });
  it('offsets unaligned, overlapping, past the end, near 2^64: rejected; out of order but disjoint: read', () => {
    const un = formatErr(() => parseGGUF(withTensors([['w', [4], 0, 4]], 64)));
    expect(un.message).toMatch(/not a multiple of the alignment/);
    const ov = formatErr(() =>
      parseGGUF(
        withTensors(
          [
            ['a', [16], 0, 0],
            ['b', [4], 0, 32],
          ],
          96,
        ),
      ),
    );
    expect(ov.message).toMatch(/overlaps/);
    expect(ov.field).toBe('b');
    const same = formatErr(() =>
      parseGGUF(
        withTensors(
          [
            ['a', [4], 0, 0],
            ['b', [4], 0, 0],
          ],
          64,
        ),
      ),
    );
    expect(same.message).toMatch(/overlaps/);
    for (const off of [2n ** 64n - 32n, 2n ** 63n, 2n ** 32n, 1024n]) {
      const e = formatErr(() => parseGGUF(withTensors([['w', [4], 0, off]], 64)));
      expect(e.message).toMatch(/past the end/);
      expect(e.field).toBe('w');
    }
    // in bounds at the start, ends past the end
    const end = formatErr(() => parseGGUF(withTensors([['w', [20], 0, 32]], 64)));
    expect(end.message).toMatch(/ends past the end/);
    expect(end.hint).toMatch(/truncated/);
    const f = parseGGUF(
      withTensors(
        [
          ['late', [4], 0, 32],
          ['early', [4], 0, 0],
        ],
        64,
      ),
    );
    expect(f.tensor('late')!.data.byteOffset - f.tensor('early')!.data.byteOffset).toBe(32);
  });
});

describe('truncation', () => {
  for (const [name, make] of [
    ['micro', microGGUF],
    ['tiny (every value and tensor type)', () => tinyGGUF()],
  ] as const) {
    it(`${name} file cut at every byte offset: FormatError each time`, () => {
      const full = make();
      parseGGUF(full);
      for (let n = 0; n < full.length; n++) {
        // a fresh copy, so that a read past `n` could not see the original bytes
        const cut = full.slice(0, n);
        const e = formatErr(() => parseGGUF(cut));
        expect(e.offset === undefined || e.offset <= full.length).toBe(true);
        expect(e.hint).toBeDefined();
      }
    });
  }
});

describe('writer validation', () => {
  it('refuses values that do not fit their type, and bad tensors, with FormatError naming the field', () => {
    const bad: Array<[string, GGUFMetaValue]> = [
      ['u8', meta.u8(256)],
      ['i8', meta.i8(-129)],
      ['u32', meta.u32(-1)],
      ['i32', meta.i32(1.5)],
      ['f32', { type: 'f32', value: '1' }],
      ['bool', { type: 'bool', value: 1 }],
      ['u64', { type: 'u64', value: -1n }],
      ['str', meta.str('\ud800')],
      ['arr', meta.arr('u8', [1, 300])],
      ['arr2', meta.arr('array', [1])],
      ['arr3', meta.arr('array', [meta.arr('u8', [1])])],
      ['type', { type: 'float' as any, value: 1 }],
    ];
    for (const kv of bad) expect(formatErr(() => writeGGUF([kv], [])).field).toBe(kv[0]);
    expect(() =>
      writeGGUF(
        [
          ['a', meta.u8(1)],
          ['a', meta.u8(1)],
        ],
        [],
      ),
    ).toThrow(FormatError);
    expect(() => writeGGUF([['', meta.u8(1)]], [])).toThrow(FormatError);
    expect(() => meta.u64(2 ** 60)).toThrow(FormatError);
    const t = (o: object) => ({ name: 'w', dims: [4], type: 0, data: new Uint8Array(16), ...o });
    expect(() => writeGGUF([], [t({}), t({})])).toThrow(/duplicate/);
    expect(() => writeGGUF([], [t({ data: new Uint8Array(15) })])).toThrow(FormatError);
    expect(() => writeGGUF([], [t({ dims: [0] })])).toThrow(FormatError);
    expect(() => writeGGUF([], [t({ dims: [1, 1, 1, 1, 4] })])).toThrow(FormatError);
    expect(() => writeGGUF([], [t({ type: 30 })])).toThrow(UnsupportedError);
    expect(() => writeGGUF([], [t({ name: '' })])).toThrow(FormatError);
  });
  it('a tiny llama and gpt2 model round-trip through writer and reader (weights bit-exact)', () => {
    for (const arch of ['llama', 'gpt2'] as const) {
      for (const type of [GGMLType.F32, GGMLType.F16, GGMLType.Q8_0, GGMLType.Q4_0]) {
        const f = parseGGUF(tinyModelGGUF({ arch, type, seed: 5 }));
        expect(f.require('general.architecture')).toBe(arch);
        const emb = f.tensor('token_embd.weight')!;
        expect(emb.type).toBe(type);
        const want = fromF32(type, randomF32(emb.dims[0] * emb.dims[1], 5, 1 / 8));
        expect(emb.data).toEqual(want);
      }
    }
  });
});

describe('strict UTF-8 of keys and strings', () => {
  // a file with one string KV of `len` bytes; the bytes are patched in place for each case
  const file = (len: number) => {
    const b = new RawBytes().header(0, 1).str('k').u32(VT.string).u64(len).zeros(len).build();
    return { b, at: b.length - len };
  };
  const fatal = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }); // GGUF strings keep a BOM
  const check = (f: { b: Uint8Array; at: number }, seq: ArrayLike<number>) => {
    f.b.set(seq as number[], f.at);
    let want: string | undefined;
    try {
      want = fatal.decode(f.b.subarray(f.at));
    } catch {
      want = undefined;
    }
    let got: string | undefined;
    try {
      got = parseGGUF(f.b).get<string>('k');
    } catch (e) {
      expect(e).toBeInstanceOf(FormatError);
      got = undefined;
    }
    if (got !== want)
      throw new Error(`bytes ${Array.from(seq, (x) => x.toString(16))}: got ${got}, want ${want}`);
  };
  it("agrees with TextDecoder's fatal mode on every 1- and 2-byte string", () => {
    const f1 = file(1);
    for (let a = 0; a < 256; a++) check(f1, [a]);
    const f2 = file(2);
    for (let a = 0; a < 256; a++) for (let b = 0; b < 256; b++) check(f2, [a, b]);
  });
  it('agrees on every 3-byte string led by 0xE0–0xF4 with chosen tails, and 60,000 random 3–80-byte strings', () => {
    const tails = [0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xff];
    const f3 = file(3);
    for (let a = 0xe0; a <= 0xf4; a++)
      for (let b = 0x70; b < 0xd0; b++) for (const c of tails) check(f3, [a, b, c]);
    const rnd = seededRandom(17);
    const pieces = [
      [0x61],
      [0xc3, 0xa9],
      [0xe2, 0x96, 0x81],
      [0xf0, 0x9f, 0x98, 0x80],
      [0xed, 0x9f, 0xbf],
      [0xf4, 0x8f, 0xbf, 0xbf],
    ];
    const files = new Map<number, { b: Uint8Array; at: number }>();
    for (let i = 0; i < 60000; i++) {
      const seq: number[] = [];
      const want = 3 + Math.floor(rnd() * (i % 10 === 0 ? 78 : 12));
      while (seq.length < want) {
        if (rnd() < 0.15) seq.push(Math.floor(rnd() * 256));
        else seq.push(...pieces[Math.floor(rnd() * pieces.length)]);
      }
      seq.length = want;
      if (!files.has(want)) files.set(want, file(want));
      check(files.get(want)!, seq);
    }
  });
});

it('a leading BOM is kept in short and long strings (a token may be exactly U+FEFF)', () => {
  for (const s of ['\ufeff', `\ufeff${'x'.repeat(100)}`])
    expect(parseGGUF(writeGGUF([['k', meta.str(s)]], [])).get('k')).toBe(s);
});

describe('parseGGUFHeader (validate from a prefix, before downloading the weights)', () => {
  it('every prefix: undefined until the header is complete, then the same metadata and tensor infos', () => {
    const full = tinyGGUF();
    const ref = parseGGUF(full);
    let firstComplete = -1;
    for (let p = 0; p <= full.length; p++) {
      const h = parseGGUFHeader(full.slice(0, p), full.length);
      if (h === undefined) {
        expect(firstComplete).toBe(-1); // once complete, every longer prefix is complete too
        continue;
      }
      if (firstComplete < 0) firstComplete = p;
      expect(h.dataOffset).toBe(ref.dataOffset);
      expect(h.metadata).toEqual(ref.metadata);
      expect(h.tensors.map(({ data, ...t }) => t)).toEqual(ref.tensors.map(({ data, ...t }) => t));
      // views only when the whole file was given
      for (const t of h.tensors) expect(t.data.length).toBe(p === full.length ? t.byteSize : 0);
    }
    // the header ends where the last tensor info ends: before the padding to the data section
    expect(firstComplete).toBeGreaterThan(ref.dataOffset - 32);
    expect(firstComplete).toBeLessThanOrEqual(ref.dataOffset);
  });
  it('checks the tensors against the total length and rejects what the prefix already shows is bad', () => {
    const full = tinyGGUF();
    const head = full.slice(0, parseGGUF(full).dataOffset);
    expect(formatErr(() => parseGGUFHeader(head, full.length - 1)).message).toMatch(/ends past the end/);
    const bad = head.slice();
    bad[4] = 9;
    expect(() => parseGGUFHeader(bad.subarray(0, 8), full.length)).toThrow(UnsupportedError);
    // a count that cannot fit the total length, seen in the first 24 bytes
    const big = new RawBytes().header(1000, 0).build();
    expect(formatErr(() => parseGGUFHeader(big, 24 + 1000)).message).toMatch(/cannot fit/);
    expect(() => parseGGUFHeader(full, full.length - 1)).toThrow(FormatError);
  });
});

it('the writer stores strings as TextEncoder does (ASCII, 2/3/4-byte characters, at buffer boundaries)', () => {
  const rnd = seededRandom(23);
  const chars = ['a', '~', 'é', '▁', '模', '😀', '\u0000', '\ufeff'];
  const strs = Array.from({ length: 5000 }, () =>
    Array.from({ length: Math.floor(rnd() * 40) }, () => chars[Math.floor(rnd() * chars.length)]).join(''),
  );
  strs.push('x'.repeat(30000), '😀'.repeat(20000)); // past one 64 KiB writer chunk
  const bytes = writeGGUF([['s', meta.arr('string', strs)]], []);
  // walk the array by hand: u32 item type, u64 count, then (u64 length, bytes) per string
  const dv = new DataView(bytes.buffer, bytes.byteOffset);
  let p = 24 + 8 + 1 + 4 + 4 + 8;
  const enc = new TextEncoder();
  for (const s of strs) {
    const want = enc.encode(s);
    expect(Number(dv.getBigUint64(p, true))).toBe(want.length);
    expect(bytes.subarray(p + 8, p + 8 + want.length)).toEqual(want);
    p += 8 + want.length;
  }
  expect(parseGGUF(bytes).get('s')).toEqual(strs);
});

it('array items over all metadata are capped (4M), so small values cannot blow up the JS heap', () => {
  // k u8 arrays of 900,000 items (4.5 MB of file for k = 5, ~36+ MB as JS arrays)
  const n = 900_000;
  const file = (k: number) => {
    const parts = [new RawBytes().header(0, k).build()];
    for (let i = 0; i < k; i++) {
      parts.push(new RawBytes().str(`a${i}`).u32(VT.array).u32(VT.u8).u64(n).build(), new Uint8Array(n));
    }
    const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
    let o = 0;
    for (const p of parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  };
  const e = formatErr(() => parseGGUF(file(5)));
  expect(e.field).toBe('a4');
  expect(e.message).toMatch(/over the limit of 4000000/);
  expect(parseGGUF(file(4)).get<number[]>('a3')!.length).toBe(n);
});
