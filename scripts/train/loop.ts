/**
 * The training run: pretraining on SOTU text, then instruction tuning with the chat markers added
 * to the vocabulary; AdamW with clipping, cosine schedule with warm-up, gradient accumulation;
 * validation every N steps; resumable checkpoints; GGUF (F32 and Q8_0) at the end.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { meta } from '../../runtime/gguf.ts';
import { learningRate, type PhaseConfig, type TrainConfig } from './config.ts';
import {
  type Batch,
  buildCorpus,
  type Corpus,
  type Example,
  emptyBatch,
  fixedWindows,
  Packer,
  randomWindows,
} from './data.ts';
import { modelGGUF, type TrainStats } from './export.ts';
import { growVocab, initParams, type ModelConfig, Rng, TrainModel } from './model.ts';
import { DataParallel } from './parallel.ts';

type Phase = 'pretrain' | 'instruct' | 'done';

/** What a checkpoint's JSON half holds (the binary half: params, then AdamW m and v). */
interface RunState {
  config: string; // JSON of the parts of the config that fix the pretraining (a resume must match)
  phase: Phase;
  step: number; // optimizer steps done in this phase
  rng: number;
  packer: { cursor: number; epoch: number };
  tokens: number; // tokens processed so far, both phases
  wallSeconds: number; // training time so far (excluding start-up)
  pretrainSteps: number;
  valLoss: number; // last SOTU validation loss
  history: Array<Record<string, number | string>>;
  nParams: number;
}

export interface RunOptions {
  /** repository root (paths in the config are relative to it) */
  root: string;
  /** ignore an existing checkpoint */
  fresh?: boolean;
  /** start the instruction phase over from the snapshot taken at the end of pretraining */
  restartInstruct?: boolean;
  /** stop after this many optimizer steps in this process (for tests), leaving a checkpoint */
  stopAfter?: number;
  log?: (line: string) => void;
}

export interface RunResult {
  stats: TrainStats;
  files: string[];
  state: RunState;
}

function fmtTime(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const m = Math.floor(s / 60);
  return m >= 60
    ? `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`
    : `${m}m${String(Math.floor(s % 60)).padStart(2, '0')}s`;
}

/** Greedy decoding of held-out prompts on the training model; fraction answered exactly. */
export function exactMatch(
  cfg: ModelConfig,
  params: Float32Array,
  examples: Example[],
  corpus: Pick<Corpus, 'tokenizer' | 'end'>,
  opts: { rows?: number; T?: number } = {},
): { score: number; samples: Array<{ prompt: string; want: string; got: string }> } {
  const T = opts.T ?? Math.min(cfg.contextLength, 96);
  const B = Math.min(opts.rows ?? 32, examples.length);
  if (B === 0) return { score: 0, samples: [] };
  const m = new TrainModel(cfg, B, T);
  m.setParams(params);
  let right = 0;
  const samples: Array<{ prompt: string; want: string; got: string }> = [];
  for (let g = 0; g < examples.length; g += B) {
    const group = examples.slice(g, g + B);
    const tokens = new Int32Array(B * T).fill(corpus.end);
    const len = new Int32Array(B);
    const out: number[][] = group.map(() => []);
    const done = group.map((e) => e.prompt.length >= T);
    group.forEach((e, r) => {
      tokens.set(e.prompt.slice(0, T), r * T);
      len[r] = Math.min(e.prompt.length, T);
    });
    while (done.some((d) => !d)) {
      const logits = m.forward(tokens);
      const V = cfg.vocabSize;
      for (let r = 0; r < group.length; r++) {
        if (done[r]) continue;
        const o = (r * T + len[r] - 1) * V;
        let best = 0;
        for (let j = 1; j < V; j++) if (logits[o + j] > logits[o + best]) best = j;
        if (best === corpus.end) {
          done[r] = true;
          continue;
        }
        out[r].push(best);
        tokens[r * T + len[r]] = best;
        len[r]++;
        if (len[r] >= T) done[r] = true;
      }
    }
    group.forEach((e, r) => {
      const got = corpus.tokenizer.decode(out[r]);
      if (got === e.pair.response) right++;
      if (samples.length < 8) samples.push({ prompt: e.pair.prompt, want: e.pair.response, got });
    });
  }
  return { score: right / examples.length, samples };
}

