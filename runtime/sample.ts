// Logits processors and token choosers, as plain functions over Float64Arrays (one row of V scores).
// Order of a sampling step (Hugging Face's): processors (repetition penalty, presence/frequency
// penalties, no-repeat-n-gram bans, min-new-tokens EOS mask) → warpers (temperature → top-k → top-p
// → min-p) → draw with the seeded generator from runtime/prng.ts. Banned tokens are -Infinity.
import type { Rng } from './prng.ts';

/** Settings for the logits processors shared by greedy, sampling and beam search. */
export interface ProcessorConfig {
  /** HF style, over prompt + generated tokens: a positive score is divided by it, a negative one multiplied. 1 = off. */
  repetitionPenalty: number;
  /** OpenAI style, over generated tokens: subtract `presencePenalty` once per token that appeared. */
  presencePenalty: number;
  /** OpenAI style, over generated tokens: subtract `frequencyPenalty × count`. */
  frequencyPenalty: number;
  /** HF style, over prompt + generated tokens: ban any token that would repeat an n-gram. 0 = off. */
  noRepeatNgramSize: number;
  /** Ban every id in `eosIds` while fewer than this many tokens have been generated. */
  minNewTokens: number;
  /** Token ids that end a sequence (EOS and stop token ids). */
  eosIds: readonly number[];
  /** Ids at or above this are banned (model rows wider than the tokenizer's vocabulary). */
  vocabLimit: number;
}

/** Settings for the sampling warpers. temperature 0 means greedy (the warpers are not used). */
export interface WarperConfig {
  temperature: number;
  topK: number; // 0 = off
  topP: number; // 1 = off
  minP: number; // 0 = off
}

// exp(−d) for d ≥ 0, faster than Math.exp over a vocabulary row: with k = ⌈256·d⌉ and
// r = k/256 − d ∈ [0, 1/256), exp(−d) = exp(−⌊k/256⌋) · exp(−(k mod 256)/256) · exp(r), the first two
// from tables and exp(r) from its Taylor series to r⁵ (truncation < 5e-18). Measured relative error
// ≤ 5e-16 against Math.exp over [0, 700]; terms below e^−708 are 0 (they cannot move a sum whose
// largest term is 1). Only + − × and table reads: the same bits on every engine once the tables are.
const EXP_INT = Float64Array.from({ length: 709 }, (_, a) => Math.exp(-a));
const EXP_FRAC = Float64Array.from({ length: 256 }, (_, b) => Math.exp(-b / 256));
function expNeg(d: number): number {
  if (!(d < 708)) return d >= 708 ? 0 : Number.NaN;
  const k = Math.ceil(d * 256);
  const r = k / 256 - d;
  return (
    EXP_INT[k >> 8] * EXP_FRAC[k & 255] * (1 + r * (1 + r * (1 / 2 + r * (1 / 6 + r * (1 / 24 + r / 120)))))
  );
}

/**
 * Log-softmax of one row in float64: out[i] = x[i] − log Σ exp(x). -Infinity entries stay -Infinity.
 * @example
 * const lp = logSoftmax(new Float32Array([1, 2, 3]));
 */
export function logSoftmax(x: ArrayLike<number>, out = new Float64Array(x.length)): Float64Array {
  const n = x.length;
  const lse = logSumExp(x);
  if (lse === Number.NEGATIVE_INFINITY) {
    out.fill(Number.NEGATIVE_INFINITY);
    return out;
  }
  for (let i = 0; i < n; i++) out[i] = x[i] - lse;
  return out;
}

/**
 * log Σ exp(x) in float64 (max-shifted); -Infinity when every entry is -Infinity. logSoftmax(x)[i] is
 * exactly x[i] − logSumExp(x). `knownMax`, when given, must be the largest entry (saves a pass).
 * @example
 * logSumExp(new Float32Array([0, 0])); // Math.LN2
 */
