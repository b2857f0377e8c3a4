// The Hono app: OpenAI-style routes over a ModelRegistry. Built by createApp(deps) so tests call
// app.request(...) with a fake model, and worker/index.ts hands it the runtime's models.
import { zValidator } from '@hono/zod-validator';
import { type Context, Hono, type MiddlewareHandler } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { makeKeyChecker } from './auth.ts';
import { type ChatMessage, chatPromptIds } from './chat.ts';
import { ApiError, errorResponse, toApiError } from './errors.ts';
import { type Plan, planRequest, type RunEvent, runPlan } from './generation.ts';
import { DEFAULT_LIMITS, type Limits } from './limits.ts';
import type { ModelHandle, ModelRegistry } from './model-handle.ts';
import { PLAYGROUND_HTML } from './playground.ts';
import {
  type ChatBody,
  type CompletionBody,
  makeSchemas,
  unsupportedFields,
  zodToApiError,
} from './schemas.ts';

/** What the app is built from. */
export interface AppDeps {
  models: ModelRegistry;
  limits?: Partial<Limits>;
  /** bearer keys; empty or absent → no auth */
  apiKeys?: string[];
  /** structured log sink (request id, route, status, error); never receives keys or bodies */
  log?: (entry: Record<string, unknown>) => void;
}

type Env = { Variables: { requestId: string; signal: AbortSignal } };

/** Counts running generations and their KV sequences; refuses past the limits (no queue). */
class Admission {
  active = 0;
  sequences = 0;
  constructor(private readonly limits: Limits) {}
  enter(sequences: number): () => void {
    const retryAfter = this.limits.retryAfterSeconds;
    if (this.active >= this.limits.maxConcurrent)
      throw new ApiError(
        429,
        `too many generations running (limit ${this.limits.maxConcurrent}); retry shortly`,
        {
          code: 'rate_limit_exceeded',
          retryAfter,
        },
      );
    if (this.sequences + sequences > this.limits.maxSequences)
      throw new ApiError(
        503,
        `the server's KV cache is in use (${this.sequences} of ${this.limits.maxSequences} sequences); retry shortly`,
        { code: 'overloaded', retryAfter },
      );
    this.active++;
    this.sequences += sequences;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.active--;
      this.sequences -= sequences;
    };
  }
}

/**
 * Builds the app. Routes: GET / (playground), GET /healthz, GET /v1/models, GET /v1/models/:id,
 * POST /v1/completions, POST /v1/chat/completions.
 * @example
 * const app = createApp({ models: registry, limits: { maxTokens: 64 } });
 * const res = await app.request('/v1/completions', { method: 'POST', body: JSON.stringify({ prompt: 'Hi' }) });
 */
