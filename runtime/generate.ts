// The generation loop: one resolver for options, then greedy / sampling or beam search, streamed as
// an async iterator of events. See docs/INTERFACES.md (runtime/generate.ts) for the contract.
import {
  type BeamConfig,
  type BeamSearchResult,
  beamSearch,
  COMPLETION_TEXT,
  findStop,
  type LogitsModel,
  type TokenizerLike,
  yieldToEventLoop,
} from './beam.ts';
import { ContextLengthError, OptionsError } from './errors.ts';
import { createRng } from './prng.ts';
import {
  argmax,
  logSumExp,
  processorsActive,
  processScores,
  sampleCandidate,
  samplingCandidates,
  topN,
} from './sample.ts';

export type { LogitsModel, TokenizerLike } from './beam.ts';

/** Options of one generation request. Every field is optional; see resolveOptions for defaults. */
export interface GenerateOptions {
  maxNewTokens?: number;
  minNewTokens?: number;
  temperature?: number;
  topK?: number;
  topP?: number;
  minP?: number;
  repetitionPenalty?: number;
  presencePenalty?: number;
  frequencyPenalty?: number;
  seed?: number;
  stop?: string[];
  stopTokenIds?: number[];
  logprobs?: boolean;
  topLogprobs?: number;
  numBeams?: number;
  lengthPenalty?: number;
  earlyStopping?: boolean | 'never';
  numReturnSequences?: number;
  noRepeatNgramSize?: number;
  signal?: AbortSignal;
  ignoreEos?: boolean;
}

/** Options after validation, every field set. `mode` says which chooser runs. */
export interface ResolvedOptions {
  mode: 'greedy' | 'sample' | 'beam';
  maxNewTokens: number;
  minNewTokens: number;
  temperature: number;
  topK: number;
  topP: number;
  minP: number;
  repetitionPenalty: number;
  presencePenalty: number;
  frequencyPenalty: number;
  seed: number;
  stop: string[];
  stopTokenIds: number[];
  logprobs: boolean;
  topLogprobs: number;
  numBeams: number;
  lengthPenalty: number;
  earlyStopping: boolean | 'never';
  numReturnSequences: number;
  noRepeatNgramSize: number;
  signal: AbortSignal | undefined;
  ignoreEos: boolean;
}

export type GenerateEvent =
  | {
      type: 'token';
      text: string;
      tokenId: number;
      logprob?: number;
      topLogprobs?: Array<{ id: number; text: string; logprob: number }>;
    }
  | { type: 'beams'; step: number; beams: Array<{ tokens: number[]; score: number; parent: number }> }
  | { type: 'done'; result: GenerateResult };

export interface GenerateResult {
  sequences: Array<{
    tokens: number[];
    text: string;
    score: number;
    finishReason: 'stop' | 'length' | 'abort';
  }>;
  promptTokens: number;
  completionTokens: number;
  timings: { prefillMs: number; decodeMs: number };
}

/** Limits enforced by resolveOptions. */
export const LIMITS = {
  maxBeams: 16,
  defaultMaxNewTokens: 256,
  maxStopStrings: 16,
  maxStopLength: 256,
  maxStopTokenIds: 64,
  maxTopLogprobs: 20,
  maxTemperature: 100,
  maxNoRepeatNgram: 64,
} as const;

const KEYS = new Set<string>([
  'maxNewTokens',
  'minNewTokens',
  'temperature',
  'topK',
  'topP',
  'minP',
  'repetitionPenalty',
  'presencePenalty',
  'frequencyPenalty',
  'seed',
  'stop',
  'stopTokenIds',
  'logprobs',
  'topLogprobs',
  'numBeams',
  'lengthPenalty',
  'earlyStopping',
  'numReturnSequences',
  'noRepeatNgramSize',
  'signal',
  'ignoreEos',
]);

function bad(field: string, message: string, hint?: string): never {
  throw new OptionsError(`${field}: ${message}`, { field, hint });
}

function num(o: Record<string, unknown>, field: string): number | undefined {
  const v = o[field];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) bad(field, `must be a finite number, got ${String(v)}`);
  return v;
}

