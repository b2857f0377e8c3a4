// kvWriteRows + attentionRows (B decode rows in one call, beams sharing prefix blocks) against the
// per-row kernels (bit for bit) and a float64 reference over each row's contiguous K/V, both builds.

import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { OptionsError, UnsupportedError } from '../../runtime/errors.ts';
import { parseGGUF } from '../../runtime/gguf.ts';
import { createKernels, type Kernels } from '../../runtime/kernels.ts';
import { Model } from '../../runtime/model.ts';
import { randomModel } from '../helpers/random-model.ts';
import { randomF32, refAttention, rng, worst } from '../helpers/ref-kernels.ts';
import { builds, f32, load, put, putI32 } from './setup.ts';

interface Batch {
  nHeads: number;
  nKv: number;
  hd: number;
  bs: number;
  positions: number[]; // row b's query position (it attends to 0..positions[b])
  tables: number[][]; // row b's block table (block indices)
  nBlocks: number;
}

// B rows shaped like beams: row b copies the first `shared` blocks of an earlier row's table (a
// fork) and takes fresh blocks after them; positions differ per row and end anywhere in a block
function makeBatch(
  r: () => number,
  B: number,
  nHeads: number,
  nKv: number,
  hd: number,
  bs: number,
  maxLen: number,
): Batch {
  const positions: number[] = [];
  const tables: number[][] = [];
  let next = 0;
  for (let b = 0; b < B; b++) {
    const pos = Math.floor(r() * maxLen);
    const nb = Math.floor(pos / bs) + 1;
    const t: number[] = [];
    if (b > 0 && r() < 0.8) {
      const parent = tables[Math.floor(r() * b)];
      const shared = Math.min(nb, Math.floor(r() * (parent.length + 1)));
      for (let i = 0; i < shared; i++) t.push(parent[i]);
    }
    while (t.length < nb) t.push(next++);
    positions.push(pos);
    tables.push(t);
  }
  // scramble the block numbering so that sharing does not follow memory order
  const perm = Array.from({ length: next }, (_, i) => i);
  for (let i = perm.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [perm[i], perm[j]] = [perm[j], perm[i]];
  }
  return { nHeads, nKv, hd, bs, positions, tables: tables.map((t) => t.map((x) => perm[x])), nBlocks: next };
}

interface Placed {
  kPool: number;
  vPool: number;
  tables: number; // B i32 pointers
  tablePtrs: number[];
  positions: number;
  q: number;
  qHost: Float32Array;
}

function place(k: Kernels, r: () => number, c: Batch): Placed {
  const blockFloats = c.nKv * c.bs * c.hd;
  const kPool = put(k, randomF32(r, c.nBlocks * blockFloats, 2));
  const vPool = put(k, randomF32(r, c.nBlocks * blockFloats));
  const tablePtrs = c.tables.map((t) => putI32(k, t));
  const qHost = f32(randomF32(r, c.positions.length * c.nHeads * c.hd, 2));
  return {
    kPool,
    vPool,
    tables: putI32(k, tablePtrs),
    tablePtrs,
    positions: putI32(k, c.positions),
    q: put(k, qHost),
    qHost,
  };
}

// row b's keys and values 0..positions[b] as contiguous [t][nKv·hd] arrays, read from the pools
function gather(k: Kernels, c: Batch, b: number, pool: number): Float32Array {
  const T = c.positions[b] + 1;
  const row = c.nKv * c.hd;
  const all = k.f32(pool, c.nBlocks * c.nKv * c.bs * c.hd);
  const out = new Float32Array(T * row);
  for (let t = 0; t < T; t++) {
    const blk = c.tables[b][Math.floor(t / c.bs)];
    for (let h = 0; h < c.nKv; h++) {
      const src = ((blk * c.nKv + h) * c.bs + (t % c.bs)) * c.hd;
      out.set(all.subarray(src, src + c.hd), t * row + h * c.hd);
    }
  }
  return out;
}

