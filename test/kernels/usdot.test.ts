// The usdot kernels (relaxed build): chosen only where the engine's relaxed dot multiplies bytes of
// its second operand as unsigned 0..255 without saturating, and then bit-identical to the portable
// relaxed kernels (their integer block sums are the same integers, their f32 steps the same steps).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createKernels, detectRelaxedSimd } from '../../runtime/kernels.ts';
import { encodeQ4_0, encodeQ8_0, randomF32, rng } from '../helpers/ref-kernels.ts';
import { put } from './setup.ts';

const relaxedHere = detectRelaxedSimd();
const relaxedModule = () => new WebAssembly.Module(readFileSync('build/kernels-relaxed.wasm'));

// (module (memory (export "m") 1)
//   (func (export "f") (v128.store (i32.const 48)
//     (i32x4.relaxed_dot_i8x16_i7x16_add_s (v128.load (i32.const 0)) (v128.load (i32.const 16)) (v128.load (i32.const 32))))))
// written out by hand here, independent of assembly/ and of the runtime's fixed probe
// biome-ignore format: wasm bytes by section
const DOT_MODULE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type: () -> ()
  0x03, 0x02, 0x01, 0x00, // function 0 has type 0
  0x05, 0x03, 0x01, 0x00, 0x01, // memory: min 1 page
  0x07, 0x09, 0x02, 0x01, 0x6d, 0x02, 0x00, 0x01, 0x66, 0x00, 0x00, // exports "m", "f"
  0x0a, 0x1f, 0x01, 0x1d, 0x00,
  0x41, 0x30,
  0x41, 0x00, 0xfd, 0x00, 0x04, 0x00,
  0x41, 0x10, 0xfd, 0x00, 0x04, 0x00,
  0x41, 0x20, 0xfd, 0x00, 0x04, 0x00,
  0xfd, 0x93, 0x02, // i32x4.relaxed_dot_i8x16_i7x16_add_s
  0xfd, 0x0b, 0x04, 0x00, // v128.store
  0x0b,
]);

/** whether this engine's relaxed dot gives c + Σ a·b with b read as unsigned bytes, on random inputs */
function engineDotIsUnsigned(): boolean {
  const inst = new WebAssembly.Instance(new WebAssembly.Module(DOT_MODULE));
  const mem = (inst.exports.m as WebAssembly.Memory).buffer;
  const a = new Int8Array(mem, 0, 16);
  const b = new Uint8Array(mem, 16, 16);
  const c = new Int32Array(mem, 32, 4);
  const out = new Int32Array(mem, 48, 4);
  const r = rng(99);
  for (let t = 0; t < 2000; t++) {
    for (let i = 0; i < 16; i++) {
      a[i] = Math.floor(r() * 256) - 128;
      b[i] = Math.floor(r() * 256);
    }
    for (let i = 0; i < 4; i++) c[i] = Math.floor(r() * 2 ** 20) - 2 ** 19;
    (inst.exports.f as () => void)();
    for (let l = 0; l < 4; l++) {
      let want = c[l];
      for (let i = 4 * l; i < 4 * l + 4; i++) want += a[i] * b[i];
      if (out[l] !== want) return false;
    }
  }
  return true;
}

describe('usdot kernels', () => {
  it('the plain build never has them; the relaxed build has them exactly where the engine multiplies unsigned bytes', () => {
    const plain = createKernels(new WebAssembly.Module(readFileSync('build/kernels.wasm')));
    expect(plain.usdot).toBe(false);
    if (!relaxedHere) return;
    const unsigned = engineDotIsUnsigned();
    expect(createKernels(relaxedModule()).usdot).toBe(unsigned);
    expect(createKernels(relaxedModule(), { usdot: false }).usdot).toBe(false);
  });

  it.skipIf(!relaxedHere || !createKernels(relaxedModule()).usdot)(
    'q8_0 and q4_0, M = 1..9, awkward shapes: bit-identical to the portable relaxed kernels (skipped where the engine has no unsigned dot)',
    () => {
      const U = createKernels(relaxedModule());
      const P = createKernels(relaxedModule(), { usdot: false });
      U.reserve(48 << 20);
      P.reserve(48 << 20);
      const r = rng(3);
      // n: partial last groups, leftover groups after the 8 / 4 far-apart streams, tiles with
      // and without a pair of groups left over; k: 1, 3, 9, 24 blocks
      for (const type of ['q8_0', 'q4_0'] as const)
        for (const K of [32, 96, 288, 768])
          for (const N of [1, 3, 4, 7, 29, 36, 61, 130, 333])
            for (const M of [1, 2, 3, 4, 5, 8, 9]) {
              const raw = type === 'q8_0' ? encodeQ8_0(randomF32(r, N * K)) : encodeQ4_0(randomF32(r, N * K));
              if (type === 'q8_0') raw[2] = 0x80; // a −128 (read as −127 by every kernel)
              const x = randomF32(r, M * K, 4);
              const outs = [U, P].map((k) => {
                const mark = k.mark();
                const w = k.prepareLinear(type, raw, N, K);
                const xp = put(k, x);
                const out = k.alloc(M * N * 4);
                k.linear(out, xp, w, M);
                const got = Float32Array.from(k.f32(out, M * N));
                k.release(mark);
                return got;
              });
              // bit for bit: the same integers and the same f32 operations in the same order
              const a = new Uint32Array(outs[0].buffer);
              const b = new Uint32Array(outs[1].buffer);
              let diff = -1;
              for (let i = 0; i < a.length && diff < 0; i++) if (a[i] !== b[i]) diff = i;
              expect(diff, `${type} M=${M} N=${N} K=${K}: first differing output`).toBe(-1);
            }
    },
  );
});