function int(o: Record<string, unknown>, field: string, min: number, max: number): number | undefined {
  const v = num(o, field);
  if (v === undefined) return undefined;
  if (!Number.isInteger(v)) bad(field, `must be an integer, got ${v}`);
  if (v < min || v > max) bad(field, `must be in ${min}..${max}, got ${v}`);
  return v;
}

function bool(o: Record<string, unknown>, field: string): boolean | undefined {
  const v = o[field];
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') bad(field, `must be true or false, got ${String(v)}`);
  return v;
}

/**
 * Validates a partial options object and fills in the defaults. Throws OptionsError (with `field`)
 * for unknown keys and nonsense, ContextLengthError when prompt + maxNewTokens exceeds the context.
 *
 * Defaults: maxNewTokens min(256, context − prompt); minNewTokens 0; temperature 0 (greedy) — or 1
 * when topK/topP/minP is set without a temperature; topK 0 (off); topP 1 (off); minP 0 (off);
 * repetitionPenalty 1 (off; HF style over prompt + output); presencePenalty, frequencyPenalty 0
 * (OpenAI style over the output); seed random; stop []; stopTokenIds []; logprobs false;
 * topLogprobs 0; numBeams 1; lengthPenalty 1; earlyStopping false (HF's default); numReturnSequences
 * 1; noRepeatNgramSize 0; ignoreEos false.
 *
 * Ranges: maxNewTokens ≥ 1; 0 ≤ minNewTokens ≤ maxNewTokens; 0 ≤ temperature ≤ 100; topK ≥ 0 integer;
 * 0 < topP ≤ 1; 0 ≤ minP ≤ 1; repetitionPenalty > 0; presence/frequency in [−2, 2]; seed a safe
 * integer; ≤ 16 non-empty stop strings of ≤ 256 chars; ≤ 64 stopTokenIds inside the vocabulary;
 * topLogprobs 0..20 and only with logprobs; numBeams 1..16 integer; numReturnSequences 1..numBeams;
 * lengthPenalty finite; earlyStopping true | false | "never"; noRepeatNgramSize 0..64. Beam search
 * with sampling (numBeams > 1 and temperature > 0 or any sampling option) is rejected, and so is
 * topLogprobs with beam search (logprobs alone gives each token's log-probability).
 * @example
 * const r = resolveOptions({ numBeams: 4 }, { vocabSize: 32000, contextLength: 512, promptTokens: 12 });
 * r.mode; // 'beam'
 */
