/**
 * Quantised linear layers with their weights streaming from memory, as in a model too big for the
 * caches: each call uses the next of enough distinct copies of the packed weights (≥ --mb, default
 * 256 MB) that no copy is still cached when its turn comes again. For every shape (N×K: N output
 * rows, K inputs — the 15M/42M/110M layer shapes by default), type (q8_0, q4_0) and row count
 * m (1, 2, 4, 8): µs per call, GB/s of packed weights read, and the time ratio against m = 1;
 * also the same calls on one copy (weights cached: L2 for the small shapes, L3 for the large).
 *
 *   npx tsx scripts/bench-stream-quant.ts [--json] [--rounds 5] [--mb 256] [--shapes 768x2048,2048x768]
 *     [--types q8_0,q4_0] [--ms 1,2,4,8] [--builds relaxed,plain] [--wasm /tmp/a.wasm,/tmp/b.wasm] [--no-hot]
 *
 * --wasm adds builds from other .wasm files (kernel variants, A/B in the same run: every
 * implementation and m is measured round-robin, one pass over all copies per round, the best round
 * counts, in process CPU time). Prints a table; --json prints one JSON array of rows
 * {"shape","type","impl","m","from":"dram"|"cache","usPerCall","gbPerSec","ratioToM1"} and every
 * run writes bench-results/stream-quant-<date>.json.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { quantizeQ4_0, quantizeQ8_0 } from '../runtime/ggml.ts';
import { createKernels, type LinearWeight } from '../runtime/kernels.ts';
import { cli, kernelBuilds, seeded, timeRounds, warmAndCheck } from './lib/stream-bench.ts';

const args = process.argv.slice(2);
const { opt } = cli(args);
const json = args.includes('--json');
const hot = !args.includes('--no-hot');
const rounds = Number(opt('rounds', '5'));
const mb = Number(opt('mb', '256'));
const log = (s: string) => (json ? console.error(s) : console.log(s));

const DEFAULT_SHAPES = '288x768,768x288,512x1376,2752x512,768x2048,2048x768,32000x288,32000x768';
const shapes = opt('shapes', DEFAULT_SHAPES).split(',');
const types = opt('types', 'q8_0,q4_0').split(',') as Array<'q8_0' | 'q4_0'>;
const ms = opt('ms', '1,2,4,8').split(',').map(Number);
const maxM = Math.max(...ms);

const root = join(import.meta.dirname, '..');
const impls = kernelBuilds(root, opt('builds', 'relaxed,plain'), opt('wasm', ''));

const random = seeded;

interface Row {
  shape: string;
  type: 'q8_0' | 'q4_0';
  impl: string;
  m: number;
  from: 'dram' | 'cache';
  usPerCall: number;
  gbPerSec: number;
  ratioToM1: number | null;
}
const rows: Row[] = [];

// one kernels instance per implementation, reused across shapes (arena released between shapes)
const insts = impls.map(({ impl, file }) => {
  const k = createKernels(new WebAssembly.Module(readFileSync(file)));
  return { impl, k, base: k.mark() };
});
const maxBytes = Math.max(
  ...shapes.flatMap((s) => {
    const [n, kk] = s.split('x').map(Number);
    return types.map((t) => insts[0].k.linearBytes(t, n, kk));
  }),
);
const reserveBytes = Math.max(mb << 20, 0) + 2 * maxBytes + (64 << 20);
for (const { k } of insts) k.reserve(reserveBytes);

for (const shape of shapes) {
  const [N, K] = shape.split('x').map(Number);
  const w = random(N * K);
  const x = random(maxM * K, 2);
  for (const type of types) {
    const raw = type === 'q8_0' ? quantizeQ8_0(w) : quantizeQ4_0(w);
    // per implementation: the copies, x, out
    const setups = insts.map(({ impl, k, base }) => {
      k.release(base);
      const first = k.prepareLinear(type, raw, N, K);
      const copies = Math.max(2, Math.ceil((mb << 20) / first.bytes));
      const ws: LinearWeight[] = [first];
      const mem = () => new Uint8Array(k.memory.buffer);
      for (let c = 1; c < copies; c++) {
        const p = k.alloc(first.bytes, 64);
        mem().copyWithin(p, first.ptr, first.ptr + first.bytes);
        ws.push({ ...first, ptr: p });
      }
      const xp = k.alloc(maxM * K * 4);
      k.f32(xp, maxM * K).set(x);
      const op = k.alloc(maxM * N * 4);
      return { impl, k, ws, xp, op };
    });
    const bytes = setups[0].ws[0].bytes;
    const copies = setups[0].ws.length;
    warmAndCheck(setups, ms, maxM, N, `${shape} ${type}`, log);
    const { dram, cache } = timeRounds(setups, ms, rounds, copies, hot);
    setups.forEach((s, si) => {
      const froms: Array<['dram' | 'cache', number[]]> = hot
        ? [
            ['dram', dram[si]],
            ['cache', cache[si]],
          ]
        : [['dram', dram[si]]];
      for (const [from, t] of froms) {
        const line = ms.map((m, mi) => {
          const row: Row = {
            shape,
            type,
            impl: s.impl,
            m,
            from,
            usPerCall: Math.round(t[mi] * 1e7) / 10,
            gbPerSec: Math.round((bytes / t[mi] / 1e9) * 100) / 100,
            ratioToM1: ms.includes(1) ? Math.round((t[mi] / t[ms.indexOf(1)]) * 100) / 100 : null,
          };
          rows.push(row);
          return `m=${m} ${row.usPerCall.toFixed(1).padStart(7)} µs ${row.gbPerSec.toFixed(2).padStart(6)} GB/s ${row.ratioToM1 === null ? '' : `${row.ratioToM1.toFixed(2)}×`}`;
        });
        log(
          `${shape.padEnd(10)} ${type.padEnd(5)} ${s.impl.padEnd(14)} ${from.padEnd(5)} ${line.join('  |  ')}`,
        );
      }
    });
    log(`  (${(bytes / 1e6).toFixed(2)} MB packed, ${copies} copies)`);
  }
}

mkdirSync(join(root, 'bench-results'), { recursive: true });
const file = join(
  root,
  'bench-results',
  `stream-quant-${new Date().toISOString().replace(/[:.]/g, '-')}.json`,
);
writeFileSync(file, `${JSON.stringify(rows, null, 2)}\n`);
log(`wrote ${file}`);
if (json) console.log(JSON.stringify(rows));
