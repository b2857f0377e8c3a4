// causal self-attention over a paged KV cache.
//
// per layer a K pool and a V pool of blocks; block b starts at pool + b·blockBytes with
// blockBytes = nKvHeads·blockSize·headDim·4 and is laid out [kvHead][blockSize][headDim] f32, so
// one head's keys (and values) inside a block are contiguous. a sequence owns an i32 block table:
// position p lives in block table[p / blockSize], slot p % blockSize. sequences that share a
// prefix (beams) share its blocks.
//
// scores use an online softmax (running max m, running sum l, rescaled accumulator) over tiles
// of up to 32 keys: one pass over K and V, no buffer proportional to the context.
import { fma, hsum, SCRATCH_ACC, SCRATCH_SCORES } from './simd';

/** store n rows of keys and values (rows [n][nKvHeads·headDim]) at positions pos0.. of a sequence. */
export function kvWrite(
  kPool: usize,
  vPool: usize,
  blockTable: usize,
  pos0: i32,
  n: i32,
  k: usize,
  v: usize,
  nKvHeads: i32,
  headDim: i32,
  blockSize: i32,
): void {
  const hdBytes = <usize>headDim << 2;
  const blockBytes = <usize>nKvHeads * <usize>blockSize * hdBytes;
  const rowBytes = <usize>nKvHeads * hdBytes;
  for (let i = 0; i < n; i++) {
    const pos = pos0 + i;
    const blk = <usize>load<i32>(blockTable + (<usize>(pos / blockSize) << 2));
    const slot = <usize>(pos % blockSize);
    for (let h = 0; h < nKvHeads; h++) {
      const off = blk * blockBytes + (<usize>h * <usize>blockSize + slot) * hdBytes;
      memory.copy(kPool + off, k + <usize>i * rowBytes + <usize>h * hdBytes, hdBytes);
      memory.copy(vPool + off, v + <usize>i * rowBytes + <usize>h * hdBytes, hdBytes);
    }
  }
}

// q·k over headDim
// @ts-ignore: decorator
@inline
function dot(a: usize, b: usize, n: i32): f32 {
  let s0 = f32x4.splat(0);
  let s1 = f32x4.splat(0);
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const o = <usize>i << 2;
    s0 = fma(v128.load(a + o), v128.load(b + o), s0);
    s1 = fma(v128.load(a + o, 16), v128.load(b + o, 16), s1);
  }
  let s = hsum(f32x4.add(s0, s1));
  for (; i < n; i++) s += load<f32>(a + (<usize>i << 2)) * load<f32>(b + (<usize>i << 2));
  return s;
}

// acc = acc·c (rescale after a new maximum)
// @ts-ignore: decorator
@inline
function scale(acc: usize, c: f32, n: i32): void {
  const vc = f32x4.splat(c);
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(acc + (<usize>i << 2), f32x4.mul(v128.load(acc + (<usize>i << 2)), vc));
  for (; i < n; i++) store<f32>(acc + (<usize>i << 2), load<f32>(acc + (<usize>i << 2)) * c);
}

// acc += p·v
// @ts-ignore: decorator
@inline
function axpy(acc: usize, p: f32, v: usize, n: i32): void {
  const vp = f32x4.splat(p);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(acc + o, fma(vp, v128.load(v + o), v128.load(acc + o)));
  }
  for (; i < n; i++) store<f32>(acc + (<usize>i << 2), load<f32>(acc + (<usize>i << 2)) + p * load<f32>(v + (<usize>i << 2)));
}

/** out[nQ][nHeads·headDim]: query i (position pos0 + i) attends to positions 0..pos0+i of the
 * sequence whose blocks blockTable lists; head h reads kv head h / (nHeads / nKvHeads);
 * scores scaled by 1/√headDim. headDim <= 1024. */
export function attention(
  out: usize,
  q: usize,
  nQ: i32,
  kPool: usize,
  vPool: usize,
  blockTable: usize,
  pos0: i32,
  nHeads: i32,
  nKvHeads: i32,
  headDim: i32,
  blockSize: i32,
): void {
  const hdBytes = <usize>headDim << 2;
  const blockBytes = <usize>nKvHeads * <usize>blockSize * hdBytes;
  const group = nHeads / nKvHeads;
  const sc: f32 = <f32>1 / Mathf.sqrt(<f32>headDim);
  const acc = SCRATCH_ACC;
  const sco = SCRATCH_SCORES;
  for (let i = 0; i < nQ; i++) {
    const T = pos0 + i + 1;
    for (let h = 0; h < nHeads; h++) {
      const kvh = h / group;
      const qp = q + (<usize>i * <usize>nHeads + <usize>h) * hdBytes;
      memory.fill(acc, 0, hdBytes);
      let m: f32 = -Infinity;
      let l: f32 = 0;
      for (let t0 = 0; t0 < T; t0 += blockSize) {
        const blk = <usize>load<i32>(blockTable + (<usize>(t0 / blockSize) << 2));
        const headOff = blk * blockBytes + <usize>kvh * <usize>blockSize * hdBytes;
        const cnt = min(blockSize, T - t0);
        for (let j0 = 0; j0 < cnt; j0 += 32) {
          const tn = min(32, cnt - j0);
          // scores of this tile and their max
          let kp = kPool + headOff + <usize>j0 * hdBytes;
          let tmax: f32 = -Infinity;
          for (let j = 0; j < tn; j++) {
            const s = dot(qp, kp, headDim) * sc;
            store<f32>(sco + (<usize>j << 2), s);
            tmax = max(tmax, s);
            kp += hdBytes;
          }
          if (tmax > m) {
            const c = Mathf.exp(m - tmax); // 0 on the first tile
            if (l != 0) scale(acc, c, headDim);
            l *= c;
            m = tmax;
          }
          let vp = vPool + headOff + <usize>j0 * hdBytes;
          for (let j = 0; j < tn; j++) {
            const p = Mathf.exp(load<f32>(sco + (<usize>j << 2)) - m);
            l += p;
            axpy(acc, p, vp, headDim);
            vp += hdBytes;
          }
        }
      }
      const op = out + (<usize>i * <usize>nHeads + <usize>h) * hdBytes;
      scale(acc, <f32>1 / l, headDim);
      memory.copy(op, acc, hdBytes);
    }
  }
}