export function resolveOptions(
  o: Partial<GenerateOptions>,
  ctx: { vocabSize: number; contextLength: number; promptTokens: number },
): ResolvedOptions {
  if (o === null || typeof o !== 'object' || Array.isArray(o)) {
    throw new OptionsError('options must be an object', { field: 'options' });
  }
  const rec = o as Record<string, unknown>;
  for (const k of Object.keys(rec)) {
    if (!KEYS.has(k)) bad(k, 'unknown option', `known options: ${[...KEYS].join(', ')}`);
  }
  const room = ctx.contextLength - ctx.promptTokens;
  let maxNewTokens = int(rec, 'maxNewTokens', 1, Number.MAX_SAFE_INTEGER);
  if (maxNewTokens === undefined) {
    if (room < 1) {
      throw new ContextLengthError(
        `the prompt has ${ctx.promptTokens} tokens and the context holds ${ctx.contextLength}: no room to generate`,
        { field: 'prompt', hint: 'shorten the prompt' },
      );
    }
    maxNewTokens = Math.min(LIMITS.defaultMaxNewTokens, room);
  } else if (maxNewTokens > room) {
    throw new ContextLengthError(
      `prompt (${ctx.promptTokens} tokens) + maxNewTokens (${maxNewTokens}) exceeds the context of ${ctx.contextLength}`,
      { field: 'maxNewTokens', hint: `use maxNewTokens ≤ ${Math.max(0, room)} or a shorter prompt` },
    );
  }
  const minNewTokens = int(rec, 'minNewTokens', 0, Number.MAX_SAFE_INTEGER) ?? 0;
  if (minNewTokens > maxNewTokens)
    bad('minNewTokens', `(${minNewTokens}) exceeds maxNewTokens (${maxNewTokens})`);

  let temperature = num(rec, 'temperature');
  if (temperature !== undefined && (temperature < 0 || temperature > LIMITS.maxTemperature)) {
    bad('temperature', `must be in [0, ${LIMITS.maxTemperature}], got ${temperature}`);
  }
  const topK = int(rec, 'topK', 0, Number.MAX_SAFE_INTEGER);
  const topP = num(rec, 'topP');
  if (topP !== undefined && !(topP > 0 && topP <= 1)) bad('topP', `must be in (0, 1], got ${topP}`);
  const minP = num(rec, 'minP');
  if (minP !== undefined && !(minP >= 0 && minP <= 1)) bad('minP', `must be in [0, 1], got ${minP}`);
  const samplingAsked = (topK ?? 0) > 0 || (topP ?? 1) < 1 || (minP ?? 0) > 0;
  if (temperature === undefined) temperature = samplingAsked ? 1 : 0;

  const repetitionPenalty = num(rec, 'repetitionPenalty') ?? 1;
  if (!(repetitionPenalty > 0)) bad('repetitionPenalty', `must be > 0, got ${repetitionPenalty}`);
  const presencePenalty = num(rec, 'presencePenalty') ?? 0;
  if (presencePenalty < -2 || presencePenalty > 2)
    bad('presencePenalty', `must be in [-2, 2], got ${presencePenalty}`);
  const frequencyPenalty = num(rec, 'frequencyPenalty') ?? 0;
  if (frequencyPenalty < -2 || frequencyPenalty > 2) {
    bad('frequencyPenalty', `must be in [-2, 2], got ${frequencyPenalty}`);
  }
  let seed = num(rec, 'seed');
  if (seed !== undefined && !Number.isSafeInteger(seed)) bad('seed', `must be a safe integer, got ${seed}`);
  if (seed === undefined) seed = Math.floor(Math.random() * 4294967296);

  const stopRaw = rec.stop;
  let stop: string[] = [];
  if (stopRaw !== undefined) {
    if (!Array.isArray(stopRaw)) bad('stop', 'must be an array of strings');
    if (stopRaw.length > LIMITS.maxStopStrings) bad('stop', `at most ${LIMITS.maxStopStrings} stop strings`);
    for (const s of stopRaw) {
      if (typeof s !== 'string' || s.length === 0 || s.length > LIMITS.maxStopLength) {
        bad(
          'stop',
          `each stop string must be a non-empty string of at most ${LIMITS.maxStopLength} characters`,
        );
      }
    }
    stop = stopRaw.slice();
  }
  const idsRaw = rec.stopTokenIds;
  let stopTokenIds: number[] = [];
  if (idsRaw !== undefined) {
    if (!Array.isArray(idsRaw)) bad('stopTokenIds', 'must be an array of token ids');
    if (idsRaw.length > LIMITS.maxStopTokenIds) bad('stopTokenIds', `at most ${LIMITS.maxStopTokenIds} ids`);
    for (const id of idsRaw) {
      if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= ctx.vocabSize) {
        bad('stopTokenIds', `${String(id)} is not a token id in 0..${ctx.vocabSize - 1}`);
      }
    }
    stopTokenIds = [...new Set(idsRaw as number[])];
  }
  const logprobs = bool(rec, 'logprobs') ?? false;
  const topLogprobs = int(rec, 'topLogprobs', 0, LIMITS.maxTopLogprobs) ?? 0;
  if (topLogprobs > 0 && !logprobs) bad('topLogprobs', 'needs logprobs: true');

  const numBeams = int(rec, 'numBeams', 1, LIMITS.maxBeams) ?? 1;
  const lengthPenalty = num(rec, 'lengthPenalty') ?? 1;
  const es = rec.earlyStopping;
  if (es !== undefined && es !== true && es !== false && es !== 'never') {
    bad('earlyStopping', `must be true, false or "never", got ${JSON.stringify(es)}`);
  }
  const earlyStopping = (es as boolean | 'never' | undefined) ?? false;
  const numReturnSequences = int(rec, 'numReturnSequences', 1, LIMITS.maxBeams) ?? 1;
  if (numReturnSequences > numBeams) {
    bad('numReturnSequences', `(${numReturnSequences}) exceeds numBeams (${numBeams})`, 'raise numBeams');
  }
  const noRepeatNgramSize = int(rec, 'noRepeatNgramSize', 0, LIMITS.maxNoRepeatNgram) ?? 0;
  const signal = rec.signal as AbortSignal | undefined;
  if (
    signal !== undefined &&
    (typeof signal !== 'object' || signal === null || typeof signal.aborted !== 'boolean')
  ) {
    bad('signal', 'must be an AbortSignal');
  }
  const ignoreEos = bool(rec, 'ignoreEos') ?? false;

  if (numBeams > 1 && (temperature > 0 || samplingAsked)) {
    bad(
      'numBeams',
      'beam search cannot be combined with sampling (temperature > 0, topK, topP or minP)',
      'use numBeams: 1 to sample, or temperature: 0 for beam search',
    );
  }
  if (numBeams > 1 && topLogprobs > 0) {
    bad('topLogprobs', 'is not available with beam search', "beam search reports each token's logprob only");
  }
  const mode = numBeams > 1 ? 'beam' : temperature > 0 ? 'sample' : 'greedy';
  return {
    mode,
    maxNewTokens,
    minNewTokens,
    temperature,
    topK: topK ?? 0,
    topP: topP ?? 1,
    minP: minP ?? 0,
    repetitionPenalty,
    presencePenalty,
    frequencyPenalty,
    seed,
    stop,
    stopTokenIds,
    logprobs,
    topLogprobs,
    numBeams,
    lengthPenalty,
    earlyStopping,
    numReturnSequences,
    noRepeatNgramSize,
    signal,
    ignoreEos,
  };
}

