// scripts/bench-workerd.ts measures real work: its bench Worker (scripts/workerd-bench/worker.ts, in
// workerd through Miniflare) returns, for `linear` on small shapes, the same checksum as the same code
// in Node with the same inputs — bit for bit with the plain SIMD build — and that checksum (the sum of
// the outputs) matches a float64 reference of x·Wᵀ: for f32 within 1e-6 of Σ|xᵢ·wⱼᵢ| (measured ≤ 3e-9),
// for Q8_0 with x quantised to Q8_0 as the kernel does and the weights dequantised, within 1e-5 of the
// same (measured ≤ 9e-7: the kernel's activation quantisation may round a few codes differently).
// Zero iterations give 0 (the output is cleared first), so a request that skipped the work would show.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dequantizeQ8_0, quantizeQ8_0 } from '../../runtime/ggml.ts';
import { createLinearBench, type KernelModules, linearInputs } from '../../scripts/workerd-bench/bench.ts';
import { type BenchWorker, startBenchWorker } from '../../scripts/workerd-bench/start.ts';

const root = join(import.meta.dirname, '..', '..');
const mods: KernelModules = {
  simd: new WebAssembly.Module(readFileSync(join(root, 'build/kernels.wasm'))),
  relaxed: new WebAssembly.Module(readFileSync(join(root, 'build/kernels-relaxed.wasm'))),
};
const SHAPES = ['1x288x768', '3x96x40'];
const TYPES = ['f32', 'q8_0'];

/** Σ over outputs of x·Wᵀ in float64, and Σ of |terms| (the scale of the rounding error) */
function reference(type: string, shape: string): { sum: number; abs: number } {
  const [m, k, n] = shape.split('x').map(Number);
  const { w, x, raw } = linearInputs(type, m, k, n);
  const wr = type === 'q8_0' ? dequantizeQ8_0(raw, n * k) : w;
  const xr = type === 'q8_0' ? dequantizeQ8_0(quantizeQ8_0(x), m * k) : x;
  let sum = 0;
  let abs = 0;
  for (let r = 0; r < m; r++)
    for (let j = 0; j < n; j++)
      for (let i = 0; i < k; i++) {
        const t = xr[r * k + i] * wr[j * k + i];
        sum += t;
        abs += Math.abs(t);
      }
  return { sum, abs };
}

describe('bench-workerd: the Worker does the work Node does', () => {
  let w: BenchWorker;
  beforeAll(async () => {
    w = await startBenchWorker();
  }, 60_000);
  afterAll(async () => {
    await w?.dispose();
  });

  for (const build of ['simd', 'relaxed'] as const) {
    it(`linear checksums, ${build} build: workerd = Node, and the float64 reference`, async () => {
      const info = await w.setup(
        `build=${build}&kind=linear&shapes=${SHAPES.join(',')}&types=${TYPES.join(',')}`,
      );
      expect(info.build).toBe(build);
      const node = createLinearBench(mods, build, SHAPES, TYPES);
      for (const shape of SHAPES)
        for (const type of TYPES) {
          const name = `linear:${type}:${shape}`;
          const inWorkerd = (await w.run(name, 3)).checksum;
          const inNode = node.run(name, 3);
          // plain SIMD: IEEE ops in a fixed order, identical in both engines; relaxed ops may fuse
          // differently in another V8 (~1 ulp per op): within 1e-6 of Σ|terms| there
          const ref = reference(type, shape);
          if (build === 'simd') expect(inWorkerd, name).toBe(inNode);
          else expect(Math.abs(inWorkerd - inNode), name).toBeLessThanOrEqual(1e-6 * ref.abs);
          const tol = type === 'f32' ? 1e-6 : 1e-5;
          expect(Math.abs(inNode - ref.sum), name).toBeLessThanOrEqual(tol * ref.abs);
          expect((await w.run(name, 0)).checksum, name).toBe(0);
        }
    }, 60_000);
  }
});
