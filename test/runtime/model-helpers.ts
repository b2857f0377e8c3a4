// Shared setup for the model tests: the kernel implementations to run on, and comparisons.
import { readFileSync } from 'node:fs';
import { parseGGUF } from '../../runtime/gguf.ts';
import { createKernels, detectRelaxedSimd, type Kernels } from '../../runtime/kernels.ts';
import { Model, type ModelOptions } from '../../runtime/model.ts';
import { createJsKernels } from '../helpers/js-kernels.ts';

export interface KernelImpl {
  name: string;
  create: () => Kernels;
}

/** The plain-JS kernels, and both WASM builds (SIMD; relaxed SIMD where the engine validates it). */
export function kernelImpls(): KernelImpl[] {
  const impls: KernelImpl[] = [{ name: 'js', create: createJsKernels }];
  for (const [name, path] of [
    ['wasm-simd', 'build/kernels.wasm'],
    ['wasm-relaxed', 'build/kernels-relaxed.wasm'],
  ]) {
    if (name === 'wasm-relaxed' && !detectRelaxedSimd()) continue;
    const mod = new WebAssembly.Module(readFileSync(path));
    impls.push({ name, create: () => createKernels(mod) });
  }
  return impls;
}

export function load(impl: KernelImpl, bytes: Uint8Array, opts?: ModelOptions): Model {
  return Model.load(impl.create(), parseGGUF(bytes), opts);
}

/** Largest |a - b| over a row, and the largest |b|. */
export function maxDiff(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
): { diff: number; scale: number; at: number } {
  let diff = 0;
  let scale = 0;
  let at = -1;
  for (let i = 0; i < b.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (d > diff || Number.isNaN(d)) {
      diff = Number.isNaN(d) ? Number.POSITIVE_INFINITY : d;
      at = i;
    }
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return { diff, scale, at };
}

export function argmax(x: ArrayLike<number>, from = 0, n = x.length): number {
  let best = from;
  for (let i = from + 1; i < from + n; i++) if (x[i] > x[best]) best = i;
  return best - from;
}

/** KL(p‖q) of the softmaxes of two logit rows (p from `ref`). */
export function kl(ref: ArrayLike<number>, q: ArrayLike<number>, from = 0, n = ref.length): number {
  const lse = (x: ArrayLike<number>, off: number) => {
    let mx = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < n; i++) mx = Math.max(mx, x[off + i]);
    let s = 0;
    for (let i = 0; i < n; i++) s += Math.exp(x[off + i] - mx);
    return mx + Math.log(s);
  };
  const lp = lse(ref, 0);
  const lq = lse(q, from);
  let d = 0;
  for (let i = 0; i < n; i++) {
    const a = ref[i] - lp;
    d += Math.exp(a) * (a - (q[from + i] - lq));
  }
  return d;
}

/** Deterministic token ids in [0, vocab). */
export function tokenSeq(n: number, vocab: number, seed: number): number[] {
  const out: number[] = [];
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out.push(s % vocab);
  }
  return out;
}