/**
 * Releases streamed text while holding back any suffix that could still become a stop string, so a
 * stop string split over several tokens never leaks into the output.
 * @example
 * const m = new StopMatcher(['\n\n']);
 * m.push('a\n', false); // { text: 'a', stopped: false }
 * m.push('\nb', false); // { text: '', stopped: true }
 */
export class StopMatcher {
  private held = '';
  constructor(private readonly stops: readonly string[]) {}
  /** Adds `delta`; returns the text that is now safe to emit and whether a stop string was found. */
  push(delta: string, final: boolean): { text: string; stopped: boolean } {
    this.held += delta;
    const held = this.held;
    if (this.stops.length === 0) {
      this.held = '';
      return { text: held, stopped: false };
    }
    const at = findStop(held, this.stops);
    if (at >= 0) {
      this.held = '';
      return { text: held.slice(0, at), stopped: true };
    }
    if (final) {
      this.held = '';
      return { text: held, stopped: false };
    }
    // keep the longest suffix of held that is a proper prefix of some stop string
    let keep = 0;
    for (const s of this.stops) {
      for (let n = Math.min(s.length - 1, held.length); n > keep; n--) {
        if (held.endsWith(s.slice(0, n))) {
          keep = n;
          break;
        }
      }
    }
    this.held = held.slice(held.length - keep);
    return { text: held.slice(0, held.length - keep), stopped: false };
  }
}

function checkPrompt(promptIds: readonly number[], vocabSize: number): void {
  if (!Array.isArray(promptIds) || promptIds.length === 0) {
    throw new OptionsError('prompt: needs at least one token', {
      field: 'prompt',
      hint: "start from the tokenizer's BOS token for an empty prompt",
    });
  }
  for (let i = 0; i < promptIds.length; i++) {
    const id = promptIds[i];
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
      throw new OptionsError(`prompt: token ${i} is ${id}, not an id in 0..${vocabSize - 1}`, {
        field: 'prompt',
      });
    }
  }
}

const now = (): number => (typeof performance !== 'undefined' ? performance.now() : Date.now());

