// From a validated request to runtime options (the plan), and the loop that runs it: one
// generate() per prompt for beam search (its n sequences come from the beams), n generate() calls
// per prompt otherwise. Yields events both the JSON and the SSE writers consume.
import { ApiError } from './errors.ts';
import type { Limits } from './limits.ts';
import type { FinishReason, GenOptions, ModelHandle } from './model-handle.ts';

/** What a request asked for, after validation, in the runtime's terms. */
export interface Plan {
  options: GenOptions;
  n: number;
  numBeams: number;
  /** top logprobs per token when logprobs were asked for, else null */
  logprobs: number | null;
}

/** The fields of a completion or chat body that shape generation. */
export interface SamplingFields {
  max_tokens?: number | null;
  min_tokens?: number | null;
  temperature?: number | null;
  top_p?: number | null;
  n?: number | null;
  stop?: string | string[] | null;
  seed?: number | null;
  presence_penalty?: number | null;
  frequency_penalty?: number | null;
  top_k?: number | null;
  min_p?: number | null;
  repetition_penalty?: number | null;
  num_beams?: number | null;
  length_penalty?: number | null;
  early_stopping?: boolean | 'never' | null;
  no_repeat_ngram_size?: number | null;
  ignore_eos?: boolean | null;
}

/**
 * Checks a request against the limits and the model's context and builds the runtime options.
 * Everything a caller got wrong is a 400 naming the field; prompt + max_tokens over the context is
 * `context_length_exceeded`, at once.
 * @example
 * const plan = planRequest(body, { promptLengths: [12], promptParam: 'prompt', contextLength: 512,
 *   defaultMaxTokens: 16, logprobs: null }, limits);
 */
export function planRequest(
  body: SamplingFields,
  ctx: {
    promptLengths: number[];
    promptParam: string;
    contextLength: number;
    defaultMaxTokens: number;
    logprobs: number | null;
    maxTokensParam?: string;
  },
  limits: Limits,
): Plan {
  const n = body.n ?? 1;
  const numBeams = body.num_beams ?? 1;
  const maxTokensParam = ctx.maxTokensParam ?? 'max_tokens';
  if (numBeams > 1 && n > numBeams)
    throw new ApiError(
      400,
      `n (${n}) must not exceed num_beams (${numBeams}): the n sequences come from the beams`,
      {
        param: 'n',
        code: 'invalid_value',
      },
    );
  if (numBeams > 1 && ctx.logprobs !== null)
    throw new ApiError(400, 'logprobs are not available with beam search (num_beams > 1)', {
      param: 'logprobs',
      code: 'unsupported_parameter',
    });
  const choices = ctx.promptLengths.length * n;
  if (choices > limits.maxN)
    throw new ApiError(400, `prompts × n = ${choices} choices; this server allows at most ${limits.maxN}`, {
      param: 'n',
      code: 'invalid_value',
    });
  const longest = Math.max(...ctx.promptLengths);
  const shortest = Math.min(...ctx.promptLengths);
  if (shortest === 0)
    throw new ApiError(400, `${ctx.promptParam} is empty after tokenization`, {
      param: ctx.promptParam,
      code: 'invalid_value',
    });
  if (longest > limits.maxPromptTokens)
    throw new ApiError(
      400,
      `the prompt is ${longest} tokens; this server accepts at most ${limits.maxPromptTokens} prompt tokens`,
      { param: ctx.promptParam, code: 'context_length_exceeded' },
    );
  if (longest >= ctx.contextLength)
    throw new ApiError(
      400,
      `This model's maximum context length is ${ctx.contextLength} tokens; the prompt alone is ${longest} tokens.`,
      { param: ctx.promptParam, code: 'context_length_exceeded' },
    );
  // sequences one prompt keeps alive at a time × prompts run: the per-request work bound
  const lanes = ctx.promptLengths.length * (numBeams > 1 ? numBeams : n);
  const workCap = Math.floor(limits.maxWorkTokens / lanes);
  let maxNew: number;
  if (body.max_tokens != null) {
    maxNew = body.max_tokens;
    if (longest + maxNew > ctx.contextLength)
      throw new ApiError(
        400,
        `This model's maximum context length is ${ctx.contextLength} tokens. However, you requested ` +
          `${longest + maxNew} tokens (${longest} in the prompt, ${maxNew} for the completion).`,
        { param: maxTokensParam, code: 'context_length_exceeded' },
      );
    if (maxNew > workCap)
      throw new ApiError(
        400,
        `${maxTokensParam} × ${numBeams > 1 ? 'num_beams' : 'n'} × prompts = ${maxNew * lanes} tokens, over this ` +
          `server's per-request bound of ${limits.maxWorkTokens}; ask for at most ${workCap}`,
        { param: maxTokensParam, code: 'invalid_value' },
      );
  } else {
    maxNew = Math.min(ctx.defaultMaxTokens, limits.maxTokens, workCap, ctx.contextLength - longest);
    if (maxNew < 1)
      throw new ApiError(
        400,
        `no room left in this server's per-request bound of ${limits.maxWorkTokens} tokens`,
        {
          param: numBeams > 1 ? 'num_beams' : 'n',
          code: 'invalid_value',
        },
      );
  }
  if (body.min_tokens != null && body.min_tokens > maxNew)
    throw new ApiError(400, `min_tokens (${body.min_tokens}) is greater than max_tokens (${maxNew})`, {
      param: 'min_tokens',
      code: 'invalid_value',
    });
  const stop =
    body.stop == null ? undefined : typeof body.stop === 'string' ? [body.stop] : body.stop.slice();
  const options: GenOptions = {
    maxNewTokens: maxNew,
    // OpenAI's default temperature is 1; beam search defaults to deterministic beams
    temperature: body.temperature ?? (numBeams > 1 ? 0 : 1),
  };
  if (body.min_tokens != null && body.min_tokens > 0) options.minNewTokens = body.min_tokens;
  if (body.top_p != null) options.topP = body.top_p;
  if (body.top_k != null && body.top_k > 0) options.topK = body.top_k;
  if (body.min_p != null && body.min_p > 0) options.minP = body.min_p;
  if (body.repetition_penalty != null) options.repetitionPenalty = body.repetition_penalty;
  if (body.presence_penalty != null) options.presencePenalty = body.presence_penalty;
  if (body.frequency_penalty != null) options.frequencyPenalty = body.frequency_penalty;
  if (body.seed != null) options.seed = toU32(body.seed);
  if (stop && stop.length > 0) options.stop = stop;
  if (ctx.logprobs !== null) {
    options.logprobs = true;
    if (ctx.logprobs > 0) options.topLogprobs = ctx.logprobs;
  }
  if (numBeams > 1) {
    options.numBeams = numBeams;
    options.numReturnSequences = n;
    if (body.length_penalty != null) options.lengthPenalty = body.length_penalty;
    if (body.early_stopping != null) options.earlyStopping = body.early_stopping;
  } else if (body.length_penalty != null || body.early_stopping != null) {
    const param = body.length_penalty != null ? 'length_penalty' : 'early_stopping';
    throw new ApiError(400, `${param} applies to beam search only; set num_beams > 1`, {
      param,
      code: 'invalid_value',
    });
  }
  if (body.no_repeat_ngram_size != null && body.no_repeat_ngram_size > 0)
    options.noRepeatNgramSize = body.no_repeat_ngram_size;
  if (body.ignore_eos) options.ignoreEos = true;
  return { options, n, numBeams, logprobs: ctx.logprobs };
}