// attentionRows against per-row attention (bits) and the float64 reference (2e-5 absolute, as in
// attention.test.ts: f32 scores |s| ≲ 10 and a ~2e-7 relative exp, outputs bounded by max|v| ≤ 1)
function checkBatch(k: Kernels, c: Batch, seed: number): void {
  const r = rng(seed);
  const mark = k.mark();
  const p = place(k, r, c);
  const B = c.positions.length;
  const rowF = c.nHeads * c.hd;
  const out = k.alloc(B * rowF * 4);
  const one = k.alloc(B * rowF * 4);
  k.attentionRows(out, p.q, B, p.kPool, p.vPool, p.tables, p.positions, c.nHeads, c.nKv, c.hd, c.bs);
  for (let b = 0; b < B; b++) {
    const o = b * rowF * 4;
    k.attention(
      one + o,
      p.q + o,
      1,
      p.kPool,
      p.vPool,
      p.tablePtrs[b],
      c.positions[b],
      c.nHeads,
      c.nKv,
      c.hd,
      c.bs,
    );
  }
  const bits = k.i32(out, B * rowF).slice();
  const bitsPer = k.i32(one, B * rowF).slice();
  const diff = bits.findIndex((v, i) => v !== bitsPer[i]);
  expect(diff, `row ${Math.floor(diff / rowF)} differs from per-row attention at ${diff}`).toBe(-1);
  const gotF = k.f32(out, B * rowF).slice();
  for (let b = 0; b < B; b++) {
    const want = refAttention(
      p.qHost.subarray(b * rowF, (b + 1) * rowF),
      gather(k, c, b, p.kPool),
      gather(k, c, b, p.vPool),
      1,
      c.positions[b],
      c.nHeads,
      c.nKv,
      c.hd,
    );
    const res = worst(gotF.subarray(b * rowF, (b + 1) * rowF), want, () => 2e-5);
    expect(res.ratio, `row ${b} at ${res.index}: ${res.got} vs ${res.want}`).toBeLessThanOrEqual(1);
  }
  k.release(mark);
}

