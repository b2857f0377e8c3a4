// Request bodies, validated with zod. Objects strip unknown keys (so `__proto__`, `constructor` and
// anything else never reach an options object); OpenAI fields we cannot honour are accepted only at
// their neutral value and otherwise rejected by name (see unsupportedFields).
import { z } from 'zod';
import { ApiError } from './errors.ts';
import type { Limits } from './limits.ts';

const MAX_STOP = 4;
const MAX_STOP_CHARS = 256;
const MAX_MESSAGES = 256;
const MAX_PROMPTS = 64;

/** Schemas for one set of limits. */
export function makeSchemas(limits: Limits) {
  const int = (min: number, max: number) => z.number().int().min(min).max(max);
  const stop = z
    .union(
      [
        z.string().min(1).max(MAX_STOP_CHARS),
        z.array(z.string().min(1).max(MAX_STOP_CHARS)).max(MAX_STOP, `at most ${MAX_STOP} stop sequences`),
      ],
      {
        error: `stop must be a string or an array of up to ${MAX_STOP} non-empty strings of ≤ ${MAX_STOP_CHARS} chars`,
      },
    )
    .nullish();
  // the sampling and beam options both endpoints share (our extensions as vLLM places them)
  const common = {
    model: z.string().max(256).nullish(),
    max_tokens: int(1, limits.maxTokens).nullish(),
    min_tokens: int(0, limits.maxTokens).nullish(),
    temperature: z.number().min(0).max(2).nullish(),
    top_p: z.number().gt(0).max(1).nullish(),
    n: int(1, limits.maxN).nullish(),
    stream: z.boolean().nullish(),
    stream_options: z.object({ include_usage: z.boolean().nullish() }).nullish(),
    stop,
    seed: z.number().int().min(-Number.MAX_SAFE_INTEGER).max(Number.MAX_SAFE_INTEGER).nullish(),
    presence_penalty: z.number().min(-2).max(2).nullish(),
    frequency_penalty: z.number().min(-2).max(2).nullish(),
    user: z.string().max(256).nullish(),
    logit_bias: z.record(z.string().max(16), z.number().min(-100).max(100)).nullish(),
    top_k: int(-1, 1 << 20).nullish(),
    min_p: z.number().min(0).max(1).nullish(),
    repetition_penalty: z.number().gt(0).max(10).nullish(),
    num_beams: int(1, limits.maxBeams).nullish(),
    length_penalty: z.number().min(-10).max(10).nullish(),
    early_stopping: z
      .union([z.boolean(), z.literal('never')], { error: 'early_stopping must be true, false or "never"' })
      .nullish(),
    no_repeat_ngram_size: int(0, 64).nullish(),
    ignore_eos: z.boolean().nullish(),
  };
  const tokenIds = z.array(int(0, 1 << 24)).min(1);
  const completion = z.object({
    ...common,
    prompt: z.union(
      [
        z.string(),
        z.array(z.string()).min(1).max(MAX_PROMPTS),
        tokenIds,
        z.array(tokenIds).min(1).max(MAX_PROMPTS),
      ],
      {
        error:
          'prompt must be a string, an array of strings, an array of token ids or an array of such arrays',
      },
    ),
    logprobs: int(0, 5).nullish(),
    echo: z.boolean().nullish(),
    suffix: z.string().nullish(),
    best_of: int(1, limits.maxN).nullish(),
    // extension: let special-token strings in the prompt (`<|user|>`) become special tokens
    parse_special: z.boolean().nullish(),
  });
  const textPart = z.object({ type: z.literal('text'), text: z.string() });
  const message = z.object({
    role: z.enum(['system', 'developer', 'user', 'assistant']),
    content: z.union([z.string(), z.array(textPart).max(64)], {
      error: 'content must be a string or an array of {"type":"text","text":…} parts',
    }),
    name: z.string().max(64).nullish(),
  });
  const chat = z.object({
    ...common,
    messages: z.array(message).min(1).max(MAX_MESSAGES),
    max_completion_tokens: int(1, limits.maxTokens).nullish(),
    logprobs: z.boolean().nullish(),
    top_logprobs: int(0, 20).nullish(),
    tools: z.unknown().optional(),
    tool_choice: z.unknown().optional(),
    functions: z.unknown().optional(),
    function_call: z.unknown().optional(),
    response_format: z.unknown().optional(),
    parallel_tool_calls: z.unknown().optional(),
  });
  return { completion, chat };
}

export type Schemas = ReturnType<typeof makeSchemas>;
export type CompletionBody = z.infer<Schemas['completion']>;
export type ChatBody = z.infer<Schemas['chat']>;

function formatPath(path: ReadonlyArray<PropertyKey>): string | null {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out ? `.${String(p)}` : String(p);
  return out || null;
}

/**
 * The first zod issue as a 400 naming the field (`messages[0].role`).
 * @example
 * const r = schemas.chat.safeParse(body); if (!r.success) throw zodToApiError(r.error);
 */
export function zodToApiError(error: z.ZodError): ApiError {
  const issue = error.issues[0];
  const param = issue ? formatPath(issue.path) : null;
  const message = issue ? `${param ?? 'body'}: ${issue.message}` : 'invalid request body';
  return new ApiError(400, message, { param, code: 'invalid_value' });
}

/** Rejects OpenAI fields set to something we do not do (never accept-and-ignore). */
export function unsupportedFields(body: Record<string, unknown>): void {
  const reject = (param: string, why: string) => {
    throw new ApiError(400, `${param}: ${why}`, { param, code: 'unsupported_parameter' });
  };
  if (body.echo === true) reject('echo', 'echo is not supported');
  if (typeof body.suffix === 'string' && body.suffix !== '')
    reject('suffix', 'suffix (insertion) is not supported');
  if (typeof body.best_of === 'number' && body.best_of > ((body.n as number | null | undefined) ?? 1))
    reject('best_of', 'best_of is not supported; use num_beams for beam search');
  if (body.logit_bias && Object.keys(body.logit_bias).length > 0)
    reject('logit_bias', 'logit_bias is not supported');
  for (const k of ['tools', 'tool_choice', 'functions', 'function_call', 'parallel_tool_calls']) {
    const v = body[k];
    if (v !== undefined && v !== null && !(Array.isArray(v) && v.length === 0))
      reject(k, 'tool and function calling are not supported');
  }
  const rf = body.response_format as { type?: unknown } | null | undefined;
  if (rf !== undefined && rf !== null && !(typeof rf === 'object' && rf.type === 'text'))
    reject('response_format', 'only {"type":"text"} is supported');
}