export function logSumExp(x: ArrayLike<number>, knownMax?: number): number {
  const n = x.length;
  let max = Number.NEGATIVE_INFINITY;
  if (knownMax !== undefined) max = knownMax;
  else for (let i = 0; i < n; i++) if (x[i] > max) max = x[i];
  if (max === Number.NEGATIVE_INFINITY) return max;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    // expNeg(max − x[i]), inlined: this loop is the hot spot of a beam step
    const d = max - x[i];
    if (!(d < 708)) {
      if (Number.isNaN(d)) return Number.NaN;
      continue;
    }
    const k = Math.ceil(d * 256);
    const r = k / 256 - d;
    sum +=
      EXP_INT[k >> 8] *
      EXP_FRAC[k & 255] *
      (1 + r * (1 + r * (1 / 2 + r * (1 / 6 + r * (1 / 24 + r / 120)))));
  }
  return max + Math.log(sum);
}

/**
 * The `k` largest finite entries of `x` into `idx`/`val`, sorted by value descending (lower index first
 * on ties); returns how many were found (≤ k). One pass with a threshold test, O(n + hits·k).
 * @example
 * const n = topKInto(row, 8, new Int32Array(8), new Float64Array(8));
 */
export function topKInto(x: ArrayLike<number>, k: number, idx: Int32Array, val: Float64Array): number {
  let n = 0;
  let worst = Number.NEGATIVE_INFINITY;
  const len = x.length;
  for (let i = 0; i < len; i++) {
    const v = x[i];
    if (!(v > worst)) {
      // not above the current k-th (or not finite): only a not-yet-full list takes it
      if (n === k || !(v > Number.NEGATIVE_INFINITY)) continue;
    }
    let j = n < k ? n++ : k - 1;
    while (j > 0 && val[j - 1] < v) {
      val[j] = val[j - 1];
      idx[j] = idx[j - 1];
      j--;
    }
    val[j] = v;
    idx[j] = i;
    if (n === k) worst = val[k - 1];
  }
  return n;
}

/**
 * Index of the largest entry (the lowest index on ties); -1 when every entry is -Infinity or NaN.
 * @example
 * argmax(new Float64Array([0, 5, 5])); // 1
 */
export function argmax(x: ArrayLike<number>): number {
  let best = -1;
  let bv = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < x.length; i++) {
    if (x[i] > bv) {
      bv = x[i];
      best = i;
    }
  }
  return best;
}

/**
 * The `n` largest finite entries as [index, value] pairs, sorted by value descending (lower index first on ties).
 * @example
 * topN(new Float64Array([0.1, 0.7, 0.2]), 2); // [[1, 0.7], [2, 0.2]]
 */
export function topN(x: ArrayLike<number>, n: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  if (n <= 0) return out;
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    if (!(v > Number.NEGATIVE_INFINITY)) continue;
    if (out.length === n && v <= out[n - 1][1]) continue;
    // insertion keeps the small list sorted; ties keep the earlier index first
    let j = out.length < n ? out.length : n - 1;
    if (out.length < n) out.push([i, v]);
    else out[j] = [i, v];
    while (j > 0 && out[j - 1][1] < v) {
      const t = out[j - 1];
      out[j - 1] = out[j];
      out[j] = t;
      j--;
    }
  }
  return out;
}

/**
 * Tokens that would complete an n-gram already present in `history` (Hugging Face's
 * NoRepeatNGramLogitsProcessor: the last n−1 tokens are matched against every earlier n-gram).
 * @example
 * noRepeatNgramBans([1, 2, 3, 1, 2], 3); // [3]
 */
export function noRepeatNgramBans(history: ArrayLike<number>, n: number): number[] {
  const len = history.length;
  if (n <= 0 || len + 1 < n) return [];
  if (n === 1) return Array.from(new Set(Array.from(history)));
  const start = len - (n - 1); // the current (n-1)-gram prefix begins here
  const bans: number[] = [];
  for (let i = 0; i + n <= len; i++) {
    let match = true;
    for (let j = 0; j < n - 1; j++) {
      if (history[i + j] !== history[start + j]) {
        match = false;
        break;
      }
    }
    if (match) bans.push(history[i + n - 1]);
  }
  return bans;
}

/**
 * True when processScores would change anything for a sequence with `generatedLength` tokens.
 * @example
 * if (!processorsActive(cfg, tokens.length, V)) id = argmax(logits);
 */
export function processorsActive(cfg: ProcessorConfig, generatedLength: number, V: number): boolean {
  return (
    cfg.repetitionPenalty !== 1 ||
    cfg.presencePenalty !== 0 ||
    cfg.frequencyPenalty !== 0 ||
    cfg.noRepeatNgramSize > 0 ||
    (generatedLength < cfg.minNewTokens && cfg.eosIds.length > 0) ||
    cfg.vocabLimit < V
  );
}

