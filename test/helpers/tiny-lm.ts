// A tiny random language model in float64 JavaScript with the runtime Model's decoding surface
// (newSequence / fork / free / prefill / decode), plus a byte-level toy tokenizer. Test-only.
//
// Forward for the token x_t at position t (d = dim):
//   h = E[x_t] + P[t]                           embedding + learned position
//   q, k, v = Wq·h, Wk·h, Wv·h                  one attention head
//   a_j = softmax_j(q·k_j / √d), j ≤ t          causal attention over the whole history
//   y = tanh(h + Wo·Σ a_j v_j)
//   logits = scale · U·y + bias                 (bias[eos] = eosBias)
// so every logit depends on the full prefix. `fullLogits(prefix)` recomputes the prefix from scratch
// (the reference forward); the cached path runs the same per-position arithmetic, so both agree bit
// for bit.
import { createRng } from '../../runtime/prng.ts';

export interface TinySeq {
  readonly id: number;
  length: number;
  k: Float64Array[];
  v: Float64Array[];
  freed: boolean;
}

export interface TinyLMOptions {
  vocab: number;
  seed: number;
  dim?: number;
  contextLength?: number;
  /** multiplies the logits: larger → peakier distributions */
  scale?: number;
  eos?: number;
  /** added to the EOS logit */
  eosBias?: number;
  /** return Float32Array rows (like the WASM model) instead of Float64Array */
  f32?: boolean;
}

function randn(rng: { next(): number }): number {
  // Box–Muller from two uniforms
  const u = 1 - rng.next();
  const v = rng.next();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

export class TinyLM {
  readonly info: { vocabSize: number; contextLength: number };
  readonly dim: number;
  private readonly E: Float64Array[];
  private readonly P: Float64Array[];
  private readonly Wq: Float64Array[];
  private readonly Wk: Float64Array[];
  private readonly Wv: Float64Array[];
  private readonly Wo: Float64Array[];
  private readonly U: Float64Array[];
  private readonly bias: Float64Array;
  private readonly scale: number;
  private readonly f32: boolean;
  private nextId = 1;
  /** counters for tests: calls and rows of decode, prefills, forks, live sequences */
  stats = { decodeCalls: 0, decodeRows: 0, maxDecodeRows: 0, prefillCalls: 0, forks: 0, live: 0, maxLive: 0 };

  constructor(o: TinyLMOptions) {
    const V = o.vocab;
    const d = o.dim ?? 8;
    const ctx = o.contextLength ?? 64;
    this.info = { vocabSize: V, contextLength: ctx };
    this.dim = d;
    this.scale = o.scale ?? 2;
    this.f32 = o.f32 ?? false;
    const rng = createRng(o.seed);
    const mat = (rows: number, cols: number, s: number) =>
      Array.from({ length: rows }, () => Float64Array.from({ length: cols }, () => randn(rng) * s));
    this.E = mat(V, d, 1);
    this.P = mat(ctx, d, 0.5);
    this.Wq = mat(d, d, 1 / Math.sqrt(d));
    this.Wk = mat(d, d, 1 / Math.sqrt(d));
    this.Wv = mat(d, d, 1 / Math.sqrt(d));
    this.Wo = mat(d, d, 1 / Math.sqrt(d));
    this.U = mat(V, d, 1);
    this.bias = new Float64Array(V);
    if (o.eos !== undefined) this.bias[o.eos] = o.eosBias ?? 0;
  }

  private matvec(W: Float64Array[], x: Float64Array): Float64Array {
    const out = new Float64Array(W.length);
    for (let i = 0; i < W.length; i++) {
      let s = 0;
      const w = W[i];
      for (let j = 0; j < x.length; j++) s += w[j] * x[j];
      out[i] = s;
    }
    return out;
  }

  // one position: appends k, v to the caches and returns the logits
  private step(kc: Float64Array[], vc: Float64Array[], token: number, pos: number): Float64Array {
    if (pos >= this.info.contextLength) throw new Error(`TinyLM: position ${pos} past the context`);
    if (!(token >= 0 && token < this.info.vocabSize)) throw new Error(`TinyLM: bad token ${token}`);
    const d = this.dim;
    const h = new Float64Array(d);
    for (let i = 0; i < d; i++) h[i] = this.E[token][i] + this.P[pos][i];
    const q = this.matvec(this.Wq, h);
    kc.push(this.matvec(this.Wk, h));
    vc.push(this.matvec(this.Wv, h));
    const n = kc.length;
    const att = new Float64Array(n);
    let max = Number.NEGATIVE_INFINITY;
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let i = 0; i < d; i++) s += q[i] * kc[j][i];
      att[j] = s / Math.sqrt(d);
      if (att[j] > max) max = att[j];
    }
    let sum = 0;
    for (let j = 0; j < n; j++) {
      att[j] = Math.exp(att[j] - max);
      sum += att[j];
    }
    const o = new Float64Array(d);
    for (let j = 0; j < n; j++) for (let i = 0; i < d; i++) o[i] += (att[j] / sum) * vc[j][i];
    const wo = this.matvec(this.Wo, o);
    const y = new Float64Array(d);
    for (let i = 0; i < d; i++) y[i] = Math.tanh(h[i] + wo[i]);
    const logits = this.matvec(this.U, y);
    for (let i = 0; i < logits.length; i++) logits[i] = this.scale * logits[i] + this.bias[i];
    return logits;
  }

  /** Reference forward: the logits after `prefix`, recomputed from nothing. */
  fullLogits(prefix: readonly number[]): Float64Array {
    const kc: Float64Array[] = [];
    const vc: Float64Array[] = [];
    let out: Float64Array = new Float64Array(0);
    for (let t = 0; t < prefix.length; t++) out = this.step(kc, vc, prefix[t], t);
    return this.f32 ? Float64Array.from(Float32Array.from(out)) : out;
  }

  private check(seq: TinySeq): void {
    if (seq.freed) throw new Error(`TinyLM: sequence ${seq.id} used after free`);
  }

  newSequence(): TinySeq {
    this.stats.live++;
    this.stats.maxLive = Math.max(this.stats.maxLive, this.stats.live);
    return { id: this.nextId++, length: 0, k: [], v: [], freed: false };
  }

  fork(seq: TinySeq): TinySeq {
    this.check(seq);
    this.stats.forks++;
    this.stats.live++;
    this.stats.maxLive = Math.max(this.stats.maxLive, this.stats.live);
    // the per-position vectors are never mutated, so sharing them is copy-on-write for free
    return { id: this.nextId++, length: seq.length, k: seq.k.slice(), v: seq.v.slice(), freed: false };
  }

  free(seq: TinySeq): void {
    this.check(seq);
    seq.freed = true;
    this.stats.live--;
  }

  prefill(seq: TinySeq, tokens: ArrayLike<number>, allLogits = false): Float32Array | Float64Array {
    this.check(seq);
    this.stats.prefillCalls++;
    const V = this.info.vocabSize;
    const out = new Float64Array(allLogits ? tokens.length * V : V);
    for (let t = 0; t < tokens.length; t++) {
      const l = this.step(seq.k, seq.v, tokens[t], seq.length++);
      if (allLogits) out.set(l, t * V);
      else if (t === tokens.length - 1) out.set(l);
    }
    return this.f32 ? Float32Array.from(out) : out;
  }

  decode(seqs: TinySeq[], tokens: ArrayLike<number>): Float32Array | Float64Array {
    if (seqs.length !== tokens.length) throw new Error('TinyLM: one token per sequence');
    const ids = new Set<number>();
    for (const s of seqs) {
      this.check(s);
      if (ids.has(s.id)) throw new Error('TinyLM: a sequence twice in one batch');
      ids.add(s.id);
    }
    this.stats.decodeCalls++;
    this.stats.decodeRows += seqs.length;
    this.stats.maxDecodeRows = Math.max(this.stats.maxDecodeRows, seqs.length);
    const V = this.info.vocabSize;
    const out = new Float64Array(seqs.length * V);
    for (let b = 0; b < seqs.length; b++)
      out.set(this.step(seqs[b].k, seqs[b].v, tokens[b], seqs[b].length++), b * V);
    return this.f32 ? Float32Array.from(out) : out;
  }
}

