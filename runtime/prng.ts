// Seeded pseudo-random numbers that give the same stream in Node, workerd and every browser:
// xoshiro128** (Blackman & Vigna, https://prng.di.unimi.it/xoshiro128starstar.c) over 32-bit
// integers with Math.imul, seeded through splitmix32. No floating point enters the state, so the
// stream is bit-identical on every engine; floats are built from 53 random bits by exact
// arithmetic.

/** A seeded generator: `nextU32()` in [0, 2³²), `next()` in [0, 1) with 53 random bits. */
export interface Rng {
  nextU32(): number;
  next(): number;
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/**
 * Creates a xoshiro128** generator from a seed (any safe integer; its low and high 32 bits both
 * feed the state). Equal seeds give equal streams on every platform.
 * @example
 * const rng = createRng(42);
 * const u = rng.next(); // 0 <= u < 1
 */
export function createRng(seed: number): Rng {
  if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be a safe integer, got ${seed}`);
  const lo = seed >>> 0;
  const hi = Math.floor(seed / 4294967296) >>> 0;
  // splitmix32 over (lo, hi) fills the four state words; it never yields an all-zero state in practice,
  // and we guard against it anyway.
  let sm = (lo ^ Math.imul(hi, 0x9e3779b9)) | 0;
  const splitmix = (): number => {
    sm = (sm + 0x9e3779b9) | 0;
    let z = sm;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) | 0;
  };
  let s0 = splitmix();
  let s1 = splitmix() ^ hi;
  let s2 = splitmix();
  let s3 = splitmix();
  if ((s0 | s1 | s2 | s3) === 0) s0 = 1;
  const nextU32 = (): number => {
    const result = Math.imul(rotl(Math.imul(s1, 5), 7), 9);
    const t = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = rotl(s3, 11);
    return result >>> 0;
  };
  return {
    nextU32,
    // 27 + 26 bits → a double in [0, 1) with 53 random bits, exact on every engine
    next: () => ((nextU32() >>> 5) * 67108864 + (nextU32() >>> 6)) / 9007199254740992,
  };
}
