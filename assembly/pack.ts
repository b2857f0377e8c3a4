// Load-time repacking of GGUF weights into the kernels' layouts (see runtime/kernels.ts
// prepareLinear, assembly/quant.ts and assembly/gemm.ts for the layouts). runtime/kernels.ts copies a
// chunk of GGUF rows into the arena and calls these; every byte of the destination is written
// (padding rows of the last group included), so the destination needs no zero-fill. Results are byte
// for byte those of the JS packers in runtime/kernels.ts (kept as the fallback and the test reference).

const M127: usize = memory.data<i8>([-127, -127, -127, -127, -127, -127, -127, -127, -127, -127, -127, -127, -127, -127, -127, -127], 16);
const FLIP80: usize = memory.data<u8>([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80], 16);
const PAD88: usize = memory.data<u8>([0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88], 16);

// f16 bits to f32 bits as the JS packers store them: exact, NaN made the canonical quiet NaN
// 0x7fc00000 (what a JS engine writes for NaN into a Float32Array)
@inline
function halfBits(h: u32): u32 {
  const sign = (h & 0x8000) << 16;
  const em = h & 0x7fff;
  if (em >= 0x7c00) return em === 0x7c00 ? sign | 0x7f800000 : 0x7fc00000;
  if (em >= 0x400) return sign | ((em << 13) + 0x38000000);
  // zero and subnormals: em·2^-24, exact in f32
  return sign | reinterpret<u32>(<f32>em * reinterpret<f32>(0x33800000));
}

