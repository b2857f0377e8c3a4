/**
 * Training data, tokenised: the BPE vocabulary (trained on SOTU text plus instruction text), the
 * SOTU token streams (documents separated by <|endoftext|>), instruction examples split into
 * prompt (unscored) and response (scored, ends with <|end|>), and the row builders that turn them
 * into (tokens, targets, weights) micro-batches.
 */

import { type GGUFMetaValue, parseGGUF, writeGGUF } from '../../runtime/gguf.ts';
import { type Tokenizer, tokenizerFromGGUF } from '../../runtime/tokenizer.ts';
import { EOT, tokenizerMetadata, trainByteBPE } from '../data/bpe-train.ts';
import {
  CHAT_SPECIALS,
  END,
  instructCorpus,
  instructSplits,
  type Pair,
  renderPair,
} from '../data/instruct.ts';
import { sotuSplit } from '../data/sotu.ts';
import type { TrainConfig } from './config.ts';
import type { Rng } from './model.ts';

/** One instruction example as token ids. */
export interface Example {
  prompt: number[]; // <|user|> … <|assistant|>
  response: number[]; // … <|end|>
  pair: Pair;
}

export interface Corpus {
  /** GGUF tokenizer metadata of the final vocabulary (BPE + <|endoftext|> + chat markers) */
  tokenizerKv: Array<[string, GGUFMetaValue]>;
  tokenizer: Tokenizer;
  /** vocabulary of the pretraining phase (BPE + <|endoftext|>) and of the instruction phase */
  pretrainVocab: number;
  finalVocab: number;
  eot: number;
  end: number;
  train: Int32Array;
  validation: Int32Array;
  sftTrain: Example[];
  sftHeldOut: Example[];
}

/** Everything the run needs, deterministic in the config. */
export function buildCorpus(cfg: TrainConfig, log: (s: string) => void = () => {}): Corpus {
  let t0 = Date.now();
  const sotu = sotuSplit({ every: cfg.data.sotuEvery });
  let trainDocs = sotu.train.map((a) => a.text);
  if (cfg.data.maxTrainChars > 0) {
    const kept: string[] = [];
    let n = 0;
    for (const d of trainDocs) {
      if (n >= cfg.data.maxTrainChars) break;
      kept.push(d.slice(0, cfg.data.maxTrainChars - n));
      n += kept[kept.length - 1].length;
    }
    trainDocs = kept;
  }
  const ins = instructSplits(cfg.seed, cfg.data.instruct);
  log(
    `data: ${trainDocs.length} SOTU train addresses, ${sotu.validation.length} validation; ${ins.train.length} instruction pairs, ${ins.heldOut.length} held out (${Date.now() - t0} ms)`,
  );
  t0 = Date.now();
  const bpe = trainByteBPE([...trainDocs, instructCorpus(ins.train)], cfg.tokenizer.bpeVocab);
  const specials = [EOT, ...CHAT_SPECIALS];
  const tokenizerKv = tokenizerMetadata(bpe.tokens, bpe.merges, specials);
  const tokenizer = tokenizerFromGGUF(parseGGUF(writeGGUF(tokenizerKv, [])));
  const eot = bpe.tokens.length;
  const end = tokenizer.tokenId(END) as number;
  log(`tokenizer: ${bpe.tokens.length} BPE tokens + ${specials.length} specials (${Date.now() - t0} ms)`);
  t0 = Date.now();
  const stream = (docs: string[]) => {
    const out: number[] = [];
    for (const d of docs) {
      for (const id of tokenizer.encode(d)) out.push(id);
      out.push(eot);
    }
    return Int32Array.from(out);
  };
  const train = stream(trainDocs);
  const validation = stream(sotu.validation.map((a) => a.text));
  const toExample = (p: Pair): Example => {
    const r = renderPair(p);
    return {
      prompt: tokenizer.encode(r.prompt, { parseSpecial: true }),
      response: tokenizer.encode(r.response, { parseSpecial: true }),
      pair: p,
    };
  };
  const sftTrain = ins.train.map(toExample);
  const sftHeldOut = ins.heldOut.map(toExample);
  log(
    `encoded: ${train.length} train tokens, ${validation.length} validation tokens (${Date.now() - t0} ms)`,
  );
  return {
    tokenizerKv,
    tokenizer,
    pretrainVocab: bpe.tokens.length + 1,
    finalVocab: bpe.tokens.length + specials.length,
    eot,
    end,
    train,
    validation,
    sftTrain,
    sftHeldOut,
  };
}