/**
 * Applies the processors to one row of scores in place (logits for greedy/sampling, log-probs for
 * beam search as Hugging Face does). `prompt` and `generated` are this sequence's tokens so far;
 * `counts` holds how often each generated id occurred (for presence/frequency penalties).
 * @example
 * processScores(row, promptIds, generatedIds, counts, cfg);
 */
export function processScores(
  x: Float64Array,
  prompt: readonly number[],
  generated: readonly number[],
  counts: ReadonlyMap<number, number> | undefined,
  cfg: ProcessorConfig,
): Float64Array {
  const V = x.length;
  if (cfg.repetitionPenalty !== 1) {
    const p = cfg.repetitionPenalty;
    const seen = new Set<number>();
    const pen = (id: number) => {
      if (id < 0 || id >= V || seen.has(id)) return;
      seen.add(id);
      const v = x[id];
      x[id] = v < 0 ? v * p : v / p;
    };
    for (const id of prompt) pen(id);
    for (const id of generated) pen(id);
  }
  if ((cfg.presencePenalty !== 0 || cfg.frequencyPenalty !== 0) && counts) {
    for (const [id, c] of counts) {
      if (id >= 0 && id < V) x[id] -= cfg.presencePenalty + cfg.frequencyPenalty * c;
    }
  }
  if (cfg.noRepeatNgramSize > 0) {
    const hist = prompt.length === 0 ? generated : generated.length === 0 ? prompt : prompt.concat(generated);
    for (const id of noRepeatNgramBans(hist, cfg.noRepeatNgramSize)) {
      if (id >= 0 && id < V) x[id] = Number.NEGATIVE_INFINITY;
    }
  }
  if (generated.length < cfg.minNewTokens) {
    for (const id of cfg.eosIds) if (id >= 0 && id < V) x[id] = Number.NEGATIVE_INFINITY;
  }
  for (let i = cfg.vocabLimit; i < V; i++) x[i] = Number.NEGATIVE_INFINITY;
  return x;
}

// probabilities over a candidate list: p[j] = exp(z[j] − max) / Σ, summed in list (ascending id) order
function softmaxList(z: Float64Array, n: number, p: Float64Array): void {
  let max = Number.NEGATIVE_INFINITY;
  for (let j = 0; j < n; j++) if (z[j] > max) max = z[j];
  let sum = 0;
  for (let j = 0; j < n; j++) {
    const e = expNeg(max - z[j]);
    p[j] = e;
    sum += e;
  }
  for (let j = 0; j < n; j++) p[j] /= sum;
}

/** The tokens that survive the warpers, ascending by id, with their probabilities. */
export interface SamplingCandidates {
  n: number;
  ids: Int32Array;
  probs: Float64Array;
}

/**
 * The sampling distribution after the warpers, kept sparse: Hugging Face's order — scores /
 * temperature, then top-k (keep every score ≥ the k-th largest), top-p (keep the smallest set of
 * most probable tokens whose mass reaches topP; the token that crosses it is kept), min-p (keep
 * p ≥ minP · p_max), renormalising after each cut. Work is O(V) plus a sort of the tokens that can
 * pass top-p (those with p ≥ (1 − topP)/n).
 * @example
 * const c = samplingCandidates(logits, { temperature: 0.8, topK: 40, topP: 0.95, minP: 0 });
 */