/**
 * Generates a continuation of `promptIds`, as an async iterator of events.
 *
 * - Greedy (default) and sampling (temperature > 0): one `token` event per generated token, with the
 *   text it releases (UTF-8 safe through the tokenizer's stream decoder; text that could be the start
 *   of a stop string is held back until it is known not to be one, and a stop string is never
 *   emitted), then `done`. `logprob`/`topLogprobs` are the model's own log-probabilities (log-softmax
 *   of the raw logits, before penalties and warpers); the sequence's `score` is their sum.
 * - Beam search (numBeams > 1): a `beams` event after every step with the running beams, best first
 *   (`beams[0]` is the provisional best; `parent` indexes the previous event's list, so a client can
 *   draw the tree). When the search ends, `token` events replay the final best sequence (with the
 *   per-token log-probabilities that make up its score), then `done` with every returned sequence
 *   and its score (sum of log-probs / length^lengthPenalty, length counting the EOS).
 *
 * Sequences end at an EOS token (unless ignoreEos), a stop token id, a stop string or maxNewTokens.
 * `tokens` include the EOS/stop token that ended a sequence; `text` never includes special tokens,
 * the text of that EOS/stop token, or the stop string. completionTokens counts the tokens of every returned sequence. When
 * `signal` fires, generation stops before the next step and `done` reports finishReason 'abort'
 * (text held back for a possible stop string is then dropped). Every model sequence is freed on exit,
 * including when the consumer stops iterating early.
 * @example
 * for await (const ev of generate(model, tokenizer, tokenizer.encode('Once'), { maxNewTokens: 20 })) {
 *   if (ev.type === 'token') process.stdout.write(ev.text);
 * }
 */
