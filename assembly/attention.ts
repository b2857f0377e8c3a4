// causal self-attention over a paged KV cache.
//
// per layer a K pool and a V pool of blocks; block b starts at pool + b·blockBytes with
// blockBytes = nKvHeads·blockSize·headDim·4 and is laid out [kvHead][blockSize][headDim] f32, so
// one head's keys (and values) inside a block are contiguous. a sequence owns an i32 block table:
// position p lives in block table[p / blockSize], slot p % blockSize. sequences that share a
// prefix (beams) share its blocks.
//
// scores use an online softmax (running max m, running sum l, rescaled accumulator) over tiles
// of up to 32 keys: one pass over K and V, no buffer proportional to the context. within a tile:
// scores four keys at a time, a SIMD exp, then V accumulated 16 floats of head_dim at a time.
import { ACC_FLOATS, exp4, fma, hmax, hsum, SCRATCH_ACC, SCRATCH_L, SCRATCH_M, SCRATCH_SCORES } from './simd';

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

// four scores q·k_j (j = 0..3, keys hdBytes apart) as one vector
// @ts-ignore: decorator
@inline
function dot4(q: usize, k: usize, hdBytes: usize, n: i32): v128 {
  let s0 = f32x4.splat(0);
  let s1 = f32x4.splat(0);
  let s2 = f32x4.splat(0);
  let s3 = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    const qv = v128.load(q + o);
    s0 = fma(qv, v128.load(k + o), s0);
    s1 = fma(qv, v128.load(k + hdBytes + o), s1);
    s2 = fma(qv, v128.load(k + 2 * hdBytes + o), s2);
    s3 = fma(qv, v128.load(k + 3 * hdBytes + o), s3);
  }
  // transpose-add: [Σs0, Σs1, Σs2, Σs3]
  const t0 = f32x4.add(i32x4.shuffle(s0, s1, 0, 4, 1, 5), i32x4.shuffle(s0, s1, 2, 6, 3, 7));
  const t1 = f32x4.add(i32x4.shuffle(s2, s3, 0, 4, 1, 5), i32x4.shuffle(s2, s3, 2, 6, 3, 7));
  let r = f32x4.add(i32x4.shuffle(t0, t1, 0, 1, 4, 5), i32x4.shuffle(t0, t1, 2, 3, 6, 7));
  for (; i < n; i++) {
    const qs = load<f32>(q + (<usize>i << 2));
    const o = <usize>i << 2;
    r = f32x4.add(
      r,
      f32x4.mul(
        f32x4.splat(qs),
        f32x4(load<f32>(k + o), load<f32>(k + hdBytes + o), load<f32>(k + 2 * hdBytes + o), load<f32>(k + 3 * hdBytes + o)),
      ),
    );
  }
  return r;
}

// q·k over headDim
// @ts-ignore: decorator
@inline
function dot(a: usize, b: usize, n: i32): f32 {
  let s0 = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) s0 = fma(v128.load(a + (<usize>i << 2)), v128.load(b + (<usize>i << 2)), s0);
  let s = hsum(s0);
  for (; i < n; i++) s += load<f32>(a + (<usize>i << 2)) * load<f32>(b + (<usize>i << 2));
  return s;
}

