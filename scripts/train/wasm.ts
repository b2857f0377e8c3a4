/**
 * Loads build/train.wasm (the training kernels) and gives it a bump arena over its linear memory.
 * Memory is grown once, up front (`reserve`), so typed-array views stay valid.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The exports of assembly/train/index.ts (pointers are byte offsets). */
export interface TrainExports {
  memory: WebAssembly.Memory;
  heapBase(): number;
  zero(p: number, bytes: number): void;
  copy(dst: number, src: number, bytes: number): void;
  addInPlace(x: number, y: number, n: number): void;
  scale(x: number, s: number, n: number): void;
  sumSquares(x: number, n: number): number;
  transpose(dst: number, src: number, r: number, c: number): void;
  expInPlace(x: number, n: number): void;
  matmul(
    c: number,
    a: number,
    b: number,
    m: number,
    n: number,
    k: number,
    sai: number,
    sar: number,
    ldb: number,
    ldc: number,
    accumulate: number,
  ): void;
  rmsnormForward(y: number, rstd: number, x: number, w: number, m: number, d: number, eps: number): void;
  rmsnormBackward(
    dx: number,
    dw: number,
    dy: number,
    x: number,
    w: number,
    rstd: number,
    m: number,
    d: number,
  ): void;
  rope(x: number, cs: number, m: number, t: number, nHeads: number, hd: number, sign: number): void;
  attentionForward(
    out: number,
    p: number,
    q: number,
    k: number,
    v: number,
    scratch: number,
    b: number,
    t: number,
    nHeads: number,
    hd: number,
  ): void;
  attentionBackward(
    dq: number,
    dk: number,
    dv: number,
    dout: number,
    p: number,
    q: number,
    k: number,
    v: number,
    scratch: number,
    b: number,
    t: number,
    nHeads: number,
    hd: number,
  ): void;
  swigluForward(h: number, g: number, u: number, n: number): void;
  swigluBackward(dg: number, du: number, dh: number, g: number, u: number, n: number): void;
  embeddingForward(x: number, tokens: number, table: number, m: number, d: number): void;
  embeddingBackward(dtable: number, dx: number, tokens: number, m: number, d: number): void;
  crossEntropy(
    logits: number,
    targets: number,
    weights: number,
    m: number,
    v: number,
    gscale: number,
  ): number;
  adamw(
    p: number,
    g: number,
    m: number,
    v: number,
    n: number,
    lr: number,
    b1: number,
    b2: number,
    eps: number,
    wd: number,
    bc1: number,
    bc2: number,
    gscale: number,
  ): void;
}

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
let cached: WebAssembly.Module | undefined;

/** The compiled training module (compiled once per thread). */
export function trainModule(): WebAssembly.Module {
  if (!cached) cached = new WebAssembly.Module(readFileSync(join(root, 'build', 'train.wasm')));
  return cached;
}

/** One instance of the training kernels with a bump allocator. */
export class TrainWasm {
  readonly x: TrainExports;
  private top: number;
  private limit: number;

  constructor(mod: WebAssembly.Module = trainModule()) {
    const inst = new WebAssembly.Instance(mod, { env: { abort: () => {} } });
    this.x = inst.exports as unknown as TrainExports;
    this.top = (this.x.heapBase() + 63) & ~63;
    this.limit = this.x.memory.buffer.byteLength;
  }

  /** grow memory so that `bytes` more can be allocated (call once before any view is taken). */
  reserve(bytes: number): void {
    const need = this.top + bytes + 64 * 1024;
    const cur = this.x.memory.buffer.byteLength;
    if (need > cur) this.x.memory.grow(Math.ceil((need - cur) / 65536));
    this.limit = this.x.memory.buffer.byteLength;
  }

  /** 64-byte aligned bump allocation of `bytes`. */
  alloc(bytes: number): number {
    const p = this.top;
    this.top = (p + bytes + 63) & ~63;
    if (this.top > this.limit) throw new Error(`train arena exhausted: need ${this.top}, have ${this.limit}`);
    return p;
  }

  allocF32(n: number): number {
    return this.alloc(n * 4);
  }

  f32(ptr: number, n: number): Float32Array {
    return new Float32Array(this.x.memory.buffer, ptr, n);
  }

  i32(ptr: number, n: number): Int32Array {
    return new Int32Array(this.x.memory.buffer, ptr, n);
  }
}
