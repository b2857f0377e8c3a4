// f16 KV cache kernels (kvType 'f16'), both builds: the write rounds every f32 to the correctly
// rounded f16 (checked against an independent float64 rounding below), the read converts every f16
// exactly, and attention / attentionRows over f16 K/V match a float64 reference computed on the
// f16-rounded K/V.
import { describe, expect, it } from 'vitest';
import { OptionsError } from '../../runtime/errors.ts';
import type { Kernels, KvType } from '../../runtime/kernels.ts';
import { randomF32, refAttention, rng, worst } from '../helpers/ref-kernels.ts';
import { builds, f32, load, put, putI32 } from './setup.ts';

// ---- an independent f16 model, in float64 arithmetic (no bit tricks) ----

/** x (an f32) rounded to the nearest f16 value, ties to even; finite |x| > 65504 → ±65504. */
function f16Round(x: number): number {
  if (Number.isNaN(x) || !Number.isFinite(x)) return x;
  if (x === 0) return x; // ±0 kept
  const a = Math.abs(x);
  const sign = x < 0 ? -1 : 1;
  if (a > 65504) return sign * 65504;
  // the exponent of a, at least -14 (below that the f16 spacing stays 2^-24)
  let e = Math.max(-14, Math.floor(Math.log2(a)));
  while (e > -14 && 2 ** e > a) e--;
  while (2 ** (e + 1) <= a) e++;
  const ulp = 2 ** (e - 10);
  const q = a / ulp; // exact: a power-of-two scaling
  const fl = Math.floor(q);
  const d = q - fl;
  const n = d > 0.5 ? fl + 1 : d < 0.5 ? fl : fl % 2 === 0 ? fl : fl + 1;
  const r = n * ulp;
  return r === 0 ? sign * 0 : sign * r; // an underflow to zero keeps the sign
}

/** the value of f16 bits h */
function f16Value(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 31) return m === 0 ? s * Number.POSITIVE_INFINITY : Number.NaN;
  return e === 0 ? s * m * 2 ** -24 : s * (1 + m / 1024) * 2 ** (e - 15);
}

const F16: KvType = 'f16';

interface Cache {
  kPool: number;
  vPool: number;
  table: number;
}

// an f16 pool of `nBlocks` blocks and a block table that visits them in a scrambled order
function makeCache(k: Kernels, nBlocks: number, nKv: number, hd: number, bs: number, seed: number): Cache {
  const blockBytes = nKv * bs * hd * 2;
  const kPool = k.alloc(nBlocks * blockBytes);
  const vPool = k.alloc(nBlocks * blockBytes);
  const order = Array.from({ length: nBlocks }, (_, i) => i);
  const r = rng(seed);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return { kPool, vPool, table: putI32(k, order) };
}

const rounded = (a: Float32Array) => Float64Array.from(a, f16Round);

// the f32 bit patterns of the write test: edges, ties, subnormals, the clamp, random patterns
function writeValues(): Uint32Array {
  const v: number[] = [0, -0, 65504, -65504, 65505, 65519, 65519.998, 65520, -65520, 1e10, -3.4e38];
  v.push(
    Number.POSITIVE_INFINITY,
    Number.NEGATIVE_INFINITY,
    2 ** -24,
    2 ** -25,
    2 ** -26,
    -(2 ** -25),
    2 ** -14,
  );
  v.push(2 ** -149, -(2 ** -149), 1.1754942e-38, 3 * 2 ** -26, 5 * 2 ** -26);
  // every f16 value, the midpoints to its neighbour (ties) and the f32s either side of each midpoint
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  const near = (x: number, d: number) => {
    f[0] = x;
    u[0] += d;
    return f[0];
  };
  for (let h = 0; h < 0x7c00; h++) {
    const a = f16Value(h);
    const b = f16Value(h + 1);
    const mid = (a + b) / 2; // exact in f32: an f16 midpoint has 12 significant bits
    for (const s of [1, -1]) {
      v.push(s * a, s * mid);
      if (mid > 0) v.push(s * near(mid, 1), s * near(mid, -1));
    }
  }
  // random f32 bit patterns (exponents from subnormal to 2^31, NaNs and infinities included)
  const bits = new Uint32Array(f32(v).buffer);
  // random f32 bit patterns (exponents from subnormal to 2^127, NaNs and infinities included), as
  // bits: a NaN's sign and payload never pass through a JS number
  const r = rng(77);
  const rand = Uint32Array.from({ length: 20000 }, () => Math.floor(r() * 2 ** 32));
  const out = new Uint32Array(bits.length + rand.length + 2);
  out.set(bits);
  out.set(rand, bits.length);
  out[out.length - 2] = 0x7fc00001; // a quiet NaN with payload
  out[out.length - 1] = 0xff800001; // a negative signalling NaN
  return out;
}

