/**
 * Where a decode step's time goes: every kernel call made by model.decode is timed (CPU time of
 * this process, so other work on a shared machine counts less) and summed per kernel and shape;
 * then the whole step without the timing wrappers, for greedy and for B beams.
 *
 *   npx tsx scripts/profile-decode.ts [--shape 15M] [--type q8_0] [--steps 100] [--beams 1,4,8]
 *                                     [--prefill 8] [--plain] [--linear] [--load] [--json out.json]
 *
 * --attention adds kernels.attentionRows against a loop of kernels.attention over the same B rows on
 * this model's head shape (one layer's call, CPU µs), at several lengths, for rows that share every
 * block but their last (beams) and for rows that share none, with the breakdown's beam counts.
 * --prefill sets the prompt length the beams fork from (default 8: less than one KV block, so every
 * beam copies block 0 at its first step and nothing stays shared; 200 leaves 12 shared blocks).
 * Each B > 1 is also timed with kernels.attentionRows/kvWriteRows hidden (model.ts then loops over
 * the rows with attention/kvWrite, as before those kernels), interleaved with the normal run.
 *
 * --linear adds a table of kernels.linear alone on each distinct weight of the model for m = 1, 4, 8
 * (µs per call and effective GB/s of weight bytes), the figure that says whether a product is bound
 * by memory or by per-call work.
 * --load first times loading (CPU ms): parseGGUF, tokenizerFromGGUF, Model.load split into
 * prepareLinear, reserve and the rest; the first load of the process (cold JIT) and warm ones.
 *
 * --kv f16 runs everything on an f16 KV cache (LoadOptions.kvType; default f32).
 * --kv-compare loads the model twice, f32 and f16 KV cache, prints both KV sizes and what a 96 MiB
 * budget holds, times decode steps for each B of --beams on both (interleaved, best of 4 rounds, CPU)
 * with their ratio, and stops there (--json writes the figures).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseGGUF } from '../runtime/gguf.ts';
import { createRuntime } from '../runtime/index.ts';
import {
  createKernels,
  detectRelaxedSimd,
  type Kernels,
  type KvType,
  type LinearWeight,
} from '../runtime/kernels.ts';
import { Model } from '../runtime/model.ts';
import { argmax, logSumExp } from '../runtime/sample.ts';
import { tokenizerFromGGUF } from '../runtime/tokenizer.ts';

const args = process.argv.slice(2);
const opt = (name: string, def: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? args[i + 1] : def;
};
const shape = opt('shape', '15M');
const type = opt('type', 'q8_0');
const steps = Number(opt('steps', '100'));
const beams = opt('beams', '1,4,8').split(',').map(Number);
const prefillLen = Number(opt('prefill', '8'));
const kvType = opt('kv', 'f32') as KvType;
const prompt = Array.from({ length: prefillLen }, (_, i) => 1 + (i % 900));
// room for the prompt and every step taken from it (stepTime: 5 + 3·steps/5), in whole KV blocks
const maxContext = Math.max(512, Math.ceil((prefillLen + 2 * steps + 32) / 16) * 16);
const root = join(import.meta.dirname, '..');
const simd = new WebAssembly.Module(readFileSync(join(root, 'build', 'kernels.wasm')));
const relaxed = new WebAssembly.Module(readFileSync(join(root, 'build', 'kernels-relaxed.wasm')));
const rt = createRuntime(args.includes('--plain') ? simd : { simd, relaxed });
const bytes = readFileSync(join(root, 'bench-results', 'models', `random-${shape}-${type}.gguf`));

const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

if (args.includes('--load')) {
  const mod = !args.includes('--plain') && detectRelaxedSimd() ? relaxed : simd;
  for (let i = 0; i < 6; i++) {
    const c0 = cpu();
    const file = parseGGUF(new Uint8Array(bytes));
    const c1 = cpu();
    tokenizerFromGGUF(file);
    const c2 = cpu();
    const kk = createKernels(mod) as Kernels & Record<string, any>;
    const acc: Record<string, number> = { prepareLinear: 0, reserve: 0 };
    for (const n of Object.keys(acc)) {
      const o = kk[n];
      kk[n] = (...a: unknown[]) => {
        const t = cpu();
        const r = o.apply(kk, a);
        acc[n] += cpu() - t;
        return r;
      };
    }
    const c3 = cpu();
    Model.load(kk, file, { maxContext: 512, maxSequences: 8, budgetBytes: 1024 * 2 ** 20 });
    const c4 = cpu();
    const rest = c4 - c3 - acc.prepareLinear - acc.reserve;
    console.log(
      `load ${i === 0 ? 'cold' : 'warm'}: ${(c4 - c0).toFixed(1)} ms cpu = parse ${(c1 - c0).toFixed(1)} + tokenizer ${(c2 - c1).toFixed(1)} + Model.load ${(c4 - c3).toFixed(1)} (prepareLinear ${acc.prepareLinear.toFixed(1)}, reserve ${acc.reserve.toFixed(1)}, rest ${rest.toFixed(1)})`,
    );
  }
}

const t0 = performance.now();
const lm = rt.loadModel(bytes, { maxContext, maxSequences: 8, budgetBytes: 2048 * 2 ** 20, kvType });
console.log(
  `${shape} ${type} relaxed=${lm.relaxedSimd} kv ${kvType} load ${(performance.now() - t0).toFixed(1)} ms, prefill ${prefillLen}`,
);
let model = (lm as any).model;
const k: Kernels & Record<string, any> = model.k;

// mode 'fresh': decode as generate/beam call it today, then sample.ts argmax + logSumExp per row in JS;
// 'stats': decode into a reused buffer with RowStats (argmax + log-sum-exp in WASM)
type Mode = 'plain' | 'fresh' | 'stats';
function stepTime(B: number, mode: Mode = 'plain'): number {
  const V = model.info.vocabSize;
  const buf = new Float32Array(B * V);
  const st = { argmax: new Int32Array(B), logSumExp: new Float64Array(B) };
  const step = (seqs: unknown[], toks: number[]) => {
    if (mode === 'stats') return model.decode(seqs, toks, buf, st);
    const rows = model.decode(seqs, toks);
    if (mode === 'fresh') {
      for (let b = 0; b < B; b++) {
        const row = rows.subarray(b * V, (b + 1) * V);
        logSumExp(row, row[argmax(row)]);
      }
    }
  };
  const seqs = [];
  const root = model.newSequence();
  model.prefill(root, prompt);
  seqs.push(root);
  for (let b = 1; b < B; b++) seqs.push(model.fork(root));
  const toks = new Array(B).fill(0);
  let t = 9;
  for (let i = 0; i < 5; i++)
    step(
      seqs,
      toks.map(() => t++ % 1000),
    );
  let best = Number.POSITIVE_INFINITY;
  for (let rep = 0; rep < 3; rep++) {
    const c0 = cpu();
    for (let i = 0; i < steps / 5; i++)
      step(
        seqs,
        toks.map(() => t++ % 1000),
      );
    best = Math.min(best, (cpu() - c0) / (steps / 5));
  }
  for (const s of seqs) model.free(s);
  return best;
}

if (args.includes('--kv-compare')) {
  const MiB = 2 ** 20;
  const models: Record<KvType, any> = {
    f32:
      kvType === 'f32'
        ? model
        : (rt.loadModel(bytes, { maxContext, maxSequences: 8, budgetBytes: 2048 * MiB }) as any).model,
    f16:
      kvType === 'f16'
        ? model
        : (
            rt.loadModel(bytes, {
              maxContext,
              maxSequences: 8,
              budgetBytes: 2048 * MiB,
              kvType: 'f16',
            }) as any
          ).model,
  };
  const { nLayers, nKvHeads, nHeads, dim } = models.f32.info;
  const perPos = (t: KvType) => 2 * nLayers * nKvHeads * (dim / nHeads) * (t === 'f16' ? 2 : 4);
  const out: Record<string, unknown> = { shape, type, prefill: prefillLen, steps, memory: {}, steps_ms: {} };
  for (const t of ['f32', 'f16'] as const) {
    const m = models[t].info.memory;
    // what one 96 MiB model budget (the Worker's MODEL_BUDGET_BYTES default) leaves for KV positions
    const room = 96 * MiB - m.weights - m.scratch;
    const positions = Math.max(0, Math.floor(room / perPos(t)));
    (out.memory as Record<string, unknown>)[t] = {
      ...m,
      bytesPerPosition: perPos(t),
      positionsIn96MiB: positions,
    };
    console.log(
      `kv ${t}: KV cache ${(m.kvCache / MiB).toFixed(1)} MiB (8 sequences × ${maxContext}), ${perPos(t)} bytes/position; weights ${(m.weights / MiB).toFixed(1)} MiB, scratch ${(m.scratch / MiB).toFixed(1)} MiB; a 96 MiB budget holds ${positions} positions (${Math.floor(positions / 1024)} × 1024-token sequences)`,
    );
  }
  for (const B of beams) {
    const best: Record<KvType, number> = { f32: Number.POSITIVE_INFINITY, f16: Number.POSITIVE_INFINITY };
    for (let round = 0; round < 4; round++) {
      for (const t of round % 2 ? (['f16', 'f32'] as const) : (['f32', 'f16'] as const)) {
        model = models[t];
        best[t] = Math.min(best[t], stepTime(B));
      }
    }
    (out.steps_ms as Record<string, unknown>)[B] = best;
    console.log(
      `B=${B} prefill ${prefillLen}: f32 KV ${best.f32.toFixed(3)}  f16 KV ${best.f16.toFixed(3)} ms/step (cpu)  f16/f32 ×${(best.f16 / best.f32).toFixed(3)}`,
    );
  }
  const jp = opt('json', '');
  if (jp) writeFileSync(jp, `${JSON.stringify(out, null, 2)}\n`);
  process.exit(0);
}

// whole steps, no wrappers
const greedy = stepTime(1);
for (const B of beams) {
  const ms = B === 1 ? greedy : stepTime(B);
  console.log(
    `B=${B}: ${ms.toFixed(3)} ms/step (cpu)  ${(1000 / ms).toFixed(0)} steps/s  ×${(ms / greedy).toFixed(2)} greedy`,
  );
}

// the batched attention kernels against the per-row loop they replace, interleaved (best of 4 each)
const json: Record<string, unknown> = { shape, type, prefill: prefillLen, steps, rows: {}, generate: {} };
{
  const kr = k as unknown as Record<string, unknown>;
  const rowsK = kr.attentionRows;
  const rowsW = kr.kvWriteRows;
  for (const B of beams.filter((b) => b > 1)) {
    let on = Number.POSITIVE_INFINITY;
    let off = Number.POSITIVE_INFINITY;
    for (let i = 0; i < 4; i++) {
      kr.attentionRows = undefined;
      kr.kvWriteRows = undefined;
      off = Math.min(off, stepTime(B));
      kr.attentionRows = rowsK;
      kr.kvWriteRows = rowsW;
      on = Math.min(on, stepTime(B));
    }
    (json.rows as Record<string, unknown>)[B] = { rows: on, perRow: off };
    console.log(
      `B=${B}: attentionRows ${on.toFixed(3)}  per-row loop ${off.toFixed(3)} ms/step (cpu)  ×${(on / off).toFixed(3)}`,
    );
  }
}

// what a decoding loop adds per step: fresh logits + JS argmax/logSumExp per row (as today) against a
// reused buffer + RowStats
for (const B of beams) {
  const fresh = stepTime(B, 'fresh');
  const stats = stepTime(B, 'stats');
  console.log(
    `B=${B} with per-row argmax+lse: fresh+JS ${fresh.toFixed(3)}  out+stats ${stats.toFixed(3)} ms/step (cpu)`,
  );
}

// the same steps with kernels.linear (and then everything else too) made a no-op: what the rest costs
{
  const lin = k.linear;
  k.linear = () => {};
  const ms = stepTime(1);
  const msB = beams.filter((b) => b > 1).map((B) => `B=${B} ${stepTime(B).toFixed(3)}`);
  k.linear = lin;
  console.log(`without linear: B=1 ${ms.toFixed(3)} ${msB.join(' ')} ms/step (cpu)`);
}

// generate() around the same steps: greedy, ignoreEos, CPU per generated token
{
  const ids = prompt;
  const gen = async (n: number, extra: Record<string, unknown> = {}) => {
    const c0 = cpu();
    for await (const _ of lm.generate(ids, { maxNewTokens: n, ignoreEos: true, ...extra } as any));
    return cpu() - c0;
  };
  await gen(8);
  let best = Number.POSITIVE_INFINITY;
  for (let i = 0; i < 3; i++) best = Math.min(best, ((await gen(steps + 1)) - (await gen(1))) / steps);
  console.log(
    `generate greedy: ${best.toFixed(3)} ms/token (cpu), +${(best - greedy).toFixed(3)} over model.decode`,
  );
  // beam search re-forks beams every step, so they share their blocks up to the latest divergence;
  // timed also with the per-row attention loop (attentionRows hidden), interleaved
  const kr = k as unknown as Record<string, unknown>;
  const rowsK = kr.attentionRows;
  const rowsW = kr.kvWriteRows;
  const setRows = (on: boolean) => {
    kr.attentionRows = on ? rowsK : undefined;
    kr.kvWriteRows = on ? rowsW : undefined;
  };
  for (const B of beams.filter((b) => b > 1)) {
    const o = { numBeams: B, earlyStopping: 'never' };
    await gen(4, o);
    let bestB = Number.POSITIVE_INFINITY;
    let bestOff = Number.POSITIVE_INFINITY;
    for (let i = 0; i < 2; i++) {
      setRows(false);
      bestOff = Math.min(bestOff, ((await gen(steps + 1, o)) - (await gen(1, o))) / steps);
      setRows(true);
      bestB = Math.min(bestB, ((await gen(steps + 1, o)) - (await gen(1, o))) / steps);
    }
    (json.generate as Record<string, unknown>)[B] = { rows: bestB, perRow: bestOff, greedy: best };
    console.log(
      `generate beams=${B}: ${bestB.toFixed(3)} ms/token (cpu), ×${(bestB / best).toFixed(2)} generate greedy; per-row attention loop ${bestOff.toFixed(3)} (rows ×${(bestB / bestOff).toFixed(3)})`,
    );
  }
}

// per-kernel breakdown
const acc = new Map<string, { ms: number; calls: number }>();
const names = Object.keys(k).filter((n) => typeof k[n] === 'function');
const orig: Record<string, (...a: unknown[]) => unknown> = {};
for (const n of names) {
  if (['f32', 'i32', 'u8', 'mark', 'release', 'alloc'].includes(n)) continue;
  orig[n] = k[n];
  k[n] = (...a: unknown[]) => {
    let key = n;
    if (n === 'linear') {
      const w = a[2] as LinearWeight;
      key = `linear ${w.type} ${w.n}x${w.k} m=${a[3]}`;
    } else if (n === 'attention' || n === 'attentionRows') key = `${n} m=${a[2]}`;
    const t = cpu();
    const r = orig[n].apply(k, a);
    const dt = cpu() - t;
    const e = acc.get(key) ?? { ms: 0, calls: 0 };
    e.ms += dt;
    e.calls++;
    acc.set(key, e);
    return r;
  };
}
for (const B of beams) {
  acc.clear();
  const seqs = [model.newSequence()];
  model.prefill(seqs[0], prompt);
  for (let b = 1; b < B; b++) seqs.push(model.fork(seqs[0]));
  let t = 9;
  for (let i = 0; i < 5; i++)
    model.decode(
      seqs,
      seqs.map(() => t++ % 1000),
    );
  acc.clear();
  const w0 = cpu();
  for (let i = 0; i < steps; i++)
    model.decode(
      seqs,
      seqs.map(() => t++ % 1000),
    );
  const wall = (cpu() - w0) / steps;
  for (const s of seqs) model.free(s);
  let inK = 0;
  const lines = [...acc].sort((a, b) => b[1].ms - a[1].ms);
  console.log(`\nB=${B}: ${wall.toFixed(3)} ms/step cpu (with wrappers)`);
  for (const [key, e] of lines) {
    inK += e.ms;
    console.log(
      `  ${key.padEnd(36)} ${((e.ms / steps) * 1000).toFixed(1).padStart(8)} µs/step  ${(e.calls / steps).toFixed(0).padStart(4)} calls  ${((e.ms / e.calls) * 1000).toFixed(1).padStart(7)} µs/call`,
    );
  }
  console.log(`  (outside kernels: ${(((wall - inK / steps) * 1000) | 0).toString()} µs/step)`);
}
for (const n of Object.keys(orig)) k[n] = orig[n];
if (args.includes('--attention')) {
  const mod = !args.includes('--plain') && detectRelaxedSimd() ? relaxed : simd;
  const ka = createKernels(mod);
  const { nHeads, nKvHeads: nKv, dim } = model.info;
  const hd = dim / nHeads;
  const bs = model.blockSize;
  const att: Record<string, unknown> = {};
  json.attention = att;
  console.log(
    `\nattentionRows vs per-row attention, one call, ${nHeads}/${nKv} heads of ${hd} (cpu µs, best of 5):`,
  );
  for (const B of beams.filter((b) => b > 1)) {
    for (const len of [64, 256, 512, 1024]) {
      const cells = [];
      for (const shared of [false, true]) {
        const nbRow = Math.ceil(len / bs);
        const nBlocks = shared ? nbRow - 1 + B : nbRow * B;
        const blockBytes = nKv * bs * hd * (kvType === 'f16' ? 2 : 4);
        const rowB = nHeads * hd * 4;
        ka.reserve(2 * nBlocks * blockBytes + B * (nbRow * 4 + 2 * rowB + 8) + 4096);
        const mark = ka.mark();
        const kPool = ka.alloc(nBlocks * blockBytes);
        const vPool = ka.alloc(nBlocks * blockBytes);
        if (kvType === 'f16') {
          // f16 values in [1, 2) and [-2, -1)
          const kh = new Uint16Array(ka.memory.buffer, kPool, (nBlocks * blockBytes) / 2);
          const vh = new Uint16Array(ka.memory.buffer, vPool, (nBlocks * blockBytes) / 2);
          for (let i = 0; i < kh.length; i++) {
            kh[i] = 0x3c00 | (i & 0x3ff) | (i & 0x400 ? 0x8000 : 0);
            vh[i] = 0x3c00 | ((i * 7) & 0x3ff);
          }
        } else {
          const kf = ka.f32(kPool, (nBlocks * blockBytes) / 4);
          const vf = ka.f32(vPool, (nBlocks * blockBytes) / 4);
          for (let i = 0; i < kf.length; i++) {
            kf[i] = Math.sin(i);
            vf[i] = Math.cos(i);
          }
        }
        const tabs: number[] = [];
        let next = shared ? nbRow - 1 : 0;
        for (let b = 0; b < B; b++) {
          const t = ka.alloc(nbRow * 4);
          const T = ka.i32(t, nbRow);
          for (let i = 0; i < nbRow; i++) T[i] = shared && i < nbRow - 1 ? i : next++;
          tabs.push(t);
        }
        const tables = ka.alloc(B * 4);
        ka.i32(tables, B).set(tabs);
        const positions = ka.alloc(B * 4);
        ka.i32(positions, B).fill(len - 1);
        const q = ka.alloc(B * rowB);
        const qf = ka.f32(q, (B * rowB) / 4);
        for (let i = 0; i < qf.length; i++) qf[i] = Math.sin(i * 0.37);
        const out = ka.alloc(B * rowB);
        const perRow = () => {
          for (let b = 0; b < B; b++)
            ka.attention(
              out + b * rowB,
              q + b * rowB,
              1,
              kPool,
              vPool,
              tabs[b],
              len - 1,
              nHeads,
              nKv,
              hd,
              bs,
              kvType,
            );
        };
        const rows = () =>
          ka.attentionRows(out, q, B, kPool, vPool, tables, positions, nHeads, nKv, hd, bs, kvType);
        const reps = Math.max(10, Math.floor(20000 / len));
        const time = (f: () => void) => {
          const c0 = cpu();
          for (let i = 0; i < reps; i++) f();
          return ((cpu() - c0) / reps) * 1000;
        };
        let a = Number.POSITIVE_INFINITY;
        let r = Number.POSITIVE_INFINITY;
        for (let i = 0; i < 5; i++) {
          a = Math.min(a, time(perRow));
          r = Math.min(r, time(rows));
        }
        att[`B${B} len${len} ${shared ? 'shared' : 'unshared'}`] = { perRow: a, rows: r };
        cells.push(
          `${shared ? 'shared' : 'unshared'} ${a.toFixed(1).padStart(7)} → ${r.toFixed(1).padStart(7)} (×${(r / a).toFixed(2)})`,
        );
        ka.release(mark);
      }
      console.log(`  B=${B} length ${String(len).padStart(4)}: ${cells.join('   ')}`);
    }
  }
}

const jsonPath = opt('json', '');
if (jsonPath) writeFileSync(jsonPath, `${JSON.stringify(json, null, 2)}\n`);

if (args.includes('--linear')) {
  const ws = new Map<string, LinearWeight>();
  for (const L of model.layers)
    for (const w of [...L.qkv, L.wo, ...L.ffnIn, L.wDown]) ws.set(`${w.n}x${w.k}`, w);
  ws.set(`${model.output.n}x${model.output.k} (output)`, model.output);
  const x = model.s.hb;
  const out = model.s.logits;
  console.log('\nlinear alone (cpu µs per call; GB/s of weight bytes):');
  for (const [name, w] of ws) {
    const cells = [];
    for (const m of [1, 4, 8]) {
      const reps = Math.max(20, Math.floor(2e8 / w.bytes / m));
      for (let i = 0; i < 3; i++) k.linear(out, x, w, m);
      const c0 = cpu();
      for (let i = 0; i < reps; i++) k.linear(out, x, w, m);
      const us = ((cpu() - c0) / reps) * 1000;
      cells.push(
        `m=${m} ${us.toFixed(1).padStart(7)} µs ${(w.bytes / us / 1000).toFixed(1).padStart(5)} GB/s`,
      );
    }
    console.log(`  ${name.padEnd(22)} ${cells.join('   ')}`);
  }
}
process.exit(0);
