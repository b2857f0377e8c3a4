// Reference beam search for tests: unbatched and deliberately plain. Every hypothesis's next-token
// distribution is recomputed from scratch with `fullLogits(prompt + tokens)` (no KV cache, no forks),
// every candidate list is fully sorted, and the processors are re-implemented here from their
// definitions. It follows the structure of transformers' `_beam_search` (main branch): top-K
// continuations → running beams → finished-beam merge → early-stop heuristic → loop condition,
// with placeholder (−1e9) beams replaced by "no beam".
export interface RefBeamConfig {
  numBeams: number;
  lengthPenalty: number;
  earlyStopping: boolean | 'never';
  maxNewTokens: number;
  minNewTokens: number;
  noRepeatNgramSize: number;
  repetitionPenalty: number;
  presencePenalty?: number;
  frequencyPenalty?: number;
  eosIds: number[];
  stop: string[];
  numReturnSequences: number;
}

export interface RefHyp {
  tokens: number[];
  sum: number;
  score: number;
  reason: 'stop' | 'length';
}

function logSoftmaxRef(x: Float64Array): number[] {
  const finite = Array.from(x).filter((v) => v > Number.NEGATIVE_INFINITY);
  const m = Math.max(...finite);
  const lse = m + Math.log(finite.reduce((s, v) => s + Math.exp(v - m), 0));
  return Array.from(x, (v) => v - lse);
}

// every token t such that (last n−1 tokens, t) already occurred as an n-gram
function bannedByNgram(hist: number[], n: number): Set<number> {
  const banned = new Set<number>();
  if (n <= 0 || hist.length < n - 1) return banned;
  const key = (a: number[]) => a.join(',');
  const seen = new Map<string, number[]>();
  for (let i = 0; i + n <= hist.length; i++) {
    const k = key(hist.slice(i, i + n - 1));
    const list = seen.get(k) ?? [];
    list.push(hist[i + n - 1]);
    seen.set(k, list);
  }
  for (const t of seen.get(key(hist.slice(hist.length - (n - 1)))) ?? []) banned.add(t);
  return banned;
}

/** Processed log-probs of the next token after prompt + tokens, as HF's beam search computes them. */
export function refStepLogprobs(
  fullLogits: (prefix: number[]) => Float64Array,
  prompt: number[],
  tokens: number[],
  c: Pick<
    RefBeamConfig,
    | 'minNewTokens'
    | 'noRepeatNgramSize'
    | 'repetitionPenalty'
    | 'presencePenalty'
    | 'frequencyPenalty'
    | 'eosIds'
  >,
): number[] {
  const hist = prompt.concat(tokens);
  const lp = logSoftmaxRef(fullLogits(hist));
  if (c.repetitionPenalty !== 1) {
    for (const t of new Set(hist))
      lp[t] = lp[t] < 0 ? lp[t] * c.repetitionPenalty : lp[t] / c.repetitionPenalty;
  }
  // OpenAI-style penalties over the generated tokens only
  for (const t of new Set(tokens)) {
    const count = tokens.filter((u) => u === t).length;
    lp[t] -= (c.presencePenalty ?? 0) + (c.frequencyPenalty ?? 0) * count;
  }
  for (const t of bannedByNgram(hist, c.noRepeatNgramSize)) lp[t] = Number.NEGATIVE_INFINITY;
  if (tokens.length < c.minNewTokens) for (const e of c.eosIds) lp[e] = Number.NEGATIVE_INFINITY;
  return lp;
}

/** The reference search. `decode` turns generated ids into text (only used for stop strings). */
export function refBeamSearch(
  fullLogits: (prefix: number[]) => Float64Array,
  vocab: number,
  prompt: number[],
  c: RefBeamConfig,
  decode: (ids: number[]) => string = () => '',
): RefHyp[] {
  const B = c.numBeams;
  const K = Math.max(2, 1 + c.eosIds.length) * B;
  let running: Array<{ tokens: number[]; sum: number }> = [{ tokens: [], sum: 0 }];
  let finished: RefHyp[] = [];
  let heuristicUnsatisfied = true;
  let lastRunning = running;
  for (let t = 1; t <= c.maxNewTokens; t++) {
    // all continuations of all running beams, fully sorted
    const all: Array<{ beam: number; token: number; sum: number }> = [];
    running.forEach((r, beam) => {
      const lp = refStepLogprobs(fullLogits, prompt, r.tokens, c);
      for (let token = 0; token < vocab; token++) {
        if (lp[token] > Number.NEGATIVE_INFINITY) all.push({ beam, token, sum: r.sum + lp[token] });
      }
    });
    all.sort((a, b) => b.sum - a.sum || a.beam - b.beam || a.token - b.token);
    const topK = all.slice(0, K).map((x) => {
      const tokens = running[x.beam].tokens.concat(x.token);
      let reason: 'stop' | 'length' | undefined;
      if (c.eosIds.includes(x.token)) reason = 'stop';
      else if (c.stop.some((s) => decode(tokens).includes(s))) reason = 'stop';
      else if (t === c.maxNewTokens) reason = 'length';
      return { tokens, sum: x.sum, reason };
    });
    // running beams for the next step: best B that did not finish
    const nextRunning = topK.filter((x) => x.reason === undefined).slice(0, B);
    // finished beams: only the top-B ranked candidates, only while improvement is possible
    const full = finished.length === B;
    const blocked = !heuristicUnsatisfied || (c.earlyStopping === true && full);
    const newlyFinished: RefHyp[] = blocked
      ? []
      : topK
          .slice(0, B)
          .filter((x) => x.reason !== undefined)
          .map((x) => ({
            tokens: x.tokens,
            sum: x.sum,
            score: x.sum / t ** c.lengthPenalty,
            reason: x.reason as 'stop' | 'length',
          }));
    finished = finished
      .concat(newlyFinished)
      .sort((a, b) => b.score - a.score)
      .slice(0, B);
    lastRunning = running;
    running = nextRunning.map((x) => ({ tokens: x.tokens, sum: x.sum }));
    // early-stop heuristic with t generated tokens
    if (heuristicUnsatisfied && running.length > 0) {
      const L = c.earlyStopping === 'never' && c.lengthPenalty > 0 ? c.maxNewTokens : t;
      const bestPossible = running[0].sum / L ** c.lengthPenalty;
      const worstFinished =
        finished.length === B ? Math.min(...finished.map((f) => f.score)) : Number.NEGATIVE_INFINITY;
      heuristicUnsatisfied = bestPossible > worstFinished;
    }
    const allFinishedAndEarly = finished.length === B && c.earlyStopping === true;
    if (!heuristicUnsatisfied || allFinishedAndEarly || running.length === 0) break;
  }
  if (finished.length === 0) {
    // edgelm's rule beyond HF: when no candidate was finite, the beams that were running are returned
    finished = lastRunning
      .filter((r) => r.tokens.length > 0)
      .map((r) => ({
        tokens: r.tokens,
        sum: r.sum,
        score: r.sum / r.tokens.length ** c.lengthPenalty,
        reason: 'stop' as const,
      }))
      .sort((a, b) => b.score - a.score);
  }
  return finished.slice(0, c.numReturnSequences);
}
