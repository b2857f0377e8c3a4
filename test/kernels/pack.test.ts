// prepareLinear packs Q8_0 word-at-a-time when the GGUF bytes sit at an even offset (the usual
// case) and byte by byte otherwise: both must give the same arena bytes, −128 clamped to −127.
import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import { createKernels } from '../../runtime/kernels.ts';

it('Q8_0 packing: the even-offset (u16) path equals the odd-offset (byte) path, bit for bit', () => {
  const k = createKernels(new WebAssembly.Module(readFileSync('build/kernels.wasm')));
  const n = 7; // not a multiple of the 4-row groups
  const kk = 96;
  const raw = new Uint8Array((n * kk * 34) / 32);
  let s = 12345;
  for (let i = 0; i < raw.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    raw[i] = s >>> 24;
  }
  for (let b = 0; b < raw.length / 34; b++) {
    raw[b * 34] = 0x00; // scale 0x3c00 = 1.0 as f16
    raw[b * 34 + 1] = 0x3c;
    raw[b * 34 + 2 + (b % 32)] = 0x80; // a −128 in every block
  }
  const odd = new Uint8Array(raw.length + 1).subarray(1);
  odd.set(raw);
  k.reserve(1 << 20);
  const a = k.prepareLinear('q8_0', raw, n, kk);
  const b = k.prepareLinear('q8_0', odd, n, kk);
  expect(a.bytes).toBe(b.bytes);
  expect(Buffer.from(k.u8(a.ptr, a.bytes)).equals(Buffer.from(k.u8(b.ptr, b.bytes)))).toBe(true);
  // and no 0x80 byte survives in the packed weights (each 144-byte group-block: 128 bytes of weights)
  const packed = k.u8(a.ptr, a.bytes);
  for (let g = 0; g < a.bytes; g += 144) for (let j = 0; j < 128; j++) expect(packed[g + j]).not.toBe(0x80);
});