for (const b of builds) {
  describe(`f16 KV attention (${b.name})`, () => {
    const k = load(b.file);
    const r = rng(11);

    // hd 1024: every value through the 4-lane write; hd 6: 4 through it and 2 through the scalar tail
    it.each([1024, 6])(
      'the write stores every f32 as the correctly rounded f16 (ties to even, clamp at ±65504, ±0, ±inf, NaN), head dim %i',
      (hd) => {
        const mark = k.mark();
        const vals = writeValues(); // one position of one head takes hd values; block size 1
        const rows = Math.ceil(vals.length / hd);
        const padded = new Uint32Array(rows * hd);
        padded.set(vals);
        const table = putI32(
          k,
          Array.from({ length: rows }, (_, i) => rows - 1 - i),
        );
        const kPool = k.alloc(rows * hd * 2);
        const vPool = k.alloc(rows * hd * 2);
        const src = k.alloc(padded.length * 4);
        new Uint32Array(k.memory.buffer, src, padded.length).set(padded);
        const asF32 = new Float32Array(vals.buffer);
        // half the rows through kvWrite, the rest one by one through kvWriteRows
        const half = rows >> 1;
        k.kvWrite(kPool, vPool, table, 0, half, src, src, 1, hd, 1, F16);
        const tables = putI32(k, new Array(rows - half).fill(table));
        const positions = putI32(
          k,
          Array.from({ length: rows - half }, (_, i) => half + i),
        );
        if (rows > half) {
          k.kvWriteRows(
            kPool,
            vPool,
            tables,
            positions,
            rows - half,
            src + half * hd * 4,
            src + half * hd * 4,
            1,
            hd,
            1,
            F16,
          );
        }
        const kh = new Uint16Array(k.memory.buffer, kPool, rows * hd);
        const vh = new Uint16Array(k.memory.buffer, vPool, rows * hd);
        let bad = 0;
        let first = '';
        for (let i = 0; i < vals.length; i++) {
          const pos = Math.floor(i / hd);
          const at = (rows - 1 - pos) * hd + (i % hd); // the table maps position p to block rows-1-p
          const x = asF32[i];
          const want = f16Round(x);
          for (const h of [kh[at], vh[at]]) {
            const got = f16Value(h);
            // a NaN stays a NaN with its sign; everything else the exact value (Object.is: ±0 apart)
            const ok = Number.isNaN(want)
              ? Number.isNaN(got) && (h & 0x8000) === ((vals[i] >>> 16) & 0x8000)
              : Object.is(got, want);
            if (!ok) {
              bad++;
              if (!first) first = `${x} → 0x${h.toString(16)} (${got}), want ${want}`;
            }
          }
        }
        // exact: every value, both pools
        expect(bad, first).toBe(0);
        // NaN keeps its sign: the negative signalling NaN written last
        const last = vals.length - 1;
        const lastAt = (rows - 1 - Math.floor(last / hd)) * hd + (last % hd);
        expect(kh[lastAt] & 0xfc00).toBe(0xfc00);
        expect(kh[lastAt] & 0x3ff).not.toBe(0);
        k.release(mark);
      },
    );

    it('the read converts every f16 bit pattern exactly (normals, subnormals, ±inf, NaN)', () => {
      const mark = k.mark();
      // 64 KV heads × 1024 dims at one position = all 65536 patterns as values; keys 0, so a single
      // position's weight is exactly 1 and the output is the value itself
      const nKv = 64;
      const hd = 1024;
      const kPool = k.alloc(nKv * hd * 2);
      const vPool = k.alloc(nKv * hd * 2);
      const vh = new Uint16Array(k.memory.buffer, vPool, nKv * hd);
      for (let h = 0; h < 65536; h++) vh[h] = h;
      const table = putI32(k, [0]);
      const q = put(k, randomF32(r, nKv * hd));
      const out = k.alloc(nKv * hd * 4);
      k.attention(out, q, 1, kPool, vPool, table, 0, nKv, nKv, hd, 1, F16);
      const got = k.f32(out, nKv * hd);
      let bad = 0;
      let first = '';
      for (let h = 0; h < 65536; h++) {
        const want = f16Value(h);
        // 0·acc + 1·v turns −0 into +0; every other value comes back as is
        const ok = Number.isNaN(want) ? Number.isNaN(got[h]) : got[h] === want;
        if (!ok) {
          bad++;
          if (!first) first = `0x${h.toString(16)} → ${got[h]}, want ${want}`;
        }
      }
      expect(bad, first).toBe(0);
      k.release(mark);
    });

    const shapes = [
      // nHeads, nKv, hd, bs, T
      [1, 1, 2, 4, 1],
      [2, 2, 6, 4, 9], // hd % 4 = 2: the scalar tails
      [4, 2, 8, 16, 33],
      [4, 1, 64, 16, 70],
      [3, 3, 64, 32, 100],
      [8, 2, 16, 16, 37], // GQA: four query heads per KV head
      [6, 2, 36, 8, 45], // hd 36: 32 in the 16-wide V loop, 4 in its tail; GQA 3
      [40, 1, 512, 4, 5], // 40 heads on one KV head: processed 32 + 8 (accumulator space)
    ];
    for (const [nHeads, nKv, hd, bs, T] of shapes) {
      it(`prefill, chunked prefill and decode: heads ${nHeads}/${nKv}, hd ${hd}, block ${bs}, T ${T}`, () => {
        const mark = k.mark();
        const nBlocks = Math.ceil(T / bs) + 1;
        const c = makeCache(k, nBlocks, nKv, hd, bs, T);
        const kAll = f32(randomF32(r, T * nKv * hd, 2));
        const vAll = f32(randomF32(r, T * nKv * hd));
        const q = f32(randomF32(r, T * nHeads * hd, 2));
        const kRef = rounded(kAll);
        const vRef = rounded(vAll);
        const split = Math.floor(T / 3);
        const kv = (a: Float32Array, from: number, to: number) =>
          put(k, a.subarray(from * nKv * hd, to * nKv * hd));
        k.kvWrite(
          c.kPool,
          c.vPool,
          c.table,
          0,
          split,
          kv(kAll, 0, split),
          kv(vAll, 0, split),
          nKv,
          hd,
          bs,
          F16,
        );
        k.kvWrite(
          c.kPool,
          c.vPool,
          c.table,
          split,
          T - split,
          kv(kAll, split, T),
          kv(vAll, split, T),
          nKv,
          hd,
          bs,
          F16,
        );
        const out = k.alloc(T * nHeads * hd * 4);
        const rowF = nHeads * hd;
        const check = (pos0: number, nQ: number, what: string) => {
          const qp = put(k, q.subarray(pos0 * rowF, (pos0 + nQ) * rowF));
          k.attention(out, qp, nQ, c.kPool, c.vPool, c.table, pos0, nHeads, nKv, hd, bs, F16);
          const want = refAttention(q.subarray(pos0 * rowF), kRef, vRef, nQ, pos0, nHeads, nKv, hd);
          // the reference sees the same f16-rounded K/V, so only the f32 arithmetic differs, as in
          // attention.test.ts: 2e-5 absolute on outputs bounded by max|v| ≤ 1
          const res = worst(k.f32(out, nQ * rowF), want, () => 2e-5);
          expect(res.ratio, `${what} at ${res.index}: ${res.got} vs ${res.want}`).toBeLessThanOrEqual(1);
        };
        check(0, T, 'prefill');
        if (T > 2) check(split, T - split, 'chunked prefill');
        check(T - 1, 1, 'decode');
        // the f16 rounding is visible: against unrounded K/V the error is larger than 2e-5 somewhere
        // (so the reference above really is the rounded one); skipped for the tiny shape
        if (T * hd >= 64) {
          const qp = put(k, q.subarray(0, T * rowF));
          k.attention(out, qp, T, c.kPool, c.vPool, c.table, 0, nHeads, nKv, hd, bs, F16);
          const exact = refAttention(q, kAll, vAll, T, 0, nHeads, nKv, hd);
          expect(worst(k.f32(out, T * rowF), exact, () => 2e-5).ratio).toBeGreaterThan(1);
        }
        k.release(mark);
      });
    }

    it('attentionRows: beams sharing prefix blocks, partial blocks, GQA — each row = attention and = the reference', () => {
      const [nHeads, nKv, hd, bs] = [8, 2, 32, 4];
      const mark = k.mark();
      const prefix = 10; // two full blocks and half of a third, shared by rows 0..2
      const extra = [0, 3, 7, 1]; // row b's own positions after the prefix (row 3: a separate sequence)
      const B = extra.length;
      const nBlocks = 32;
      const blockBytes = nKv * bs * hd * 2;
      const kPool = k.alloc(nBlocks * blockBytes);
      const vPool = k.alloc(nBlocks * blockBytes);
      let next = 0;
      const kRows: Float32Array[] = [];
      const vRows: Float32Array[] = [];
      const shared = [next++, next++, next++];
      const kPre = f32(randomF32(r, prefix * nKv * hd, 2));
      const vPre = f32(randomF32(r, prefix * nKv * hd));
      const row = nKv * hd;
      const sharedTable = putI32(k, shared);
      k.kvWrite(kPool, vPool, sharedTable, 0, prefix, put(k, kPre), put(k, vPre), nKv, hd, bs, F16);
      const tablePtrs: number[] = [];
      const positions: number[] = [];
      for (let b = 0; b < B; b++) {
        const own = b < 3;
        const len = (own ? prefix : 6) + extra[b];
        const blocks = own ? [...shared] : [];
        const kSeq = new Float32Array(len * row);
        const vSeq = new Float32Array(len * row);
        if (own) {
          kSeq.set(kPre);
          vSeq.set(vPre);
        }
        const start = own ? prefix : 0;
        // copy-on-write of the shared third block: a private copy of its first two positions
        if (own && extra[b] > 0) {
          const copy = next++;
          new Uint8Array(k.memory.buffer).copyWithin(
            kPool + copy * blockBytes,
            kPool + shared[2] * blockBytes,
            kPool + (shared[2] + 1) * blockBytes,
          );
          new Uint8Array(k.memory.buffer).copyWithin(
            vPool + copy * blockBytes,
            vPool + shared[2] * blockBytes,
            vPool + (shared[2] + 1) * blockBytes,
          );
          blocks[2] = copy;
        }
        while (blocks.length * bs < len) blocks.push(next++);
        const t = putI32(k, blocks);
        const kNew = f32(randomF32(r, (len - start) * row, 2));
        const vNew = f32(randomF32(r, (len - start) * row));
        kSeq.set(kNew, start * row);
        vSeq.set(vNew, start * row);
        if (len > start)
          k.kvWrite(kPool, vPool, t, start, len - start, put(k, kNew), put(k, vNew), nKv, hd, bs, F16);
        kRows.push(kSeq);
        vRows.push(vSeq);
        tablePtrs.push(t);
        positions.push(len - 1);
      }
      const q = f32(randomF32(r, B * nHeads * hd, 2));
      const qp = put(k, q);
      const out = k.alloc(B * nHeads * hd * 4);
      k.attentionRows(
        out,
        qp,
        B,
        kPool,
        vPool,
        putI32(k, tablePtrs),
        putI32(k, positions),
        nHeads,
        nKv,
        hd,
        bs,
        F16,
      );
      const got = Float32Array.from(k.f32(out, B * nHeads * hd));
      const one = k.alloc(nHeads * hd * 4);
      for (let b = 0; b < B; b++) {
        const qb = q.subarray(b * nHeads * hd, (b + 1) * nHeads * hd);
        const want = refAttention(qb, rounded(kRows[b]), rounded(vRows[b]), 1, positions[b], nHeads, nKv, hd);
        const gb = got.subarray(b * nHeads * hd, (b + 1) * nHeads * hd);
        const res = worst(gb, want, () => 2e-5);
        expect(res.ratio, `row ${b} at ${res.index}: ${res.got} vs ${res.want}`).toBeLessThanOrEqual(1);
        // bit-identical to a per-row attention call
        k.attention(one, put(k, qb), 1, kPool, vPool, tablePtrs[b], positions[b], nHeads, nKv, hd, bs, F16);
        const single = k.f32(one, nHeads * hd);
        expect(
          gb.every((x, i) => Object.is(x, single[i])),
          `row ${b} differs from attention`,
        ).toBe(true);
      }
      k.release(mark);
    });

    for (const [nHeads, nKv] of [
      [4, 2], // two heads per tile: converted to f32 once
      [2, 2], // one head per tile: the fast read, or the exact one where the tile holds ±inf/NaN
    ]) {
      it(`heads ${nHeads}/${nKv}: = the f32 kernels on the f16-rounded K/V, bit for bit, with ±inf / NaN in some tiles and not in others`, () => {
        // a tile read by several (row, head) pairs is converted to f32 once; one read by a single head
        // takes the fast read (values × 2^-112, queries × 2^56, weights × 2^112: exact power-of-two
        // scalings of the same products and sums) unless it holds ±inf/NaN (then the exact
        // conversion); every way, each f32 operation is the f32 kernel's on the same values. Two rows
        // share a block: row A ends before the specials that row B reads.
        const [hd, bs] = [20, 16]; // hd 20: 16 in the wide V loop, 4 in its tail
        const mark = k.mark();
        const T = 30;
        const kAll = f32(randomF32(r, T * nKv * hd, 2));
        const vAll = f32(randomF32(r, T * nKv * hd));
        const row = nKv * hd;
        kAll[27 * row + 3] = Number.NaN; // position 27, KV head 0: a NaN key element
        vAll[28 * row + hd + 5] = Number.POSITIVE_INFINITY; // position 28, KV head 1: an infinite value
        kAll[29 * row + hd + 7] = 1e6; // beyond 65504: clamped on the f16 write
        const c = makeCache(k, 2, nKv, hd, bs, 5);
        k.kvWrite(c.kPool, c.vPool, c.table, 0, T, put(k, kAll), put(k, vAll), nKv, hd, bs, F16);
        // the same values, rounded by the test, in an f32 cache
        const c32 = { kPool: k.alloc(2 * nKv * bs * hd * 4), vPool: k.alloc(2 * nKv * bs * hd * 4) };
        k.kvWrite(
          c32.kPool,
          c32.vPool,
          c.table,
          0,
          T,
          put(k, f32(rounded(kAll))),
          put(k, f32(rounded(vAll))),
          nKv,
          hd,
          bs,
        );
        const q = put(k, randomF32(r, 2 * nHeads * hd, 2));
        const tables = putI32(k, [c.table, c.table]);
        const positions = putI32(k, [20, T - 1]);
        const n = 2 * nHeads * hd;
        const out16 = k.alloc(n * 4);
        const out32 = k.alloc(n * 4);
        k.attentionRows(out16, q, 2, c.kPool, c.vPool, tables, positions, nHeads, nKv, hd, bs, F16);
        k.attentionRows(out32, q, 2, c32.kPool, c32.vPool, tables, positions, nHeads, nKv, hd, bs);
        const same = (a: Float32Array, b: Float32Array) =>
          a.findIndex((x, i) => !(Object.is(x, b[i]) || (Number.isNaN(x) && Number.isNaN(b[i]))));
        const rows16 = Float32Array.from(k.f32(out16, n));
        expect(same(rows16, k.f32(out32, n)), 'attentionRows f16 vs f32').toBe(-1);
        // row B reads the specials: the f32 kernel makes head 2/3's element 5 non-finite
        expect(Number.isFinite(rows16[n / 2 + 2 * hd + 5])).toBe(false);
        // row A alone through attention: the fast read of the tile attentionRows read exactly
        const one16 = k.alloc(nHeads * hd * 4);
        const one32 = k.alloc(nHeads * hd * 4);
        k.attention(one16, q, 1, c.kPool, c.vPool, c.table, 20, nHeads, nKv, hd, bs, F16);
        k.attention(one32, q, 1, c32.kPool, c32.vPool, c.table, 20, nHeads, nKv, hd, bs);
        const a16 = Float32Array.from(k.f32(one16, nHeads * hd));
        expect(
          same(a16, rows16.subarray(0, nHeads * hd)),
          'row A: attention (fast) vs attentionRows (exact)',
        ).toBe(-1);
        expect(same(a16, k.f32(one32, nHeads * hd)), 'row A: f16 vs f32').toBe(-1);
        // and a prefill over all positions (fast and exact tiles mixed, GQA heads sharing each tile)
        const qAll = put(k, randomF32(r, T * nHeads * hd, 2));
        const p16 = k.alloc(T * nHeads * hd * 4);
        const p32 = k.alloc(T * nHeads * hd * 4);
        k.attention(p16, qAll, T, c.kPool, c.vPool, c.table, 0, nHeads, nKv, hd, bs, F16);
        k.attention(p32, qAll, T, c32.kPool, c32.vPool, c.table, 0, nHeads, nKv, hd, bs);
        expect(
          same(Float32Array.from(k.f32(p16, T * nHeads * hd)), k.f32(p32, T * nHeads * hd)),
          'prefill',
        ).toBe(-1);
        k.release(mark);
      });
    }

    it('rejects an unknown kvType with an OptionsError naming kvType', () => {
      const bad = 'f8' as unknown as KvType;
      const call = [
        () => k.kvWrite(0, 0, 0, 0, 1, 0, 0, 1, 8, 16, bad),
        () => k.attention(0, 0, 1, 0, 0, 0, 0, 1, 1, 8, 16, bad),
        () => k.kvWriteRows(0, 0, 0, 0, 1, 0, 0, 1, 8, 16, bad),
        () => k.attentionRows(0, 0, 1, 0, 0, 0, 0, 1, 1, 8, 16, bad),
      ];
      for (const f of call) {
        expect(f).toThrow(OptionsError);
        try {
          f();
        } catch (err) {
          expect((err as OptionsError).field).toBe('kvType');
        }
      }
    });
  });
}