export function createApp(deps: AppDeps): Hono<Env> {
  const limits: Limits = { ...DEFAULT_LIMITS, ...deps.limits };
  const schemas = makeSchemas(limits);
  const admission = new Admission(limits);
  const log = deps.log ?? ((e: Record<string, unknown>) => console.log(JSON.stringify(e)));
  const checkKey = deps.apiKeys && deps.apiKeys.length > 0 ? makeKeyChecker(deps.apiKeys) : null;
  const app = new Hono<Env>();

  app.use('*', async (c, next) => {
    const requestId = crypto.randomUUID();
    c.set('requestId', requestId);
    c.set('signal', c.req.raw.signal);
    await next();
    try {
      c.res.headers.set('x-request-id', requestId);
    } catch {
      // immutable headers: the response already carries the id or cannot take it
    }
  });

  app.onError((err, c) => {
    const requestId = c.get('requestId') ?? 'unknown';
    let apiErr: ApiError;
    if (err instanceof HTTPException) {
      apiErr =
        err.status === 400
          ? new ApiError(400, `the request body is not valid JSON: ${err.message}`, { code: 'invalid_json' })
          : new ApiError(err.status, err.message);
    } else apiErr = toApiError(err, requestId, limits.retryAfterSeconds);
    if (apiErr.status >= 500)
      log({
        level: 'error',
        requestId,
        path: c.req.path,
        status: apiErr.status,
        error: err instanceof Error ? `${err.name}: ${err.message}` : String(err),
        stack: err instanceof Error ? err.stack : undefined,
      });
    return errorResponse(apiErr, requestId);
  });

  app.notFound((c) =>
    errorResponse(
      new ApiError(404, `no route for ${c.req.method} ${c.req.path}`, { code: 'not_found' }),
      c.get('requestId') ?? 'unknown',
    ),
  );

  app.get('/', (c) => c.html(PLAYGROUND_HTML));

  // healthy means the default model is loaded and can serve (loading it here if need be)
  app.get('/healthz', async (c) => {
    await deps.models.get(undefined).catch(() => {});
    const models = deps.models.list();
    const def = models.find((m) => m.id === deps.models.defaultId);
    const ok = def?.status === 'loaded';
    return c.json(
      {
        ok,
        default_model: deps.models.defaultId,
        models: models.map((m) => ({ id: m.id, status: m.status, ...(m.error ? { error: m.error } : {}) })),
        running: admission.active,
      },
      ok ? 200 : 503,
    );
  });

  if (checkKey) {
    app.use('/v1/*', async (c, next) => {
      if (!(await checkKey(c.req.header('authorization'))))
        throw new ApiError(401, 'missing or wrong API key: send "Authorization: Bearer <key>"', {
          code: 'invalid_api_key',
        });
      await next();
    });
  }

  const modelJson = (m: ReturnType<ModelRegistry['list']>[number]) => ({
    id: m.id,
    object: 'model',
    created: 0,
    owned_by: 'edgelm',
    source: m.source,
    status: m.status,
    context_length: m.info?.contextLength ?? null,
    quantization: m.info?.quantization ?? null,
    architecture: m.info?.architecture ?? null,
    parameters: m.info?.parameters ?? null,
    ...(m.error ? { error: m.error } : {}),
  });
  app.get('/v1/models', (c) => c.json({ object: 'list', data: deps.models.list().map(modelJson) }));
  app.get('/v1/models/:id{.+}', (c) => {
    const m = deps.models.list().find((x) => x.id === c.req.param('id'));
    if (!m)
      throw new ApiError(404, `model ${JSON.stringify(c.req.param('id'))} does not exist`, {
        code: 'model_not_found',
        param: 'model',
      });
    return c.json(modelJson(m));
  });

  const jsonBody = readBody(limits.maxBodyBytes);
  const hook = (result: { success: boolean; error?: unknown }) => {
    if (!result.success) throw zodToApiError(result.error as Parameters<typeof zodToApiError>[0]);
  };

  app.post('/v1/completions', jsonBody, zValidator('json', schemas.completion, hook), async (c) => {
    const body = c.req.valid('json') as CompletionBody;
    unsupportedFields(body);
    const { id: modelId, model } = await deps.models.get(body.model ?? undefined);
    const prompts = completionPrompts(body.prompt, model, limits, body.parse_special === true);
    const plan = planRequest(
      body,
      {
        promptLengths: prompts.map((p) => p.length),
        promptParam: 'prompt',
        contextLength: model.info.contextLength,
        defaultMaxTokens: 16,
        logprobs: body.logprobs ?? null,
      },
      limits,
    );
    return serve(c, {
      kind: 'completion',
      modelId,
      model,
      prompts,
      plan,
      stream: body.stream === true,
      includeUsage: body.stream_options?.include_usage === true,
    });
  });

  app.post('/v1/chat/completions', jsonBody, zValidator('json', schemas.chat, hook), async (c) => {
    const body = c.req.valid('json') as ChatBody;
    unsupportedFields(body);
    if (body.top_logprobs != null && body.logprobs !== true)
      throw new ApiError(400, 'top_logprobs requires logprobs: true', {
        param: 'top_logprobs',
        code: 'invalid_value',
      });
    if (
      body.max_tokens != null &&
      body.max_completion_tokens != null &&
      body.max_tokens !== body.max_completion_tokens
    )
      throw new ApiError(400, 'max_tokens and max_completion_tokens disagree; send one', {
        param: 'max_completion_tokens',
        code: 'invalid_value',
      });
    const { id: modelId, model } = await deps.models.get(body.model ?? undefined);
    const messages: ChatMessage[] = body.messages.map((m) => ({
      role: m.role,
      content: typeof m.content === 'string' ? m.content : m.content.map((p) => p.text).join(''),
    }));
    const chars = messages.reduce((a, m) => a + m.content.length, 0);
    if (chars > limits.maxPromptTokens * 64)
      throw new ApiError(
        400,
        `the messages hold ${chars} characters, over what ${limits.maxPromptTokens} prompt tokens can take`,
        {
          param: 'messages',
          code: 'context_length_exceeded',
        },
      );
    const { ids } = chatPromptIds(model.tokenizer, model.chatTemplate, messages);
    const plan = planRequest(
      { ...samplingOf(body), max_tokens: body.max_tokens ?? body.max_completion_tokens },
      {
        promptLengths: [ids.length],
        promptParam: 'messages',
        contextLength: model.info.contextLength,
        defaultMaxTokens: limits.maxTokens,
        logprobs: body.logprobs ? (body.top_logprobs ?? 0) : null,
        maxTokensParam: body.max_completion_tokens != null ? 'max_completion_tokens' : 'max_tokens',
      },
      limits,
    );
    return serve(c, {
      kind: 'chat',
      modelId,
      model,
      prompts: [ids],
      plan,
      stream: body.stream === true,
      includeUsage: body.stream_options?.include_usage === true,
    });
  });

  interface Job {
    kind: 'completion' | 'chat';
    modelId: string;
    model: ModelHandle;
    prompts: number[][];
    plan: Plan;
    stream: boolean;
    includeUsage: boolean;
  }

  async function serve(c: Context<Env>, job: Job): Promise<Response> {
    const requestId = c.get('requestId');
    const release = admission.enter(Math.max(job.plan.numBeams, 1));
    const abort = new AbortController();
    const clientSignal = c.get('signal');
    const onClientAbort = () => abort.abort();
    if (clientSignal.aborted) abort.abort();
    else clientSignal.addEventListener('abort', onClientAbort);
    const cleanup = () => {
      clientSignal.removeEventListener('abort', onClientAbort);
      release();
    };
    const events = runPlan(job.model, job.prompts, job.plan, abort.signal);
    const fmt = formatter(job, requestId);
    if (!job.stream) {
      try {
        const choices = new Map<
          number,
          { text: string; logprobs: TokenLog[]; finish?: RunEvent & { type: 'finish' } }
        >();
        let usage = { promptTokens: 0, completionTokens: 0 };
        for await (const ev of events) {
          if (ev.type === 'delta') {
            const ch = choices.get(ev.index) ?? { text: '', logprobs: [] };
            ch.text += ev.text;
            if (ev.logprob) ch.logprobs.push({ ...ev.logprob, offset: ch.text.length - ev.text.length });
            choices.set(ev.index, ch);
          } else if (ev.type === 'finish') {
            const ch = choices.get(ev.index) ?? { text: '', logprobs: [] };
            ch.finish = ev;
            choices.set(ev.index, ch);
          } else if (ev.type === 'usage') usage = ev;
        }
        if (abort.signal.aborted) throw new ApiError(499, 'client closed the request', { code: 'aborted' });
        return c.json(
          fmt.whole(
            [...choices.entries()].sort((a, b) => a[0] - b[0]),
            usage,
          ),
        );
      } finally {
        cleanup();
      }
    }
    // streaming: run to the first event before sending headers, so early errors keep their status
    let first: IteratorResult<RunEvent>;
    try {
      first = await events.next();
    } catch (e) {
      cleanup();
      throw e;
    }
    const enc = new TextEncoder();
    let pending: IteratorResult<RunEvent> | null = first;
    let finished = false;
    const stream = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (finished) return;
        try {
          // enqueue at least one chunk per pull: a pull that enqueues nothing is not pulled again
          for (;;) {
            const r = pending ?? (await events.next());
            pending = null;
            if (r.done) {
              finished = true;
              controller.enqueue(enc.encode('data: [DONE]\n\n'));
              controller.close();
              cleanup();
              return;
            }
            const out = fmt.chunks(r.value);
            if (out.length > 0) {
              controller.enqueue(enc.encode(out.map((o) => `data: ${JSON.stringify(o)}\n\n`).join('')));
              return;
            }
          }
        } catch (e) {
          finished = true;
          cleanup();
          if (abort.signal.aborted) {
            controller.close();
            return;
          }
          const apiErr = toApiError(e, requestId, limits.retryAfterSeconds);
          if (apiErr.status >= 500)
            log({
              level: 'error',
              requestId,
              path: c.req.path,
              status: apiErr.status,
              error: String(e),
              stack: (e as Error)?.stack,
              afterHeaders: true,
            });
          controller.enqueue(enc.encode(`data: ${JSON.stringify(apiErr.body())}\n\ndata: [DONE]\n\n`));
          controller.close();
        }
      },
      cancel() {
        finished = true;
        abort.abort();
        cleanup();
        void events.return(undefined).catch(() => {});
      },
    });
    return new Response(stream, {
      headers: {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache',
        'x-request-id': requestId,
      },
    });
  }

  return app;
}

