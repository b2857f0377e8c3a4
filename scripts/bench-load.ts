/**
 * Model load time, split: parseGGUF, tokenizerFromGGUF, createKernels, Model.load (prepareLinear,
 * reserve, the rest) — the steps of runtime.loadModel. Cold: the first load in a fresh process (a
 * child per sample, so JIT warm-up counts, as it does for a host's first request); warm: later loads
 * in that process. Wall and CPU time (CPU time of this process counts less of a shared machine's
 * noise). Samples of the models are interleaved; best and median are printed.
 *
 *   npx tsx scripts/bench-load.ts [--shape 15M] [--types q8_0,f32] [--samples 7] [--warm 5] [--json]
 *                                 [--compare <dir>] [--gc] [--settle]
 *
 * --gc: also the time V8 spent in GC pauses inside each load (PerformanceObserver 'gc' entries whose
 * start falls in the load; column gc, the same in the wall and cpu rows), waiting 5 ms after each
 * load for the entries (so only with the flag).
 *
 * --settle: a full GC (node --expose-gc) in each child before its cold load, so that the garbage of
 * the child's own start-up (tsx, the file read) is not collected inside the load: the load's own cold
 * cost, not what bench:decode sees (label it so).
 *
 * --compare <dir>: a second runtime (a directory holding runtime/ and this repository's package.json,
 * e.g. an older commit unpacked with `git archive <commit> runtime package.json | tar -x -C <dir>`)
 * loaded in children interleaved with this one; the table then gives both and the ratio of their
 * medians (same machine, same moments). Without the package.json ("type": "module") tsx loads the
 * copy as CommonJS, whose different start-up moves where V8's first full GC lands: a cold parse
 * measured ~3 ms apart with identical code, so the script refuses such a directory.
 * Writes bench-results/load-<shape>.json.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import type { parseGGUF as ParseGGUF } from '../runtime/gguf.ts';
import type { createKernels as CreateKernels, Kernels } from '../runtime/kernels.ts';
import type { Model as ModelClass } from '../runtime/model.ts';
import type { tokenizerFromGGUF as TokenizerFromGGUF } from '../runtime/tokenizer.ts';

const args = process.argv.slice(2);
const opt = (name: string, def: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? args[i + 1] : def;
};
const root = join(import.meta.dirname, '..');
const STEPS = [
  'parse',
  'tokenizer',
  'kernels',
  'prepareLinear',
  'reserve',
  'modelRest',
  'total',
  'gc',
] as const;
type Split = Record<(typeof STEPS)[number], number>;
interface Sample {
  wall: Split;
  cpu: Split;
  /** performance.now() at the load's start and end */
  window?: [number, number];
}

const cpuNow = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

interface Runtime {
  parseGGUF: typeof ParseGGUF;
  tokenizerFromGGUF: typeof TokenizerFromGGUF;
  createKernels: typeof CreateKernels;
  Model: typeof ModelClass;
  detectRelaxedSimd(): boolean;
}

// the runtime under `dir` (this repository's by default)
async function importRuntime(dir: string): Promise<Runtime> {
  const m = (f: string) => import(pathToFileURL(join(dir, 'runtime', f)).href);
  const [g, t, k, md] = await Promise.all([m('gguf.ts'), m('tokenizer.ts'), m('kernels.ts'), m('model.ts')]);
  return {
    parseGGUF: g.parseGGUF,
    tokenizerFromGGUF: t.tokenizerFromGGUF,
    createKernels: k.createKernels,
    Model: md.Model,
    detectRelaxedSimd: k.detectRelaxedSimd,
  };
}

// one load with its split in wall and CPU ms
function loadOnce(rt: Runtime, mod: WebAssembly.Module, bytes: Uint8Array): Sample {
  const { parseGGUF, tokenizerFromGGUF, createKernels, Model } = rt;
  const w: number[] = [performance.now()];
  const c: number[] = [cpuNow()];
  const mark = () => {
    w.push(performance.now());
    c.push(cpuNow());
  };
  const file = parseGGUF(bytes);
  mark();
  tokenizerFromGGUF(file);
  mark();
  const k = createKernels(mod) as Kernels & Record<string, any>;
  mark();
  const acc = { prepareLinear: [0, 0], reserve: [0, 0] } as Record<string, [number, number]>;
  for (const n of Object.keys(acc)) {
    const o = k[n];
    k[n] = (...a: unknown[]) => {
      const t = performance.now();
      const tc = cpuNow();
      const r = o.apply(k, a);
      acc[n][0] += performance.now() - t;
      acc[n][1] += cpuNow() - tc;
      return r;
    };
  }
  Model.load(k, file, { maxContext: 512, maxSequences: 8, budgetBytes: 1024 * 2 ** 20 });
  mark();
  const split = (t: number[], j: number): Split => ({
    parse: t[1] - t[0],
    tokenizer: t[2] - t[1],
    kernels: t[3] - t[2],
    prepareLinear: acc.prepareLinear[j],
    reserve: acc.reserve[j],
    modelRest: t[4] - t[3] - acc.prepareLinear[j] - acc.reserve[j],
    total: t[4] - t[0],
    gc: 0,
  });
  return { wall: split(w, 0), cpu: split(c, 1), window: [w[0], w[4]] };
}

// GC pauses (ms) that started inside [from, to] (performance.now() times), from a PerformanceObserver
const gcEntries: PerformanceEntry[] = [];
const gcIn = async (from: number, to: number): Promise<number> => {
  await new Promise((r) => setTimeout(r, 5)); // the observer's entries arrive asynchronously
  let ms = 0;
  for (const e of gcEntries) if (e.startTime >= from && e.startTime <= to) ms += e.duration;
  return ms;
};

