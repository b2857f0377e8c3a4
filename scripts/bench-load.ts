/**
 * Model load time, split: parseGGUF, tokenizerFromGGUF, createKernels, Model.load (prepareLinear,
 * reserve, the rest) — the steps of runtime.loadModel. Cold: the first load in a fresh process (a
 * child per sample, so JIT warm-up counts, as it does for a host's first request); warm: later loads
 * in that process. Wall and CPU time (CPU time of this process counts less of a shared machine's
 * noise). Samples of the models are interleaved; best and median are printed.
 *
 *   npx tsx scripts/bench-load.ts [--shape 15M] [--types q8_0,f32] [--samples 7] [--warm 5] [--json]
 *
 * Writes bench-results/load-<shape>.json.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseGGUF } from '../runtime/gguf.ts';
import { createKernels, detectRelaxedSimd, type Kernels } from '../runtime/kernels.ts';
import { Model } from '../runtime/model.ts';
import { tokenizerFromGGUF } from '../runtime/tokenizer.ts';

const args = process.argv.slice(2);
const opt = (name: string, def: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? args[i + 1] : def;
};
const root = join(import.meta.dirname, '..');
const STEPS = ['parse', 'tokenizer', 'kernels', 'prepareLinear', 'reserve', 'modelRest', 'total'] as const;
type Split = Record<(typeof STEPS)[number], number>;
interface Sample {
  wall: Split;
  cpu: Split;
}

const cpuNow = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

// one load with its split in wall and CPU ms
function loadOnce(mod: WebAssembly.Module, bytes: Uint8Array): Sample {
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
  });
  return { wall: split(w, 0), cpu: split(c, 1) };
}

const pickModule = (): WebAssembly.Module => {
  const name = detectRelaxedSimd() ? 'kernels-relaxed.wasm' : 'kernels.wasm';
  return new WebAssembly.Module(readFileSync(join(root, 'build', name)));
};
const modelPath = (shape: string, type: string) =>
  join(root, 'bench-results', 'models', `random-${shape}-${type}.gguf`);

if (args[0] === '--child') {
  // child: one cold load, then `warm` more; one JSON line on stdout
  const [, shape, type, warmN] = args;
  const mod = pickModule();
  const bytes = new Uint8Array(readFileSync(modelPath(shape, type)));
  const cold = loadOnce(mod, bytes);
  const warm: Sample[] = [];
  for (let i = 0; i < Number(warmN); i++) warm.push(loadOnce(mod, bytes));
  process.stdout.write(`${JSON.stringify({ cold, warm })}\n`);
} else {
  const shape = opt('shape', '15M');
  const types = opt('types', 'q8_0,f32').split(',');
  const samples = Number(opt('samples', '7'));
  const warmN = Number(opt('warm', '5'));
  const json = args.includes('--json');
  const got: Record<string, { cold: Sample[]; warm: Sample[] }> = {};
  for (const t of types) got[t] = { cold: [], warm: [] };
  for (let s = 0; s < samples; s++) {
    for (const t of types) {
      const r = spawnSync(
        process.execPath,
        ['--import', 'tsx', join(import.meta.dirname, 'bench-load.ts'), '--child', shape, t, String(warmN)],
        { cwd: root, encoding: 'utf8' },
      );
      if (r.status !== 0) throw new Error(`child failed: ${r.stderr}`);
      const res = JSON.parse(r.stdout.trim().split('\n').pop()!) as { cold: Sample; warm: Sample[] };
      got[t].cold.push(res.cold);
      got[t].warm.push(...res.warm);
    }
  }
  const stat = (xs: Sample[], clock: 'wall' | 'cpu', step: (typeof STEPS)[number]) => {
    const v = xs.map((x) => x[clock][step]).sort((a, b) => a - b);
    return { best: v[0], median: v[Math.floor(v.length / 2)] };
  };
  const rows: unknown[] = [];
  for (const t of types) {
    for (const phase of ['cold', 'warm'] as const) {
      for (const clock of ['wall', 'cpu'] as const) {
        const xs = got[t][phase];
        const row: Record<string, unknown> = { model: shape, type: t, phase, clock, n: xs.length };
        const parts: string[] = [];
        for (const st of STEPS) {
          const { best, median } = stat(xs, clock, st);
          row[st] = { best: +best.toFixed(2), median: +median.toFixed(2) };
          parts.push(`${st} ${best.toFixed(1)}/${median.toFixed(1)}`);
        }
        rows.push(row);
        const line = `${shape} ${t.padEnd(4)} ${phase} ${clock.padEnd(4)} (best/median ms, n=${xs.length}): ${parts.join('  ')}`;
        if (json) console.error(line);
        else console.log(line);
      }
    }
  }
  mkdirSync(join(root, 'bench-results'), { recursive: true });
  writeFileSync(join(root, 'bench-results', `load-${shape}.json`), `${JSON.stringify(rows, null, 1)}\n`);
  if (json) console.log(JSON.stringify(rows));
}