for (const b of builds) {
  describe(`attentionRows / kvWriteRows (${b.name})`, () => {
    const k = load(b.file);

    const shapes = [
      // nHeads, nKv, hd, bs, max length
      [1, 1, 2, 4, 9],
      [2, 2, 6, 4, 20],
      [4, 2, 8, 16, 70],
      [8, 2, 16, 16, 60], // GQA: four query heads per KV head
      [4, 1, 64, 16, 100],
      [6, 3, 10, 5, 40], // head size not a multiple of 4, blocks of 5 (partial tiles of 4)
      [3, 3, 64, 64, 150], // two 32-key tiles per block, the second often partial
      [2, 1, 36, 48, 120], // tiles of 32 + 16 per block
    ];
    for (const [nHeads, nKv, hd, bs, maxLen] of shapes) {
      it(`B = 1..8 with shared and private blocks: heads ${nHeads}/${nKv}, hd ${hd}, block ${bs}`, () => {
        for (let B = 1; B <= 8; B++) {
          const seed = B * 1000 + nHeads * 7 + hd;
          checkBatch(k, makeBatch(rng(seed), B, nHeads, nKv, hd, bs, maxLen), seed + 1);
        }
      });
    }

    it('every row on one shared table (all beams at the fork point)', () => {
      const t = [3, 0, 2, 1];
      const c: Batch = {
        nHeads: 4,
        nKv: 2,
        hd: 16,
        bs: 8,
        positions: [29, 29, 29, 29, 29],
        tables: [t, t, t, t, t],
        nBlocks: 4,
      };
      checkBatch(k, c, 5);
    });

    it('rows at different depths of one table (shared blocks, different partial last blocks)', () => {
      const t = [4, 1, 3, 0, 2];
      const c: Batch = {
        nHeads: 2,
        nKv: 1,
        hd: 8,
        bs: 8,
        positions: [0, 7, 8, 39, 20, 33],
        tables: [t, t, t, t, t, t],
        nBlocks: 5,
      };
      checkBatch(k, c, 6);
    });

    it('more rows than one kernel call takes (1024 heads: split into calls of 8 rows)', () => {
      const c = makeBatch(rng(11), 19, 1024, 256, 2, 4, 12);
      checkBatch(k, c, 12);
    });

    it('property: random beam trees, B 1..8, GQA, random lengths', () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 1, max: 8 }),
          fc.constantFrom([1, 1], [2, 1], [4, 2], [6, 2], [3, 3]),
          fc.constantFrom(2, 4, 6, 16, 34),
          fc.constantFrom(1, 3, 4, 16, 40),
          fc.integer({ min: 1, max: 90 }),
          fc.integer({ min: 0, max: 1 << 20 }),
          (B, [nHeads, nKv], hd, bs, maxLen, seed) => {
            checkBatch(k, makeBatch(rng(seed), B, nHeads, nKv, hd, bs, maxLen), seed + 1);
          },
        ),
        { numRuns: 60 },
      );
    });

    it('kvWriteRows stores each row where kvWrite would', () => {
      const r = rng(21);
      for (const [nKv, hd, bs] of [
        [1, 2, 4],
        [2, 8, 16],
        [3, 10, 5],
      ]) {
        const B = 6;
        const mark = k.mark();
        const c = makeBatch(r, B, nKv, nKv, hd, bs, 40);
        // distinct positions per block: every row writes into its own last block
        const own = c.tables.map((t, i) => [...t.slice(0, -1), c.nBlocks + i]);
        const nBlocks = c.nBlocks + B;
        const bytes = nBlocks * nKv * bs * hd * 4;
        const pools = [k.alloc(bytes), k.alloc(bytes), k.alloc(bytes), k.alloc(bytes)];
        const ptrs = own.map((t) => putI32(k, t));
        const rowF = nKv * hd;
        const kr = put(k, randomF32(r, B * rowF));
        const vr = put(k, randomF32(r, B * rowF));
        k.kvWriteRows(pools[0], pools[1], putI32(k, ptrs), putI32(k, c.positions), B, kr, vr, nKv, hd, bs);
        for (let i = 0; i < B; i++) {
          const o = i * rowF * 4;
          k.kvWrite(pools[2], pools[3], ptrs[i], c.positions[i], 1, kr + o, vr + o, nKv, hd, bs);
        }
        expect(Array.from(k.u8(pools[0], bytes))).toEqual(Array.from(k.u8(pools[2], bytes)));
        expect(Array.from(k.u8(pools[1], bytes))).toEqual(Array.from(k.u8(pools[3], bytes)));
        // and something was written
        expect(k.f32(pools[0], bytes / 4).some((x) => x !== 0)).toBe(true);
        k.release(mark);
      }
    });

    it('rejects bad arguments with typed errors before reading memory', () => {
      const mark = k.mark();
      const table = putI32(k, [0, 1]);
      const tables = putI32(k, [table]);
      const pos = putI32(k, [5]);
      const pool = k.alloc(2 * 4 * 8 * 4);
      const q = k.alloc(2 * 8 * 4);
      const out = k.alloc(2 * 8 * 4);
      const call = (o: Partial<Record<string, number>>) => () =>
        k.attentionRows(
          o.out ?? out,
          o.q ?? q,
          o.B ?? 1,
          o.kPool ?? pool,
          pool,
          o.tables ?? tables,
          o.pos ?? pos,
          o.nHeads ?? 2,
          o.nKv ?? 1,
          8,
          o.bs ?? 4,
        );
      expect(call({})).not.toThrow();
      expect(call({ B: 0 })).toThrow(OptionsError);
      expect(call({ B: 1.5 })).toThrow(OptionsError);
      expect(call({ nHeads: 3, nKv: 2 })).toThrow(UnsupportedError);
      expect(call({ bs: 0 })).toThrow(UnsupportedError);
      expect(call({ tables: tables + 2 })).toThrow(OptionsError);
      expect(call({ pos: k.memory.buffer.byteLength - 2 })).toThrow(OptionsError);
      expect(call({ out: q + 4 })).toThrow(OptionsError); // overlaps q
      expect(call({ q: k.memory.buffer.byteLength - 16 })).toThrow(OptionsError);
      k.i32(pos, 1)[0] = -1;
      expect(call({})).toThrow(OptionsError);
      k.i32(pos, 1)[0] = 5;
      k.i32(table, 2)[1] = 1 << 28; // a block far outside memory
      expect(call({})).toThrow(OptionsError);
      k.i32(table, 2)[1] = -3;
      expect(call({})).toThrow(OptionsError);
      k.i32(table, 2)[1] = 1;
      const badTables = putI32(k, [k.memory.buffer.byteLength - 4]);
      expect(call({ tables: badTables })).toThrow(OptionsError); // 2 entries needed, 1 in memory
      expect(() =>
        k.kvWriteRows(pool, pool, tables, pos, 1, k.memory.buffer.byteLength - 8, q, 1, 8, 4),
      ).toThrow(OptionsError);
      expect(() => k.kvWriteRows(pool, pool, tables, pos, 1, q, q, 1, 8, 4)).not.toThrow();
      k.i32(table, 2)[1] = 1 << 28; // the block position 5 is written to, far outside memory
      expect(() => k.kvWriteRows(pool, pool, tables, pos, 1, q, q, 1, 8, 4)).toThrow(OptionsError);
      expect(() => k.kvWriteRows(pool, pool, tables, pos, 0, q, q, 1, 8, 4)).toThrow(OptionsError);
      expect(call({ nHeads: 0, nKv: 1 })).toThrow(UnsupportedError);
      k.release(mark);
    });
  });
}

