// row-wise and element-wise kernels against float64 references, both builds.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { OptionsError, UnsupportedError } from '../../runtime/errors.ts';
import type { WeightType } from '../../runtime/kernels.ts';
import {
  decodeRow,
  encodeF16,
  encodeQ4_0,
  encodeQ8_0,
  randomF32,
  refGelu,
  refLayernorm,
  refRmsnorm,
  refRope,
  refSilu,
  refSoftmax,
  rng,
  worst,
} from '../helpers/ref-kernels.ts';
import { builds, f32, load, put, putI32 } from './setup.ts';

const DIMS = [1, 3, 4, 33, 100];

for (const b of builds) {
  describe(`ops (${b.name})`, () => {
    const k = load(b.file);
    const r = rng(7);

    it('rmsnorm and layernorm (m ∈ {1, 3}, dim ∈ {1, 3, 4, 33, 100})', () => {
      for (const dim of DIMS)
        for (const m of [1, 3]) {
          const mark = k.mark();
          const x = f32(randomF32(r, m * dim, 3));
          const w = f32(randomF32(r, dim));
          const bb = f32(randomF32(r, dim));
          const out = k.alloc(m * dim * 4);
          k.rmsnorm(out, put(k, x), put(k, w), m, dim, 1e-5);
          // f32 arithmetic on O(1) values: 1e-5 relative + 1e-6 absolute
          let res = worst(
            k.f32(out, m * dim),
            refRmsnorm(x, w, m, dim, 1e-5),
            (i) => 1e-6 + 1e-5 * Math.abs(w[i % dim]) * 3,
          );
          expect(res.ratio, `rmsnorm dim=${dim} m=${m}`).toBeLessThanOrEqual(1);
          k.layernorm(out, put(k, x), put(k, w), put(k, bb), m, dim, 1e-5);
          res = worst(k.f32(out, m * dim), refLayernorm(x, w, bb, m, dim, 1e-5), () => 3e-5);
          expect(res.ratio, `layernorm dim=${dim} m=${m}`).toBeLessThanOrEqual(1);
          k.release(mark);
        }
    });

    it('softmax (rows of 1, 3, 33, 100; large offsets stay finite)', () => {
      for (const n of [1, 3, 33, 100]) {
        const mark = k.mark();
        const x = f32(randomF32(r, 3 * n, 10).map((v, i) => v + (i < n ? 1000 : 0)));
        const p = put(k, x);
        k.softmax(p, 3, n);
        // exp in f32: 1e-6 absolute + 1e-5 relative
        const want = refSoftmax(x, 3, n);
        const res = worst(k.f32(p, 3 * n), want, (i) => 1e-6 + 1e-5 * want[i]);
        expect(res.ratio, `n=${n}`).toBeLessThanOrEqual(1);
        k.release(mark);
      }
    });

    it('softmax gives exactly 0 to -Infinity (masked) entries', () => {
      const mark = k.mark();
      const vals = [
        Number.NEGATIVE_INFINITY,
        0,
        1,
        Number.NEGATIVE_INFINITY,
        2,
        -100,
        Number.NEGATIVE_INFINITY,
      ];
      const p = put(k, vals);
      k.softmax(p, 1, vals.length);
      const got = k.f32(p, vals.length);
      expect([got[0], got[3], got[6]]).toEqual([0, 0, 0]);
      const want = refSoftmax(vals, 1, vals.length);
      expect(worst(got, want, (i) => 1e-6 + 1e-5 * want[i]).ratio).toBeLessThanOrEqual(1);
      k.release(mark);
    });

    it('property: softmax rows sum to 1 (within 1e-5) for any finite input', () => {
      fc.assert(
        fc.property(
          fc.array(fc.float({ min: -80, max: 80, noNaN: true, noDefaultInfinity: true }), {
            minLength: 1,
            maxLength: 70,
          }),
          (vals) => {
            const mark = k.mark();
            const p = put(k, vals);
            k.softmax(p, 1, vals.length);
            const s = k.f32(p, vals.length).reduce((a, v) => a + v, 0);
            k.release(mark);
            return Math.abs(s - 1) <= 1e-5;
          },
        ),
        { numRuns: 200 },
      );
    });

    it('rope, both pairings, positions by stride and by table (m = 3, heads 2, hd ∈ {2, 6, 8, 64})', () => {
      for (const hd of [2, 6, 8, 64])
        for (const neox of [false, true]) {
          const mark = k.mark();
          const m = 3;
          const x = f32(randomF32(r, m * 2 * hd));
          const p = put(k, x);
          k.rope(p, m, 2, hd, 5, 7, 10000, neox);
          // angles up to 19 rad computed in f64, then f32 products: 2e-6 absolute
          let res = worst(k.f32(p, x.length), refRope(x, m, 2, hd, [5, 12, 19], 10000, neox), () => 2e-6);
          expect(res.ratio, `rope hd=${hd} neox=${neox}`).toBeLessThanOrEqual(1);
          const q = put(k, x);
          const pos = [300, 0, 300];
          k.ropeAt(q, m, 2, hd, putI32(k, pos), 500000, neox);
          res = worst(k.f32(q, x.length), refRope(x, m, 2, hd, pos, 500000, neox), () => 2e-6);
          expect(res.ratio, `ropeAt hd=${hd} neox=${neox}`).toBeLessThanOrEqual(1);
          k.release(mark);
        }
      expect(() => k.rope(0, 1, 1, 7, 0, 1, 10000, false)).toThrow(UnsupportedError);
    });

    it('siluMul, gelu, add, addBias (n ∈ {1, 3, 33, 100})', () => {
      for (const n of [1, 3, 33, 100]) {
        const mark = k.mark();
        const a = f32(randomF32(r, n, 8));
        const c = f32(randomF32(r, n, 8));
        const pa = put(k, a);
        const pc = put(k, c);
        const out = k.alloc(n * 4);
        k.siluMul(out, pa, pc, n);
        // f32 exp: 1e-6 relative to the magnitudes involved
        let res = worst(
          k.f32(out, n),
          Array.from(a, (v, i) => refSilu(v) * c[i]),
          (i) => 1e-6 * (1 + Math.abs(a[i] * c[i])),
        );
        expect(res.ratio, `siluMul n=${n}`).toBeLessThanOrEqual(1);
        k.gelu(out, pa, n);
        res = worst(k.f32(out, n), Array.from(a, refGelu), (i) => 1e-6 * (1 + Math.abs(a[i])));
        expect(res.ratio, `gelu n=${n}`).toBeLessThanOrEqual(1);
        k.add(out, pa, pc, n);
        res = worst(
          k.f32(out, n),
          Array.from(a, (v, i) => v + c[i]),
          (i) => 1e-6 * (Math.abs(a[i]) + Math.abs(c[i])),
        );
        expect(res.ratio, `add n=${n}`).toBeLessThanOrEqual(1);
        const x2 = f32(randomF32(r, 2 * n));
        const px = put(k, x2);
        k.addBias(px, pc, 2, n);
        res = worst(
          k.f32(px, 2 * n),
          Array.from(x2, (v, i) => v + c[i % n]),
          () => 1e-5,
        );
        expect(res.ratio, `addBias n=${n}`).toBeLessThanOrEqual(1);
        k.release(mark);
      }
    });

    it('gelu saturates without NaN for huge inputs', () => {
      const mark = k.mark();
      const p = put(k, [-1e30, -50, 50, 1e30]);
      k.gelu(p, p, 4);
      expect(Array.from(k.f32(p, 4))).toEqual([-0, -0, 50, 1e30].map((v) => Math.fround(v)));
      k.release(mark);
    });

    it('embedding rows from f32, f16, q8_0, q4_0 (dim 32, 96; f32/f16 also 3)', () => {
      for (const type of ['f32', 'f16', 'q8_0', 'q4_0'] as WeightType[])
        for (const dim of type.startsWith('q') ? [32, 96] : [3, 32, 96]) {
          const rows = 5;
          const mark = k.mark();
          const w = f32(randomF32(r, rows * dim));
          const raw =
            type === 'f32'
              ? new Uint8Array(w.buffer)
              : type === 'f16'
                ? encodeF16(w)
                : type === 'q8_0'
                  ? encodeQ8_0(w)
                  : encodeQ4_0(w);
          const t = k.prepareEmbedding(type, raw, rows, dim);
          const want = decodeRow(type, raw, rows * dim);
          const out = k.alloc(dim * 4);
          for (const row of [0, 3, 4]) {
            k.embed(out, t, row);
            // exact: one f32 product per value
            const res = worst(
              k.f32(out, dim),
              want.subarray(row * dim, (row + 1) * dim),
              (i) => 1e-7 * (1 + Math.abs(want[row * dim + i])),
            );
            expect(res.ratio, `${type} dim=${dim} row=${row}`).toBeLessThanOrEqual(1);
          }
          expect(() => k.embed(out, t, rows)).toThrow(OptionsError);
          k.release(mark);
        }
    });

    it('quantise → dequantise error within the format bound (property; q8_0 ≤ d/2, q4_0 ≤ d/2 + f16 scale rounding)', () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 1, max: 3 }),
          fc.integer({ min: 0, max: 1_000_000 }),
          fc.constantFrom(0.001, 1, 300),
          (nb, seed, scale) => {
            const kk = nb * 32;
            const x = f32(randomF32(rng(seed), kk, scale));
            const mark = k.mark();
            const src = put(k, x);
            let ok = true;
            for (const type of ['q8_0', 'q4_0'] as const) {
              const dst = k.alloc(nb * 34);
              const back = k.alloc(kk * 4);
              k.quantizeRow(type, dst, src, kk);
              k.dequantizeRow(type, back, dst, kk);
              const y = k.f32(back, kk);
              for (let b0 = 0; b0 < nb; b0++) {
                let amax = 0;
                for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b0 * 32 + j]));
                // q8_0: d = amax/127 → |err| ≤ d/2, plus the f16 rounding of d times |q| ≤ 127
                // q4_0: d = amax/8 → |err| ≤ d/2 inside the range; the +7 side clamps at 15 (err ≤ d),
                // plus the f16 rounding of d times |q − 8| ≤ 8 (f16 subnormal scales included)
                const d = type === 'q8_0' ? amax / 127 : amax / 8;
                const bs = type === 'q8_0' ? 34 : 18;
                const dh = Math.abs(decodeRow('f16', k.u8(dst + b0 * bs, 2), 1)[0]); // the stored f16 scale
                const bound = type === 'q8_0' ? d / 2 + 127 * Math.abs(dh - d) : d + 8 * Math.abs(dh - d);
                for (let j = 0; j < 32; j++) {
                  if (Math.abs(y[b0 * 32 + j] - x[b0 * 32 + j]) > bound * 1.0001 + 1e-30) ok = false;
                }
              }
            }
            k.release(mark);
            return ok;
          },
        ),
        { numRuns: 100 },
      );
    });

    it('quantizeRow writes the GGUF bytes an independent encoder writes (ties excepted: none in random data)', () => {
      const x = f32(randomF32(r, 96, 2));
      const mark = k.mark();
      const src = put(k, x);
      const dst = k.alloc(3 * 34);
      k.quantizeRow('q8_0', dst, src, 96);
      expect(Array.from(k.u8(dst, 3 * 34))).toEqual(Array.from(encodeQ8_0(x)));
      k.quantizeRow('q4_0', dst, src, 96);
      expect(Array.from(k.u8(dst, 3 * 18))).toEqual(Array.from(encodeQ4_0(x)));
      k.release(mark);
    });

    it('argmax and topk (ties: lower index first; NaN skipped)', () => {
      for (const n of [1, 3, 33, 100, 1000]) {
        const mark = k.mark();
        const x = f32(randomF32(r, n).map((v) => Math.round(v * 20) / 20)); // many ties
        const p = put(k, x);
        const order = Array.from(x.keys()).sort((a, c) => x[c] - x[a] || a - c);
        expect(k.argmax(p, n), `n=${n}`).toBe(order[0]);
        const kk = Math.min(n, 10);
        const oi = k.alloc(kk * 4);
        const ov = k.alloc(kk * 4);
        k.topk(p, n, kk, oi, ov);
        expect(Array.from(k.i32(oi, kk))).toEqual(order.slice(0, kk));
        expect(Array.from(k.f32(ov, kk))).toEqual(order.slice(0, kk).map((i) => x[i]));
        k.release(mark);
      }
      const mark = k.mark();
      const p = put(k, [Number.NaN, 1, Number.NaN, 2]);
      expect(k.argmax(p, 4)).toBe(3);
      const ninf = put(k, [
        Number.NEGATIVE_INFINITY,
        Number.NaN,
        Number.NEGATIVE_INFINITY,
        Number.NaN,
        Number.NaN,
      ]);
      expect(k.argmax(ninf, 5)).toBe(0);
      const late = put(k, [0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 5]);
      expect(k.argmax(late, 11)).toBe(9);
      const oi = k.alloc(16);
      const ov = k.alloc(16);
      k.topk(p, 4, 3, oi, ov);
      expect(Array.from(k.i32(oi, 3))).toEqual([3, 1, -1]);
      expect(() => k.topk(p, 4, 5, oi, ov)).toThrow(OptionsError);
      k.release(mark);
    });

    it('rowStats: top k above −∞ as sample.ts topKInto, Σ exp(x − max) against a float64 sum', () => {
      const cases: Array<{ n: number; kk: number; x: Float32Array }> = [];
      for (const n of [1, 3, 4, 5, 33, 100, 1000, 32003])
        for (const kk of [1, 2, 8, 24, 64])
          if (kk <= n) {
            // many ties (rounded values), large spread (exps over ~40 nats)
            cases.push({ n, kk, x: f32(randomF32(r, n, 20).map((v) => Math.round(v * 4) / 4)) });
          }
      const special = (vals: number[], n: number) => {
        const x = f32(randomF32(r, n, 3));
        vals.forEach((v, i) => {
          x[(i * 7919) % n] = v;
        });
        return x;
      };
      const NI = Number.NEGATIVE_INFINITY;
      cases.push({ n: 37, kk: 8, x: special([Number.NaN], 37) });
      cases.push({ n: 37, kk: 8, x: special([NI, NI, NI], 37) });
      cases.push({ n: 37, kk: 8, x: special([Number.POSITIVE_INFINITY], 37) });
      cases.push({ n: 6, kk: 6, x: f32([NI, Number.NaN, 2, NI, 1, NI]) });
      cases.push({ n: 5, kk: 3, x: f32([NI, NI, NI, NI, Number.NaN]) });
      for (const { n, kk, x } of cases) {
        const mark = k.mark();
        const p = put(k, x);
        const oi = k.alloc(kk * 4);
        const ov = k.alloc(kk * 4);
        const os = k.alloc(8, 8);
        const got = k.rowStats(p, n, kk, oi, ov, os);
        // reference: indices of the entries above −∞ (NaN excluded), sorted by value, lower index first
        const order = Array.from(x.keys())
          .filter((i) => x[i] > NI)
          .sort((a, c) => x[c] - x[a] || a - c)
          .slice(0, kk);
        const tag = `n=${n} k=${kk}`;
        expect(got, tag).toBe(order.length);
        expect(Array.from(k.i32(oi, got)), tag).toEqual(order);
        expect(Array.from(k.f32(ov, got)), tag).toEqual(order.map((i) => x[i]));
        const sum = new Float64Array(k.memory.buffer, os, 1)[0];
        if (order.length > 0 && Array.from(x).every((v) => Number.isFinite(v))) {
          let ref = 0;
          for (const v of x) ref += Math.exp(v - x[order[0]]);
          // f32 exps (~2e-7 relative each) summed in f32 over 64 entries then f64: 1e-5 relative
          expect(Math.abs(sum - ref) / ref, tag).toBeLessThan(1e-5);
        } else expect(sum, tag).toBeNaN();
        k.release(mark);
      }
      const mark = k.mark();
      const p = put(k, [1, 2, 3]);
      expect(() => k.rowStats(p, 3, 0, p, p, p)).toThrow(OptionsError);
      expect(() => k.rowStats(p, 3, 4, p, p, p)).toThrow(OptionsError);
      k.release(mark);
    });
  });
}