function saveCheckpoint(dir: string, state: RunState, model: TrainModel): void {
  mkdirSync(dir, { recursive: true });
  const { m, v } = model.moments();
  const p = model.paramView();
  const buf = Buffer.alloc(p.byteLength * 3);
  buf.set(new Uint8Array(p.buffer, p.byteOffset, p.byteLength), 0);
  buf.set(new Uint8Array(m.buffer, m.byteOffset, m.byteLength), p.byteLength);
  buf.set(new Uint8Array(v.buffer, v.byteOffset, v.byteLength), 2 * p.byteLength);
  writeFileSync(join(dir, 'state.bin.tmp'), buf);
  writeFileSync(join(dir, 'state.json.tmp'), JSON.stringify(state));
  renameSync(join(dir, 'state.bin.tmp'), join(dir, 'state.bin'));
  renameSync(join(dir, 'state.json.tmp'), join(dir, 'state.json'));
}

function loadCheckpoint(dir: string): { state: RunState; blob: Float32Array } | undefined {
  if (!existsSync(join(dir, 'state.json')) || !existsSync(join(dir, 'state.bin'))) return undefined;
  const state = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as RunState;
  const b = readFileSync(join(dir, 'state.bin'));
  const blob = new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
  if (blob.length !== state.nParams * 3)
    throw new Error(`checkpoint ${dir}: state.bin has ${blob.length} floats, expected ${state.nParams * 3}`);
  return { state, blob };
}

/** n items evenly spaced through a list (so a short evaluation covers every kind). */
export function spread<T>(xs: T[], n: number): T[] {
  if (n >= xs.length) return xs.slice();
  return Array.from({ length: n }, (_, i) => xs[Math.floor((i * xs.length) / n)]);
}

/** Mean loss per scored token over fixed validation windows of the SOTU validation text. */
function sotuValLoss(model: TrainModel, corpus: Corpus, batches: number): number {
  const b = emptyBatch(model.B, model.T);
  let loss = 0;
  let n = 0;
  for (let i = 0; i < batches; i++) {
    fixedWindows(b, model.B, model.T, corpus.validation, i, batches);
    loss += model.step(b.tokens, b.targets, b.weights, 0, false);
    n += model.B * model.T;
  }
  return loss / n;
}

/** Mean loss per response token over the held-out instruction examples (packed). */
function instructValLoss(model: TrainModel, corpus: Corpus, maxBatches: number): number {
  const packer = new Packer(corpus.sftHeldOut, corpus.end, 0);
  const b = emptyBatch(model.B, model.T);
  let loss = 0;
  let n = 0;
  for (let i = 0; i < maxBatches && packer.epoch === 0; i++) {
    for (let r = 0; r < model.B; r++) packer.fillRow(b, r, model.T);
    loss += model.step(b.tokens, b.targets, b.weights, 0, false);
    n += b.weights.reduce((s, w) => s + w, 0);
  }
  return loss / Math.max(1, n);
}

/**
 * Run (or resume) the whole training described by `cfg`; returns the final figures and files.
 */