interface TokenLog {
  token: string;
  logprob: number;
  top: Array<{ token: string; logprob: number }>;
  offset: number;
}

function samplingOf(body: ChatBody) {
  const { messages: _m, max_completion_tokens: _x, logprobs: _l, top_logprobs: _t, ...rest } = body;
  return rest;
}

// completion prompts → token ids (a string, strings, ids, or lists of ids)
function completionPrompts(
  prompt: CompletionBody['prompt'],
  model: ModelHandle,
  limits: Limits,
  parseSpecial: boolean,
): number[][] {
  const tok = model.tokenizer;
  const list: Array<string | number[]> =
    typeof prompt === 'string'
      ? [prompt]
      : prompt.length > 0 && typeof prompt[0] === 'number'
        ? [prompt as number[]]
        : (prompt as Array<string | number[]>);
  return list.map((p, i) => {
    const param = list.length > 1 ? `prompt[${i}]` : 'prompt';
    if (typeof p !== 'string') {
      const bad = p.findIndex((id) => id >= tok.vocabSize);
      if (bad >= 0)
        throw new ApiError(
          400,
          `${param}[${bad}]: token id ${p[bad]} is not below the vocabulary size ${tok.vocabSize}`,
          {
            param,
            code: 'invalid_value',
          },
        );
      return p;
    }
    // cap characters before tokenizing: no token is shorter than one character
    if (p.length > limits.maxPromptTokens * 64)
      throw new ApiError(
        400,
        `${param} is ${p.length} characters, over what ${limits.maxPromptTokens} prompt tokens can take`,
        {
          param,
          code: 'context_length_exceeded',
        },
      );
    return tok.encode(p, { parseSpecial });
  });
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

// OpenAI's JSON and chunk shapes for one request
function formatter(
  job: { kind: 'completion' | 'chat'; modelId: string; plan: Plan; includeUsage: boolean },
  requestId: string,
) {
  const chat = job.kind === 'chat';
  const id = `${chat ? 'chatcmpl' : 'cmpl'}-${requestId}`;
  const created = nowSeconds();
  const object = chat ? 'chat.completion.chunk' : 'text_completion';
  const base = () => ({ id, object, created, model: job.modelId });
  const usageJson = (u: { promptTokens: number; completionTokens: number }) => ({
    prompt_tokens: u.promptTokens,
    completion_tokens: u.completionTokens,
    total_tokens: u.promptTokens + u.completionTokens,
  });
  const completionLogprobs = (l: TokenLog[]) => ({
    tokens: l.map((x) => x.token),
    token_logprobs: l.map((x) => x.logprob),
    top_logprobs: l.map((x) => Object.fromEntries(x.top.map((t) => [t.token, t.logprob]))),
    text_offset: l.map((x) => x.offset),
  });
  const enc = new TextEncoder();
  const chatLogprobs = (l: TokenLog[]) => ({
    content: l.map((x) => ({
      token: x.token,
      logprob: x.logprob,
      bytes: [...enc.encode(x.token)],
      top_logprobs: x.top.map((t) => ({
        token: t.token,
        logprob: t.logprob,
        bytes: [...enc.encode(t.token)],
      })),
    })),
  });
  const roleSent = new Set<number>();
  const offsets = new Map<number, number>();
  const withUsage = <T extends object>(o: T) => (job.includeUsage ? { ...o, usage: null } : o);
  return {
    whole(
      choices: Array<
        [number, { text: string; logprobs: TokenLog[]; finish?: RunEvent & { type: 'finish' } }]
      >,
      usage: { promptTokens: number; completionTokens: number },
    ) {
      return {
        id,
        object: chat ? 'chat.completion' : 'text_completion',
        created,
        model: job.modelId,
        choices: choices.map(([index, ch]) => {
          const text = ch.finish?.text ?? ch.text;
          const beam =
            ch.finish?.score !== undefined
              ? { beam_score: ch.finish.score, token_ids: ch.finish.tokens }
              : {};
          const lp =
            job.plan.logprobs === null
              ? null
              : chat
                ? chatLogprobs(ch.logprobs)
                : completionLogprobs(ch.logprobs);
          return chat
            ? {
                index,
                message: { role: 'assistant', content: text },
                logprobs: lp,
                finish_reason: ch.finish?.finishReason ?? 'stop',
                ...beam,
              }
            : { index, text, logprobs: lp, finish_reason: ch.finish?.finishReason ?? 'stop', ...beam };
        }),
        usage: usageJson(usage),
      };
    },
    chunks(ev: RunEvent): object[] {
      const out: object[] = [];
      const roleChunk = (index: number) => {
        if (!chat || roleSent.has(index)) return;
        roleSent.add(index);
        out.push(
          withUsage({
            ...base(),
            choices: [
              { index, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null },
            ],
          }),
        );
      };
      if (ev.type === 'delta') {
        roleChunk(ev.index);
        const offset = offsets.get(ev.index) ?? 0;
        offsets.set(ev.index, offset + ev.text.length);
        const l = ev.logprob ? [{ ...ev.logprob, offset }] : null;
        const lp = l === null ? null : chat ? chatLogprobs(l) : completionLogprobs(l);
        out.push(
          withUsage({
            ...base(),
            choices: [
              chat
                ? { index: ev.index, delta: { content: ev.text }, logprobs: lp, finish_reason: null }
                : { index: ev.index, text: ev.text, logprobs: lp, finish_reason: null },
            ],
          }),
        );
      } else if (ev.type === 'beams') {
        out.push(
          withUsage({ ...base(), choices: [], beams: { prompt: ev.prompt, step: ev.step, beams: ev.beams } }),
        );
      } else if (ev.type === 'finish') {
        roleChunk(ev.index);
        // beam search sends each returned sequence whole, with its score and token ids
        const beam = ev.score !== undefined ? { beam_score: ev.score, token_ids: ev.tokens } : {};
        const text = ev.score !== undefined ? ev.text : '';
        out.push(
          withUsage({
            ...base(),
            choices: [
              chat
                ? {
                    index: ev.index,
                    delta: text ? { content: text } : {},
                    logprobs: null,
                    finish_reason: ev.finishReason,
                    ...beam,
                  }
                : { index: ev.index, text, logprobs: null, finish_reason: ev.finishReason, ...beam },
            ],
          }),
        );
      } else if (ev.type === 'usage' && job.includeUsage) {
        out.push({ ...base(), choices: [], usage: usageJson(ev) });
      }
      return out;
    },
  };
}

/**
 * Reads the body with a byte cap before anything parses it: 413 from Content-Length when it says
 * too much, and 413 while reading when the bytes run past the cap whatever the header said. The
 * bytes are handed on as JSON (whatever Content-Type the client sent) for zValidator to parse.
 */
function readBody(maxBytes: number): MiddlewareHandler<Env> {
  const tooLarge = () =>
    new ApiError(413, `the request body is over this server's limit of ${maxBytes} bytes`, {
      code: 'request_too_large',
    });
  return async (c, next) => {
    const raw = c.req.raw;
    const declared = raw.headers.get('content-length');
    if (declared !== null && declared.trim() !== '') {
      const n = Number(declared);
      if (!Number.isFinite(n) || n < 0)
        throw new ApiError(400, 'Content-Length is not a byte count', { code: 'invalid_request' });
      if (n > maxBytes) throw tooLarge();
    }
    const buf = new Uint8Array(Math.min(maxBytes, declared ? Number(declared) : 16384) || 0);
    let bytes = buf;
    let size = 0;
    if (raw.body) {
      const reader = raw.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (size + value.length > maxBytes) {
          await reader.cancel().catch(() => {});
          throw tooLarge();
        }
        if (size + value.length > bytes.length) {
          const grown = new Uint8Array(Math.min(maxBytes, Math.max(size + value.length, bytes.length * 2)));
          grown.set(bytes.subarray(0, size));
          bytes = grown;
        }
        bytes.set(value, size);
        size += value.length;
      }
    }
    const headers = new Headers(raw.headers);
    headers.set('content-type', 'application/json');
    headers.delete('content-length');
    c.req.raw = new Request(raw.url, { method: raw.method, headers, body: bytes.slice(0, size) });
    await next();
  };
}
