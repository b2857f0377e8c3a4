/**
 * Training configuration: what `npm run train -- --config <file>` reads. Every field has a default
 * (DEFAULTS below, documented field by field); a config file overrides any subset. Keys starting
 * with "_" or "//" are comments and ignored.
 */
import { readFileSync } from 'node:fs';

/** Optimiser and batching of one phase. */
export interface PhaseConfig {
  /** optimizer steps in this phase (0 skips the phase) */
  steps: number;
  /** sequences per micro-batch */
  batch: number;
  /** tokens per sequence (≤ model.contextLength) */
  seqLen: number;
  /** micro-batches accumulated per optimizer step */
  accum: number;
  /** peak learning rate after warm-up */
  lr: number;
  /** learning rate at the end of the cosine decay */
  minLr: number;
  /** linear warm-up steps */
  warmup: number;
  /** AdamW decoupled weight decay (matrices only; norms are not decayed) */
  weightDecay: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** clip the global gradient norm to this (0: off) */
  gradClip: number;
  /** validation loss every N steps (and at the end) */
  evalEvery: number;
  /** validation micro-batches per evaluation */
  evalBatches: number;
}

/** The whole run. */
export interface TrainConfig {
  /** run name: checkpoints go to checkpoints/<name>/ */
  name: string;
  /** seed of initialisation, batch sampling, instruction data */
  seed: number;
  model: {
    dim: number;
    nLayers: number;
    nHeads: number;
    ffnDim: number;
    contextLength: number;
    normEps: number;
    ropeBase: number;
  };
  tokenizer: {
    /** byte-level BPE tokens (256 bytes + merges); <|endoftext|> and the 3 chat markers come on top */
    bpeVocab: number;
  };
  data: {
    /** every Nth SOTU address (chronological) is validation */
    sotuEvery: number;
    /** use only this many characters of the SOTU training text (0: all) — for tiny runs */
    maxTrainChars: number;
    /** options of instructSplits (scripts/data/instruct.ts); {} for its defaults */
    instruct: Record<string, number>;
    /** fraction of instruction-phase rows that are pretraining text (keeps the language model) */
    instructMixPretrain: number;
  };
  pretrain: PhaseConfig;
  instruct: PhaseConfig;
  /** save a resumable checkpoint every N optimizer steps */
  checkpointEvery: number;
  /** held-out instruction prompts decoded greedily at each instruct-phase evaluation */
  evalExactMatch: number;
  /** worker threads for data parallelism (1: main thread only; 2: main + one worker) */
  threads: number;
  out: {
    /** F32 GGUF path ('' to skip) */
    f32: string;
    /** Q8_0 GGUF path ('' to skip) */
    q8_0: string;
    /** general.name */
    modelName: string;
  };
}

const PHASE: PhaseConfig = {
  steps: 1000,
  batch: 8,
  seqLen: 256,
  accum: 1,
  lr: 2e-3,
  minLr: 2e-4,
  warmup: 100,
  weightDecay: 0.1,
  beta1: 0.9,
  beta2: 0.95,
  eps: 1e-8,
  gradClip: 1,
  evalEvery: 200,
  evalBatches: 4,
};

/** Defaults of every field (the shipped model's config overrides some; see configs/train/). */
export const DEFAULTS: TrainConfig = {
  name: 'default',
  seed: 1,
  model: { dim: 128, nLayers: 6, nHeads: 4, ffnDim: 352, contextLength: 256, normEps: 1e-5, ropeBase: 10000 },
  tokenizer: { bpeVocab: 2044 },
  data: { sotuEvery: 20, maxTrainChars: 0, instruct: {}, instructMixPretrain: 0.1 },
  pretrain: { ...PHASE },
  instruct: { ...PHASE, seqLen: 128, batch: 16, lr: 1e-3, minLr: 1e-4, warmup: 50 },
  checkpointEvery: 200,
  evalExactMatch: 64,
  threads: 1,
  out: { f32: 'weights/default.gguf', q8_0: 'weights/default-q8_0.gguf', modelName: 'edgelm-default' },
};

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

// deep merge of `over` onto `base`, rejecting unknown keys and wrong types
function merge(
  base: Record<string, unknown>,
  over: Record<string, unknown>,
  path: string,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (k.startsWith('_') || k.startsWith('//')) continue;
    const p = path ? `${path}.${k}` : k;
    if (!(k in base)) throw new Error(`config: unknown key ${p}`);
    const b = base[k];
    if (k === 'instruct' && path === 'data') {
      if (!isObj(v)) throw new Error(`config: ${p} must be an object`);
      out[k] = v;
    } else if (isObj(b)) {
      if (!isObj(v)) throw new Error(`config: ${p} must be an object`);
      out[k] = merge(b, v, p);
    } else {
      if (typeof v !== typeof b) throw new Error(`config: ${p} must be a ${typeof b}`);
      out[k] = v;
    }
  }
  return out;
}

/** DEFAULTS overridden by a parsed config object; checks shapes that the kernels need. */
export function resolveConfig(over: Record<string, unknown>): TrainConfig {
  const c = merge(DEFAULTS as unknown as Record<string, unknown>, over, '') as unknown as TrainConfig;
  const m = c.model;
  if (m.dim % m.nHeads !== 0 || (m.dim / m.nHeads) % 4 !== 0)
    throw new Error('config: dim / nHeads must be a multiple of 4');
  if (m.dim % 32 !== 0 || m.ffnDim % 32 !== 0)
    throw new Error('config: dim and ffnDim must be multiples of 32 (Q8_0 blocks)');
  for (const ph of ['pretrain', 'instruct'] as const) {
    if (c[ph].seqLen > m.contextLength) throw new Error(`config: ${ph}.seqLen exceeds model.contextLength`);
    if (c[ph].batch < 1 || c[ph].accum < 1) throw new Error(`config: ${ph}.batch and accum must be ≥ 1`);
  }
  if (c.threads !== 1 && c.threads !== 2) throw new Error('config: threads must be 1 or 2');
  return c;
}

/** Read and resolve a JSON config file. */
export function loadConfig(path: string): TrainConfig {
  return resolveConfig(JSON.parse(readFileSync(path, 'utf8')));
}

/** Learning rate at optimizer step `step` (0-based): linear warm-up, then cosine to minLr. */
export function learningRate(p: PhaseConfig, step: number): number {
  if (step < p.warmup) return (p.lr * (step + 1)) / p.warmup;
  const t = Math.min(1, (step - p.warmup) / Math.max(1, p.steps - p.warmup));
  return p.minLr + 0.5 * (p.lr - p.minLr) * (1 + Math.cos(Math.PI * t));
}
