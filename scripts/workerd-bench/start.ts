/**
 * Starts the bench Worker (scripts/workerd-bench/worker.ts, bundled with esbuild) in workerd through
 * Miniflare on 127.0.0.1 at a free port, with build/kernels.wasm and build/kernels-relaxed.wasm as
 * CompiledWasm modules (as wrangler.toml's rules give worker/). One call = one workerd process = one
 * isolate holding one group of workloads.
 * @example
 * const w = await startBenchWorker(); await w.setup('kind=linear&shapes=1x288x768&types=f32'); await w.run('linear:f32:1x288x768', 10); await w.dispose();
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';
import { convertV4MiniflareOptions, Miniflare } from 'miniflare';

const root = join(import.meta.dirname, '..', '..');

export interface SetupInfo {
  build: string;
  relaxedAvailable: boolean;
  memoryBytes: number;
}

export interface BenchWorker {
  url: string;
  /** POST /setup?<query> (body: model bytes for decode) */
  setup(query: string, body?: Uint8Array<ArrayBuffer>): Promise<SetupInfo>;
  /**
   * one round trip of GET /run: the checksum, the wall ms from sending to the last body byte, and
   * the CPU ms the workerd process spent meanwhile (all its threads, from /proc; NaN off Linux)
   */
  run(name: string, n: number): Promise<{ checksum: number; ms: number; cpuMs: number }>;
  /** the workerd process id (undefined when it could not be told apart) */
  pid: number | undefined;
  dispose(): Promise<void>;
}

let bundled: Promise<string> | undefined;

/** the bench Worker's bundle (the wasm imports stay external: Miniflare gives them as modules) */
export function bundleBenchWorker(): Promise<string> {
  bundled ??= build({
    entryPoints: [join(import.meta.dirname, 'worker.ts')],
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    external: ['*.wasm'],
    write: false,
    logLevel: 'silent',
  }).then((r) => r.outputFiles[0]!.text);
  return bundled;
}

/** ids of this process's children named workerd */
function workerdChildren(): Set<number> {
  const found = new Set<number>();
  try {
    for (const d of readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      try {
        const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
        // pid (comm) state ppid ...
        const close = stat.lastIndexOf(')');
        const comm = stat.slice(stat.indexOf('(') + 1, close);
        const ppid = Number(stat.slice(close + 2).split(' ')[1]);
        if (ppid === process.pid && comm.startsWith('workerd')) found.add(Number(d));
      } catch {
        // gone meanwhile
      }
    }
  } catch {
    // no /proc
  }
  return found;
}

/** CPU ms of every thread of `pid` so far (/proc/<pid>/task/<tid>/schedstat: ns on CPU), NaN if unknown */
export function processCpuMs(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  try {
    let ns = 0;
    for (const t of readdirSync(`/proc/${pid}/task`)) {
      try {
        ns += Number(readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[0]);
      } catch {
        // thread ended meanwhile
      }
    }
    return ns / 1e6;
  } catch {
    return Number.NaN;
  }
}

/** resident and peak resident MiB of `pid` (/proc/<pid>/status VmRSS, VmHWM), NaN if unknown */
export function processRssMiB(pid: number | undefined): { rss: number; peak: number } {
  try {
    const st = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(st)?.[1] ?? Number.NaN);
    return { rss: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 };
  } catch {
    return { rss: Number.NaN, peak: Number.NaN };
  }
}

/**
 * A fresh workerd process running the bench Worker.
 * @example
 * const w = await startBenchWorker();
 */
export async function startBenchWorker(): Promise<BenchWorker> {
  const before = workerdChildren();
  const u8 = (p: string) => new Uint8Array(readFileSync(join(root, p))) as Uint8Array<ArrayBuffer>;
  const mf = new Miniflare(
    convertV4MiniflareOptions({
      host: '127.0.0.1',
      port: 0,
      modulesRoot: '/bench',
      modules: [
        { type: 'ESModule', path: '/bench/index.mjs', contents: await bundleBenchWorker() },
        { type: 'CompiledWasm', path: '/bench/kernels.wasm', contents: u8('build/kernels.wasm') },
        {
          type: 'CompiledWasm',
          path: '/bench/kernels-relaxed.wasm',
          contents: u8('build/kernels-relaxed.wasm'),
        },
      ],
      compatibilityDate: '2026-05-01',
    }),
  );
  const url = (await mf.ready).toString().replace(/\/$/, '');
  const fresh = [...workerdChildren()].filter((p) => !before.has(p));
  return httpBench(url, fresh.length === 1 ? fresh[0] : undefined, () => mf.dispose());
}

/** a BenchWorker over HTTP at `url`, CPU time read from process `pid` */
function httpBench(url: string, pid: number | undefined, dispose: () => Promise<void>): BenchWorker {
  const call = async (path: string, init?: RequestInit) => {
    const res = await fetch(`${url}${path}`, init);
    const text = await res.text();
    if (res.status !== 200) throw new Error(`${path}: ${res.status} ${text.slice(0, 2000)}`);
    return JSON.parse(text);
  };
  return {
    url,
    pid,
    setup: (query, body) => call(`/setup?${query}`, { method: 'POST', body }),
    async run(name, n) {
      const c0 = processCpuMs(pid);
      const t0 = performance.now();
      const r = await call(`/run?name=${encodeURIComponent(name)}&n=${n}`);
      const ms = performance.now() - t0;
      return { checksum: r.checksum, ms, cpuMs: processCpuMs(pid) - c0 };
    },
    dispose,
  };
}

/**
 * The same handler in a child Node process (this Node binary, with `nodeArgs`, e.g.
 * ['--disable-wasm-trap-handler']) behind node:http on 127.0.0.1: a peer timed exactly as workerd is.
 * @example
 * const peer = await startBenchNode(['--disable-wasm-trap-handler']);
 */
export async function startBenchNode(nodeArgs: string[]): Promise<BenchWorker> {
  const script = join(import.meta.dirname, 'node-server.ts');
  const proc = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', script], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stderr?.on('data', (d) => {
    out += d;
  });
  const port = await new Promise<number>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`node-server did not start: ${out}`)), 30_000);
    proc.stdout?.on('data', (d) => {
      out += d;
      const m = /PORT (\d+)/.exec(out);
      if (m) {
        clearTimeout(t);
        resolve(Number(m[1]));
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`node-server exited (${code}): ${out}`));
    });
  });
  const dispose = async () => {
    if (proc.exitCode !== null) return;
    const gone = new Promise<void>((r) => proc.once('exit', () => r()));
    proc.kill('SIGTERM');
    await gone;
  };
  return httpBench(`http://127.0.0.1:${port}`, proc.pid, dispose);
}