const pickModule = (rt: Runtime): WebAssembly.Module => {
  const name = rt.detectRelaxedSimd() ? 'kernels-relaxed.wasm' : 'kernels.wasm';
  return new WebAssembly.Module(readFileSync(join(root, 'build', name)));
};
const modelPath = (shape: string, type: string) =>
  join(root, 'bench-results', 'models', `random-${shape}-${type}.gguf`);

if (args[0] === '--child') {
  // child: one cold load, then `warm` more; one JSON line on stdout
  const [, shape, type, warmN, dir, gcFlag, settleFlag] = args;
  const gc = gcFlag === 'gc';
  if (gc) new PerformanceObserver((l) => gcEntries.push(...l.getEntries())).observe({ entryTypes: ['gc'] });
  const rt = await importRuntime(dir);
  const mod = pickModule(rt);
  const bytes = new Uint8Array(readFileSync(modelPath(shape, type)));
  const once = async (): Promise<Sample> => {
    const s = loadOnce(rt, mod, bytes);
    if (gc) s.wall.gc = s.cpu.gc = await gcIn(...s.window!);
    delete s.window;
    return s;
  };
  if (settleFlag === 'settle') (globalThis as { gc?: () => void }).gc?.();
  const cold = await once();
  const warm: Sample[] = [];
  for (let i = 0; i < Number(warmN); i++) warm.push(await once());
  process.stdout.write(`${JSON.stringify({ cold, warm })}\n`);
} else {
  const shape = opt('shape', '15M');
  const types = opt('types', 'q8_0,f32').split(',');
  const samples = Number(opt('samples', '7'));
  const warmN = Number(opt('warm', '5'));
  const json = args.includes('--json');
  const compare = args.includes('--compare') ? opt('compare', '') : undefined;
  const gc = args.includes('--gc');
  const settle = args.includes('--settle');
  if (compare !== undefined) {
    let type: unknown;
    try {
      type = JSON.parse(readFileSync(join(compare, 'package.json'), 'utf8')).type;
    } catch {}
    if (type !== 'module') {
      throw new Error(
        `--compare ${compare}: no package.json with "type": "module" there (copy this repository's), or tsx loads that runtime as CommonJS and the comparison is skewed`,
      );
    }
  }
  const impls = compare ? [root, compare] : [root];
  const label = (dir: string) => (dir === root ? 'this' : 'compare');
  const got: Record<string, { cold: Sample[]; warm: Sample[] }> = {};
  const keyOf = (dir: string, t: string) => `${label(dir)} ${t}`;
  for (const dir of impls) for (const t of types) got[keyOf(dir, t)] = { cold: [], warm: [] };
  for (let s = 0; s < samples; s++) {
    for (const t of types) {
      // alternate which runtime goes first, so neither always meets the other's leftovers
      for (const dir of s % 2 ? [...impls].reverse() : impls) {
        const r = spawnSync(
          process.execPath,
          [
            ...(settle ? ['--expose-gc'] : []),
            '--import',
            'tsx',
            join(import.meta.dirname, 'bench-load.ts'),
            '--child',
            shape,
            t,
            String(warmN),
            dir,
            gc ? 'gc' : 'no-gc',
            settle ? 'settle' : 'no-settle',
          ],
          { cwd: root, encoding: 'utf8' },
        );
        if (r.status !== 0) throw new Error(`child failed: ${r.stderr}`);
        const res = JSON.parse(r.stdout.trim().split('\n').pop()!) as { cold: Sample; warm: Sample[] };
        got[keyOf(dir, t)].cold.push(res.cold);
        got[keyOf(dir, t)].warm.push(...res.warm);
      }
    }
  }
  const stat = (xs: Sample[], clock: 'wall' | 'cpu', step: (typeof STEPS)[number]) => {
    const v = xs.map((x) => x[clock][step]).sort((a, b) => a - b);
    return { best: v[0], median: v[Math.floor(v.length / 2)] };
  };
  const rows: unknown[] = [];
  const say = (line: string) => (json ? console.error(line) : console.log(line));
  for (const t of types) {
    for (const phase of ['cold', 'warm'] as const) {
      for (const clock of ['wall', 'cpu'] as const) {
        for (const dir of impls) {
          const xs = got[keyOf(dir, t)][phase];
          const row: Record<string, unknown> = {
            model: shape,
            type: t,
            impl: label(dir),
            phase,
            clock,
            n: xs.length,
          };
          const parts: string[] = [];
          for (const st of STEPS) {
            if (st === 'gc' && !gc) continue;
            const { best, median } = stat(xs, clock, st);
            row[st] = { best: +best.toFixed(2), median: +median.toFixed(2) };
            parts.push(`${st} ${best.toFixed(1)}/${median.toFixed(1)}`);
          }
          rows.push(row);
          const who = compare ? `${label(dir).padEnd(7)} ` : '';
          say(
            `${shape} ${t.padEnd(4)} ${who}${phase} ${clock.padEnd(4)} (best/median ms, n=${xs.length}): ${parts.join('  ')}`,
          );
        }
        if (compare) {
          const a = stat(got[keyOf(root, t)][phase], clock, 'total');
          const b = stat(got[keyOf(compare, t)][phase], clock, 'total');
          say(
            `${shape} ${t.padEnd(4)} ${phase} ${clock.padEnd(4)} total this/compare: best ×${(a.best / b.best).toFixed(2)}, median ×${(a.median / b.median).toFixed(2)}`,
          );
        }
      }
    }
  }
  mkdirSync(join(root, 'bench-results'), { recursive: true });
  writeFileSync(join(root, 'bench-results', `load-${shape}.json`), `${JSON.stringify(rows, null, 1)}\n`);
  if (json) console.log(JSON.stringify(rows));
}
