// KvCache alone, under random operation sequences (fast-check): every live sequence reads back
// exactly what was written for it through its own block table, blocks are never lost or shared
// without a reference, and a refused reservation changes nothing.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BudgetError, ContextLengthError } from '../../runtime/errors.ts';
import { KvCache, type KvSequence } from '../../runtime/kv-cache.ts';
import { createJsKernels } from '../helpers/js-kernels.ts';

const BS = 4;
const layout = {
  nLayers: 2,
  nKvHeads: 1,
  headDim: 2,
  blockSize: BS,
  nBlocks: 8,
  context: 22,
  maxBlocksPerSeq: Math.ceil(22 / BS),
  maxSequences: 4,
};

type Op = { kind: 'new' | 'fork' | 'free' | 'write' | 'write2' | 'reserve'; a: number; b: number; n: number };
const op = fc.record({
  kind: fc.constantFrom('new', 'fork', 'free', 'write', 'write', 'write2', 'reserve'),
  a: fc.nat(7),
  b: fc.nat(7),
  n: fc.integer({ min: 1, max: 9 }),
}) as fc.Arbitrary<Op>;

describe('KvCache under random operations', () => {
  it('keeps every sequence’s contents, refcounts and the free count consistent', () => {
    let stamp = 1;
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const k = createJsKernels();
        k.reserve(KvCache.bytes(layout));
        const kv = new KvCache(k, layout);
        const live: Array<{ s: KvSequence; data: number[] }> = []; // data: the value written at each position
        const hd = layout.headDim;
        const blockFloats = layout.nKvHeads * BS * hd;
        // the model's kvWrite for one position: value v (and -v) in the K and V pools of every layer
        const write = (s: KvSequence, pos: number, v: number) => {
          const table = k.i32(s.tablePtr, layout.maxBlocksPerSeq);
          for (let l = 0; l < layout.nLayers; l++) {
            for (const [pool, sign] of [
              [kv.kPools[l], 1],
              [kv.vPools[l], -1],
            ] as const) {
              const f = k.f32(pool, layout.nBlocks * blockFloats);
              const at = table[Math.floor(pos / BS)] * blockFloats + (pos % BS) * hd;
              f[at] = sign * v;
              f[at + 1] = sign * v + l;
            }
          }
        };
        const read = (s: KvSequence, pos: number): number[] => {
          const table = k.i32(s.tablePtr, layout.maxBlocksPerSeq);
          const out: number[] = [];
          for (let l = 0; l < layout.nLayers; l++) {
            for (const pool of [kv.kPools[l], kv.vPools[l]]) {
              const f = k.f32(pool, layout.nBlocks * blockFloats);
              const at = table[Math.floor(pos / BS)] * blockFloats + (pos % BS) * hd;
              out.push(f[at], f[at + 1]);
            }
          }
          return out;
        };
        const expected = (v: number) => [v, v, -v, -v, v, v + 1, -v, -v + 1];
        const check = () => {
          const used = new Map<number, number>();
          for (const { s, data } of live) {
            expect(s.length).toBe(data.length);
            for (let p = 0; p < data.length; p++) expect(read(s, p)).toEqual(expected(data[p]));
            for (const b of s.blocks) used.set(b, (used.get(b) ?? 0) + 1);
          }
          expect(kv.freeBlocks() + used.size).toBe(layout.nBlocks);
        };
        // blocks a reservation needs, counted per shared block: c writers of a partly filled block
        // that r sequences hold need c copies when c < r (the original stays with the others), else c − 1
        const need = (entries: Array<{ s: KvSequence }>, n: number): number => {
          let total = 0;
          const writers = new Map<number, number>();
          for (const { s } of entries) {
            total += Math.max(0, Math.ceil((s.length + n) / BS) - s.blocks.length);
            const bi = Math.floor(s.length / BS);
            if (bi < s.blocks.length) writers.set(s.blocks[bi], (writers.get(s.blocks[bi]) ?? 0) + 1);
          }
          for (const [b, c] of writers) {
            const r = live.filter((x) => x.s.blocks.includes(b)).length;
            if (r > 1) total += c < r ? c : c - 1;
          }
          return total;
        };
        const tryWrite = (entries: Array<{ s: KvSequence; data: number[] }>, n: number, commit = true) => {
          const before = entries.map((e) => [e.s.length, [...e.s.blocks]]);
          const free = kv.freeBlocks();
          const needed = need(entries, n);
          try {
            kv.reserve(
              entries.map((e) => e.s),
              entries.map(() => n),
            );
          } catch (e) {
            expect(e instanceof BudgetError || e instanceof ContextLengthError).toBe(true);
            if (e instanceof ContextLengthError) {
              expect(entries.some((x) => x.s.length + n > layout.context)).toBe(true);
            } else {
              expect(needed).toBeGreaterThan(free); // refused only when it truly does not fit
            }
            // refused: nothing changed
            expect(entries.map((x) => [x.s.length, [...x.s.blocks]])).toEqual(before);
            expect(kv.freeBlocks()).toBe(free);
            return;
          }
          expect(kv.freeBlocks()).toBe(free - needed);
          if (!commit) return; // as a prefill that failed after reserving: blocks held, nothing written
          for (const e of entries) {
            for (let i = 0; i < n; i++) {
              const v = stamp++;
              write(e.s, e.s.length + i, v);
              e.data.push(v);
            }
            kv.commit(e.s, n);
          }
        };
        for (const o of ops) {
          const pick = (i: number) => live[i % live.length];
          if (o.kind === 'new') {
            if (kv.freeSequenceSlots() === 0) expect(() => kv.newSequence()).toThrow(BudgetError);
            else live.push({ s: kv.newSequence(), data: [] });
          } else if (live.length === 0) {
            continue;
          } else if (o.kind === 'fork') {
            const p = pick(o.a);
            if (kv.freeSequenceSlots() === 0) expect(() => kv.fork(p.s)).toThrow(BudgetError);
            else live.push({ s: kv.fork(p.s), data: [...p.data] });
          } else if (o.kind === 'free') {
            const i = o.a % live.length;
            kv.free(live[i].s);
            live.splice(i, 1);
          } else if (o.kind === 'write') {
            tryWrite([pick(o.a)], o.n);
          } else if (o.kind === 'reserve') {
            tryWrite([pick(o.a)], o.n, false);
          } else {
            const x = pick(o.a);
            const y = pick(o.b);
            tryWrite(x === y ? [x] : [x, y], Math.min(o.n, 3));
          }
          check();
        }
        for (const { s } of live) kv.free(s);
        expect(kv.freeBlocks()).toBe(layout.nBlocks);
      }),
      { numRuns: 400, seed: 1234 },
    );
  });
});
