// Beam search with Hugging Face generate() semantics (the vectorised rewrite of transformers'
// `_beam_search`, PR #35802, current on transformers main), run as one batched decode per step.
//
// One step t (t = number of generated tokens after the step, 1-based):
//  1. every live beam b has a row of logits; lp = log_softmax(row) then the processors
//     (repetition penalty, no-repeat-n-gram, min-new-tokens EOS mask, …) act on lp — HF applies
//     them after the log-softmax, so a banned token does not renormalise the rest;
//  2. candidates (b, v) score s_b + lp_b[v]; keep the top K = max(2, 1 + #eos ids) · B of them over
//     all beams (flattened; ties: lower beam index, then lower token id first);
//  3. a candidate "hits" when v is an EOS/stop id, its text now contains a stop string, or t = maxNewTokens;
//  4. running beams for the next step: the first B candidates in rank order that do not hit;
//  5. a hitting candidate of rank < B becomes a finished hypothesis with score sum / t^lengthPenalty
//     (t counts the EOS), unless the early-stop heuristic was already satisfied or (earlyStopping
//     true and B hypotheses are already finished); the finished list keeps the best B;
//  6. heuristic: the best running beam's sum / L^lengthPenalty, with L = maxNewTokens for
//     earlyStopping "never" and lengthPenalty > 0 else L = t, must beat the worst of B finished
//     hypotheses (sticky once it fails);
//  7. continue while the heuristic holds, not (earlyStopping true and B finished), and some beam runs.
// Where HF pads with −1e9 placeholder beams (fewer than K finite candidates: tiny vocabularies,
// heavy bans), we keep only real candidates; the results equal HF's whenever every step has at
// least K finite candidates. If no candidate at all is finite and nothing has finished, the beams
// that were running are returned (finishReason 'stop'). Ties between equal scores may order
// differently from torch.topk. HF computes in float32; we compute log-probs in float64.
// Not modelled: HF's batch dimension (one prompt per search here), beam sampling, diverse/group beams,
// constrained beams.
//
// KV cache: the B live beams are B model sequences; after selection the first child of a parent
// takes over the parent's sequence, every further child is a copy-on-write fork, parents without
// children are freed — nothing is recomputed. Then all children go through one model.decode call.
import {
  logSoftmax,
  logSumExp,
  type ProcessorConfig,
  processorsActive,
  processScores,
  topKInto,
} from './sample.ts';

/** An opaque sequence handle of a model (runtime/model.ts `Sequence`). */
export interface SequenceHandle {
  readonly id: number;
  readonly length: number;
}

/** What decoding needs from a model; runtime/model.ts `Model` satisfies it structurally. */
export interface LogitsModel<S = SequenceHandle> {
  readonly info: { readonly vocabSize: number; readonly contextLength: number };
  newSequence(): S;
  fork(seq: S): S;
  free(seq: S): void;
  prefill(seq: S, tokens: ArrayLike<number>, allLogits?: boolean): Float32Array | Float64Array;
  decode(
    seqs: S[],
    tokens: ArrayLike<number>,
    out?: Float32Array,
    stats?: {
      argmax?: Int32Array;
      logSumExp?: Float64Array;
      topK?: { k: number; index: Int32Array; value: Float64Array; count: Int32Array };
    },
  ): Float32Array | Float64Array;
  /**
   * true when `decode` fills a caller's `out` buffer and per-row `stats` (argmax, log-sum-exp, top k
   * ≤ 64, computed next to the logits — runtime/model.ts does, in WASM); otherwise they are computed here
   */
  readonly rowStats?: boolean;
}

/** Decode options of runtime/tokenizer.ts. */
export interface TextOptions {
  skipSpecial?: boolean;
  stripLeadingSpace?: boolean;
}

/** How generated text is decoded: no special tokens, and the first token keeps its leading space. */
export const COMPLETION_TEXT: TextOptions = { skipSpecial: true, stripLeadingSpace: false };

