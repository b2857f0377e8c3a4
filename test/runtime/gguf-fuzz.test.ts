// Seeded mutation fuzzing of the GGUF reader: small valid files, mutated a few thousand ways; each
// must parse or throw an EdgeLMError (nothing else), parseGGUFHeader on a random prefix must agree,
// and whatever parses must be self-consistent:
// every tensor view inside the input, aligned, disjoint, of the size its type and dims imply.
import { describe, expect, it } from 'vitest';
import { EdgeLMError } from '../../runtime/errors.ts';
import { tensorByteSize } from '../../runtime/ggml.ts';
import { type GGUFFile, parseGGUF, parseGGUFHeader } from '../../runtime/gguf.ts';
import { microGGUF, seededRandom, tinyGGUF, tinyModelGGUF } from '../helpers/gguf-fixtures.ts';

const INTERESTING_U64 = [
  0n,
  1n,
  2n ** 64n - 1n,
  2n ** 63n,
  2n ** 63n - 1n,
  0xffffffffn,
  2n ** 32n,
  100_001n,
  1_000_001n,
];
const INTERESTING_U32 = [0, 1, 2, 3, 8, 9, 12, 13, 30, 31, 32, 64, 0x7fffffff, 0x80000000, 0xffffffff];

function mutate(src: Uint8Array, rnd: () => number): Uint8Array {
  const pick = (n: number) => Math.floor(rnd() * n);
  let b = src.slice();
  const nOps = 1 + pick(3);
  for (let k = 0; k < nOps; k++) {
    const at = pick(b.length);
    switch (pick(8)) {
      case 0: // flip a bit
        b[at] ^= 1 << pick(8);
        break;
      case 1: // random byte
        b[at] = pick(256);
        break;
      case 2: {
        // an interesting u64 (counts, lengths, dims, offsets)
        const v = INTERESTING_U64[pick(INTERESTING_U64.length)];
        if (at + 8 <= b.length) new DataView(b.buffer).setBigUint64(at, v, true);
        break;
      }
      case 3: {
        // an interesting u32 (types, versions, n_dims, alignment)
        const v = INTERESTING_U32[pick(INTERESTING_U32.length)];
        if (at + 4 <= b.length) new DataView(b.buffer).setUint32(at, v, true);
        break;
      }
      case 4: // truncate
        b = b.slice(0, at);
        break;
      case 5: {
        // delete a few bytes
        const n = 1 + pick(8);
        b = Uint8Array.from([...b.subarray(0, at), ...b.subarray(at + n)]);
        break;
      }
      case 6: {
        // insert a few random bytes
        const ins = Array.from({ length: 1 + pick(8) }, () => pick(256));
        b = Uint8Array.from([...b.subarray(0, at), ...ins, ...b.subarray(at)]);
        break;
      }
      default: {
        // copy a chunk of the file over another place (duplicates names, keys, infos)
        const from = pick(b.length);
        const n = Math.min(1 + pick(32), b.length - from, b.length - at);
        b.copyWithin(at, from, from + n);
      }
    }
  }
  return b;
}

function checkConsistent(f: GGUFFile, input: Uint8Array): void {
  const spans: Array<[number, number]> = [];
  for (const t of f.tensors) {
    const n = t.dims.reduce((a, d) => a * d, 1);
    expect(t.byteSize).toBe(tensorByteSize(t.type, n));
    expect(t.data.buffer).toBe(input.buffer);
    expect(t.data.length).toBe(t.byteSize);
    const start = t.data.byteOffset - input.byteOffset;
    expect(start).toBe(f.dataOffset + t.offset);
    expect(start % f.alignment).toBe(0);
    expect(start + t.byteSize).toBeLessThanOrEqual(input.length);
    expect(t.name.length).toBeGreaterThan(0);
    spans.push([start, start + t.byteSize]);
  }
  spans.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < spans.length; i++) expect(spans[i][0]).toBeGreaterThanOrEqual(spans[i - 1][1]);
}

describe('GGUF mutation fuzzing', () => {
  for (const [name, seed, count, make] of [
    ['micro file', 1, 3000, microGGUF],
    ['tiny file with every value and tensor type', 2, 2000, () => tinyGGUF()],
    [
      'tiny llama model (Q8_0)',
      3,
      500,
      () => tinyModelGGUF({ dim: 32, nLayers: 1, ffnDim: 32, vocab: 260, type: 8 }),
    ],
  ] as const) {
    it(`${name}: ${count} seeded mutations each parse or throw an EdgeLMError`, () => {
      const src = make();
      const rnd = seededRandom(seed);
      let parsed = 0;
      const codes = new Map<string, number>();
      for (let i = 0; i < count; i++) {
        const m = mutate(src, rnd);
        let f: GGUFFile | undefined;
        let full: unknown;
        try {
          f = parseGGUF(m);
        } catch (e) {
          full = e;
        }
        // the header-only reader, from a random prefix, agrees: not yet known, or the same verdict
        const cut = Math.floor(rnd() * (m.length + 1));
        let head: GGUFFile | undefined;
        let headErr: unknown;
        try {
          head = parseGGUFHeader(m.slice(0, cut), m.length);
        } catch (e) {
          headErr = e;
        }
        if (headErr) expect((headErr as Error).message).toBe((full as Error | undefined)?.message);
        if (head) {
          expect(full).toBeUndefined();
          expect(head.tensors.map(({ data, ...t }) => t)).toEqual(f!.tensors.map(({ data, ...t }) => t));
        }
        if (full) {
          const e = full;
          if (!(e instanceof EdgeLMError)) {
            throw new Error(`mutation ${i} (seed ${seed}) threw a non-EdgeLMError: ${String(e)}`);
          }
          expect(e.offset !== undefined || e.field !== undefined).toBe(true);
          codes.set(e.code, (codes.get(e.code) ?? 0) + 1);
          continue;
        }
        parsed++;
        checkConsistent(f!, m);
        // values are readable without throwing
        for (const k of f!.metadata.keys()) f!.get(k);
      }
      // the fuzzer reaches both outcomes (so it is neither all-broken nor all-benign)
      expect(parsed).toBeGreaterThan(0);
      expect(codes.get('invalid_format') ?? 0).toBeGreaterThan(count / 10);
    });
  }
});