/**
 * Byte-level toy tokenizer: token i is the byte string `pieces[i]`; ids in `special` decode to ''
 * with skipSpecial. The stream decoder buffers incomplete UTF-8 like the real one must.
 */
export class TinyTokenizer {
  readonly vocabSize: number;
  readonly bos: number | undefined;
  readonly eos: number | undefined;
  private readonly bytes: Uint8Array[];
  private readonly special: Set<number>;
  constructor(
    pieces: Array<string | Uint8Array>,
    opts: { eos?: number; bos?: number; special?: number[] } = {},
  ) {
    const enc = new TextEncoder();
    this.bytes = pieces.map((p) => (typeof p === 'string' ? enc.encode(p) : p));
    this.vocabSize = pieces.length;
    this.eos = opts.eos;
    this.bos = opts.bos;
    this.special = new Set(opts.special ?? [opts.eos, opts.bos].filter((x): x is number => x !== undefined));
  }
  isSpecial(id: number): boolean {
    return this.special.has(id);
  }
  tokenBytes(id: number): Uint8Array {
    return this.bytes[id];
  }
  decode(ids: ArrayLike<number>, opts: { skipSpecial?: boolean } = {}): string {
    const parts: Uint8Array[] = [];
    for (let i = 0; i < ids.length; i++) {
      if (opts.skipSpecial && this.special.has(ids[i])) continue;
      parts.push(this.bytes[ids[i]]);
    }
    const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let o = 0;
    for (const p of parts) {
      all.set(p, o);
      o += p.length;
    }
    return new TextDecoder().decode(all);
  }
  streamDecoder(): { push(id: number): string; flush(): string } {
    const td = new TextDecoder();
    return {
      push: (id: number) => (this.special.has(id) ? '' : td.decode(this.bytes[id], { stream: true })),
      flush: () => td.decode(),
    };
  }
}

/** A tokenizer for a vocabulary of `V`: id 0 is EOS '</s>', others short strings 'a', 'b', …, 'ab', … */
export function tinyTokenizer(V: number): TinyTokenizer {
  const alphabet = ['a', 'b', 'c', ' ', 'ab', 'ca', '\n', 'x', 'é', 'y z', 'q', 'r'];
  const pieces: string[] = ['</s>'];
  for (let i = 1; i < V; i++) pieces.push(i - 1 < alphabet.length ? alphabet[i - 1] : `t${i}`);
  return new TinyTokenizer(pieces, { eos: 0 });
}