export async function runTraining(cfg: TrainConfig, opts: RunOptions): Promise<RunResult> {
  const log = opts.log ?? ((s: string) => console.log(s));
  const ckDir = join(opts.root, 'checkpoints', cfg.name);
  const corpus = buildCorpus(cfg, log);
  // a checkpoint can be resumed when these agree (the instruction phase may be re-planned)
  const cfgJson = JSON.stringify({
    seed: cfg.seed,
    model: cfg.model,
    tokenizer: cfg.tokenizer,
    data: cfg.data,
    pretrain: cfg.pretrain,
  });
  const modelCfg = (vocab: number): ModelConfig => ({ ...cfg.model, vocabSize: vocab });
  const preSteps = cfg.pretrain.steps;
  const insSteps = cfg.instruct.steps;

  let state: RunState;
  let blob: Float32Array | undefined;
  const ck = opts.fresh
    ? undefined
    : loadCheckpoint(opts.restartInstruct ? join(ckDir, 'pretrain-end') : ckDir);
  if (opts.restartInstruct && !ck) throw new Error(`no snapshot in ${join(ckDir, 'pretrain-end')}`);
  if (ck) {
    if (ck.state.config !== cfgJson)
      throw new Error(
        `checkpoint in ${ckDir} was made with another config (rerun with --fresh to start over)`,
      );
    state = ck.state;
    blob = ck.blob;
    log(`resuming from ${ckDir}: ${state.phase} step ${state.step}`);
  } else {
    state = {
      config: cfgJson,
      phase: preSteps > 0 ? 'pretrain' : 'instruct',
      step: 0,
      rng: new Rng(cfg.seed ^ 0x5eed).state,
      packer: { cursor: 0, epoch: 0 },
      tokens: 0,
      wallSeconds: 0,
      pretrainSteps: 0,
      valLoss: Number.NaN,
      history: [],
      nParams: 0,
    };
  }
  let stepsThisProcess = 0;
  const secPerTok = { v: Number.NaN };
  const totalTokensLeft = () => {
    const pre =
      state.phase === 'pretrain'
        ? (preSteps - state.step) * cfg.pretrain.batch * cfg.pretrain.seqLen * cfg.pretrain.accum
        : 0;
    const insLeft =
      state.phase === 'done' ? 0 : state.phase === 'instruct' ? insSteps - state.step : insSteps;
    return pre + insLeft * cfg.instruct.batch * cfg.instruct.seqLen * cfg.instruct.accum;
  };

  const runPhase = async (
    phase: 'pretrain' | 'instruct',
    vocab: number,
    params: Float32Array,
    moments?: Float32Array,
  ) => {
    const pc: PhaseConfig = cfg[phase];
    const mc = modelCfg(vocab);
    // with two threads each micro-batch is split in halves of rows: same batches, same update
    const threads = cfg.threads === 2 && pc.batch % 2 === 0 ? 2 : 1;
    const rowsHere = pc.batch / threads;
    const model = new TrainModel(mc, rowsHere, pc.seqLen, { optimizer: true });
    state.nParams = model.nParams;
    model.setParams(params);
    if (moments) {
      const { m, v } = model.moments();
      m.set(moments.subarray(0, model.nParams));
      v.set(moments.subarray(model.nParams));
    }
    const dp = threads === 2 ? await DataParallel.start(mc, rowsHere, pc.seqLen) : undefined;
    const rng = new Rng(0);
    rng.state = state.rng;
    const packer = new Packer(corpus.sftTrain, corpus.end, cfg.seed);
    packer.seek(state.packer.cursor, state.packer.epoch);
    const batches: Batch[] = Array.from({ length: pc.accum }, () => emptyBatch(pc.batch, pc.seqLen));
    const fill = (b: Batch) => {
      for (let r = 0; r < pc.batch; r++) {
        if (phase === 'pretrain' || rng.next() < cfg.data.instructMixPretrain) {
          const o = rng.int(corpus.train.length - pc.seqLen - 1);
          b.tokens.set(corpus.train.subarray(o, o + pc.seqLen), r * pc.seqLen);
          b.targets.set(corpus.train.subarray(o + 1, o + pc.seqLen + 1), r * pc.seqLen);
          b.weights.fill(1, r * pc.seqLen, (r + 1) * pc.seqLen);
        } else packer.fillRow(b, r, pc.seqLen);
      }
    };
    const evaluate = () => {
      const t0 = Date.now();
      const rec: Record<string, number | string> = { phase, step: state.step, tokens: state.tokens };
      if (phase === 'pretrain') {
        state.valLoss = sotuValLoss(model, corpus, pc.evalBatches * threads);
        rec.valLoss = state.valLoss;
      } else {
        rec.instructValLoss = instructValLoss(model, corpus, pc.evalBatches * threads);
        if (cfg.evalExactMatch > 0) {
          const em = exactMatch(
            mc,
            model.paramView().slice(),
            spread(corpus.sftHeldOut, cfg.evalExactMatch),
            corpus,
          );
          rec.exactMatch = em.score;
          for (const s of em.samples.slice(0, 3))
            log(`  ${JSON.stringify(s.prompt)} → ${JSON.stringify(s.got)} (want ${JSON.stringify(s.want)})`);
        }
      }
      state.history.push(rec);
      log(
        `eval ${Object.entries(rec)
          .map(([k, v]) => `${k} ${typeof v === 'number' && !Number.isInteger(v) ? v.toFixed(4) : v}`)
          .join(' ')} (${((Date.now() - t0) / 1000).toFixed(1)} s)`,
      );
      void randomWindows; // (pretraining rows are drawn inline above)
    };

    while (state.step < pc.steps) {
      const t0 = performance.now();
      for (const b of batches) fill(b);
      let wsum = 0;
      for (const b of batches) for (let i = 0; i < b.weights.length; i++) wsum += b.weights[i];
      const gscale = 1 / Math.max(1, wsum);
      model.zeroGrads();
      let loss = 0;
      if (dp) {
        const n = rowsHere * pc.seqLen;
        const half = (b: Batch, k: number): Batch => ({
          tokens: b.tokens.slice(k * n, (k + 1) * n),
          targets: b.targets.slice(k * n, (k + 1) * n),
          weights: b.weights.slice(k * n, (k + 1) * n),
        });
        const remote = dp.run(
          model.paramView(),
          batches.map((b) => half(b, 1)),
          gscale,
        );
        for (const b of batches) {
          const h = half(b, 0);
          loss += model.step(h.tokens, h.targets, h.weights, gscale);
        }
        const r = await remote;
        loss += r.loss;
        model.addGrads(r.grads);
      } else {
        for (const b of batches) loss += model.step(b.tokens, b.targets, b.weights, gscale);
      }
      const gnorm = Math.sqrt(model.gradNormSq());
      const clip = pc.gradClip > 0 && gnorm > pc.gradClip ? pc.gradClip / gnorm : 1;
      const lr = learningRate(pc, state.step);
      model.adamStep({
        lr,
        beta1: pc.beta1,
        beta2: pc.beta2,
        eps: pc.eps,
        weightDecay: pc.weightDecay,
        t: state.step + 1,
        gscale: clip,
      });
      const dt = (performance.now() - t0) / 1000;
      const ntok = batches.length * pc.batch * pc.seqLen;
      state.tokens += ntok;
      state.wallSeconds += dt;
      state.step++;
      stepsThisProcess++;
      if (phase === 'pretrain') state.pretrainSteps = state.step;
      state.rng = rng.state;
      state.packer = { cursor: packer.cursor, epoch: packer.epoch };
      secPerTok.v = Number.isNaN(secPerTok.v) ? dt / ntok : 0.9 * secPerTok.v + (0.1 * dt) / ntok;
      if (state.step % 10 === 0 || state.step === 1 || state.step === pc.steps) {
        log(
          `${phase} step ${state.step}/${pc.steps} loss ${(loss / Math.max(1, wsum)).toFixed(4)} lr ${lr.toExponential(2)} ` +
            `gnorm ${gnorm.toFixed(2)} tok/s ${(ntok / dt).toFixed(0)} elapsed ${fmtTime(state.wallSeconds)} ETA ${fmtTime(totalTokensLeft() * secPerTok.v)}`,
        );
      }
      if (state.step % pc.evalEvery === 0 || state.step === pc.steps) evaluate();
      if (state.step % cfg.checkpointEvery === 0 || state.step === pc.steps)
        saveCheckpoint(ckDir, state, model);
      if (opts.stopAfter !== undefined && stepsThisProcess >= opts.stopAfter) {
        saveCheckpoint(ckDir, state, model);
        await dp?.close();
        return { model, stopped: true };
      }
    }
    await dp?.close();
    return { model, stopped: false };
  };

  let finalParams: Float32Array | undefined;
  let stoppedEarly = false;
  if (state.phase === 'pretrain') {
    const n = blob ? state.nParams : 0;
    const params = blob ? blob.subarray(0, n) : initParams(modelCfg(corpus.pretrainVocab), cfg.seed);
    const r = await runPhase('pretrain', corpus.pretrainVocab, params, blob?.subarray(n));
    blob = undefined;
    if (!r.stopped) saveCheckpoint(join(ckDir, 'pretrain-end'), state, r.model);
    if (r.stopped) stoppedEarly = true;
    else {
      // grow the vocabulary by the chat markers; new rows start at the mean of the old ones
      const grown = growVocab(modelCfg(corpus.pretrainVocab), r.model.paramView(), corpus.finalVocab);
      state.phase = insSteps > 0 ? 'instruct' : 'done';
      state.step = 0;
      if (insSteps === 0) finalParams = grown;
      else {
        // checkpoint the transition (fresh AdamW moments for the new phase)
        state.nParams = grown.length;
        blob = new Float32Array(grown.length * 3);
        blob.set(grown);
      }
    }
  }
  if (!stoppedEarly && state.phase === 'instruct') {
    const n = blob ? state.nParams : 0;
    const params = blob ? blob.subarray(0, n) : initParams(modelCfg(corpus.finalVocab), cfg.seed);
    const r = await runPhase('instruct', corpus.finalVocab, params, blob?.subarray(n));
    if (r.stopped) stoppedEarly = true;
    else {
      finalParams = r.model.paramView().slice();
      state.phase = 'done';
    }
  }
  if (!stoppedEarly && state.phase === 'done' && !finalParams && blob)
    finalParams = blob.subarray(0, state.nParams);

  const files: string[] = [];
  if (!stoppedEarly && finalParams) {
    // final SOTU validation loss of the shipped model
    const mc = modelCfg(corpus.finalVocab);
    const T = Math.min(cfg.pretrain.seqLen, cfg.model.contextLength);
    const vm = new TrainModel(mc, Math.min(cfg.pretrain.batch, 8), T);
    vm.setParams(finalParams);
    state.valLoss = sotuValLoss(vm, corpus, cfg.pretrain.evalBatches);
    log(
      `final SOTU validation loss ${state.valLoss.toFixed(4)} (perplexity ${Math.exp(state.valLoss).toFixed(2)})`,
    );
    const stats: TrainStats = {
      steps: state.pretrainSteps + Math.max(insSteps, 0),
      tokens: state.tokens,
      wallSeconds: state.wallSeconds,
      valLoss: state.valLoss,
    };
    for (const type of ['f32', 'q8_0'] as const) {
      const rel = cfg.out[type];
      if (!rel) continue;
      const path = join(opts.root, rel);
      mkdirSync(dirname(path), { recursive: true });
      const bytes = modelGGUF(mc, finalParams, corpus.tokenizerKv, stats, {
        type,
        name: cfg.out.modelName,
        // the eval script reads the instruction seed/options (the held-out split) from here
        extra: [
          ['edgelm.train.seed', meta.u32(cfg.seed)],
          ['edgelm.train.config', meta.str(JSON.stringify(cfg))],
        ],
      });
      writeFileSync(path, bytes);
      files.push(path);
      log(`wrote ${rel} (${(bytes.length / 1e6).toFixed(2)} MB)`);
    }
    mkdirSync(ckDir, { recursive: true });
    writeFileSync(join(ckDir, 'summary.json'), JSON.stringify({ ...stats, history: state.history }, null, 2));
  }
  return {
    stats: {
      steps: state.pretrainSteps + state.step,
      tokens: state.tokens,
      wallSeconds: state.wallSeconds,
      valLoss: state.valLoss,
    },
    files,
    state,
  };
}
