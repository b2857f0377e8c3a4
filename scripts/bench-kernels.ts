/**
 * Kernel benchmark: single-threaded GFLOP/s (GOP/s for quantised weights, 2·M·N·K operations) of
 * `linear` on the shapes, for f32, Q8_0 and Q4_0 weights, in the plain and relaxed SIMD
 * builds; in the same run, on the f32 shapes, XNNPACK through @tensorflow/tfjs-backend-wasm
 * (SIMD, one thread) and a naive JavaScript loop.
 *
 *   npm run bench:kernels -- [--json] [--rounds 25] [--shapes 1x768x3072,4x768x3072] [--types f32,q8_0]
 *
 * The machine is shared: every implementation of a row runs in round-robin for `rounds` rounds of
 * ~10 ms and the best round counts, timed in process CPU time (time other jobs hold the core is
 * left out; their pressure on caches and memory bandwidth is not). Prints a table with ratios against XNNPACK (or one JSON array
 * with --json: rows {"shape","type","impl","gflops"}) and writes bench-results/kernels-<date>.json.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setThreadsCount, setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { quantizeQ4_0, quantizeQ8_0 } from '../runtime/ggml.ts';
import { createKernels, detectRelaxedSimd, type Kernels, type WeightType } from '../runtime/kernels.ts';

const args = process.argv.slice(2);
const opt = (name: string, def: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? args[i + 1] : def;
};
const json = args.includes('--json');
const rounds = Number(opt('rounds', '25'));
const log = (s: string) => (json ? console.error(s) : console.log(s));

const ALL_SHAPES = [
  '1x288x768',
  '1x768x288',
  '1x288x32000',
  '1x768x3072',
  '4x768x3072',
  '64x768x768',
  '256x512x512',
];
const shapes = opt('shapes', ALL_SHAPES.join(',')).split(',');
const types = opt('types', 'f32,q8_0,q4_0').split(',') as WeightType[];

interface Row {
  shape: string;
  type: WeightType;
  impl: 'edgelm' | 'edgelm-relaxed' | 'xnnpack' | 'naive';
  gflops: number;
}

const root = join(import.meta.dirname, '..');
const kernels: Array<{ impl: Row['impl']; k: Kernels }> = [
  {
    impl: 'edgelm',
    k: createKernels(new WebAssembly.Module(readFileSync(join(root, 'build/kernels.wasm')))),
  },
];
if (detectRelaxedSimd()) {
  kernels.push({
    impl: 'edgelm-relaxed',
    k: createKernels(new WebAssembly.Module(readFileSync(join(root, 'build/kernels-relaxed.wasm')))),
  });
}
for (const { k } of kernels) k.reserve(256 << 20);

// XNNPACK via tfjs' wasm backend: SIMD build, no threads
tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
tf.env().set('WASM_HAS_SIMD_SUPPORT', true);
setWasmPaths(join(root, 'node_modules/@tensorflow/tfjs-backend-wasm/dist/') + '/');
setThreadsCount(1);
await tf.setBackend('wasm');
await tf.ready();

let seed = 1;
function random(n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    a[i] = (seed / 2 ** 32) * 2 - 1;
  }
  return a;
}

function raw(type: WeightType, w: Float32Array): Uint8Array {
  if (type === 'q8_0') return quantizeQ8_0(w);
  if (type === 'q4_0') return quantizeQ4_0(w);
  return new Uint8Array(w.buffer, w.byteOffset, w.byteLength);
}

// process CPU time in ms: on a shared machine this leaves out the time other jobs hold the core
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

// best seconds per call of each fn, measured round-robin in CPU time
function race(fns: Array<() => void>): number[] {
  const iters = fns.map((f) => {
    f(); // warm-up (and JIT tier-up)
    const t0 = performance.now();
    let n = 0;
    while (performance.now() - t0 < 15) {
      f();
      n++;
    }
    return Math.max(1, Math.round((n * 10) / Math.max(1, performance.now() - t0)));
  });
  const best = fns.map(() => Number.POSITIVE_INFINITY);
  for (let r = 0; r < rounds; r++) {
    fns.forEach((f, i) => {
      const t0 = cpuMs();
      for (let j = 0; j < iters[i]; j++) f();
      best[i] = Math.min(best[i], (cpuMs() - t0) / 1000 / iters[i]);
    });
  }
  return best;
}

function naive(out: Float32Array, x: Float32Array, w: Float32Array, m: number, n: number, k: number) {
  for (let r = 0; r < m; r++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let i = 0; i < k; i++) s += x[r * k + i] * w[j * k + i];
      out[r * n + j] = s;
    }
}

const rows: Row[] = [];
for (const shape of shapes) {
  const [M, K, N] = shape.split('x').map(Number);
  const ops = 2 * M * N * K;
  const w = random(N * K);
  const x = random(M * K);
  for (const type of types) {
    const fns: Array<() => void> = [];
    const impls: Row['impl'][] = [];
    const marks = kernels.map(({ k }) => k.mark());
    for (const { impl, k } of kernels) {
      const lw = k.prepareLinear(type, raw(type, w), N, K);
      const xp = k.alloc(M * K * 4);
      k.f32(xp, M * K).set(x);
      const op = k.alloc(M * N * 4);
      fns.push(() => k.linear(op, xp, lw, M));
      impls.push(impl);
    }
    const tensors: tf.Tensor[] = [];
    if (type === 'f32') {
      // XNNPACK: both weight layouts, the faster one counts
      const xt = tf.tensor2d(x, [M, K]);
      const wt = tf.tensor2d(w, [N, K]);
      const wT = tf.transpose(wt);
      tensors.push(xt, wt, wT);
      const a = () => tf.matMul(xt, wt, false, true).dispose();
      const b = () => tf.matMul(xt, wT, false, false).dispose();
      const [ta, tb] = race([a, b]);
      fns.push(ta <= tb ? a : b);
      impls.push('xnnpack');
      const out = new Float32Array(M * N);
      fns.push(() => naive(out, x, w, M, N, K));
      impls.push('naive');
    }
    const t = race(fns);
    impls.forEach((impl, i) => {
      rows.push({ shape, type, impl, gflops: Math.round((ops / t[i] / 1e9) * 100) / 100 });
    });
    for (const tt of tensors) tt.dispose();
    kernels.forEach(({ k }, i) => {
      k.release(marks[i]);
    });
    log(
      `${shape.padEnd(12)} ${type.padEnd(5)} ` +
        impls.map((impl, i) => `${impl} ${(ops / t[i] / 1e9).toFixed(2)}`).join('  '),
    );
  }
}

// ---- report ----
const g = (shape: string, type: string, impl: string) =>
  rows.find((r) => r.shape === shape && r.type === type && r.impl === impl)?.gflops;
const fmt = (v: number | undefined) => (v === undefined ? '—' : v.toFixed(2));
const ratio = (a: number | undefined, b: number | undefined) =>
  a === undefined || b === undefined ? '—' : `${(a / b).toFixed(2)}×`;
const lines: string[] = [];
lines.push('');
const rk = kernels.find((x) => x.impl === 'edgelm-relaxed')?.k;
if (rk)
  lines.push(
    `relaxed build: quantised products on ${rk.usdot ? "the engine's unsigned-byte dot (usdot: one vpdpbusd per 16 MACs)" : 'the portable relaxed dot (no usdot on this engine)'}; Node ${process.versions.node}, V8 ${process.versions.v8}`,
  );
lines.push('shape         type   edgelm  relaxed  xnnpack  naive   edgelm/xnn  relaxed/xnn');
for (const shape of shapes)
  for (const type of types) {
    const x = g(shape, 'f32', 'xnnpack');
    const e = g(shape, type, 'edgelm');
    const r = g(shape, type, 'edgelm-relaxed');
    lines.push(
      `${shape.padEnd(13)} ${type.padEnd(5)} ${fmt(e).padStart(7)} ${fmt(r).padStart(8)} ` +
        `${fmt(type === 'f32' ? x : undefined).padStart(8)} ${fmt(g(shape, type, 'naive')).padStart(6)}   ` +
        `${ratio(e, x).padStart(9)}  ${ratio(r, x).padStart(11)}`,
    );
  }
// M beams against 1 row of the same weights, for every M×K×N whose 1×K×N ran too (e.g. --shapes
// 1x768x3072,2x768x3072,4x768x3072,8x768x3072): time ratio = M · (GOP/s of 1 row) / (GOP/s of M rows)
lines.push('');
for (const shape of shapes) {
  const [M, K, N] = shape.split('x').map(Number);
  if (M <= 1 || !shapes.includes(`1x${K}x${N}`)) continue;
  for (const type of types)
    for (const impl of ['edgelm', 'edgelm-relaxed']) {
      const one = g(`1x${K}x${N}`, type, impl);
      const many = g(shape, type, impl);
      if (one && many)
        lines.push(
          `${M} rows cost ${((M * one) / many).toFixed(2)}× one row (${K}x${N}, ${type}, ${impl}${M === 4 && K === 768 && N === 3072 ? '; floor ≤ 2×' : ''})`,
        );
    }
}
lines.push(
  '(GFLOP/s for f32, GOP/s for q8_0/q4_0; ratios against XNNPACK on the f32 product of the same shape)',
);
// the floors, checked on this run (the better of the two builds unless a build is named)
const best = (shape: string, type: string) =>
  Math.max(g(shape, type, 'edgelm') ?? 0, g(shape, type, 'edgelm-relaxed') ?? 0) || undefined;
const floor = (what: string, v: number | undefined, ok: (v: number) => boolean, unit = '') => {
  if (v !== undefined) lines.push(`${ok(v) ? 'MET    ' : 'NOT MET'} ${what}: ${v.toFixed(2)}${unit}`);
};
lines.push('');
for (const shape of shapes.filter((s) => s.startsWith('1x'))) {
  const x = g(shape, 'f32', 'xnnpack');
  const e = best(shape, 'f32');
  if (x && e) floor(`f32 ${shape} ≥ 1.5× XNNPACK`, e / x, (v) => v >= 1.5, '×');
}
floor('f32 1x768x3072 ≥ 20 GFLOP/s', best('1x768x3072', 'f32'), (v) => v >= 20);
for (const shape of ['64x768x768', '256x512x512']) {
  const x = g(shape, 'f32', 'xnnpack');
  const e = best(shape, 'f32');
  if (x && e) floor(`f32 ${shape} ≥ 1.0× XNNPACK`, e / x, (v) => v >= 1, '×');
}
floor('q8_0 1x768x3072 plain ≥ 30 GOP/s', g('1x768x3072', 'q8_0', 'edgelm'), (v) => v >= 30);
floor('q8_0 1x768x3072 relaxed ≥ 45 GOP/s', g('1x768x3072', 'q8_0', 'edgelm-relaxed'), (v) => v >= 45);
floor('q4_0 1x768x3072 ≥ 25 GOP/s (plain)', g('1x768x3072', 'q4_0', 'edgelm'), (v) => v >= 25);
for (const type of types) {
  const one = best('1x768x3072', type);
  const four = best('4x768x3072', type);
  if (one && four) floor(`${type}: 4 rows ≤ 2× one row`, (4 * one) / four, (v) => v <= 2, '×');
}
if (types.some((t) => t !== 'f32') && shapes.includes('4x768x3072'))
  lines.push(
    '(quantised, weights in cache: the op count per MAC behind the 4-row ratio is in assembly/quant.ts; ' +
      'weights from memory: npx tsx scripts/bench-stream-quant.ts --shapes 3072x768 --ms 1,4)',
  );
log(lines.join('\n'));

mkdirSync(join(root, 'bench-results'), { recursive: true });
const file = join(root, 'bench-results', `kernels-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
writeFileSync(file, `${JSON.stringify(rows, null, 2)}\n`);
log(`wrote ${file}`);
if (json) console.log(JSON.stringify(rows));
