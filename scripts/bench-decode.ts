/**
 * End-to-end decode benchmark: edgelm against llama.cpp (wllama compat build, one thread) on the
 * same GGUF files, in the same run. Random llama models in llama2.c's shapes (15M, 42M, 110M) in
 * F32, Q8_0 and Q4_0; decode tokens/s (256 greedy tokens after a short prompt), prefill tokens/s
 * (a 128-token prompt), load time and memory; then beam rows (B = 1, 2, 4, 8) on 15M and 42M.
 *
 *   npm run bench:decode -- [--json] [--shapes 15M,42M,110M] [--types f32,q8_0,q4_0] [--no-wllama]
 *                           [--no-beams] [--tokens 256]
 *
 * Rows: {"model","type","impl","tokPerSec","tokPerSecCpu","prefillTokPerSec","loadMs","memoryBytes"} and beam
 * rows {"model","type","impl":"edgelm","beams":B,"msPerToken","ratioToGreedy","kvBytesPerBeam"}.
 * Results also go to bench-results/decode-<timestamp>.json. tokPerSec is wall-clock, as llama.cpp
 * reports its own; ratios use it. tokPerSecCpu is edgelm's decode over the process's CPU time, for
 * a loaded machine where wall time mostly measures waiting for a core. loadMs is runtime.loadModel
 * on the file's bytes, after a full GC of the models measured before (node --expose-gc, which the
 * npm script passes; without it the previous model's garbage may be collected inside the load).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRuntime, type LoadedModel } from '../runtime/index.ts';
import { randomLlamaGGUF, SHAPES } from './lib/random-llama.ts';
import { loadWllama } from './lib/wllama-node.ts';

const args = process.argv.slice(2);
const flag = (name: string) => args.includes(`--${name}`);
const opt = (name: string, def: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? args[i + 1] : def;
};
const json = flag('json');
const shapes = opt('shapes', '15M,42M,110M').split(',');
const types = opt('types', 'f32,q8_0,q4_0').split(',');
const nTokens = Number(opt('tokens', '256'));
const log = (s: string) => {
  if (!json) console.log(s);
  else console.error(s);
};

const root = join(import.meta.dirname, '..');
const modelDir = join(root, 'bench-results', 'models');
mkdirSync(modelDir, { recursive: true });
const simd = new WebAssembly.Module(readFileSync(join(root, 'build', 'kernels.wasm')));
const relaxed = new WebAssembly.Module(readFileSync(join(root, 'build', 'kernels-relaxed.wasm')));
const runtime = createRuntime({ simd, relaxed });

// a prompt of 128 tokens for prefill and a short one for decode
const PROSE =
  'Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her ' +
  'friends. One day, she saw a big red ball under a tree and wanted to play with it. Her mother said that ' +
  'she had to share the ball with the other children, so Lily asked a boy named Tom to play with her. ' +
  'They kicked the ball back and forth and laughed all afternoon until the sun went down and it was time ' +
  'to go home for dinner with their families, who were waiting for them with warm soup and fresh bread.';

function modelFile(shape: string, type: string): string {
  const p = join(modelDir, `random-${shape}-${type}.gguf`);
  if (!existsSync(p)) {
    log(`writing ${p} ...`);
    writeFileSync(p, randomLlamaGGUF(SHAPES[shape], type, 7, 1));
  }
  return p;
}

interface Row {
  model: string;
  type: string;
  impl: string;
  tokPerSec?: number;
  tokPerSecCpu?: number;
  prefillTokPerSec?: number;
  loadMs?: number;
  memoryBytes?: number;
  beams?: number;
  msPerToken?: number;
  ratioToGreedy?: number;
  kvBytesPerBeam?: number;
}
const rows: Row[] = [];

async function run(m: LoadedModel, ids: number[], max: number, extra: Record<string, unknown> = {}) {
  let result: any;
  for await (const ev of m.generate(ids, { maxNewTokens: max, ignoreEos: true, ...extra } as any))
    if (ev.type === 'done') result = ev.result;
  return result;
}

async function edgelmRow(shape: string, type: string, bytes: Uint8Array): Promise<LoadedModel> {
  // the models measured before this one are garbage now (tens to hundreds of MB of WASM memory and
  // their JS objects): collect them first (npm run bench:decode passes --expose-gc), so that this
  // load is timed as a fresh isolate or process would see it, not with the last model's GC inside
  (globalThis as { gc?: () => void }).gc?.();
  const t0 = performance.now();
  // Node has room: the 110M shape does not fit a Worker's 128 MiB, so the budget is raised here
  const m = runtime.loadModel(bytes, { maxContext: 512, maxSequences: 8, budgetBytes: 1024 * 2 ** 20 });
  const loadMs = performance.now() - t0;
  const prefillIds = m.promptIds(PROSE).slice(0, 128);
  const shortIds = prefillIds.slice(0, 8);
  await run(m, shortIds, 8); // warm-up
  // prefill rate: best of 3 over the 128-token prompt (1 generated token)
  let prefill = Number.POSITIVE_INFINITY;
  for (let i = 0; i < 3; i++) prefill = Math.min(prefill, (await run(m, prefillIds, 1)).timings.prefillMs);
  const c0 = process.cpuUsage();
  const r = await run(m, shortIds, nTokens);
  const cpu = process.cpuUsage(c0);
  const tokPerSec = (r.completionTokens - 1) / (r.timings.decodeMs / 1000);
  // CPU time of this thread's process (prefill of the 8-token prompt included): on a shared,
  // loaded machine wall time mostly measures waiting for a core
  const tokPerSecCpu = r.completionTokens / ((cpu.user + cpu.system) / 1e6);
  const row: Row = {
    model: shape,
    type,
    impl: m.relaxedSimd ? 'edgelm-relaxed' : 'edgelm',
    tokPerSec: +tokPerSec.toFixed(1),
    tokPerSecCpu: +tokPerSecCpu.toFixed(1),
    prefillTokPerSec: +(prefillIds.length / (prefill / 1000)).toFixed(1),
    loadMs: +loadMs.toFixed(1),
    memoryBytes: m.info.memory.total,
  };
  rows.push(row);
  log(
    `${shape.padEnd(5)} ${type.padEnd(5)} ${row.impl.padEnd(15)} decode ${row.tokPerSec} tok/s (CPU time: ${row.tokPerSecCpu})  prefill ${row.prefillTokPerSec} tok/s  load ${row.loadMs} ms  memory ${(row.memoryBytes! / 2 ** 20).toFixed(1)} MiB`,
  );
  return m;
}

async function wllamaRow(shape: string, type: string, path: string) {
  const t0 = performance.now();
  const ll = await loadWllama(path, 1024);
  const loadMs = performance.now() - t0;
  await ll.complete('Once upon a time', 8);
  const dec = await ll.complete('Once upon a time, there was', nTokens);
  const pre = await ll.complete(PROSE, 1);
  await ll.exit();
  const row: Row = {
    model: shape,
    type,
    impl: 'wllama',
    tokPerSec: +dec.predictedPerSecond.toFixed(1),
    prefillTokPerSec: +pre.promptPerSecond.toFixed(1),
    loadMs: +loadMs.toFixed(1),
  };
  rows.push(row);
  log(
    `${shape.padEnd(5)} ${type.padEnd(5)} ${'wllama'.padEnd(15)} decode ${row.tokPerSec} tok/s  prefill ${row.prefillTokPerSec} tok/s  load ${row.loadMs} ms`,
  );
}

async function beamRows(shape: string, type: string, m: LoadedModel) {
  const ids = m.promptIds(PROSE).slice(0, 16);
  const steps = 64;
  let greedyMs = 0;
  for (const B of [1, 2, 4, 8]) {
    const opts = B === 1 ? {} : { numBeams: B, earlyStopping: 'never' };
    await run(m, ids, 4, opts);
    let best = Number.POSITIVE_INFINITY;
    for (let i = 0; i < 2; i++) {
      const r = await run(m, ids, steps, opts);
      best = Math.min(best, r.timings.decodeMs / Math.max(1, r.completionTokens - 1));
    }
    if (B === 1) greedyMs = best;
    const kvPerToken = 2 * m.info.nLayers * (m.info.dim / m.info.nHeads) * m.info.nKvHeads * 4;
    const row: Row = {
      model: shape,
      type,
      impl: m.relaxedSimd ? 'edgelm-relaxed' : 'edgelm',
      beams: B,
      msPerToken: +best.toFixed(3),
      ratioToGreedy: +(best / greedyMs).toFixed(2),
      // each beam owns only the blocks it wrote since the shared prompt (copy-on-write)
      kvBytesPerBeam: kvPerToken * (ids.length + steps),
    };
    rows.push(row);
    log(
      `${shape.padEnd(5)} ${type.padEnd(5)} beams=${B}  ${row.msPerToken} ms/token  ×${row.ratioToGreedy} greedy  KV/beam ≤ ${(row.kvBytesPerBeam! / 1024).toFixed(0)} KiB`,
    );
  }
}

for (const shape of shapes) {
  for (const type of types) {
    const bytes = new Uint8Array(readFileSync(modelFile(shape, type)));
    const m = await edgelmRow(shape, type, bytes);
    if (!flag('no-beams') && (shape === '15M' || shape === '42M') && (type === 'f32' || type === 'q8_0'))
      await beamRows(shape, type, m);
    m.dispose();
  }
}
// llama.cpp's rows last: after wllama exits, V8 keeps a core busy for a second or two, which would
// be charged to whatever ran next; wait for the process to go idle after each one anyway
if (!flag('no-wllama')) {
  for (const shape of shapes) {
    for (const type of types) {
      try {
        await wllamaRow(shape, type, modelFile(shape, type));
      } catch (e) {
        log(`wllama failed on ${shape} ${type}: ${(e as Error).message}`);
      }
      for (let i = 0; i < 10; i++) {
        const c0 = process.cpuUsage();
        await new Promise((r) => setTimeout(r, 300));
        const c = process.cpuUsage(c0);
        if ((c.user + c.system) / 1000 < 60) break;
      }
    }
  }
}

// ratios against the peer measured in this run
for (const r of rows.filter((x) => x.impl.startsWith('edgelm') && x.beams === undefined)) {
  const peer = rows.find((x) => x.impl === 'wllama' && x.model === r.model && x.type === r.type);
  if (peer?.tokPerSec)
    log(`${r.model} ${r.type}: edgelm/wllama decode ×${(r.tokPerSec! / peer.tokPerSec).toFixed(2)}`);
  if (r.prefillTokPerSec && r.tokPerSec)
    log(`${r.model} ${r.type}: prefill/decode ×${(r.prefillTokPerSec / r.tokPerSec).toFixed(2)}`);
}
mkdirSync(join(root, 'bench-results'), { recursive: true });
const out = join(root, 'bench-results', `decode-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
writeFileSync(out, JSON.stringify(rows, null, 2));
if (json) console.log(JSON.stringify(rows));
else log(`wrote ${out}`);
process.exit(0);
