// prepareLinear repacks in WASM (assembly/pack.ts), a chunk of GGUF rows at a time through free arena
// memory; the JS packers (packLinearJs) are the reference: the arena bytes must be equal, bit for bit,
// for every type, for row counts that leave the last group or panel partial, k not a multiple of 4
// (f32/f16), −128 in Q8_0, f16 scales that are NaN, ±inf, subnormal and −0, tensors spanning many
// chunks, little free room (small chunks), and none (the JS fallback).
import { describe, expect, it } from 'vitest';
import { type Kernels, packLinearJs, type WeightType } from '../../runtime/kernels.ts';
import { builds, load } from './setup.ts';

const rawBytes = (type: WeightType, n: number, k: number) =>
  type === 'f32'
    ? n * k * 4
    : type === 'f16'
      ? n * k * 2
      : type === 'q8_0'
        ? (n * k * 34) / 32
        : (n * k * 18) / 32;

const SPECIAL_HALVES = [
  0x7e00, 0xfe00, 0x7c01, 0x7c00, 0xfc00, 0x0001, 0x83ff, 0x8000, 0x0000, 0x3c00, 0xfbff,
];

// random GGUF bytes; block scales (and some f16 values) made special, some −128 in Q8_0
function randomRaw(type: WeightType, n: number, k: number, seed: number): Uint8Array {
  const raw = new Uint8Array(rawBytes(type, n, k));
  let s = seed;
  for (let i = 0; i < raw.length; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    raw[i] = s >>> 24;
  }
  const dv = new DataView(raw.buffer);
  if (type === 'q8_0' || type === 'q4_0') {
    const bs = type === 'q8_0' ? 34 : 18;
    for (let b = 0; b < raw.length / bs; b++) {
      dv.setUint16(
        b * bs,
        b % 3 === 0 ? SPECIAL_HALVES[b % SPECIAL_HALVES.length] : 0x2000 + (b % 4096),
        true,
      );
      if (type === 'q8_0') raw[b * bs + 2 + (b % 32)] = 0x80;
    }
  } else if (type === 'f16') {
    for (let i = 0; i < n * k; i += 7) dv.setUint16(i * 2, SPECIAL_HALVES[i % SPECIAL_HALVES.length], true);
  } else {
    // finite f32 values (NaN payloads aside, a JS copy and a bit copy agree)
    for (let i = 0; i < n * k; i++) if ((raw[i * 4 + 3] & 0x7f) === 0x7f) raw[i * 4 + 3] ^= 0x40;
  }
  return raw;
}

// JS-packed bytes of the weight (reference); q8_0 flipped (w ^ 0x80) where the kernels run usdot,
// as prepareLinear packs it for them
function jsPacked(
  k: Kernels,
  type: WeightType,
  raw: Uint8Array,
  n: number,
  kk: number,
  flip = k.usdot && type === 'q8_0',
): Uint8Array {
  const m = k.mark();
  const bytes = k.linearBytes(type, n, kk);
  const ptr = k.alloc(bytes);
  packLinearJs(k.memory, type, ptr, raw, n, kk, flip);
  const out = k.u8(ptr, bytes).slice();
  k.release(m);
  return out;
}

function firstDiff(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return -2;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

const CASES: Array<[WeightType, number, number]> = [
  ['q8_0', 1, 32],
  ['q8_0', 7, 96],
  ['q8_0', 301, 1024], // ~320 KB of GGUF bytes: more than one 256 KB chunk
  ['q4_0', 1, 32],
  ['q4_0', 6, 64],
  ['q4_0', 513, 1024],
  ['f32', 1, 1],
  ['f32', 13, 7],
  ['f32', 9, 33],
  ['f32', 77, 1001],
  ['f16', 5, 3],
  ['f16', 17, 40],
  ['f16', 70, 2030], // ~284 KB: two chunks
];

describe('q8_0 flipped layout (usdot kernels)', () => {
  it.each([
    [1, 32],
    [7, 96],
    [45, 256],
  ])('%i×%i: every weight byte of the plain layout ^ 0x80, missing rows 0x80, scales unchanged', (n, kk) => {
    const k = load(builds[0].file, 4 << 20);
    const raw = randomRaw('q8_0', n, kk, n * 7 + kk);
    const plain = jsPacked(k, 'q8_0', raw, n, kk, false);
    const flipped = jsPacked(k, 'q8_0', raw, n, kk, true);
    const nb = kk / 32;
    for (let g = 0; g < Math.ceil(n / 4); g++)
      for (let b = 0; b < nb; b++) {
        const d = (g * nb + b) * 144;
        for (let j = 0; j < 128; j++) expect(flipped[d + j], `byte ${d + j}`).toBe(plain[d + j] ^ 0x80);
        for (let j = 128; j < 144; j++) expect(flipped[d + j], `scale byte ${d + j}`).toBe(plain[d + j]);
      }
  });
});

describe.each(builds)('WASM packing ($name build)', ({ file }) => {
  it.each(CASES)('%s %i×%i equals the JS packer', (type, n, kk) => {
    const k = load(file, 16 << 20);
    const raw = randomRaw(type, n, kk, n * 31 + kk);
    const want = jsPacked(k, type, raw, n, kk);
    // dirty the memory the weight and its scratch will take: the packer must write every byte
    const m = k.mark();
    const junk = k.alloc(want.length * 3);
    k.u8(junk, want.length * 3).fill(0xa5);
    k.release(m);
    const w = k.prepareLinear(type, raw, n, kk);
    expect(firstDiff(k.u8(w.ptr, w.bytes), want)).toBe(-1);
    // an odd byte offset of the GGUF bytes changes nothing
    const odd = new Uint8Array(raw.length + 1).subarray(1);
    odd.set(raw);
    const w2 = k.prepareLinear(type, odd, n, kk);
    expect(firstDiff(k.u8(w2.ptr, w2.bytes), want)).toBe(-1);
  });

  it.each([
    ['q8_0', 45, 256],
    ['q4_0', 45, 256],
    ['f32', 45, 100],
  ] as Array<[WeightType, number, number]>)(
    '%s %i×%i with little or no free room above the weight (small chunks, JS fallback)',
    (type, n, kk) => {
      const raw = randomRaw(type, n, kk, 99);
      for (const room of [0, 40, 1, 2, 3, 5].map((g) => g * (type === 'f32' ? 8 : 4))) {
        // 64-byte placement, so that the room above the weight is exactly what the case sets
        const k = load(file, 4 << 20, { linearAlign: 64 });
        const want = jsPacked(k, type, raw, n, kk);
        const bytes = k.linearBytes(type, n, kk);
        const rowBytes = rawBytes(type, 1, kk);
        // fill the arena so that `room` GGUF rows fit above the weight
        const free = k.memory.buffer.byteLength - Math.ceil(k.mark() / 64) * 64;
        const filler = free - Math.ceil(bytes / 64) * 64 - room * rowBytes - 64;
        const f = k.alloc(filler);
        k.u8(f, filler).fill(0x5a);
        const w = k.prepareLinear(type, raw, n, kk);
        expect(firstDiff(k.u8(w.ptr, w.bytes), want)).toBe(-1);
        // later allocations are still zero-filled (the scratch left data behind)
        const z = k.alloc(Math.max(1, k.memory.buffer.byteLength - k.mark() - 64));
        const zs = k.u8(z, k.memory.buffer.byteLength - z);
        expect(zs.every((x) => x === 0)).toBe(true);
      }
    },
  );
});