// 4×4 transpose of 32-bit lanes: out j = [a lane j, b lane j, c lane j, d lane j], stored at p + j·stride
// (16: four consecutive vectors; 32: one 8-row panel column each)
@inline
function transpose4x4Store(p: usize, stride: usize, a: v128, b: v128, c: v128, d: v128): void {
  const ab0 = i8x16.shuffle(a, b, 0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
  const cd0 = i8x16.shuffle(c, d, 0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
  const ab1 = i8x16.shuffle(a, b, 8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
  const cd1 = i8x16.shuffle(c, d, 8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
  v128.store(p, i8x16.shuffle(ab0, cd0, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23));
  v128.store(p + stride, i8x16.shuffle(ab0, cd0, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31));
  v128.store(p + 2 * stride, i8x16.shuffle(ab1, cd1, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23));
  v128.store(p + 3 * stride, i8x16.shuffle(ab1, cd1, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31));
}

/**
 * Q8_0: `rows` GGUF rows of `nb` blocks (34 bytes each) at src → groups of 4 rows at dst, per
 * (group, block) 144 bytes: 8 steps of [row0 k4s..4s+3 | row1 | row2 | row3], then 4 f32 scales.
 * Int8 -128 becomes -127 (the relaxed kernels flip weight signs). flip ≠ 0 (the usdot kernels):
 * every weight byte w stored as w ^ 0x80, missing rows' bytes too (0x80 = 0). Rows missing from the last group:
 * zero weights and scales.
 */
export function packQ8(dst: usize, src: usize, rows: i32, nb: i32, flip: i32): void {
  const rowBytes = <usize>nb * 34;
  const lo = v128.load(M127); // loaded: V8 rebuilds a v128.const at every use in a loop
  const zero = i8x16.splat(0);
  // flip: every weight byte stored as w ^ 0x80 (= w + 128, unsigned), as the usdot kernels read them
  const fx = flip != 0 ? v128.load(FLIP80) : zero;
  const ng = (rows + 3) >> 2;
  let d = dst;
  for (let g = 0; g < ng; g++) {
    const r0 = g << 2;
    const have = min(4, rows - r0);
    const s0 = src + <usize>r0 * rowBytes;
    for (let b = 0; b < nb; b++) {
      const s = s0 + <usize>b * 34;
      let a0 = zero, a1 = zero, a2 = zero, a3 = zero;
      let b0 = zero, b1 = zero, b2 = zero, b3 = zero;
      let h0: u32 = 0, h1: u32 = 0, h2: u32 = 0, h3: u32 = 0;
      a0 = i8x16.max_s(v128.load(s, 2), lo);
      b0 = i8x16.max_s(v128.load(s, 18), lo);
      h0 = halfBits(load<u16>(s));
      if (have > 1) {
        const s1 = s + rowBytes;
        a1 = i8x16.max_s(v128.load(s1, 2), lo);
        b1 = i8x16.max_s(v128.load(s1, 18), lo);
        h1 = halfBits(load<u16>(s1));
      }
      if (have > 2) {
        const s2 = s + 2 * rowBytes;
        a2 = i8x16.max_s(v128.load(s2, 2), lo);
        b2 = i8x16.max_s(v128.load(s2, 18), lo);
        h2 = halfBits(load<u16>(s2));
      }
      if (have > 3) {
        const s3 = s + 3 * rowBytes;
        a3 = i8x16.max_s(v128.load(s3, 2), lo);
        b3 = i8x16.max_s(v128.load(s3, 18), lo);
        h3 = halfBits(load<u16>(s3));
      }
      transpose4x4Store(d, 16, v128.xor(a0, fx), v128.xor(a1, fx), v128.xor(a2, fx), v128.xor(a3, fx));
      transpose4x4Store(d + 64, 16, v128.xor(b0, fx), v128.xor(b1, fx), v128.xor(b2, fx), v128.xor(b3, fx));
      store<u32>(d, h0, 128);
      store<u32>(d, h1, 132);
      store<u32>(d, h2, 136);
      store<u32>(d, h3, 140);
      d += 144;
    }
  }
}

/**
 * Q4_0: `rows` GGUF rows of `nb` blocks (18 bytes each) at src → groups of 4 rows at dst, per
 * (group, block) 80 bytes: 4 vectors of [row0 bytes 4t..4t+3 | row1 | row2 | row3], then 4 f32
 * scales. Rows missing from the last group: nibbles 8 (value 0), scale 0.
 */
export function packQ4(dst: usize, src: usize, rows: i32, nb: i32): void {
  const rowBytes = <usize>nb * 18;
  const pad = v128.load(PAD88);
  const ng = (rows + 3) >> 2;
  let d = dst;
  for (let g = 0; g < ng; g++) {
    const r0 = g << 2;
    const have = min(4, rows - r0);
    const s0 = src + <usize>r0 * rowBytes;
    for (let b = 0; b < nb; b++) {
      const s = s0 + <usize>b * 18;
      let q1 = pad, q2 = pad, q3 = pad;
      let h1: u32 = 0, h2: u32 = 0, h3: u32 = 0;
      const q0 = v128.load(s, 2);
      const h0 = halfBits(load<u16>(s));
      if (have > 1) {
        q1 = v128.load(s + rowBytes, 2);
        h1 = halfBits(load<u16>(s + rowBytes));
      }
      if (have > 2) {
        q2 = v128.load(s + 2 * rowBytes, 2);
        h2 = halfBits(load<u16>(s + 2 * rowBytes));
      }
      if (have > 3) {
        q3 = v128.load(s + 3 * rowBytes, 2);
        h3 = halfBits(load<u16>(s + 3 * rowBytes));
      }
      transpose4x4Store(d, 16, q0, q1, q2, q3);
      store<u32>(d, h0, 64);
      store<u32>(d, h1, 68);
      store<u32>(d, h2, 72);
      store<u32>(d, h3, 76);
      d += 80;
    }
  }
}

/**
 * f32 (f16 = 0) or f16 (f16 = 1): `rows` GGUF rows of k values at src → panels of 8 rows, k-major, at
 * dst: dst[(p·k + kk)·8 + j] = W[8p + j][kk] as f32. Rows missing from the last panel: zeros.
 */
export function packF32(dst: usize, src: usize, rows: i32, k: i32, f16: i32): void {
  const np = (rows + 7) >> 3;
  const es: usize = f16 ? 2 : 4;
  const rowBytes = <usize>k * es;
  const zero = f32x4.splat(0);
  for (let p = 0; p < np; p++) {
    const r0 = p << 3;
    const have = min(8, rows - r0);
    const s0 = src + <usize>r0 * rowBytes;
    const d0 = dst + <usize>p * <usize>k * 32;
    if (have === 8 && !f16) {
      // 4 columns at a time: two 4×4 transposes (rows 0–3, rows 4–7)
      let kk = 0;
      for (; kk + 4 <= k; kk += 4) {
        const s = s0 + (<usize>kk << 2);
        const d = d0 + (<usize>kk << 5);
        const r0v = v128.load(s);
        const r1v = v128.load(s + rowBytes);
        const r2v = v128.load(s + 2 * rowBytes);
        const r3v = v128.load(s + 3 * rowBytes);
        const r4v = v128.load(s + 4 * rowBytes);
        const r5v = v128.load(s + 5 * rowBytes);
        const r6v = v128.load(s + 6 * rowBytes);
        const r7v = v128.load(s + 7 * rowBytes);
        transpose4x4Store(d, 32, r0v, r1v, r2v, r3v);
        transpose4x4Store(d + 16, 32, r4v, r5v, r6v, r7v);
      }
      for (; kk < k; kk++) {
        const s = s0 + (<usize>kk << 2);
        const d = d0 + (<usize>kk << 5);
        for (let j = 0; j < 8; j++) store<u32>(d + (<usize>j << 2), load<u32>(s + <usize>j * rowBytes));
      }
      continue;
    }
    for (let kk = 0; kk < k; kk++) {
      const d = d0 + (<usize>kk << 5);
      v128.store(d, zero);
      v128.store(d, zero, 16);
      const s = s0 + <usize>kk * es;
      for (let j = 0; j < have; j++) {
        const bits = f16 ? halfBits(load<u16>(s + <usize>j * rowBytes)) : load<u32>(s + <usize>j * rowBytes);
        store<u32>(d + (<usize>j << 2), bits);
      }
    }
  }
}

