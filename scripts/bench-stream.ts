/**
 * f32 linear layers with their weights streaming from memory, as in a model too big for the caches:
 * each call uses the next of enough distinct copies of the packed weights (≥ --mb, default 256 MB)
 * that no copy is still cached when its turn comes round again. For every shape (N×K: N output rows,
 * K inputs — the 15M/42M/110M layer shapes by default) and row count m (1, 2, 4, 8): µs per call,
 * GB/s of packed weights, and the time ratio against m = 1 (what B beams cost against greedy in that
 * layer); also the same calls on one copy (weights cached: L2 for the small shapes, L3 for the large).
 *
 *   npx tsx scripts/bench-stream.ts [--json] [--rounds 5] [--mb 256] [--shapes 2752x512,32000x512]
 *     [--ms 1,2,4,8] [--builds relaxed,plain] [--wasm /tmp/a.wasm,/tmp/b.wasm] [--align off,page] [--no-hot]
 *
 * --align places the copies 64 bytes past a 4 KiB page ("off", as the arena's 64-byte alignment
 * leaves a model's weights) and/or on a page ("page"), each a separate implementation row: the
 * multi-row kernels read whole pages side by side when they can. --wasm adds builds from other
 * .wasm files (kernel variants A/B in the same run). Every implementation and m is measured
 * round-robin, one pass over all copies per round, the best round counting, in process CPU time.
 * Prints a table; --json prints one JSON array of rows {"shape","impl","m","from":"dram"|"cache",
 * "usPerCall","gbPerSec","ratioToM1"}; every run writes bench-results/stream-<date>.json.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createKernels, type Kernels, type LinearWeight } from '../runtime/kernels.ts';
import { cli, kernelBuilds, seeded, timeRounds, warmAndCheck } from './lib/stream-bench.ts';

const args = process.argv.slice(2);
const { opt } = cli(args);
const json = args.includes('--json');
const hot = !args.includes('--no-hot');
const rounds = Number(opt('rounds', '5'));
const mb = Number(opt('mb', '256'));
const log = (s: string) => (json ? console.error(s) : console.log(s));

const DEFAULT_SHAPES = '288x768,768x288,512x1376,2752x512,768x2048,2048x768,32000x288,32000x512';
const shapes = opt('shapes', DEFAULT_SHAPES).split(',');
const ms = opt('ms', '1,2,4,8').split(',').map(Number);
if (!ms.includes(1)) ms.unshift(1);
const maxM = Math.max(...ms);
const aligns = opt('align', 'off,page').split(',') as Array<'off' | 'page'>;

const root = join(import.meta.dirname, '..');
const files = kernelBuilds(root, opt('builds', 'relaxed'), opt('wasm', ''));

const random = seeded;

interface Row {
  shape: string;
  impl: string;
  m: number;
  from: 'dram' | 'cache';
  usPerCall: number;
  gbPerSec: number;
  ratioToM1: number;
}
const rows: Row[] = [];

const PAGE = 4096;
/** the next 64-byte-aligned allocation lands on a page ("page") or 64 bytes past one ("off") */
function place(k: Kernels, where: 'off' | 'page'): void {
  const top = Math.ceil(k.mark() / 64) * 64;
  const pad = ((PAGE - (top % PAGE)) % PAGE) + (where === 'off' ? 64 : 0);
  if (pad > 0) k.alloc(pad);
}

// one kernels instance per build, reused across shapes (arena released between shapes)
const insts = files.map(({ impl, file }) => {
  const k = createKernels(new WebAssembly.Module(readFileSync(file)));
  return { impl, k, base: k.mark() };
});
const maxBytes = Math.max(
  ...shapes.map((s) => {
    const [n, kk] = s.split('x').map(Number);
    return insts[0].k.linearBytes('f32', n, kk);
  }),
);
const perSet = Math.max(mb << 20, 2 * maxBytes) + maxBytes;
for (const { k } of insts) k.reserve(aligns.length * (perSet + (PAGE + 64) * 4096) + (64 << 20));

for (const shape of shapes) {
  const [N, K] = shape.split('x').map(Number);
  const w = random(N * K);
  const x = random(maxM * K, 2);
  const raw = new Uint8Array(w.buffer);
  // per build × placement: the copies, x, out
  const setups = insts.flatMap(({ impl, k, base }) => {
    k.release(base);
    const first = k.prepareLinear('f32', raw, N, K);
    const copies = Math.max(2, Math.ceil((mb << 20) / first.bytes));
    const xp = k.alloc(maxM * K * 4);
    k.f32(xp, maxM * K).set(x);
    const op = k.alloc(maxM * N * 4);
    return aligns.map((where) => {
      const ws: LinearWeight[] = [];
      for (let c = 0; c < copies; c++) {
        place(k, where);
        const p = k.alloc(first.bytes, 64);
        new Uint8Array(k.memory.buffer).copyWithin(p, first.ptr, first.ptr + first.bytes);
        ws.push({ ...first, ptr: p });
      }
      return { impl: aligns.length > 1 ? `${impl}@${where}` : impl, k, ws, xp, op };
    });
  });
  const bytes = setups[0].ws[0].bytes;
  const copies = setups[0].ws.length;
  warmAndCheck(setups, ms, maxM, N, shape, log);
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
          impl: s.impl,
          m,
          from,
          usPerCall: Math.round(t[mi] * 1e7) / 10,
          gbPerSec: Math.round((bytes / t[mi] / 1e9) * 100) / 100,
          ratioToM1: Math.round((t[mi] / t[ms.indexOf(1)]) * 100) / 100,
        };
        rows.push(row);
        return `m=${m} ${row.usPerCall.toFixed(1).padStart(7)} µs ${row.gbPerSec.toFixed(2).padStart(6)} GB/s ${row.ratioToM1.toFixed(2)}×`;
      });
      log(`${shape.padEnd(10)} ${s.impl.padEnd(14)} ${from.padEnd(5)} ${line.join('  |  ')}`);
    }
  });
  log(`  (${(bytes / 1e6).toFixed(2)} MB packed, ${copies} copies per placement)`);
}

mkdirSync(join(root, 'bench-results'), { recursive: true });
const file = join(root, 'bench-results', `stream-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
writeFileSync(file, `${JSON.stringify(rows, null, 2)}\n`);
log(`wrote ${file}`);
if (json) console.log(JSON.stringify(rows));