export function samplingCandidates(scores: ArrayLike<number>, w: WarperConfig): SamplingCandidates {
  const V = scores.length;
  const T = w.temperature > 0 ? w.temperature : 1;
  // top-k threshold from the raw scores (dividing by T > 0 keeps the order)
  let thr = Number.NEGATIVE_INFINITY;
  if (w.topK > 0 && w.topK < V) {
    const ki = new Int32Array(w.topK);
    const kv = new Float64Array(w.topK);
    if (topKInto(scores, w.topK, ki, kv) === w.topK) thr = kv[w.topK - 1] / T;
  }
  let ids = new Int32Array(V);
  let z = new Float64Array(V);
  let n = 0;
  for (let i = 0; i < V; i++) {
    const zi = scores[i] / T;
    if (zi > Number.NEGATIVE_INFINITY && zi >= thr) {
      ids[n] = i;
      z[n++] = zi;
    }
  }
  let p = new Float64Array(n);
  softmaxList(z, n, p);
  if (w.topP < 1 && n > 1) {
    // a token whose probability is below (1 − topP)/n cannot be kept: the tokens above it carry > topP
    const floor = (1 - w.topP) / n;
    // walk the candidate probabilities from the largest (a native sort of the values), summing until
    // the mass reaches topP: that fixes the smallest kept value c and how many tokens are kept; ties
    // at c go to the lowest ids — the same set and the same sums as a sort by (p desc, id asc)
    let cnt = 0;
    for (let j = 0; j < n; j++) if (p[j] >= floor) cnt++;
    const vals = new Float64Array(cnt);
    cnt = 0;
    for (let j = 0; j < n; j++) if (p[j] >= floor) vals[cnt++] = p[j];
    vals.sort();
    let cum = 0;
    let m = 0;
    for (let q = cnt - 1; q >= 0; q--) {
      if (cum >= w.topP && m > 0) break;
      cum += vals[q];
      m++;
    }
    const c = vals[cnt - m];
    let atC = m;
    for (let j = 0; j < n; j++) if (p[j] > c) atC--;
    const ids2 = new Int32Array(m);
    const z2 = new Float64Array(m);
    let o = 0;
    for (let j = 0; j < n; j++) {
      if (p[j] > c || (p[j] === c && atC-- > 0)) {
        ids2[o] = ids[j];
        z2[o++] = z[j];
      }
    }
    ids = ids2;
    z = z2;
    n = m;
    p = new Float64Array(n);
    softmaxList(z, n, p);
  }
  if (w.minP > 0 && n > 1) {
    let pmax = 0;
    for (let j = 0; j < n; j++) if (p[j] > pmax) pmax = p[j];
    const cut = w.minP * pmax;
    let m = 0;
    for (let j = 0; j < n; j++) {
      if (p[j] >= cut) {
        ids[m] = ids[j];
        z[m++] = z[j];
      }
    }
    n = m;
    p = new Float64Array(n);
    softmaxList(z, n, p);
  }
  return { n, ids: ids.subarray(0, n), probs: p.subarray(0, n) };
}

/**
 * The sampling distribution after the warpers (see samplingCandidates) as a dense vector of length
 * V, zero where cut.
 * @example
 * const p = samplingDistribution(logits, { temperature: 0.8, topK: 40, topP: 0.95, minP: 0 });
 */
export function samplingDistribution(scores: ArrayLike<number>, w: WarperConfig): Float64Array {
  const c = samplingCandidates(scores, w);
  const p = new Float64Array(scores.length);
  for (let j = 0; j < c.n; j++) p[c.ids[j]] = c.probs[j];
  return p;
}

/**
 * Draws from sparse candidates with one uniform from `rng`, walking ids in ascending order; the
 * same draw as sampleIndex on the dense distribution.
 * @example
 * const id = sampleCandidate(samplingCandidates(logits, warpers), createRng(7));
 */
export function sampleCandidate(c: SamplingCandidates, rng: Rng): number {
  const u = rng.next();
  let total = 0;
  for (let j = 0; j < c.n; j++) total += c.probs[j];
  const target = u * total;
  let cum = 0;
  let last = -1;
  for (let j = 0; j < c.n; j++) {
    if (c.probs[j] <= 0) continue;
    cum += c.probs[j];
    last = c.ids[j];
    if (cum > target) return c.ids[j];
  }
  return last;
}

/**
 * Draws an index from probabilities `p` (summing to ~1) with one uniform from `rng`, walking ids in
 * ascending order. Deterministic for a given generator state.
 * @example
 * const id = sampleIndex(samplingDistribution(logits, warpers), createRng(7));
 */
export function sampleIndex(p: ArrayLike<number>, rng: Rng): number {
  const u = rng.next();
  let total = 0;
  for (let i = 0; i < p.length; i++) total += p[i];
  const target = u * total;
  let cum = 0;
  let last = -1;
  for (let i = 0; i < p.length; i++) {
    if (p[i] <= 0) continue;
    cum += p[i];
    last = i;
    if (cum > target) return i;
  }
  return last;
}
