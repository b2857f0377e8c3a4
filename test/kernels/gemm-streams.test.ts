// linear() f32 paths that read weights as several far-apart streams (assembly/gemm.ts): m = 1 over
// panels a third of the matrix apart, 2 ≤ m ≤ 8 over six panels a sixth apart visited block by block
// (16 steps of k) by every row group, partial sums in a static scratch; m > 8 panel by panel — against
// a float64 reference.
import { describe, expect, it } from 'vitest';
import type { Kernels } from '../../runtime/kernels.ts';
import { randomF32, refLinear, refLinearAbs, rng, worst } from '../helpers/ref-kernels.ts';
import { builds, load, put } from './setup.ts';

const PAGE = 4096;

/** place the next prepareLinear `off` bytes (a multiple of 64) past a 4 KiB page */
function padTo(k: Kernels, off: number): void {
  const top = Math.ceil(k.mark() / 64) * 64;
  const pad = ((PAGE - (top % PAGE)) % PAGE) + off;
  if (pad > 0) k.alloc(pad);
}

for (const b of builds) {
  describe(`linear f32 stream paths (${b.name})`, () => {
    // weights placed where each case puts them (prepareLinear would put them on a page by default)
    const k = load(b.file, 64 << 20, { linearAlign: 64 });
    const r = rng(7);

    // K: 255 (15 blocks of 16 steps and a partial one), 256, 257 (a last block of 1 step), 300, 512, 513,
    // 515, 1024. N: 13 (two panels, the second partial: no far-apart walk at all), 24 (three), 67 (nine:
    // one third each for m = 1 with the partial panel last in the third; six panels and three left over
    // for m ≥ 2), 93 (twelve: the partial panel inside the six-panel walk), 100 (thirteen: a partial
    // leftover). M = 1..9: every row-group remainder, m = 9 the prompt path. The weight 0 or 1792 bytes
    // past a 4 KiB page: the result must not depend on where it sits.
    for (const off of [0, 1792])
      it(`every M ∈ 1..9 × K ∈ {255, 256, 257, 300, 512, 513, 515, 1024} × N ∈ {13, 24, 67, 93, 100}, weight ${off} bytes past a page`, () => {
        for (const K of [255, 256, 257, 300, 512, 513, 515, 1024])
          for (const N of [13, 24, 67, 93, 100]) {
            const mark = k.mark();
            const w = randomF32(r, N * K);
            padTo(k, off);
            const lw = k.prepareLinear('f32', new Uint8Array(w.buffer), N, K);
            expect(lw.ptr % PAGE, 'the weight sits where the case wants it').toBe(off);
            for (let M = 1; M <= 9; M++) {
              const x = randomF32(r, M * K, 2);
              const xp = put(k, x);
              const op = k.alloc(M * N * 4 + 64);
              const guard = k.f32(op + M * N * 4, 16).fill(12345);
              k.linear(op, xp, lw, M);
              const abs = refLinearAbs(x, w, M, N, K);
              // f32 sums of ≤ 1024 terms, each rounding ≤ 6e-8 relative of a partial sum ≤ Σ|x·w|:
              // 1024 · 6e-8 ≈ 6e-5 is the worst case; 3e-5 · Σ|x·w| is far above what random signs give
              // (~1e-6) and far below one wrong or missing term (≥ 1e-3 of Σ|x·w| at these sizes)
              const res = worst(k.f32(op, M * N), refLinear(x, w, M, N, K), (i) => 3e-5 * abs[i] + 1e-30);
              expect(
                res.ratio,
                `M=${M} K=${K} N=${N} at ${res.index}: ${res.got} vs ${res.want}`,
              ).toBeLessThanOrEqual(1);
              expect(Array.from(guard), 'no write past out').toEqual(new Array(16).fill(12345));
            }
            k.release(mark);
          }
      });

    it('every row of a batch (M = 2..9, 12, 17) is bit-identical to the same row alone (M = 1)', () => {
      // each output is summed in k order with one FMA per step whatever the path (far-apart thirds for
      // M = 1, the six-panel block walk for M ≤ 8, panel by panel beyond; leftover panels and rows):
      // the same operations in the same order give the same bits. N = 100 and 61 (13 and 8 panels:
      // leftovers in both walks, a partial last panel), K = 257 and 512 (a partial last block or none).
      for (const [K, N] of [
        [257, 100],
        [512, 61],
      ]) {
        const mark = k.mark();
        const lw = k.prepareLinear('f32', new Uint8Array(randomF32(r, N * K).buffer), N, K);
        const x = randomF32(r, 17 * K);
        const xp = put(k, x);
        const one = k.alloc(17 * N * 4);
        for (let m = 0; m < 17; m++) k.linear(one + m * N * 4, xp + m * K * 4, lw, 1);
        const singles = Array.from(k.f32(one, 17 * N));
        const all = k.alloc(17 * N * 4);
        for (const M of [2, 3, 4, 5, 6, 7, 8, 9, 12, 17]) {
          k.linear(all, xp, lw, M);
          expect(Array.from(k.f32(all, M * N)), `K=${K} N=${N} M=${M}`).toEqual(singles.slice(0, M * N));
        }
        k.release(mark);
      }
    });
  });
}