/** What decoding needs from a tokenizer; runtime/tokenizer.ts `Tokenizer` satisfies it structurally. */
export interface TokenizerLike {
  readonly vocabSize: number;
  readonly eos: number | undefined;
  decode(ids: ArrayLike<number>, opts?: TextOptions): string;
  streamDecoder(opts?: TextOptions): { push(id: number): string; flush(): string };
}

/** Beam search settings (already validated by resolveOptions). */
export interface BeamConfig extends ProcessorConfig {
  numBeams: number;
  lengthPenalty: number;
  earlyStopping: boolean | 'never';
  maxNewTokens: number;
  numReturnSequences: number;
  /** Stop strings: a beam whose generated text contains one is finished (HF StopStringCriteria). */
  stop: readonly string[];
}

/** One returned hypothesis. `tokens` include the EOS/stop token that ended it. */
export interface BeamHypothesis {
  tokens: number[];
  /** Per-token log-probabilities used in the score (after processors, as HF). */
  tokenLogprobs: number[];
  sumLogprobs: number;
  /** sumLogprobs / tokens.length ^ lengthPenalty */
  score: number;
  finishReason: 'stop' | 'length' | 'abort';
}

/** Progress of one step: the running beams, best first, with their parent's index in the previous step's list. */
export interface BeamsEvent {
  type: 'beams';
  step: number;
  beams: Array<{ tokens: number[]; score: number; parent: number }>;
}

/** Final result of beamSearch: the best `numReturnSequences` hypotheses, best first. */
export interface BeamSearchResult {
  hypotheses: BeamHypothesis[];
  prefillMs: number;
  decodeMs: number;
  steps: number;
}

interface LiveBeam<S> {
  seq: S;
  tokens: number[];
  tokenLogprobs: number[];
  counts: Map<number, number> | undefined;
  score: number; // sum of processed log-probs
}

const now = (): number => (typeof performance !== 'undefined' ? performance.now() : Date.now());

/**
 * Yields to the event loop with a macrotask (setImmediate in Node, a MessageChannel in browsers and
 * workerd, else setTimeout 0) so an AbortSignal fired from elsewhere is seen between steps.
 * @example
 * await yieldToEventLoop();
 */
export function yieldToEventLoop(): Promise<void> {
  const g = globalThis as any;
  if (typeof g.setImmediate === 'function') return new Promise((r) => g.setImmediate(r));
  if (typeof g.MessageChannel === 'function') {
    return new Promise((r) => {
      const ch = new g.MessageChannel();
      ch.port1.onmessage = () => {
        ch.port1.close();
        r();
      };
      ch.port2.postMessage(0);
    });
  }
  return new Promise((r) => setTimeout(r, 0));
}

/**
 * Earliest index of any of `stops` in `text` at or after `from`, or -1.
 * @example
 * findStop('hello\n\nworld', ['\n\n', 'wor']); // 5
 */
export function findStop(text: string, stops: readonly string[], from = 0): number {
  let best = -1;
  for (const s of stops) {
    const i = text.indexOf(s, from);
    if (i >= 0 && (best < 0 || i < best)) best = i;
  }
  return best;
}

// fixed-capacity candidate list sorted by score descending; equal scores keep insertion order,
// and candidates are offered in flat (beam, token) order, so ties go to the lower flat index
class TopCandidates {
  n = 0;
  readonly score: Float64Array;
  readonly lp: Float64Array;
  readonly beam: Int32Array;
  readonly token: Int32Array;
  constructor(readonly cap: number) {
    this.score = new Float64Array(cap);
    this.lp = new Float64Array(cap);
    this.beam = new Int32Array(cap);
    this.token = new Int32Array(cap);
  }
  offer(s: number, lp: number, b: number, v: number): void {
    const cap = this.cap;
    if (this.n === cap && !(s > this.score[cap - 1])) return;
    let j = this.n < cap ? this.n++ : cap - 1;
    while (j > 0 && this.score[j - 1] < s) {
      this.score[j] = this.score[j - 1];
      this.lp[j] = this.lp[j - 1];
      this.beam[j] = this.beam[j - 1];
      this.token[j] = this.token[j - 1];
      j--;
    }
    this.score[j] = s;
    this.lp[j] = lp;
    this.beam[j] = b;
    this.token[j] = v;
  }
}

