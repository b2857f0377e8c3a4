// Shared set-up for the kernel tests: both builds (plain SIMD, relaxed SIMD when the engine has it),
// a fresh kernels instance per test file, and helpers to place arrays in the arena.
import { readFileSync } from 'node:fs';
import { createKernels, detectRelaxedSimd, type KernelOptions, type Kernels } from '../../runtime/kernels.ts';

const RELAXED = 'build/kernels-relaxed.wasm';
// the relaxed build runs its usdot kernels where the engine's dot allows them (V8 13+ with AVX-VNNI);
// there the portable relaxed kernels are tested too, as the extra build `relaxed-portable`
const usdotHere = detectRelaxedSimd() && createKernels(new WebAssembly.Module(readFileSync(RELAXED))).usdot;
const PORTABLE = '#portable';

export const builds = [
  { name: 'plain', file: 'build/kernels.wasm' },
  { name: usdotHere ? 'relaxed+usdot' : 'relaxed', file: RELAXED },
  { name: 'relaxed-portable', file: RELAXED + PORTABLE },
].filter((b) => b.name === 'plain' || (detectRelaxedSimd() && (usdotHere || !b.file.endsWith(PORTABLE))));

/** a kernels instance of a build's file (`…#portable`: the relaxed build without its usdot kernels) */
export function load(file: string, reserve = 32 << 20, options: KernelOptions = {}): Kernels {
  const portable = file.endsWith(PORTABLE);
  const path = portable ? file.slice(0, -PORTABLE.length) : file;
  const k = createKernels(
    new WebAssembly.Module(readFileSync(path)),
    portable ? { ...options, usdot: false } : options,
  );
  k.reserve(reserve);
  return k;
}

/** copy values into a fresh f32 allocation */
export function put(k: Kernels, a: ArrayLike<number>): number {
  const p = k.alloc(a.length * 4);
  k.f32(p, a.length).set(a);
  return p;
}

/** copy i32 values into a fresh allocation */
export function putI32(k: Kernels, a: ArrayLike<number>): number {
  const p = k.alloc(a.length * 4);
  k.i32(p, a.length).set(a);
  return p;
}

/** f32 array of values rounded to f32 (what the kernels see) */
export const f32 = (a: ArrayLike<number>) => Float32Array.from(a);