/** A micro-batch: B rows of T tokens, next-token targets, per-target loss weights. */
export interface Batch {
  tokens: Int32Array;
  targets: Int32Array;
  weights: Float32Array;
}

export function emptyBatch(B: number, T: number): Batch {
  return { tokens: new Int32Array(B * T), targets: new Int32Array(B * T), weights: new Float32Array(B * T) };
}

/** Row r of the batch = stream[o .. o+T) with targets shifted by one; every target counts. */
export function fillWindow(b: Batch, r: number, T: number, stream: Int32Array, o: number): void {
  b.tokens.set(stream.subarray(o, o + T), r * T);
  b.targets.set(stream.subarray(o + 1, o + T + 1), r * T);
  b.weights.fill(1, r * T, (r + 1) * T);
}

/** B random windows of the stream. */
export function randomWindows(b: Batch, B: number, T: number, stream: Int32Array, rng: Rng): void {
  for (let r = 0; r < B; r++) fillWindow(b, r, T, stream, rng.int(stream.length - T - 1));
}

/** Evenly spaced fixed windows (validation): batch i of n. */
export function fixedWindows(b: Batch, B: number, T: number, stream: Int32Array, i: number, n: number): void {
  const count = B * n;
  const span = stream.length - T - 1;
  for (let r = 0; r < B; r++) fillWindow(b, r, T, stream, Math.floor(((i * B + r) * span) / count));
}

/**
 * Packs instruction examples into rows: whole examples one after another, targets scored only on
 * response tokens (and <|end|>); the rest of a row is padding (<|end|>, weight 0). Walks a
 * shuffled order of the examples, reshuffled each epoch; `cursor`/`epoch` go into checkpoints.
 */
export class Packer {
  cursor = 0;
  epoch = 0;
  private order: Int32Array;
  constructor(
    private readonly examples: Example[],
    private readonly pad: number,
    private readonly seed: number,
  ) {
    this.order = this.shuffled();
  }

  private shuffled(): Int32Array {
    const o = Int32Array.from(this.examples, (_, i) => i);
    // Fisher–Yates with a generator seeded by (seed, epoch) so a resumed run repeats the order
    let s = (this.seed * 1000003 + this.epoch * 7919 + 17) >>> 0;
    const next = () => {
      s = (s + 0x6d2b79f5) >>> 0;
      let t = s;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    for (let i = o.length - 1; i > 0; i--) {
      const j = Math.floor(next() * (i + 1));
      const tmp = o[i];
      o[i] = o[j];
      o[j] = tmp;
    }
    return o;
  }

  /** restore a position (after a resume) */
  seek(cursor: number, epoch: number): void {
    this.epoch = epoch;
    this.order = this.shuffled();
    this.cursor = cursor;
  }

  // the next example without taking it (wraps into a new, reshuffled epoch)
  private peek(): Example {
    if (this.cursor >= this.order.length) {
      this.epoch++;
      this.order = this.shuffled();
      this.cursor = 0;
    }
    return this.examples[this.order[this.cursor]];
  }

  /**
   * Fill row r with whole examples until the next one does not fit (it starts the next row); an
   * example longer than a row keeps its head. Padding: `pad` tokens with weight 0.
   */
  fillRow(b: Batch, r: number, T: number): void {
    const seq: number[] = [];
    const wt: number[] = [];
    for (;;) {
      const ex = this.peek();
      const len = ex.prompt.length + ex.response.length;
      if (seq.length > 0 && seq.length + len > T + 1) break;
      this.cursor++;
      for (const t of ex.prompt) {
        seq.push(t);
        wt.push(0);
      }
      for (const t of ex.response) {
        seq.push(t);
        wt.push(1);
      }
      if (seq.length >= T + 1) break;
    }
    const o = r * T;
    for (let i = 0; i < T; i++) {
      const has = i + 1 < seq.length;
      b.tokens[o + i] = i < seq.length ? seq[i] : this.pad;
      b.targets[o + i] = has ? seq[i + 1] : this.pad;
      b.weights[o + i] = has ? wt[i + 1] : 0;
    }
  }
}
