/**
 * `npm run bench:train [-- --steps N] [--json]`: training throughput of build/train.wasm
 * (forward + backward + AdamW) as tokens/s and effective GFLOP/s = 6 × parameters × tokens/s, on
 * llama-shaped models the size of the llm.c anchors, with one thread and with two (main +
 * one worker, each micro-batch split in halves of rows), batch 8 × 256 tokens as in the anchors.
 *
 * Anchors (llm.c train_gpt2.c, -Ofast -march=native, fp32, measured on this kind of machine):
 * 1.35M-parameter GPT-2 (4 layers, width 128, vocab 4096): 9.6 GFLOP/s one thread, 13.2 two;
 * 12.3M (6 layers, width 384): 13.9 / 18.9. GPT-2 ties its embedding to the output; our llama
 * shape does not, so two figures are printed: 6 × all parameters (the definition) and
 * 6 × the parameters that take part in products (all but the token-embedding lookup).
 * The machine is shared: every figure is the best of N steps, and the load average is printed;
 * tokens per CPU-second of the process (GFLOP/s per busy core) show what the kernels do while they
 * run, independent of how much CPU the other tenants leave.
 */
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { initParams, type ModelConfig, paramCount, Rng, TrainModel } from './train/model.ts';
import { DataParallel } from './train/parallel.ts';

const { values } = parseArgs({
  options: { steps: { type: 'string', default: '4' }, json: { type: 'boolean', default: false } },
});
const steps = Math.max(2, Number(values.steps));

interface Shape {
  name: string;
  cfg: ModelConfig;
  anchor: { one: number; two: number };
}
const shapes: Shape[] = [
  {
    name: '1.35M-class (4 layers, width 128, vocab 4096)',
    cfg: {
      vocabSize: 4096,
      dim: 128,
      nLayers: 4,
      nHeads: 4,
      ffnDim: 352,
      contextLength: 256,
      normEps: 1e-5,
      ropeBase: 10000,
    },
    anchor: { one: 9.6, two: 13.2 },
  },
  {
    name: '12.3M-class (6 layers, width 384, vocab 4096)',
    cfg: {
      vocabSize: 4096,
      dim: 384,
      nLayers: 6,
      nHeads: 6,
      ffnDim: 1024,
      contextLength: 256,
      normEps: 1e-5,
      ropeBase: 10000,
    },
    anchor: { one: 13.9, two: 18.9 },
  },
];
const B = 8;
const T = 256;

// best wall-clock tokens/s, and tokens per CPU-second of this process (all its threads): on a
// shared machine the second says what the kernels do while they actually run
async function measure(cfg: ModelConfig, threads: 1 | 2): Promise<{ wall: number; cpu: number }> {
  const rows = B / threads;
  const model = new TrainModel(cfg, rows, T, { optimizer: true });
  model.setParams(initParams(cfg, 1));
  const dp = threads === 2 ? await DataParallel.start(cfg, rows, T) : undefined;
  const rng = new Rng(7);
  const n = rows * T;
  const mk = () => {
    const tokens = Int32Array.from({ length: n }, () => rng.int(cfg.vocabSize));
    return {
      tokens,
      targets: tokens.map((_, i) => tokens[(i + 1) % n]),
      weights: new Float32Array(n).fill(1),
    };
  };
  const mine = mk();
  const theirs = mk();
  let best = Number.POSITIVE_INFINITY;
  let bestCpu = Number.POSITIVE_INFINITY;
  for (let s = 0; s < steps; s++) {
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    model.zeroGrads();
    const remote = dp?.run(model.paramView(), [theirs], 1 / (B * T));
    model.step(mine.tokens, mine.targets, mine.weights, 1 / (B * T));
    if (remote) model.addGrads((await remote).grads);
    const g = Math.sqrt(model.gradNormSq());
    model.adamStep({
      lr: 1e-3,
      beta1: 0.9,
      beta2: 0.95,
      eps: 1e-8,
      weightDecay: 0.1,
      t: s + 1,
      gscale: g > 1 ? 1 / g : 1,
    });
    const dt = (performance.now() - t0) / 1000;
    const cu = process.cpuUsage(c0);
    if (s > 0) {
      // step 0 warms up
      best = Math.min(best, dt);
      bestCpu = Math.min(bestCpu, (cu.user + cu.system) / 1e6);
    }
  }
  await dp?.close();
  return { wall: (B * T) / best, cpu: (B * T) / bestCpu };
}

const results: Array<Record<string, unknown>> = [];
for (const sh of shapes) {
  const params = paramCount(sh.cfg);
  const productParams = params - sh.cfg.vocabSize * sh.cfg.dim;
  for (const threads of [1, 2] as const) {
    const load = loadavg()[0];
    const r = await measure(sh.cfg, threads);
    const tps = r.wall;
    const gflops = (6 * params * tps) / 1e9;
    const gflopsProducts = (6 * productParams * tps) / 1e9;
    const anchor = threads === 1 ? sh.anchor.one : sh.anchor.two;
    const row = {
      model: sh.name,
      params,
      productParams,
      threads,
      tokensPerSecond: Math.round(tps),
      gflops: Number(gflops.toFixed(2)),
      gflopsProducts: Number(gflopsProducts.toFixed(2)),
      anchorGflops: anchor,
      ratio: Number((gflops / anchor).toFixed(2)),
      ratioProducts: Number((gflopsProducts / anchor).toFixed(2)),
      cpuTokensPerSecond: Math.round(r.cpu),
      gflopsPerCore: Number(((6 * params * r.cpu) / 1e9).toFixed(2)),
      loadAverage: Number(load.toFixed(2)),
    };
    results.push(row);
    if (!values.json) {
      console.log(
        `${sh.name}, ${(params / 1e6).toFixed(2)}M params, ${threads} thread${threads > 1 ? 's' : ''}: ` +
          `${row.tokensPerSecond} tok/s, ${row.gflops} GFLOP/s (${row.ratio}× llm.c's ${anchor}); ` +
          `counting product parameters only ${row.gflopsProducts} (${row.ratioProducts}×); ` +
          `per CPU-second ${row.cpuTokensPerSecond} tok, ${row.gflopsPerCore} GFLOP/s per busy core; load ${row.loadAverage}`,
      );
    }
  }
}
if (values.json) console.log(JSON.stringify({ batch: B, seqLen: T, steps, results }, null, 2));