// acc = acc·c + Σ_j p_j·v_j over a tile of tn values (p at sco, values hdBytes apart), 16 floats at a time
// @ts-ignore: decorator
@inline
function accumulate(acc: usize, c: f32, sco: usize, v: usize, hdBytes: usize, tn: i32, n: i32): void {
  const vc = f32x4.splat(c);
  let i = 0;
  for (; i + 16 <= n; i += 16) {
    const o = <usize>i << 2;
    let a0 = f32x4.mul(v128.load(acc + o), vc);
    let a1 = f32x4.mul(v128.load(acc + o, 16), vc);
    let a2 = f32x4.mul(v128.load(acc + o, 32), vc);
    let a3 = f32x4.mul(v128.load(acc + o, 48), vc);
    let vp = v + o;
    for (let j = 0; j < tn; j++) {
      const p = v128.load32_splat(sco + (<usize>j << 2));
      a0 = fma(p, v128.load(vp), a0);
      a1 = fma(p, v128.load(vp, 16), a1);
      a2 = fma(p, v128.load(vp, 32), a2);
      a3 = fma(p, v128.load(vp, 48), a3);
      vp += hdBytes;
    }
    v128.store(acc + o, a0);
    v128.store(acc + o, a1, 16);
    v128.store(acc + o, a2, 32);
    v128.store(acc + o, a3, 48);
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    let a = load<f32>(acc + o) * c;
    let vp = v + o;
    for (let j = 0; j < tn; j++) {
      a += load<f32>(sco + (<usize>j << 2)) * load<f32>(vp);
      vp += hdBytes;
    }
    store<f32>(acc + o, a);
  }
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
  const vsc = f32x4.splat(sc);
  const sco = SCRATCH_SCORES;
  // the query heads that share a KV head go together (up to G at a time): each K/V tile is read
  // from memory once and from L1 for the other heads of the group
  const G = min(min(group, ACC_FLOATS / headDim), 256);
  // head-major: one KV head's keys and values stay in cache across the queries of a prefill
  for (let kvh = 0; kvh < nKvHeads; kvh++) {
    for (let h0 = 0; h0 < group; h0 += G) {
      for (let i = 0; i < nQ; i++) {
        const T = pos0 + i + 1;
        const gn = min(G, group - h0);
        const hFirst = kvh * group + h0;
        memory.fill(SCRATCH_ACC, 0, <usize>gn * hdBytes);
        for (let g = 0; g < gn; g++) {
          store<f32>(SCRATCH_M + (<usize>g << 2), -Infinity);
          store<f32>(SCRATCH_L + (<usize>g << 2), 0);
        }
        for (let t0 = 0; t0 < T; t0 += blockSize) {
          const blk = <usize>load<i32>(blockTable + (<usize>(t0 / blockSize) << 2));
          const headOff = blk * blockBytes + <usize>kvh * <usize>blockSize * hdBytes;
          const cnt = min(blockSize, T - t0);
          for (let j0 = 0; j0 < cnt; j0 += 32) {
            const tn = min(32, cnt - j0);
            const kp = kPool + headOff + <usize>j0 * hdBytes;
            const vp = vPool + headOff + <usize>j0 * hdBytes;
            for (let g = 0; g < gn; g++) {
              const qp = q + (<usize>i * <usize>nHeads + <usize>(hFirst + g)) * hdBytes;
              // scores of this tile (four keys at a time) and their max
              let j = 0;
              let tm = f32x4.splat(-Infinity);
              for (; j + 4 <= tn; j += 4) {
                const s4 = f32x4.mul(dot4(qp, kp + <usize>j * hdBytes, hdBytes, headDim), vsc);
                v128.store(sco + (<usize>j << 2), s4);
                tm = f32x4.pmax(tm, s4);
              }
              let tmax = hmax(tm);
              for (; j < tn; j++) {
                const s = dot(qp, kp + <usize>j * hdBytes, headDim) * sc;
                store<f32>(sco + (<usize>j << 2), s);
                tmax = max(tmax, s);
              }
              // new running max: rescale what was accumulated by e^(m_old - m_new)
              let m = load<f32>(SCRATCH_M + (<usize>g << 2));
              let l = load<f32>(SCRATCH_L + (<usize>g << 2));
              let c: f32 = 1;
              if (tmax > m) {
                c = l != 0 ? Mathf.exp(m - tmax) : 0;
                l *= c;
                m = tmax;
              }
              // p_j = e^(s_j - m), l += Σp
              const vm = f32x4.splat(m);
              let ls = f32x4.splat(0);
              j = 0;
              for (; j + 4 <= tn; j += 4) {
                const p = exp4(f32x4.sub(v128.load(sco + (<usize>j << 2)), vm));
                v128.store(sco + (<usize>j << 2), p);
                ls = f32x4.add(ls, p);
              }
              l += hsum(ls);
              for (; j < tn; j++) {
                const p = Mathf.exp(load<f32>(sco + (<usize>j << 2)) - m);
                store<f32>(sco + (<usize>j << 2), p);
                l += p;
              }
              store<f32>(SCRATCH_M + (<usize>g << 2), m);
              store<f32>(SCRATCH_L + (<usize>g << 2), l);
              accumulate(SCRATCH_ACC + <usize>g * hdBytes, c, sco, vp, hdBytes, tn, headDim);
            }
          }
        }
        for (let g = 0; g < gn; g++) {
          const op = out + (<usize>i * <usize>nHeads + <usize>(hFirst + g)) * hdBytes;
          const acc = SCRATCH_ACC + <usize>g * hdBytes;
          const inv: f32 = <f32>1 / load<f32>(SCRATCH_L + (<usize>g << 2));
          const vi = f32x4.splat(inv);
          let d = 0;
          for (; d + 4 <= headDim; d += 4) v128.store(op + (<usize>d << 2), f32x4.mul(v128.load(acc + (<usize>d << 2)), vi));
          for (; d < headDim; d++) store<f32>(op + (<usize>d << 2), load<f32>(acc + (<usize>d << 2)) * inv);
        }
      }
    }
  }
}
