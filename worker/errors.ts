// HTTP errors in OpenAI's envelope, and the one place runtime errors become statuses.
import {
  AbortError,
  BudgetError,
  ContextLengthError,
  EdgeLMError,
  FormatError,
  OptionsError,
  UnsupportedError,
} from '../runtime/errors.ts';

export type ErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'not_found_error'
  | 'rate_limit_error'
  | 'server_error'
  | 'service_unavailable';

/** An error with an HTTP status, rendered as `{"error":{"message","type","param","code"}}`. */
export class ApiError extends Error {
  readonly status: number;
  readonly type: ErrorType;
  readonly param: string | null;
  readonly code: string | null;
  readonly retryAfter?: number;
  constructor(
    status: number,
    message: string,
    opts: { type?: ErrorType; param?: string | null; code?: string | null; retryAfter?: number } = {},
  ) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.type = opts.type ?? defaultType(status);
    this.param = opts.param ?? null;
    this.code = opts.code ?? null;
    this.retryAfter = opts.retryAfter;
  }
  body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

function defaultType(status: number): ErrorType {
  if (status === 401) return 'authentication_error';
  if (status === 404) return 'not_found_error';
  if (status === 429) return 'rate_limit_error';
  if (status === 503) return 'service_unavailable';
  if (status >= 500) return 'server_error';
  return 'invalid_request_error';
}

// runtime option names → request fields, so `param` names what the caller sent
const OPTION_PARAMS: Record<string, string> = {
  maxNewTokens: 'max_tokens',
  minNewTokens: 'min_tokens',
  temperature: 'temperature',
  topK: 'top_k',
  topP: 'top_p',
  minP: 'min_p',
  repetitionPenalty: 'repetition_penalty',
  presencePenalty: 'presence_penalty',
  frequencyPenalty: 'frequency_penalty',
  seed: 'seed',
  stop: 'stop',
  stopTokenIds: 'stop',
  logprobs: 'logprobs',
  topLogprobs: 'top_logprobs',
  numBeams: 'num_beams',
  lengthPenalty: 'length_penalty',
  earlyStopping: 'early_stopping',
  numReturnSequences: 'n',
  noRepeatNgramSize: 'no_repeat_ngram_size',
  ignoreEos: 'ignore_eos',
};

/** The request field a runtime option name came from. */
export function paramForOption(field: string | undefined): string | null {
  if (!field) return null;
  return OPTION_PARAMS[field] ?? field;
}

/**
 * Turns anything thrown while serving a request into an ApiError. Runtime errors map by class;
 * anything else is a 500 `server_error` carrying the request id (the caller logs the original).
 * @example
 * const e = toApiError(new OptionsError('bad', { field: 'topP' }), 'req-1'); // 400, param "top_p"
 */
export function toApiError(err: unknown, requestId: string, retryAfter = 1): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof EdgeLMError) {
    const message = err.message;
    if (err instanceof ContextLengthError)
      return new ApiError(400, message, { param: paramForOption(err.field) ?? 'messages', code: err.code });
    if (err instanceof OptionsError)
      return new ApiError(400, message, { param: paramForOption(err.field), code: err.code });
    if (err instanceof UnsupportedError)
      return new ApiError(400, message, { param: paramForOption(err.field), code: err.code });
    // the tokenizer's cap on input text: the caller's text is too long, not the server too full
    if (err instanceof BudgetError && err.field === 'text')
      return new ApiError(400, message, { param: 'prompt', code: 'context_length_exceeded' });
    if (err instanceof BudgetError)
      return new ApiError(503, `the server is at its memory budget: ${message}`, {
        code: 'overloaded',
        retryAfter,
      });
    if (err instanceof AbortError) return new ApiError(499, message, { code: 'aborted' });
    if (err instanceof FormatError)
      return new ApiError(503, `model unavailable: ${message}`, { code: 'model_unavailable', retryAfter });
  }
  return new ApiError(500, `internal error while serving the request (request id ${requestId})`, {
    type: 'server_error',
    code: 'internal_error',
  });
}

/** A JSON Response carrying an ApiError, with Retry-After when set. */
export function errorResponse(err: ApiError, requestId: string): Response {
  const headers = new Headers({ 'content-type': 'application/json', 'x-request-id': requestId });
  if (err.retryAfter !== undefined) headers.set('retry-after', String(err.retryAfter));
  if (err.status === 401) headers.set('www-authenticate', 'Bearer');
  return new Response(JSON.stringify(err.body()), { status: err.status, headers });
}
