// Quantised linear (q8_0, q4_0) on the shapes that exercise how the kernels walk the weights: one
// row reads G groups far apart (ng / G groups between them) plus the leftover groups; several rows
// read TILE_STREAMS groups far apart, block by block, plus the rest — with the last, partial group
// (n % 4 ≠ 0) in each of those places. Checked against an exact integer reference of llama.cpp's
// scheme (activations quantised to Q8_0 per block of 32, integer block sums, one scale product per
// block), and every row of a batch against the same row alone, bit for bit.
import { describe, expect, it } from 'vitest';
import { encodeQ4_0, encodeQ8_0, halfToNumber, randomF32, rng } from '../helpers/ref-kernels.ts';
import { builds, load, put } from './setup.ts';

const f = Math.fround;

/** x (m × k) quantised as the kernels do (f32 arithmetic, round half to even): q and d per block */
function quantiseActs(x: Float32Array, m: number, k: number) {
  const nb = k / 32;
  const q = new Int32Array(m * k);
  const d = new Float64Array(m * nb);
  for (let r = 0; r < m; r++)
    for (let b = 0; b < nb; b++) {
      let amax = 0;
      for (let i = 0; i < 32; i++) amax = Math.max(amax, Math.abs(x[r * k + b * 32 + i]));
      const db = f(amax / 127);
      const id = db !== 0 ? f(1 / db) : 0;
      d[r * nb + b] = db;
      for (let i = 0; i < 32; i++) {
        const v = f(x[r * k + b * 32 + i] * id);
        // round half to even (f32x4.nearest)
        let t = Math.round(v);
        if (Math.abs(v - Math.trunc(v)) === 0.5) t = 2 * Math.round(v / 2);
        q[r * k + b * 32 + i] = t;
      }
    }
  return { q, d };
}

/** integer weights (q8_0: −128 read as −127, as the kernels document; q4_0: nibble − 8) and f16 scales */
function weightInts(type: 'q8_0' | 'q4_0', raw: Uint8Array, n: number, k: number) {
  const nb = k / 32;
  const bs = type === 'q8_0' ? 34 : 18;
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const w = new Int32Array(n * k);
  const d = new Float64Array(n * nb);
  for (let j = 0; j < n; j++)
    for (let b = 0; b < nb; b++) {
      const o = (j * nb + b) * bs;
      d[j * nb + b] = halfToNumber(dv.getUint16(o, true));
      for (let i = 0; i < 32; i++) {
        let v: number;
        if (type === 'q8_0') v = Math.max(-127, dv.getInt8(o + 2 + i));
        else {
          const byte = raw[o + 2 + (i % 16)];
          v = (i < 16 ? byte & 15 : byte >> 4) - 8;
        }
        w[j * k + b * 32 + i] = v;
      }
    }
  return { w, d };
}

/** Σ_b isum_b · (f32(wd_b · xd_b)) in float64, and Σ_b |that term| (the rounding scale) */
function refExact(type: 'q8_0' | 'q4_0', raw: Uint8Array, x: Float32Array, m: number, n: number, k: number) {
  const nb = k / 32;
  const a = quantiseActs(x, m, k);
  const wi = weightInts(type, raw, n, k);
  const out = new Float64Array(m * n);
  const abs = new Float64Array(m * n);
  for (let r = 0; r < m; r++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      let sa = 0;
      for (let b = 0; b < nb; b++) {
        let isum = 0;
        for (let i = 0; i < 32; i++) isum += a.q[r * k + b * 32 + i] * wi.w[j * k + b * 32 + i];
        const t = isum * f(wi.d[j * nb + b] * a.d[r * nb + b]);
        s += t;
        sa += Math.abs(t);
      }
      out[r * n + j] = s;
      abs[r * n + j] = sa;
    }
  return { out, abs };
}

// n: ng = 1, 2, 3, 12 (n % 4 = 1: partial group last in the far streams), 12, 16, 18 (2 left over),
// 32, 33; k: 1, 3, 9 and 25 blocks
const NS = [1, 5, 11, 45, 48, 61, 70, 125, 130];
const KS = [32, 96, 288, 800];

for (const bld of builds) {
  describe(`quantised linear, stream order (${bld.name})`, () => {
    const k = load(bld.file);
    const r = rng(7);

    for (const type of ['q8_0', 'q4_0'] as const) {
      it(`${type}: M = 1..9 against the exact integer reference, every row equal to that row alone`, () => {
        for (const K of KS)
          for (const N of NS) {
            const mark = k.mark();
            const raw = type === 'q8_0' ? encodeQ8_0(randomF32(r, N * K)) : encodeQ4_0(randomF32(r, N * K));
            if (type === 'q8_0') {
              // a few −128 bytes (not produced by the encoder; read as −127)
              for (let t = 0; t < 4; t++)
                raw[Math.floor(r() * (raw.length / 34)) * 34 + 2 + Math.floor(r() * 32)] = 0x80;
            }
            const lw = k.prepareLinear(type, raw, N, K);
            const M = 9;
            const x = randomF32(r, M * K, 3);
            const ref = refExact(type, raw, x, M, N, K);
            const xp = put(k, x);
            const one = k.alloc(N * 4 + 64);
            const alone: Float32Array[] = [];
            for (let row = 0; row < M; row++) {
              const guard = k.f32(one + N * 4, 16).fill(777);
              k.linear(one, xp + row * K * 4, lw, 1);
              const got = k.f32(one, N);
              alone.push(Float32Array.from(got));
              expect(Array.from(guard), 'no write past out').toEqual(new Array(16).fill(777));
              for (let j = 0; j < N; j++) {
                // exact integer sums; f32 rounding of each block term's convert and product and of
                // the K/32 running sums: ≤ (K/32 + 3)·2⁻²⁴ of Σ|terms| (an integer sum off by one
                // moves the result by a whole term's unit, far more for these sizes)
                const i = row * N + j;
                const tol = (K / 32 + 3) * 2 ** -24 * ref.abs[i] + 1e-30;
                expect(
                  Math.abs(got[j] - ref.out[i]),
                  `${type} K=${K} N=${N} row ${row} out ${j}: ${got[j]} vs ${ref.out[i]}`,
                ).toBeLessThanOrEqual(tol);
              }
            }
            for (let m = 2; m <= M; m++) {
              const all = k.alloc(m * N * 4 + 64);
              const guard = k.f32(all + m * N * 4, 16).fill(777);
              k.linear(all, xp, lw, m);
              for (let row = 0; row < m; row++)
                expect(
                  Array.from(k.f32(all + row * N * 4, N)),
                  `${type} K=${K} N=${N} M=${m} row ${row}`,
                ).toEqual(Array.from(alone[row]));
              expect(Array.from(guard), 'no write past out').toEqual(new Array(16).fill(777));
            }
            k.release(mark);
          }
      });
    }
  });
}
