// paged KV cache: kvWrite + attention against a float64 reference over contiguous K/V, both builds.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { UnsupportedError } from '../../runtime/errors.ts';
import type { Kernels } from '../../runtime/kernels.ts';
import { randomF32, refAttention, rng, worst } from '../helpers/ref-kernels.ts';
import { builds, f32, load, put, putI32 } from './setup.ts';

interface Cache {
  kPool: number;
  vPool: number;
  table: number;
}

// a pool of `nBlocks` blocks and a block table that visits them in a scrambled order
function makeCache(k: Kernels, nBlocks: number, nKv: number, hd: number, bs: number, seed: number): Cache {
  const blockFloats = nKv * bs * hd;
  const kPool = k.alloc(nBlocks * blockFloats * 4);
  const vPool = k.alloc(nBlocks * blockFloats * 4);
  const order = Array.from({ length: nBlocks }, (_, i) => i);
  const r = rng(seed);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return { kPool, vPool, table: putI32(k, order) };
}

for (const b of builds) {
  describe(`attention (${b.name})`, () => {
    const k = load(b.file);
    const r = rng(3);

    const shapes = [
      // nHeads, nKv, hd, bs, T
      [1, 1, 2, 4, 1],
      [2, 2, 6, 4, 9],
      [4, 2, 8, 16, 33],
      [4, 1, 64, 16, 70],
      [3, 3, 64, 32, 100],
      [8, 2, 16, 16, 37], // GQA: four query heads per KV head
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
        // write in two uneven pieces, as a chunked prefill would
        const split = Math.floor(T / 3);
        const kv = (a: Float32Array, from: number, to: number) =>
          put(k, a.subarray(from * nKv * hd, to * nKv * hd));
        k.kvWrite(c.kPool, c.vPool, c.table, 0, split, kv(kAll, 0, split), kv(vAll, 0, split), nKv, hd, bs);
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
        );
        const out = k.alloc(T * nHeads * hd * 4);
        const rowF = nHeads * hd;
        const check = (pos0: number, nQ: number, what: string) => {
          const qp = put(k, q.subarray(pos0 * rowF, (pos0 + nQ) * rowF));
          k.attention(out, qp, nQ, c.kPool, c.vPool, c.table, pos0, nHeads, nKv, hd, bs);
          const want = refAttention(q.subarray(pos0 * rowF), kAll, vAll, nQ, pos0, nHeads, nKv, hd);
          // f32 scores (|s| ≲ 10) and exp: 2e-5 absolute on outputs bounded by max|v| ≤ 1
          const res = worst(k.f32(out, nQ * rowF), want, () => 2e-5);
          expect(res.ratio, `${what} at ${res.index}: ${res.got} vs ${res.want}`).toBeLessThanOrEqual(1);
        };
        check(0, T, 'prefill');
        if (T > 2) check(split, T - split, 'chunked prefill');
        check(T - 1, 1, 'decode');
        k.release(mark);
      });
    }

    it('peaked scores (keys ×40: softmax near one-hot, exp underflows) stay accurate', () => {
      const [nHeads, nKv, hd, bs, T] = [2, 1, 16, 16, 40];
      const mark = k.mark();
      const c = makeCache(k, 3, nKv, hd, bs, 9);
      const kAll = f32(randomF32(r, T * nKv * hd, 40));
      const vAll = f32(randomF32(r, T * nKv * hd));
      const q = f32(randomF32(r, nHeads * hd, 2));
      k.kvWrite(c.kPool, c.vPool, c.table, 0, T, put(k, kAll), put(k, vAll), nKv, hd, bs);
      const out = k.alloc(nHeads * hd * 4);
      k.attention(out, put(k, q), 1, c.kPool, c.vPool, c.table, T - 1, nHeads, nKv, hd, bs);
      const want = refAttention(q, kAll, vAll, 1, T - 1, nHeads, nKv, hd);
      // scores up to ~±300: f32 rounding of a score (~2e-5 relative) moves weights by ~6e-3 relative;
      // outputs are bounded by max|v| ≤ 1, so 1e-2 absolute (a wrong key would be off by ~1)
      const res = worst(k.f32(out, nHeads * hd), want, () => 1e-2);
      expect(res.ratio).toBeLessThanOrEqual(1);
      k.release(mark);
    });

    it('property: changing a masked (future) key or value changes nothing', () => {
      const nHeads = 2;
      const nKv = 1;
      const hd = 8;
      const bs = 4;
      const T = 12;
      fc.assert(
        fc.property(
          fc.integer({ min: 0, max: T - 2 }),
          fc.integer({ min: 1, max: T - 1 }),
          fc.float({ min: -100, max: 100, noNaN: true }),
          fc.integer({ min: 0, max: 1 << 20 }),
          (p, dt, val, seed) => {
            const future = Math.min(T - 1, p + dt); // a position after the query's
            const rr = rng(seed);
            const mark = k.mark();
            const c = makeCache(k, 3, nKv, hd, bs, seed);
            const kAll = f32(randomF32(rr, T * nKv * hd));
            const vAll = f32(randomF32(rr, T * nKv * hd));
            k.kvWrite(c.kPool, c.vPool, c.table, 0, T, put(k, kAll), put(k, vAll), nKv, hd, bs);
            const qp = put(k, randomF32(rr, nHeads * hd));
            const out = k.alloc(nHeads * hd * 4);
            k.attention(out, qp, 1, c.kPool, c.vPool, c.table, p, nHeads, nKv, hd, bs);
            const before = Array.from(k.f32(out, nHeads * hd));
            // overwrite the future position's key and value
            const kNew = f32(new Array(nKv * hd).fill(val));
            k.kvWrite(c.kPool, c.vPool, c.table, future, 1, put(k, kNew), put(k, kNew), nKv, hd, bs);
            k.attention(out, qp, 1, c.kPool, c.vPool, c.table, p, nHeads, nKv, hd, bs);
            const after = Array.from(k.f32(out, nHeads * hd));
            k.release(mark);
            return future > p ? before.every((v, i) => Object.is(v, after[i])) : true;
          },
        ),
        { numRuns: 100 },
      );
    });

    it('rejects KV heads that do not divide the heads', () => {
      expect(() => k.attention(0, 0, 1, 0, 0, 0, 0, 3, 2, 8, 16)).toThrow(UnsupportedError);
    });
  });
}
