/**
 * What the two from-memory benchmarks (scripts/bench-stream.ts: f32, scripts/bench-stream-quant.ts:
 * Q8_0/Q4_0) share: their command line, the kernel builds to compare, seeded inputs, CPU time.
 * @example
 * const { opt, flag } = cli(process.argv.slice(2));
 * const builds = kernelBuilds(root, opt('builds', 'relaxed'), opt('wasm', ''));
 */
import { basename, join } from 'node:path';
import { detectRelaxedSimd } from '../../runtime/kernels.ts';

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