export async function* generate<S>(
  model: LogitsModel<S>,
  tokenizer: TokenizerLike,
  promptIds: number[],
  opts: Partial<GenerateOptions> = {},
): AsyncGenerator<GenerateEvent> {
  const V = model.info.vocabSize;
  checkPrompt(promptIds, V);
  const o = resolveOptions(opts, {
    vocabSize: V,
    contextLength: model.info.contextLength,
    promptTokens: promptIds.length,
  });
  const eosIds = [
    ...new Set([...(o.ignoreEos || tokenizer.eos === undefined ? [] : [tokenizer.eos]), ...o.stopTokenIds]),
  ];
  const proc = {
    repetitionPenalty: o.repetitionPenalty,
    presencePenalty: o.presencePenalty,
    frequencyPenalty: o.frequencyPenalty,
    noRepeatNgramSize: o.noRepeatNgramSize,
    minNewTokens: o.minNewTokens,
    eosIds,
    vocabLimit: Math.min(V, tokenizer.vocabSize),
  };
  if (o.signal?.aborted) {
    yield {
      type: 'done',
      result: {
        sequences: [{ tokens: [], text: '', score: 0, finishReason: 'abort' }],
        promptTokens: promptIds.length,
        completionTokens: 0,
        timings: { prefillMs: 0, decodeMs: 0 },
      },
    };
    return;
  }
  const tokenText = (id: number) => tokenizer.decode([id], { skipSpecial: false, stripLeadingSpace: false });

  if (o.mode === 'beam') {
    const cfg: BeamConfig = {
      ...proc,
      numBeams: o.numBeams,
      lengthPenalty: o.lengthPenalty,
      earlyStopping: o.earlyStopping,
      maxNewTokens: o.maxNewTokens,
      numReturnSequences: o.numReturnSequences,
      stop: o.stop,
    };
    const it = beamSearch(model, tokenizer, promptIds, cfg, o.signal);
    let r: IteratorResult<GenerateEvent, BeamSearchResult>;
    try {
      r = await it.next();
      while (!r.done) {
        yield r.value;
        r = await it.next();
      }
    } finally {
      // the consumer stopped early (or an error): let beamSearch free its sequences
      await it.return(undefined as never);
    }
    const res = r.value;
    const eos = new Set(eosIds);
    const sequences: GenerateResult['sequences'] = [];
    for (let i = 0; i < res.hypotheses.length; i++) {
      const h = res.hypotheses[i];
      // replay the best sequence as token events through the same streaming path as greedy
      const sd = tokenizer.streamDecoder(COMPLETION_TEXT);
      const sm = new StopMatcher(o.stop);
      let text = '';
      for (let j = 0; j < h.tokens.length; j++) {
        const id = h.tokens[j];
        const last = j === h.tokens.length - 1;
        let delta = eos.has(id) ? '' : sd.push(id);
        if (last) delta += sd.flush();
        const out = sm.push(delta, last);
        text += out.text;
        if (i === 0) {
          const ev: GenerateEvent = { type: 'token', text: out.text, tokenId: id };
          if (o.logprobs) ev.logprob = h.tokenLogprobs[j];
          yield ev;
        }
        if (out.stopped) break;
      }
      sequences.push({ tokens: h.tokens, text, score: h.score, finishReason: h.finishReason });
    }
    yield {
      type: 'done',
      result: {
        sequences,
        promptTokens: promptIds.length,
        completionTokens: sequences.reduce((n, s) => n + s.tokens.length, 0),
        timings: { prefillMs: res.prefillMs, decodeMs: res.decodeMs },
      },
    };
    return;
  }

  // greedy and sampling: one sequence
  const seq = model.newSequence();
  try {
    const t0 = now();
    let logits = model.prefill(seq, promptIds);
    const t1 = now();
    const rng = createRng(o.seed);
    const sd = tokenizer.streamDecoder(COMPLETION_TEXT);
    const sm = new StopMatcher(o.stop);
    const eos = new Set(eosIds);
    const tokens: number[] = [];
    const counts = new Map<number, number>();
    const row = new Float64Array(V);
    let text = '';
    let sumLogprob = 0;
    let finishReason: 'stop' | 'length' | 'abort' = 'length';
    // a model that reports row stats decodes into one reused buffer and hands back the argmax and
    // log-sum-exp it computed beside the logits (runtime/model.ts: in WASM)
    const fast = model.rowStats === true;
    const outBuf = fast ? new Float32Array(V) : undefined;
    const st = fast ? { argmax: new Int32Array(1), logSumExp: new Float64Array(1) } : undefined;
    let haveStats = false;
    for (let step = 1; step <= o.maxNewTokens; step++) {
      // the model's own log-probabilities are logits − lse; processors and warpers work on a copy
      let scores: ArrayLike<number> = logits;
      const processed = o.mode === 'sample' || processorsActive(proc, tokens.length, V);
      if (processed) {
        for (let i = 0; i < V; i++) row[i] = logits[i];
        processScores(row, promptIds, tokens, counts, proc);
        scores = row;
      }
      let id =
        o.mode === 'sample'
          ? sampleCandidate(samplingCandidates(scores, o), rng)
          : !processed && haveStats && st
            ? st.argmax[0]
            : argmax(scores);
      if (id < 0) id = argmax(logits); // every token banned: fall back to the raw argmax
      if (id < 0) throw new Error('generate: the model returned no finite logit');
      // the score needs the log-prob of every chosen token: one pass of exps over the vocabulary
      // (greedy on raw logits: the chosen logit is the row's max, so no max pass)
      const lse = haveStats && st ? st.logSumExp[0] : logSumExp(logits, processed ? undefined : logits[id]);
      const logprob = logits[id] - lse;
      tokens.push(id);
      counts.set(id, (counts.get(id) ?? 0) + 1);
      const isEos = eos.has(id);
      const last = isEos || step === o.maxNewTokens;
      let delta = isEos ? '' : sd.push(id);
      if (last) delta += sd.flush();
      const out = sm.push(delta, last);
      text += out.text;
      const ev: GenerateEvent = { type: 'token', text: out.text, tokenId: id };
      sumLogprob += logprob;
      if (o.logprobs) {
        ev.logprob = logprob;
        if (o.topLogprobs > 0) {
          ev.topLogprobs = topN(logits, o.topLogprobs).map(([tid, x]) => ({
            id: tid,
            text: tokenText(tid),
            logprob: x - lse,
          }));
        }
      }
      yield ev;
      if (out.stopped || isEos) {
        finishReason = 'stop';
        break;
      }
      if (step === o.maxNewTokens) break;
      await yieldToEventLoop();
      if (o.signal?.aborted) {
        finishReason = 'abort';
        break;
      }
      logits = model.decode([seq], [id], outBuf, st);
      haveStats = fast;
    }
    const t2 = now();
    yield {
      type: 'done',
      result: {
        sequences: [{ tokens, text, score: sumLogprob, finishReason }],
        promptTokens: promptIds.length,
        completionTokens: tokens.length,
        timings: { prefillMs: t1 - t0, decodeMs: t2 - t1 },
      },
    };
  } finally {
    model.free(seq);
  }
}
