// Shared set-up for the kernel tests: both builds (plain SIMD, relaxed SIMD when the engine has it),
// a fresh kernels instance per test file, and helpers to place arrays in the arena.
import { readFileSync } from 'node:fs';
import { createKernels, detectRelaxedSimd, type Kernels } from '../../runtime/kernels.ts';

export const builds = [
  { name: 'plain', file: 'build/kernels.wasm' },
  { name: 'relaxed', file: 'build/kernels-relaxed.wasm' },
].filter((b) => b.name === 'plain' || detectRelaxedSimd());

export function load(file: string, reserve = 32 << 20): Kernels {
  const k = createKernels(new WebAssembly.Module(readFileSync(file)));
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