/**
 * Beam search over `model` from `promptIds`, as an async generator: yields a `beams` event per step
 * (the running beams, best first — the first is the provisional best) and returns the best
 * `numReturnSequences` finished hypotheses sorted by score. `tokenizer` is needed only for stop
 * strings. Stops between steps when `signal` fires (live and finished hypotheses are then ranked
 * together; live ones get finishReason 'abort'). Every sequence it creates is freed before it returns.
 * @example
 * const it = beamSearch(model, tok, ids, cfg);
 * let r = await it.next();
 * while (!r.done) r = await it.next();
 * console.log(r.value.hypotheses[0].tokens);
 */
export async function* beamSearch<S>(
  model: LogitsModel<S>,
  tokenizer: Pick<TokenizerLike, 'decode'> | undefined,
  promptIds: readonly number[],
  cfg: BeamConfig,
  signal?: AbortSignal,
): AsyncGenerator<BeamsEvent, BeamSearchResult> {
  const B = cfg.numBeams;
  const V = model.info.vocabSize;
  const K = Math.max(2, 1 + cfg.eosIds.length) * B;
  const lpow = cfg.lengthPenalty;
  const eos = new Set(cfg.eosIds);
  const trackCounts = cfg.presencePenalty !== 0 || cfg.frequencyPenalty !== 0;
  const maxStop = cfg.stop.reduce((m, s) => Math.max(m, s.length), 0);
  const stopWindow = 4 * maxStop + 4;
  const prompt = promptIds.slice();
  const finished: BeamHypothesis[] = []; // sorted by score descending, at most B
  let unsat = true; // HF's is_early_stop_heuristic_unsatisfied
  let live: LiveBeam<S>[] = [];
  const owned = new Set<S>();
  const lp = new Float64Array(V);
  const cands = new TopCandidates(K);
  const rowIdx = new Int32Array(K);
  const rowVal = new Float64Array(K);
  let steps = 0;
  let aborted = false;

  const t0 = now();
  const first = model.newSequence();
  owned.add(first);
  let rows: Float32Array | Float64Array;
  try {
    rows = model.prefill(first, prompt);
  } catch (e) {
    model.free(first);
    throw e;
  }
  const t1 = now();
  live.push({
    seq: first,
    tokens: [],
    tokenLogprobs: [],
    counts: trackCounts ? new Map() : undefined,
    score: 0,
  });

  const addFinished = (h: BeamHypothesis) => {
    if (finished.length === B && !(h.score > finished[B - 1].score)) return;
    let j = finished.length;
    finished.push(h);
    while (j > 0 && finished[j - 1].score < h.score) {
      finished[j] = finished[j - 1];
      j--;
    }
    finished[j] = h;
    if (finished.length > B) finished.pop();
  };

  // with a model that reports each row's log-sum-exp, logits land in one reused buffer and the
  // exp pass over the vocabulary is not repeated here
  const fast = model.rowStats === true;
  const outBuf = fast ? new Float32Array(B * V) : undefined;
  const topK =
    fast && K <= 64 && K <= V
      ? { k: K, index: new Int32Array(B * K), value: new Float64Array(B * K), count: new Int32Array(B) }
      : undefined;
  const st = fast ? { logSumExp: new Float64Array(B), topK } : undefined;
  let haveLse = false;
  try {
    for (let t = 1; t <= cfg.maxNewTokens; t++) {
      steps = t;
      // 1–2. log-probs of every live beam, processed, accumulated, top K over all beams
      cands.n = 0;
      for (let b = 0; b < live.length; b++) {
        const beam = live[b];
        const row = rows.subarray(b * V, (b + 1) * V);
        const base = beam.score;
        let full = cands.n === K;
        let worst = full ? cands.score[K - 1] : Number.NEGATIVE_INFINITY;
        if (processorsActive(cfg, beam.tokens.length, V)) {
          logSoftmax(row, lp);
          processScores(lp, prompt, beam.tokens, beam.counts, cfg);
          for (let v = 0; v < V; v++) {
            const l = lp[v];
            if (!(l > Number.NEGATIVE_INFINITY)) continue; // banned (or NaN)
            const sc = base + l;
            if (full && !(sc > worst)) continue; // cheap reject before the sorted insert
            cands.offer(sc, l, b, v);
            if (cands.n === K) {
              full = true;
              worst = cands.score[K - 1];
            }
          }
        } else {
          // no processor: only this row's own top K (by logit) can enter the top K over all beams,
          // and their log-probs are row[v] − lse; one selection pass, one exp pass
          // (the model's decode reports each row's top K and log-sum-exp: then the row is not read here)
          const pre = haveLse && topK !== undefined;
          const n = pre ? topK.count[b] : topKInto(row, K, rowIdx, rowVal);
          const o = pre ? b * K : 0;
          const ti = pre ? topK.index : rowIdx;
          const tv = pre ? topK.value : rowVal;
          const lse =
            haveLse && st ? st.logSumExp[b] : logSumExp(row, n > 0 ? rowVal[0] : Number.NEGATIVE_INFINITY);
          for (let j = 0; j < n; j++) {
            const l = tv[o + j] - lse;
            if (!(l > Number.NEGATIVE_INFINITY)) continue;
            const sc = base + l;
            if (full && !(sc > worst)) break; // the rest of this row scores lower still
            cands.offer(sc, l, b, ti[o + j]);
            if (cands.n === K) {
              full = true;
              worst = cands.score[K - 1];
            }
          }
        }
      }
      // 3–5. classify candidates in rank order
      // HF decides at the start of the step whether finished hypotheses may still be added
      const blocked = !unsat || (cfg.earlyStopping === true && finished.length === B);
      const next: Array<{ rank: number; parent: number; token: number; lp: number; score: number }> = [];
      for (let r = 0; r < cands.n; r++) {
        if (r >= B && next.length === B) break; // can neither finish (rank ≥ B) nor run (B running)
        const parent = cands.beam[r];
        const v = cands.token[r];
        const pb = live[parent];
        let reason: 'stop' | 'length' | undefined;
        if (eos.has(v)) reason = 'stop';
        else if (maxStop > 0 && tokenizer) {
          // the parent's text holds no stop string (else it would not be running), so a new match
          // ends in the last token: decode only a tail window wide enough for the longest stop string
          // (every non-special token has ≥ 1 byte, a character ≤ 4 bytes, plus a split character)
          const toks =
            pb.tokens.length < stopWindow ? pb.tokens.concat(v) : pb.tokens.slice(1 - stopWindow).concat(v);
          const text = tokenizer.decode(toks, COMPLETION_TEXT);
          if (findStop(text, cfg.stop) >= 0) reason = 'stop';
        }
        if (!reason && t === cfg.maxNewTokens) reason = 'length';
        if (!reason) {
          if (next.length < B)
            next.push({ rank: r, parent, token: v, lp: cands.lp[r], score: cands.score[r] });
          continue;
        }
        if (r < B && !blocked) {
          const sum = cands.score[r];
          addFinished({
            tokens: pb.tokens.concat(v),
            tokenLogprobs: pb.tokenLogprobs.concat(cands.lp[r]),
            sumLogprobs: sum,
            score: sum / t ** lpow,
            finishReason: reason,
          });
        }
      }
      // 6. early-stop heuristic, evaluated with t generated tokens
      if (unsat && next.length > 0) {
        const L = cfg.earlyStopping === 'never' && lpow > 0 ? cfg.maxNewTokens : t;
        const best = next[0].score / L ** lpow;
        const worst = finished.length === B ? finished[B - 1].score : Number.NEGATIVE_INFINITY;
        unsat = best > worst;
      }
      yield {
        type: 'beams',
        step: t,
        beams: next.map((c) => ({
          tokens: live[c.parent].tokens.concat(c.token),
          score: c.score,
          parent: c.parent,
        })),
      };
      // 7. stop?
      if (!unsat || (cfg.earlyStopping === true && finished.length === B) || next.length === 0) break;
      if (t === cfg.maxNewTokens) break;
      await yieldToEventLoop();
      if (signal?.aborted) {
        aborted = true;
        // the beams chosen this step are the live set at abort time
        live = next.map((c) => {
          const p = live[c.parent];
          return {
            seq: p.seq,
            tokens: p.tokens.concat(c.token),
            tokenLogprobs: p.tokenLogprobs.concat(c.lp),
            counts: undefined,
            score: c.score,
          };
        });
        break;
      }
      // KV cache follows the chosen parents: parents without children are freed first (so at most
      // B sequences are ever alive), then the first child takes its parent's sequence and every
      // further child forks it (copy-on-write)
      const taken = new Array<boolean>(live.length).fill(false);
      for (const c of next) taken[c.parent] = true;
      for (let b = 0; b < live.length; b++) {
        if (!taken[b]) {
          model.free(live[b].seq);
          owned.delete(live[b].seq);
        }
      }
      const reused = new Array<boolean>(live.length).fill(false);
      const children: LiveBeam<S>[] = [];
      for (const c of next) {
        const p = live[c.parent];
        let seq: S;
        if (!reused[c.parent]) {
          reused[c.parent] = true;
          seq = p.seq;
        } else {
          seq = model.fork(p.seq);
          owned.add(seq);
        }
        let counts: Map<number, number> | undefined;
        if (p.counts) {
          counts = new Map(p.counts);
          counts.set(c.token, (counts.get(c.token) ?? 0) + 1);
        }
        children.push({
          seq,
          tokens: p.tokens.concat(c.token),
          tokenLogprobs: p.tokenLogprobs.concat(c.lp),
          counts,
          score: c.score,
        });
      }
      live = children;
      rows = model.decode(
        live.map((l) => l.seq),
        live.map((l) => l.tokens[l.tokens.length - 1]),
        outBuf,
        st,
      );
      haveLse = fast;
    }
  } finally {
    for (const s of owned) {
      try {
        model.free(s);
      } catch {
        // already freed
      }
    }
    owned.clear();
  }

  let pool = finished.slice();
  if (aborted) {
    for (const l of live) {
      const n = l.tokens.length;
      pool.push({
        tokens: l.tokens,
        tokenLogprobs: l.tokenLogprobs,
        sumLogprobs: l.score,
        score: l.score / n ** lpow,
        finishReason: 'abort',
      });
    }
    pool = pool.sort((a, b) => b.score - a.score);
  } else if (pool.length === 0) {
    // nothing finished because no candidate had a finite score (every token banned, or a broken
    // model row): the beams that were running are the answer
    for (const l of live) {
      if (l.tokens.length === 0) continue;
      pool.push({
        tokens: l.tokens,
        tokenLogprobs: l.tokenLogprobs,
        sumLogprobs: l.score,
        score: l.score / l.tokens.length ** lpow,
        finishReason: 'stop',
      });
    }
    if (pool.length === 0) throw new Error('beam search: no next token has a finite log-probability');
    pool = pool.sort((a, b) => b.score - a.score);
  }
  return {
    hypotheses: pool.slice(0, cfg.numReturnSequences),
    prefillMs: t1 - t0,
    decodeMs: now() - t1,
    steps,
  };
}
