/**
 * The workloads of scripts/bench-workerd.ts, host-neutral (no Node built-ins): the same code runs
 * inside the bench Worker (scripts/workerd-bench/worker.ts) and in Node in-process, so the two
 * hosts do identical work on identical inputs (weights made here from a fixed seed).
 *
 * Workload names:
 * - `linear:<type>:<M>x<K>x<N>` — `kernels.linear` (out[M×N] = x[M×K]·Wᵀ), type f32 or q8_0
 * - `decode:<type>:greedy` / `decode:<type>:beams4` — `model.decode` with 1 or 4 sequences forked
 *   from a 16-token prompt (fixed positions 16..16+n), each row's next token its argmax
 *
 * `run(name, n)` does n iterations and returns a checksum (n = 0 does the same setup and checksum
 * with no iterations: the difference of two requests is the iterations alone).
 * @example
 * const b = createLinearBench(modules, 'auto', ['1x288x768'], ['f32']); b.run('linear:f32:1x288x768', 10);
 */
import { quantizeQ8_0 } from '../../runtime/ggml.ts';
import { createRuntime, type LoadedModel } from '../../runtime/index.ts';
import { createKernels, detectRelaxedSimd, type Kernels, type LinearWeight } from '../../runtime/kernels.ts';
import type { Sequence } from '../../runtime/model.ts';

export interface KernelModules {
  simd: WebAssembly.Module;
  relaxed: WebAssembly.Module;
}
/** which kernel build: `auto` takes relaxed SIMD when the host validates it (as createRuntime does) */
export type BuildChoice = 'auto' | 'simd' | 'relaxed';

export interface Bench {
  /** 'simd' or 'relaxed': the build that runs */
  readonly build: string;
  /** whether this host validates relaxed SIMD (runtime/kernels.ts detectRelaxedSimd) */
  readonly relaxedAvailable: boolean;
  /** bytes of WASM memory the workloads hold */
  readonly memoryBytes: number;
  run(name: string, n: number): number;
}

function pickModule(mods: KernelModules, build: BuildChoice): WebAssembly.Module {
  if (build === 'simd') return mods.simd;
  if (build === 'relaxed') return mods.relaxed;
  return detectRelaxedSimd() ? mods.relaxed : mods.simd;
}

/** deterministic uniform values in [-1, 1) (an LCG: identical in every host) */
export function lcgValues(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    a[i] = (s / 2 ** 32) * 2 - 1;
  }
  return a;
}

/** the weight bytes `linear` gets for a shape: N×K row-major, f32 or Q8_0 (seed from the shape) */
export function linearInputs(type: string, m: number, k: number, n: number) {
  const w = lcgValues(n * k, 1000 + n + k);
  const x = lcgValues(m * k, 7 + m);
  const raw = type === 'q8_0' ? quantizeQ8_0(w) : new Uint8Array(w.buffer, w.byteOffset, w.byteLength);
  return { w, x, raw };
}

interface LinearCase {
  w: LinearWeight;
  x: number;
  out: number;
  m: number;
  n: number;
}

/**
 * Kernels with random weights for every shape × type, placed once (the arena reserved up front).
 * @example
 * const b = createLinearBench(modules, 'auto', ['1x768x3072'], ['f32', 'q8_0']);
 */
export function createLinearBench(
  mods: KernelModules,
  build: BuildChoice,
  shapes: string[],
  types: string[],
): Bench {
  const k: Kernels = createKernels(pickModule(mods, build));
  const dims = shapes.map((s) => {
    const [m, kk, n] = s.split('x').map(Number);
    if (![m, kk, n].every((v) => Number.isInteger(v) && v > 0)) throw new Error(`bad shape ${s}`);
    return { s, m, k: kk, n };
  });
  let total = 0;
  let maxM = 1;
  let maxK = 32;
  for (const d of dims) {
    maxM = Math.max(maxM, d.m);
    maxK = Math.max(maxK, d.k);
    for (const t of types) total += k.linearBytes(t as 'f32', d.n, d.k) + 4 * d.m * (d.k + d.n) + 256;
  }
  k.reserve(total + k.linearScratchBytes(maxM, maxK) + 4096);
  const cases = new Map<string, LinearCase>();
  for (const d of dims) {
    for (const t of types) {
      const { x, raw } = linearInputs(t, d.m, d.k, d.n);
      const w = k.prepareLinear(t as 'f32', raw, d.n, d.k);
      const xp = k.alloc(4 * d.m * d.k);
      k.f32(xp, d.m * d.k).set(x);
      const out = k.alloc(4 * d.m * d.n);
      cases.set(`linear:${t}:${d.s}`, { w, x: xp, out, m: d.m, n: d.n });
    }
  }
  return {
    build: k.relaxed ? 'relaxed' : 'simd',
    relaxedAvailable: detectRelaxedSimd(),
    memoryBytes: k.memory.buffer.byteLength,
    run(name, iters) {
      const c = cases.get(name);
      if (!c) throw new Error(`unknown workload ${name}`);
      k.f32(c.out, c.m * c.n).fill(0);
      for (let i = 0; i < iters; i++) k.linear(c.out, c.x, c.w, c.m);
      let s = 0;
      const o = k.f32(c.out, c.m * c.n);
      for (let i = 0; i < o.length; i++) s += o[i];
      return s;
    },
  };
}

/** the prompt every decode workload starts from (BOS, then 15 fixed ids) */
export const DECODE_PROMPT = [1, ...Array.from({ length: 15 }, (_, i) => 300 + 37 * i)];

/**
 * A GGUF model loaded with maxContext 256 and maxSequences 8, the prompt prefilled once; workloads
 * `decode:<type>:greedy` and `decode:<type>:beams4` fork it, decode n steps, free the forks.
 * @example
 * const b = createDecodeBench(modules, 'auto', ggufBytes, 'q8_0'); b.run('decode:q8_0:beams4', 8);
 */
export function createDecodeBench(
  mods: KernelModules,
  build: BuildChoice,
  gguf: Uint8Array,
  type: string,
): Bench {
  const runtime =
    build === 'auto' ? createRuntime(mods) : createRuntime(build === 'simd' ? mods.simd : mods.relaxed);
  const lm: LoadedModel = runtime.loadModel(gguf, { maxContext: 256, maxSequences: 8 });
  const model = lm.model;
  const base = model.newSequence();
  model.prefill(base, DECODE_PROMPT);
  const V = model.info.vocabSize;
  const out = new Float32Array(4 * V);
  const argmax = new Int32Array(4);
  return {
    build: lm.relaxedSimd ? 'relaxed' : 'simd',
    relaxedAvailable: detectRelaxedSimd(),
    memoryBytes: lm.info.memory.total,
    run(name, iters) {
      const beams = name === `decode:${type}:greedy` ? 1 : name === `decode:${type}:beams4` ? 4 : 0;
      if (!beams) throw new Error(`unknown workload ${name}`);
      if (DECODE_PROMPT.length + iters > 256) throw new Error(`${iters} steps pass the context of 256`);
      const seqs: Sequence[] = [];
      for (let b = 0; b < beams; b++) seqs.push(model.fork(base));
      const toks = Array.from({ length: beams }, (_, b) => 500 + 101 * b);
      let s = 0;
      try {
        for (let i = 0; i < iters; i++) {
          model.decode(seqs, toks, out, { argmax });
          for (let b = 0; b < beams; b++) {
            toks[b] = argmax[b];
            s += argmax[b];
          }
        }
        if (iters > 0) for (let j = 0; j < beams * V; j += 97) s += out[j];
      } finally {
        for (const q of seqs) model.free(q);
      }
      return s;
    },
  };
}
