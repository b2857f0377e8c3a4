/**
 * What the two from-memory benchmarks (scripts/bench-stream.ts: f32, scripts/bench-stream-quant.ts:
 * Q8_0/Q4_0) share: their command line, the kernel builds to compare, seeded inputs, CPU time.
 * @example
 * const { opt, flag } = cli(process.argv.slice(2));
 * const builds = kernelBuilds(root, opt('builds', 'relaxed'), opt('wasm', ''));
 */
import { basename, join } from 'node:path';
import { detectRelaxedSimd, type Kernels, type LinearWeight } from '../../runtime/kernels.ts';

/** `--name value` options and `--name` flags of a script's arguments. */
export function cli(args: string[]) {
  return {
    opt(name: string, def: string): string {
      const i = args.indexOf(`--${name}`);
      return i >= 0 && args[i + 1] ? args[i + 1] : def;
    },
    flag: (name: string) => args.includes(`--${name}`),
  };
}

/**
 * The .wasm files to measure: `builds` lists `relaxed` (when this host validates relaxed SIMD) and
 * `plain` from build/, `wasm` adds other files by path (kernel variants A/B in one run).
 */
export function kernelBuilds(
  root: string,
  builds: string,
  wasm: string,
): Array<{ impl: string; file: string }> {
  const out: Array<{ impl: string; file: string }> = [];
  for (const b of builds.split(',')) {
    if (b === 'relaxed' && detectRelaxedSimd())
      out.push({ impl: 'relaxed', file: join(root, 'build/kernels-relaxed.wasm') });
    if (b === 'plain') out.push({ impl: 'plain', file: join(root, 'build/kernels.wasm') });
  }
  for (const f of wasm.split(',').filter(Boolean)) out.push({ impl: basename(f, '.wasm'), file: f });
  return out;
}

/** uniform values in (−scale, scale) from a linear congruential generator shared by all calls. */
export const seeded = (() => {
  let seed = 1;
  return (n: number, scale = 1): Float32Array => {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      a[i] = ((seed / 2 ** 32) * 2 - 1) * scale;
    }
    return a;
  };
})();

/** user + system CPU seconds of this process (a shared machine's other jobs do not count). */
export function cpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/** What timeRounds runs: one build's kernels, its output and input pointers, the weight copies. */
export interface StreamSetup {
  k: Pick<Kernels, 'linear'>;
  op: number;
  xp: number;
  ws: LinearWeight[];
}

/**
 * Warm-up (JIT tier-up: three passes over every row count) and a check that every setup computes
 * what the first one does (max |Δ| ≤ 1e-4 of the largest output on maxM rows of n); a warning
 * through `log` naming `what` otherwise.
 */
export function warmAndCheck(
  setups: Array<StreamSetup & { impl: string; k: Pick<Kernels, 'linear' | 'f32'> }>,
  ms: number[],
  maxM: number,
  n: number,
  what: string,
  log: (line: string) => void,
): void {
  const copies = setups[0].ws.length;
  const ref = new Float32Array(maxM * n);
  setups.forEach((s, i) => {
    for (let j = 0; j < 3; j++) for (const m of ms) s.k.linear(s.op, s.xp, s.ws[j % copies], m);
    s.k.linear(s.op, s.xp, s.ws[0], maxM);
    const got = s.k.f32(s.op, maxM * n);
    if (i === 0) ref.set(got);
    else {
      let worst = 0;
      let scale = 0;
      for (let j = 0; j < got.length; j++) {
        worst = Math.max(worst, Math.abs(got[j] - ref[j]));
        scale = Math.max(scale, Math.abs(ref[j]));
      }
      if (!(worst <= 1e-4 * scale))
        log(`WARNING ${s.impl} differs from ${setups[0].impl} on ${what}: ${worst} (scale ${scale})`);
    }
  });
}

/**
 * Seconds per `linear` call for every setup and row count: from DRAM (each call the next of the
 * `copies` weight copies) and, with `hot`, from cache (the first copy again and again); best of
 * `rounds` in CPU time. Within a round every setup runs in turn, the first one rotating (the one
 * measured first ran ~5 % slower from DRAM).
 */
export function timeRounds(
  setups: StreamSetup[],
  ms: number[],
  rounds: number,
  copies: number,
  hot: boolean,
) {
  const dram = setups.map(() => ms.map(() => Number.POSITIVE_INFINITY));
  const cache = setups.map(() => ms.map(() => Number.POSITIVE_INFINITY));
  for (let r = 0; r < rounds; r++)
    for (let mi = 0; mi < ms.length; mi++)
      for (let j = 0; j < setups.length; j++) {
        const si = (j + r) % setups.length;
        const s = setups[si];
        const m = ms[mi];
        let t0 = cpuSeconds();
        for (let c = 0; c < copies; c++) s.k.linear(s.op, s.xp, s.ws[c], m);
        dram[si][mi] = Math.min(dram[si][mi], (cpuSeconds() - t0) / copies);
        if (hot) {
          const w0 = s.ws[0];
          s.k.linear(s.op, s.xp, w0, m);
          t0 = cpuSeconds();
          for (let c = 0; c < copies; c++) s.k.linear(s.op, s.xp, w0, m);
          cache[si][mi] = Math.min(cache[si][mi], (cpuSeconds() - t0) / copies);
        }
      }
  return { dram, cache };
}