function toU32(seed: number): number {
  const m = seed % 4294967296;
  return m < 0 ? m + 4294967296 : m;
}

export interface TokenLogprob {
  token: string;
  logprob: number;
  top: Array<{ token: string; logprob: number }>;
}

/** Events of one request, in choice order. */
export type RunEvent =
  | { type: 'delta'; index: number; text: string; logprob?: TokenLogprob }
  | {
      type: 'beams';
      prompt: number;
      step: number;
      beams: Array<{ token: number; text: string; score: number; parent: number }>;
    }
  | {
      type: 'finish';
      index: number;
      text: string;
      finishReason: 'stop' | 'length';
      tokens?: number[];
      score?: number;
    }
  | { type: 'usage'; promptTokens: number; completionTokens: number };

function finishOf(r: FinishReason): 'stop' | 'length' {
  return r === 'length' ? 'length' : 'stop';
}

/**
 * Runs a plan over the prompts. Stops (and lets the runtime free its sequences) when `signal`
 * aborts; the caller turns the events into JSON or SSE.
 * @example
 * for await (const ev of runPlan(model, [[1, 2, 3]], plan, signal)) if (ev.type === 'delta') out += ev.text;
 */
export async function* runPlan(
  model: ModelHandle,
  prompts: number[][],
  plan: Plan,
  signal: AbortSignal,
): AsyncGenerator<RunEvent> {
  let promptTokens = 0;
  let completionTokens = 0;
  const tok = model.tokenizer;
  const pieceOf = (id: number) => tok.decode([id], { skipSpecial: false, stripLeadingSpace: false });
  for (const [pi, ids] of prompts.entries()) {
    if (plan.numBeams > 1) {
      const opts: GenOptions = { ...plan.options, signal };
      let done = false;
      for await (const ev of model.generate(ids, opts)) {
        if (ev.type === 'beams') {
          yield {
            type: 'beams',
            prompt: pi,
            step: ev.step,
            beams: ev.beams.map((b) => {
              const last = b.tokens[b.tokens.length - 1] ?? -1;
              return { token: last, text: last >= 0 ? pieceOf(last) : '', score: b.score, parent: b.parent };
            }),
          };
        } else if (ev.type === 'done') {
          done = true;
          promptTokens += ev.result.promptTokens;
          completionTokens += ev.result.completionTokens;
          for (const [j, s] of ev.result.sequences.slice(0, plan.n).entries()) {
            yield {
              type: 'finish',
              index: pi * plan.n + j,
              text: s.text,
              finishReason: finishOf(s.finishReason),
              tokens: s.tokens,
              score: s.score,
            };
          }
        }
      }
      if (!done && !signal.aborted) throw new Error('generation ended without a result');
      continue;
    }
    for (let j = 0; j < plan.n; j++) {
      const opts: GenOptions = { ...plan.options, signal };
      if (plan.options.seed !== undefined) opts.seed = (plan.options.seed + j) >>> 0;
      let done = false;
      for await (const ev of model.generate(ids, opts)) {
        if (ev.type === 'token') {
          const delta: RunEvent = { type: 'delta', index: pi * plan.n + j, text: ev.text };
          if (plan.logprobs !== null && ev.logprob !== undefined) {
            delta.logprob = {
              token: pieceOf(ev.tokenId),
              logprob: ev.logprob,
              top: (ev.topLogprobs ?? []).map((t) => ({ token: t.text, logprob: t.logprob })),
            };
          }
          yield delta;
        } else if (ev.type === 'done') {
          done = true;
          if (j === 0) promptTokens += ev.result.promptTokens;
          completionTokens += ev.result.completionTokens;
          const s = ev.result.sequences[0];
          yield {
            type: 'finish',
            index: pi * plan.n + j,
            text: s?.text ?? '',
            finishReason: finishOf(s?.finishReason ?? 'stop'),
          };
        }
      }
      if (!done && !signal.aborted) throw new Error('generation ended without a result');
    }
  }
  yield { type: 'usage', promptTokens, completionTokens };
}
