// linear(): f32, f16, q8_0, q4_0 weights against a float64 reference, awkward shapes, both builds.
import { describe, expect, it } from 'vitest';
import { BudgetError, FormatError, OptionsError, UnsupportedError } from '../../runtime/errors.ts';
import type { WeightType } from '../../runtime/kernels.ts';
import {
  decodeRow,
  encodeF16,
  encodeQ4_0,
  encodeQ8_0,
  randomF32,
  refLinear,
  refLinearAbs,
  refQ8ActivationBound,
  rng,
  worst,
} from '../helpers/ref-kernels.ts';
import { builds, load, put } from './setup.ts';

function rawOf(type: WeightType, w: Float32Array): Uint8Array {
  if (type === 'f32') return new Uint8Array(w.buffer.slice(0));
  if (type === 'f16') return encodeF16(w);
  return type === 'q8_0' ? encodeQ8_0(w) : encodeQ4_0(w);
}

for (const b of builds) {
  describe(`linear (${b.name})`, () => {
    const k = load(b.file);
    const r = rng(42);

    const cases: Array<[WeightType, number[], number[], number[]]> = [
      ['f32', [1, 2, 3, 4, 5, 8, 9], [1, 3, 33, 100], [1, 5, 8, 13, 30, 33, 70]],
      ['f16', [1, 3, 5], [1, 3, 33, 100], [1, 7, 8, 17]],
      ['q8_0', [1, 2, 3, 4, 5, 9], [32, 64, 96], [1, 3, 4, 5, 9, 13, 21, 30]],
      ['q4_0', [1, 2, 3, 4, 5, 9], [32, 64, 96], [1, 3, 4, 5, 9, 13, 21, 30]],
    ];
    for (const [type, ms, ks, ns] of cases) {
      it(`${type}: every M×K×N of M ∈ {${ms}}, K ∈ {${ks}}, N ∈ {${ns}}`, () => {
        for (const K of ks)
          for (const N of ns) {
            const w = randomF32(r, N * K);
            const raw = rawOf(type, w);
            const wv = decodeRow(type, raw, N * K); // the weights the kernel should use
            const mark = k.mark();
            const lw = k.prepareLinear(type, raw, N, K);
            expect(lw.bytes).toBe(k.linearBytes(type, N, K));
            for (const M of ms) {
              const x = randomF32(r, M * K, 2);
              const xp = put(k, x);
              const op = k.alloc(M * N * 4 + 64);
              const guard = k.f32(op + M * N * 4, 16).fill(12345);
              k.linear(op, xp, lw, M);
              const got = k.f32(op, M * N);
              const want = refLinear(x, wv, M, N, K);
              const abs = refLinearAbs(x, wv, M, N, K);
              // f32 accumulation: |error| ≤ 1e-5 · Σ|x·w| (K ≤ 100 terms of ≤ 6e-8 relative each);
              // quantised: x rounds to Q8_0 per block, |x − x̂| ≤ d/2 with d = max|x|/127, so
              // |error| ≤ Σ_blocks d/2 · Σ|w| (+ 0.1 % for f32 rounding of d and x/d) + 1e-5 · Σ|x·w|
              const bound =
                type === 'f32' || type === 'f16' ? undefined : refQ8ActivationBound(x, wv, M, N, K);
              const res = worst(got, want, (i) => 1e-5 * abs[i] + (bound ? bound[i] * 1.001 : 0) + 1e-30);
              expect(
                res.ratio,
                `${type} M=${M} K=${K} N=${N} at ${res.index}: ${res.got} vs ${res.want}`,
              ).toBeLessThanOrEqual(1);
              expect(Array.from(guard), 'no write past out').toEqual(new Array(16).fill(12345));
            }
            k.release(mark);
          }
      });
    }

    it('q8_0 and q4_0: beam rows give the same result as one row at a time (same block sums)', () => {
      // M = 2..9 covers full and partial tiles of 4 x rows; K = 288 (9 blocks) is the 15M model's width
      for (const type of ['q8_0', 'q4_0'] as const)
        for (const [K, N] of [
          [96, 11],
          [288, 13],
        ])
          for (const M of [2, 3, 4, 5, 7, 8, 9]) {
            const mark = k.mark();
            const lw = k.prepareLinear(type, rawOf(type, randomF32(r, N * K)), N, K);
            const x = randomF32(r, M * K);
            const xp = put(k, x);
            const all = k.alloc(M * N * 4);
            k.linear(all, xp, lw, M);
            const one = k.alloc(N * 4);
            for (let m = 0; m < M; m++) {
              k.linear(one, xp + m * K * 4, lw, 1);
              // same integer sums and the same f32 operations in the same order: identical bits
              expect(Array.from(k.f32(one, N)), `${type} K=${K} M=${M} row ${m}`).toEqual(
                Array.from(k.f32(all + m * N * 4, N)),
              );
            }
            k.release(mark);
          }
    });

    it('extreme blocks: integer sums at their limits stay exact (no int16 overflow)', () => {
      const K = 96;
      const N = 9;
      const M = 3;
      // every weight at one extreme: q4_0 nibbles 15 (+7) or 0 (−8), q8_0 ±127, scale 1.0 (f16 0x3c00)
      const cases: Array<[WeightType, number, number, number]> = [
        ['q4_0', 0xff, 18, 7],
        ['q4_0', 0x00, 18, -8],
        ['q8_0', 127, 34, 127],
        ['q8_0', 0x81, 34, -127],
        ['q8_0', 0x80, 34, -127], // −128 is read as −127 (documented: the relaxed kernels flip signs)
      ];
      for (const [type, byte, bs, wv] of cases) {
        const raw = new Uint8Array((N * K * bs) / 32).fill(byte);
        for (let o = 0; o < raw.length; o += bs) {
          raw[o] = 0x00;
          raw[o + 1] = 0x3c;
        }
        const mark = k.mark();
        const lw = k.prepareLinear(type, raw, N, K);
        // x rows of ±2.5: each block quantises to ±127 with d = 2.5/127, exactly representable sums
        const x = new Float32Array(M * K).map((_, i) => (Math.floor(i / K) % 2 ? -2.5 : 2.5));
        const op = k.alloc(M * N * 4);
        k.linear(op, put(k, x), lw, M);
        const got = k.f32(op, M * N);
        for (let r = 0; r < M; r++) {
          const want = K * wv * (r % 2 ? -2.5 : 2.5);
          // one f32 product per block plus f32 sums of 3 blocks: 1e-6 relative
          for (let j = 0; j < N; j++)
            expect(Math.abs(got[r * N + j] - want)).toBeLessThanOrEqual(1e-6 * Math.abs(want));
        }
        k.release(mark);
      }
    });

    it('f32 at the sizes a model uses (K = 768, N = 67, M = 1, 4, 6)', () => {
      const K = 768;
      const N = 67;
      const w = randomF32(r, N * K);
      const mark = k.mark();
      const lw = k.prepareLinear('f32', new Uint8Array(w.buffer), N, K);
      for (const M of [1, 4, 6]) {
        const x = randomF32(r, M * K);
        const op = k.alloc(M * N * 4);
        k.linear(op, put(k, x), lw, M);
        const abs = refLinearAbs(x, w, M, N, K);
        // f32 sums of 768 terms: 3e-5 · Σ|x·w| is well above the worst case seen (~1e-6) and far below a wrong term
        const res = worst(k.f32(op, M * N), refLinear(x, w, M, N, K), (i) => 3e-5 * abs[i]);
        expect(res.ratio).toBeLessThanOrEqual(1);
      }
      k.release(mark);
    });

    it('arena: reserve grows memory once, values survive growth, release restores the top', () => {
      const kk = load(b.file, 0);
      const before = kk.memory.buffer.byteLength;
      const p = kk.alloc(16);
      kk.f32(p, 4).set([1, 2, 3, 4]);
      kk.reserve(8 << 20);
      expect(kk.memory.buffer.byteLength).toBeGreaterThanOrEqual(before + (8 << 20));
      expect(Array.from(kk.f32(p, 4))).toEqual([1, 2, 3, 4]); // a fresh view after growth
      const m = kk.mark();
      const q = kk.alloc(1000, 256);
      expect(q % 256).toBe(0);
      kk.u8(q, 1000).fill(7);
      kk.release(m);
      expect(kk.mark()).toBe(m);
      // memory handed out again is zero-filled (no data from a released region leaks)
      const q2 = kk.alloc(2000, 256);
      expect(kk.u8(q2, 2000).every((v) => v === 0)).toBe(true);
      kk.release(m);
      expect(() => kk.linear(0, 0, { type: 'f32', ptr: 0, n: 1, k: 1, bytes: 32 }, -1)).toThrow(/row count/);
    });

    it('places each weight on a 4 KiB page (or at linearAlign), and rejects a linearAlign that is not a power of two in 64..65536', () => {
      const kk = load(b.file, 4 << 20);
      expect(kk.linearAlign).toBe(4096);
      const rawLen = { f32: 5 * 64 * 4, q8_0: 5 * 2 * 34, q4_0: 5 * 2 * 18 };
      for (const type of ['f32', 'q8_0', 'q4_0'] as const) {
        kk.alloc(100); // the arena top off any page
        const w = kk.prepareLinear(type, new Uint8Array(rawLen[type]), 5, 64);
        expect(w.ptr % 4096, type).toBe(0);
      }
      const k64 = load(b.file, 1 << 20, { linearAlign: 64 });
      k64.alloc(100);
      expect(k64.prepareLinear('f32', new Uint8Array(5 * 64 * 4), 5, 64).ptr % 4096).not.toBe(0);
      for (const bad of [0, 32, 96, 1 << 17, 1.5])
        expect(() => load(b.file, 0, { linearAlign: bad }), String(bad)).toThrow(OptionsError);
      expect(() => load(b.file, 0, { linearAlgin: 4096 } as never)).toThrow(/unknown option linearAlgin/);
    });

    it('rejects quantised K not a multiple of 32, wrong byte counts, and allocation past the reserve', () => {
      expect(() => k.prepareLinear('q8_0', new Uint8Array(34), 1, 33)).toThrow(UnsupportedError);
      expect(() => k.linearBytes('q4_0', 4, 48)).toThrow(/multiple of 32/);
      expect(() => k.prepareLinear('f32', new Uint8Array(12), 2, 2)).toThrow(FormatError);
      expect(() => k.prepareLinear('bf16' as WeightType, new Uint8Array(8), 2, 2)).toThrow(UnsupportedError);
      expect(() => k.alloc(1 << 30)).toThrow(BudgetError);
    });
  });
}