// Model.decode through attentionRows / kvWriteRows against the same model on the per-row loop it
// falls back to (kernels without those methods): beams forked from a prompt longer than a block and
// re-forked as beam search does, so rows share blocks, diverge and sit at different positions.
// The logits must agree bit for bit (the kernels are bit-identical row by row).
for (const b of builds) {
  it(`Model.decode: batched attention = per-row loop, bit for bit (${b.name})`, () => {
    const bytes = randomModel({
      arch: 'llama',
      dim: 64,
      nLayers: 2,
      nHeads: 4,
      nKvHeads: 2,
      ffnDim: 96,
      vocab: 300,
      context: 128,
      seed: 31,
      type: 'q8_0',
    });
    const file = b.file.split('#')[0];
    const mod = new WebAssembly.Module(readFileSync(file));
    const opts = { usdot: !b.file.endsWith('#portable') };
    const rowsK = createKernels(mod, opts);
    const perRowK = createKernels(mod, opts) as unknown as Record<string, unknown>;
    perRowK.attentionRows = undefined;
    perRowK.kvWriteRows = undefined;
    const run = (k: Kernels) => {
      const model = Model.load(k, parseGGUF(bytes), { maxSequences: 6 });
      const r = rng(5);
      const root = model.newSequence();
      model.prefill(
        root,
        Array.from({ length: 37 }, (_, i) => (i * 7) % 300),
      );
      let beams = [root];
      for (let i = 0; i < 4; i++) beams.push(model.fork(root));
      const logits: number[] = [];
      for (let step = 0; step < 24; step++) {
        const out = model.decode(
          beams,
          beams.map(() => Math.floor(r() * 300)),
        );
        logits.push(...new Int32Array(out.buffer, out.byteOffset, out.length)); // the bits
        // every few steps: the worst beam is dropped and the best one forked (blocks shared again)
        if (step % 3 === 2) {
          model.free(beams[beams.length - 1]);
          beams = [beams[0], model.fork(beams[0]), ...beams.slice(1, -1)];
        }
        // and one beam runs ahead by a token now and then (rows at different positions)
        if (step % 5 === 4) model.decode([beams[2]], [Math.floor(r() * 300)]);
      }
      return logits;
    };
    const a = run(rowsK);
    const c = run(perRowK as unknown as Kernels);
    expect(a.length).toBeGreaterThan(100);
    expect(a.length).toBe(c.length);
    const at = a.findIndex((x, i) => x !== c[i]);
    expect(at, `logit bits differ at ${at} (step ${Math.floor(at / 1500)})`).toBe(-1);
  });
}
