// The HTTP API against a scripted model (test/worker/helpers/fake-model.ts), inside workerd. One
// test per case of RELIABILITY.md's "HTTP API" section, plus the OpenAI shapes. The reference for
// every text is scriptedText(), which the fake model's output is defined by.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BudgetError, ContextLengthError, OptionsError } from '../../runtime/errors.ts';
import { type AppDeps, createApp } from '../../worker/app.ts';
import { type FakeOptions, fakeModel, fakeRegistry, scriptedText } from './helpers/fake-model.ts';

type App = ReturnType<typeof createApp>;

function setup(o: FakeOptions = {}, deps: Partial<AppDeps> = {}) {
  const model = fakeModel(o);
  const logs: Array<Record<string, unknown>> = [];
  const app = createApp({ models: fakeRegistry(model), log: (e) => logs.push(e), ...deps });
  return { model, app, logs };
}

const post = (app: App, path: string, body: unknown, headers: Record<string, string> = {}) =>
  app.request(path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });

async function errorOf(res: Response) {
  const j = (await res.json()) as {
    error: { message: string; type: string; param: string | null; code: string | null };
  };
  expect(Object.keys(j.error).sort()).toEqual(['code', 'message', 'param', 'type']);
  return j.error;
}

/** Splits an SSE body into its data payloads, checking the framing as it goes. */
async function sse(res: Response): Promise<{ raw: string; events: any[]; done: number }> {
  const raw = await res.text();
  expect(raw.endsWith('\n\n')).toBe(true);
  const blocks = raw.split('\n\n').slice(0, -1);
  const events: any[] = [];
  let done = 0;
  for (const b of blocks) {
    expect(b.startsWith('data: ')).toBe(true);
    const payload = b.slice(6);
    if (payload === '[DONE]') done++;
    else {
      expect(done).toBe(0); // nothing after [DONE]
      events.push(JSON.parse(payload));
    }
  }
  return { raw, events, done };
}

// prompt 'hi' → [BOS, h, i]: 3 tokens
const HI_LEN = 3;

describe('shapes', () => {
  it('completion: text, finish_reason, usage', async () => {
    const { app } = setup();
    const res = await post(app, '/v1/completions', { prompt: 'hi', max_tokens: 5 });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    const j: any = await res.json();
    expect(j.object).toBe('text_completion');
    expect(j.model).toBe('fake');
    expect(j.choices).toEqual([
      { index: 0, text: scriptedText(HI_LEN, 0, 5), logprobs: null, finish_reason: 'length' },
    ]);
    expect(j.usage).toEqual({ prompt_tokens: HI_LEN, completion_tokens: 5, total_tokens: HI_LEN + 5 });
  });

  it('completion: stop string ends with finish_reason stop', async () => {
    const { app } = setup();
    const full = scriptedText(HI_LEN, 0, 8);
    const res = await post(app, '/v1/completions', { prompt: 'hi', max_tokens: 8, stop: full.slice(3, 5) });
    const j: any = await res.json();
    expect(j.choices[0].text).toBe(full.slice(0, 3));
    expect(j.choices[0].finish_reason).toBe('stop');
  });

  it('completion: several prompts and n; seeds differ per choice', async () => {
    const { app, model } = setup();
    const res = await post(app, '/v1/completions', { prompt: ['a', 'bb'], n: 2, max_tokens: 3, seed: 7 });
    const j: any = await res.json();
    expect(j.choices.map((c: any) => c.text)).toEqual([
      scriptedText(2, 7, 3),
      scriptedText(2, 8, 3),
      scriptedText(3, 7, 3),
      scriptedText(3, 8, 3),
    ]);
    expect(model.calls.map((c) => c.opts.seed)).toEqual([7, 8, 7, 8]);
    expect(j.usage.prompt_tokens).toBe(2 + 3); // each prompt counted once
  });

  it('completion: token-id prompt, and ids past the vocabulary are a 400', async () => {
    const { app } = setup();
    const ok: any = await (
      await post(app, '/v1/completions', { prompt: [256, 104, 105], max_tokens: 2 })
    ).json();
    expect(ok.choices[0].text).toBe(scriptedText(3, 0, 2));
    const bad = await post(app, '/v1/completions', { prompt: [1, 99999], max_tokens: 2 });
    expect(bad.status).toBe(400);
    expect((await errorOf(bad)).param).toBe('prompt');
  });

  it('completion: special-token text is plain unless parse_special is set', async () => {
    const { app, model } = setup();
    await post(app, '/v1/completions', { prompt: '<|user|>hi', max_tokens: 1 });
    expect(model.calls[0]!.prompt).toEqual([256, ...new TextEncoder().encode('<|user|>hi')]);
    await post(app, '/v1/completions', { prompt: '<|user|>hi', max_tokens: 1, parse_special: true });
    expect(model.calls[1]!.prompt).toEqual([256, 258, 104, 105]);
    expect((await post(app, '/v1/completions', { prompt: 'x', parse_special: 'yes' })).status).toBe(400);
  });

  it('completion: logprobs shape', async () => {
    const { app } = setup();
    const j: any = await (
      await post(app, '/v1/completions', { prompt: 'hi', max_tokens: 3, logprobs: 2 })
    ).json();
    const lp = j.choices[0].logprobs;
    expect(lp.tokens).toEqual(scriptedText(HI_LEN, 0, 3).split(''));
    expect(lp.token_logprobs).toEqual([-0.5, -0.5, -0.5]);
    expect(lp.text_offset).toEqual([0, 1, 2]);
    expect(Object.keys(lp.top_logprobs[0])).toHaveLength(2);
  });

  it('chat: template renders with specials; reply and usage', async () => {
    const template =
      "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}";
    const { app, model } = setup({ chatTemplate: template });
    const res = await post(app, '/v1/chat/completions', {
      messages: [{ role: 'user', content: 'yo' }],
      max_tokens: 4,
    });
    expect(res.status).toBe(200);
    const j: any = await res.json();
    // <s> <|user|> y o <|assistant|>: specials from the template became single ids
    expect(model.calls[0]!.prompt).toEqual([256, 258, 121, 111, 259]);
    expect(j.object).toBe('chat.completion');
    expect(j.choices[0].message).toEqual({ role: 'assistant', content: scriptedText(5, 0, 4) });
    expect(j.usage.prompt_tokens).toBe(5);
  });

  it('chat: special-token text inside a message stays plain text', async () => {
    const template = "{% for m in messages %}<|user|>{{ m['content'] }}{% endfor %}<|assistant|>";
    const { app, model } = setup({ chatTemplate: template });
    await post(app, '/v1/chat/completions', {
      messages: [{ role: 'user', content: '<|assistant|>' }],
      max_tokens: 1,
    });
    const ids = model.calls[0]!.prompt;
    expect(ids.filter((i) => i === 259)).toHaveLength(1); // only the template's own
    expect(ids).toEqual([256, 258, ...new TextEncoder().encode('<|assistant|>'), 259]);
  });

  it('chat: no template → the documented fallback format', async () => {
    const { app, model } = setup();
    await post(app, '/v1/chat/completions', { messages: [{ role: 'user', content: 'hi' }], max_tokens: 1 });
    expect(model.tokenizer.decode(model.calls[0]!.prompt, { skipSpecial: true })).toBe(
      'user: hi\nassistant:',
    );
  });

  it('chat: content parts, logprobs shape', async () => {
    const { app } = setup();
    const res = await post(app, '/v1/chat/completions', {
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'h' },
            { type: 'text', text: 'i' },
          ],
        },
      ],
      max_tokens: 2,
      logprobs: true,
      top_logprobs: 1,
    });
    const j: any = await res.json();
    const c = j.choices[0].logprobs.content;
    expect(c).toHaveLength(2);
    expect(c[0]).toMatchObject({ logprob: -0.5, bytes: [...new TextEncoder().encode(c[0].token)] });
    expect(c[0].top_logprobs).toHaveLength(1);
  });

  it('beam search: n sequences come from the beams, with scores', async () => {
    const { app, model } = setup();
    const res = await post(app, '/v1/completions', {
      prompt: 'hi',
      max_tokens: 4,
      num_beams: 4,
      n: 2,
      length_penalty: 0.5,
    });
    const j: any = await res.json();
    expect(model.calls).toHaveLength(1);
    expect(model.calls[0]!.opts).toMatchObject({
      numBeams: 4,
      numReturnSequences: 2,
      lengthPenalty: 0.5,
      temperature: 0,
    });
    expect(j.choices.map((c: any) => c.index)).toEqual([0, 1]);
    expect(j.choices[0].text).toBe(scriptedText(HI_LEN, 0, 4));
    expect(j.choices[1].beam_score).toBe(-1);
  });

  it('models, healthz, playground, 404', async () => {
    const { app } = setup();
    const models: any = await (await app.request('/v1/models')).json();
    expect(models.object).toBe('list');
    expect(models.data[0]).toMatchObject({
      id: 'fake',
      object: 'model',
      context_length: 256,
      quantization: 'f32',
    });
    expect((await app.request('/v1/models/fake')).status).toBe(200);
    expect((await app.request('/v1/models/nope')).status).toBe(404);
    const h = await app.request('/healthz');
    expect(h.status).toBe(200);
    expect(((await h.json()) as any).ok).toBe(true);
    const page = await app.request('/');
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
    const nf = await app.request('/v2/whatever');
    expect(nf.status).toBe(404);
    expect((await errorOf(nf)).type).toBe('not_found_error');
  });
});

describe('bad input: 400/404/413 naming the field, never 408/409/429/5xx', () => {
  it('body over the cap: 413 from Content-Length, before the model is touched', async () => {
    const { app, model } = setup({}, { limits: { maxBodyBytes: 2048 } });
    const big = JSON.stringify({ prompt: 'x'.repeat(4000) });
    const res = await app.request('/v1/completions', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-length': String(big.length) },
      body: big,
    });
    expect(res.status).toBe(413);
    expect((await errorOf(res)).code).toBe('request_too_large');
    expect(model.calls).toHaveLength(0);
  });

  it('body over the cap without Content-Length: 413 while reading (stops reading early)', async () => {
    const { app } = setup({}, { limits: { maxBodyBytes: 2048 } });
    let pulled = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(c) {
        pulled++;
        if (pulled > 1000) c.close();
        else c.enqueue(new Uint8Array(1024).fill(32));
      },
    });
    const res = await app.request(
      new Request('http://x/v1/completions', { method: 'POST', body, duplex: 'half' } as RequestInit),
    );
    expect(res.status).toBe(413);
    expect(pulled).toBeLessThan(10);
  });

  it('a lying small Content-Length does not let a big body through', async () => {
    const { app } = setup({}, { limits: { maxBodyBytes: 2048 } });
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new TextEncoder().encode(JSON.stringify({ prompt: 'y'.repeat(5000) })));
        c.close();
      },
    });
    const res = await app.request(
      new Request('http://x/v1/completions', {
        method: 'POST',
        headers: { 'content-length': '10' },
        body,
        duplex: 'half',
      } as RequestInit),
    );
    expect(res.status).toBe(413);
  });

  it('malformed JSON and non-object bodies', async () => {
    const { app } = setup();
    for (const body of ['{', '', 'null', '[]', '"x"', '{"prompt": "a",}']) {
      const res = await post(app, '/v1/completions', body);
      expect(res.status, body).toBe(400);
      await errorOf(res);
    }
  });

  it('deep nesting: 400 in a known field, ignored in an unknown one', async () => {
    const { app } = setup();
    const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
    const a = await post(app, '/v1/completions', `{"prompt":${deep}}`);
    expect(a.status).toBe(400);
    expect((await errorOf(a)).param).toMatch(/^prompt/);
    const b = await post(app, '/v1/completions', `{"prompt":"hi","max_tokens":1,"junk":${deep}}`);
    expect(b.status).toBe(200);
  });

  it.each([
    [{ prompt: 'hi', n: '1' }, 'n'],
    [{ prompt: 'hi', max_tokens: 1.5 }, 'max_tokens'],
    [{ prompt: 'hi', max_tokens: -1 }, 'max_tokens'],
    [{ prompt: 'hi', max_tokens: 0 }, 'max_tokens'],
    [{ prompt: 'hi', max_tokens: 100_000 }, 'max_tokens'],
    [{ prompt: 'hi', n: 0 }, 'n'],
    [{ prompt: 'hi', n: 9 }, 'n'],
    [{ prompt: 'hi', num_beams: 9 }, 'num_beams'],
    [{ prompt: 'hi', temperature: -1 }, 'temperature'],
    [{ prompt: 'hi', temperature: '0.5' }, 'temperature'],
    [{ prompt: 'hi', top_p: 0 }, 'top_p'],
    [{ prompt: 'hi', top_k: -5 }, 'top_k'],
    [{ prompt: 'hi', repetition_penalty: 0 }, 'repetition_penalty'],
    [{ prompt: 'hi', stop: ['a', 'b', 'c', 'd', 'e'] }, 'stop'],
    [{ prompt: 'hi', stop: 'z'.repeat(300) }, 'stop'],
    [{ prompt: 'hi', stop: [''] }, 'stop[0]'],
    [{ prompt: 'hi', logprobs: 6 }, 'logprobs'],
    [{ prompt: 'hi', seed: 1e300 }, 'seed'],
    [{ prompt: 'hi', seed: 0.5 }, 'seed'],
    [{ prompt: 'hi', logit_bias: { '5': 10 } }, 'logit_bias'],
    [{ prompt: 'hi', echo: true }, 'echo'],
    [{ prompt: 'hi', suffix: 'x' }, 'suffix'],
    [{ prompt: 'hi', best_of: 3 }, 'best_of'],
    [{ prompt: 'hi', max_tokens: 4, min_tokens: 5 }, 'min_tokens'],
    [{ prompt: 'hi', num_beams: 2, n: 3 }, 'n'],
    [{ prompt: 'hi', num_beams: 2, logprobs: 1 }, 'logprobs'],
    [{ prompt: 'hi', length_penalty: 1 }, 'length_penalty'],
    [{ prompt: 'hi', early_stopping: 'sometimes' }, 'early_stopping'],
    [{ prompt: ['a', 'b', 'c'], n: 3 }, 'n'],
    [{ prompt: 'hi', max_tokens: 200, num_beams: 8 }, 'max_tokens'],
    [{ prompt: 'hi', stream_options: { include_usage: 'yes' } }, 'stream_options.include_usage'],
    [{}, 'prompt'],
    [{ prompt: 5 }, 'prompt'],
    [{ prompt: '' }, 'prompt'],
  ])('completions %j → 400 param %s', async (body, param) => {
    const { app, model } = setup({}, { limits: { maxWorkTokens: 1024 } });
    // an empty prompt tokenizes to [BOS] with this tokenizer: make it empty by turning BOS off
    if ((body as any).prompt === '') (model.tokenizer as any).addBos = false;
    const tok = model.tokenizer;
    const enc = tok.encode.bind(tok);
    (tok as any).encode = (t: string, o: any) =>
      enc(t, { ...o, addBos: (body as any).prompt === '' ? false : o?.addBos });
    const res = await post(app, '/v1/completions', body);
    expect(res.status).toBe(400);
    const e = await errorOf(res);
    expect(e.param).toBe(param);
    expect(e.type).toBe('invalid_request_error');
    expect(model.calls).toHaveLength(0);
  });

  it.each([
    [{ messages: [] }, 'messages'],
    [{ messages: [{ role: 'robot', content: 'x' }] }, 'messages[0].role'],
    [{ messages: [{ role: 'user', content: 5 }] }, 'messages[0].content'],
    [
      { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: 'x' }] }] },
      'messages[0].content',
    ],
    [{ messages: [{ role: 'user', content: 'x' }], tools: [{ type: 'function' }] }, 'tools'],
    [
      { messages: [{ role: 'user', content: 'x' }], response_format: { type: 'json_object' } },
      'response_format',
    ],
    [{ messages: [{ role: 'user', content: 'x' }], top_logprobs: 2 }, 'top_logprobs'],
    [
      { messages: [{ role: 'user', content: 'x' }], max_tokens: 3, max_completion_tokens: 4 },
      'max_completion_tokens',
    ],
  ])('chat %j → 400 param %s', async (body, param) => {
    const { app, model } = setup();
    const res = await post(app, '/v1/chat/completions', body);
    expect(res.status).toBe(400);
    expect((await errorOf(res)).param).toBe(param);
    expect(model.calls).toHaveLength(0);
  });

  it('infinities (1e999 in JSON) and huge numbers are 400s naming the field', async () => {
    const { app } = setup();
    for (const [field, raw] of [
      ['temperature', '1e999'],
      ['top_p', '-1e999'],
      ['max_tokens', '1e999'],
      ['n', '9007199254740993'],
      ['length_penalty', '1e999'],
    ]) {
      const res = await post(app, '/v1/completions', `{"prompt":"hi","num_beams":2,"${field}":${raw}}`);
      expect(res.status, field).toBe(400);
      expect((await errorOf(res)).param).toBe(field);
    }
  });

  it('prompt + max_tokens over the context: context_length_exceeded at once', async () => {
    const { app, model } = setup({ contextLength: 64 });
    const res = await post(app, '/v1/completions', { prompt: 'x'.repeat(40), max_tokens: 30 });
    expect(res.status).toBe(400);
    const e = await errorOf(res);
    expect(e.code).toBe('context_length_exceeded');
    expect(e.param).toBe('max_tokens');
    const long = await post(app, '/v1/completions', { prompt: 'x'.repeat(70) });
    expect((await errorOf(long)).code).toBe('context_length_exceeded');
    expect(model.calls).toHaveLength(0);
    // without max_tokens the default shrinks to fit
    const fits: any = await (await post(app, '/v1/completions', { prompt: 'x'.repeat(60) })).json();
    expect(fits.usage.completion_tokens).toBe(64 - 61);
  });

  it('prompt over MAX_PROMPT_TOKENS: context_length_exceeded', async () => {
    const { app } = setup({ contextLength: 4096 }, { limits: { maxPromptTokens: 10 } });
    const res = await post(app, '/v1/chat/completions', {
      messages: [{ role: 'user', content: 'x'.repeat(50) }],
    });
    expect(res.status).toBe(400);
    expect((await errorOf(res)).code).toBe('context_length_exceeded');
  });

  it('__proto__ and constructor are never spread into options', async () => {
    const { app, model } = setup();
    const body =
      '{"prompt":"hi","max_tokens":2,"__proto__":{"max_tokens":200,"polluted":1},"constructor":{"prototype":{"polluted":1}},"stream_options":{"__proto__":{"include_usage":true}}}';
    const res = await post(app, '/v1/completions', body);
    expect(res.status).toBe(200);
    expect(model.calls[0]!.opts.maxNewTokens).toBe(2);
    expect(Object.keys(model.calls[0]!.opts).sort()).toEqual(['maxNewTokens', 'signal', 'temperature']);
    expect(({} as any).polluted).toBeUndefined();
    expect((Object.prototype as any).polluted).toBeUndefined();
  });

  it('unknown model → 404 naming model; unknown fields are ignored', async () => {
    const { app } = setup();
    const res = await post(app, '/v1/completions', { prompt: 'hi', model: 'gpt-9' });
    expect(res.status).toBe(404);
    expect(await errorOf(res)).toMatchObject({ param: 'model', code: 'model_not_found' });
    const ok = await post(app, '/v1/completions', { prompt: 'hi', max_tokens: 1, frobnicate: true });
    expect(ok.status).toBe(200);
  });

  it('property: arbitrary JSON bodies never get 408/409/429/5xx', async () => {
    const { app } = setup();
    const field = fc.oneof(
      fc.constantFrom(
        'prompt',
        'messages',
        'max_tokens',
        'n',
        'num_beams',
        'stop',
        'temperature',
        'top_k',
        'seed',
        'logprobs',
      ),
      fc.constantFrom(
        'min_tokens',
        'stream',
        'top_p',
        'early_stopping',
        'length_penalty',
        '__proto__',
        'model',
      ),
    );
    const value = fc.oneof(
      fc.jsonValue({ maxDepth: 3 }),
      fc.integer({ min: -5, max: 300 }),
      fc.double(),
      fc.constant('hi'),
      fc.constant([{ role: 'user', content: 'hi' }]),
    );
    await fc.assert(
      fc.asyncProperty(fc.dictionary(field, value, { maxKeys: 6 }), fc.boolean(), async (body, chat) => {
        const res = await post(app, chat ? '/v1/chat/completions' : '/v1/completions', JSON.stringify(body));
        await res.text();
        expect([200, 400, 404]).toContain(res.status);
      }),
      { numRuns: 300 },
    );
  });
});

describe('errors from the runtime', () => {
  it('OptionsError → 400 with the request field name; ContextLengthError → 400 context_length_exceeded', async () => {
    const a = setup({
      failAt: { step: 0, error: () => new OptionsError('top_k too big', { field: 'topK' }) },
    });
    const r1 = await post(a.app, '/v1/completions', { prompt: 'hi', max_tokens: 2, top_k: 5 });
    expect(r1.status).toBe(400);
    expect((await errorOf(r1)).param).toBe('top_k');
    const b = setup({ failAt: { step: 0, error: () => new ContextLengthError('too long') } });
    const r2 = await post(b.app, '/v1/completions', { prompt: 'hi', max_tokens: 2 });
    expect((await errorOf(r2)).code).toBe('context_length_exceeded');
  });

  it("the tokenizer's BudgetError on too much text is a 400, not a 503", async () => {
    const { app } = setup({
      failAt: { step: 0, error: () => new BudgetError('input over 1 Mi chars', { field: 'text' }) },
    });
    const res = await post(app, '/v1/completions', { prompt: 'hi', max_tokens: 2 });
    expect(res.status).toBe(400);
    expect((await errorOf(res)).code).toBe('context_length_exceeded');
  });

  it('BudgetError → 503 with Retry-After', async () => {
    const { app } = setup({ failAt: { step: 0, error: () => new BudgetError('no KV blocks left') } });
    const res = await post(app, '/v1/completions', { prompt: 'hi', max_tokens: 2 });
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('1');
  });

  it('an exception in the forward pass: 500 server_error with request id, no stack; next request fine', async () => {
    let fail = true;
    const { app, logs } = setup({
      failAt: {
        step: 1,
        error: () => {
          const e = new RangeError('offset is out of bounds');
          if (fail) {
            fail = false;
            return e;
          }
          return e;
        },
      },
    });
    const res = await post(app, '/v1/completions', { prompt: 'hi', max_tokens: 4 });
    expect(res.status).toBe(500);
    const text = await res.clone().text();
    expect(text).not.toMatch(/\bat\s|RangeError|out of bounds/);
    const e = await errorOf(res);
    expect(e.type).toBe('server_error');
    expect(e.message).toContain(res.headers.get('x-request-id')!);
    expect(logs.some((l) => l.level === 'error' && String(l.stack).includes('RangeError'))).toBe(true);
    // the same app serves the next request (the failure was at step 1; ask for 1 token)
    const next = await post(app, '/v1/completions', { prompt: 'hi', max_tokens: 1 });
    expect(next.status).toBe(200);
  });

  it('unavailable model: 503 with Retry-After, the default model keeps serving', async () => {
    const { app } = setup();
    const res = await post(app, '/v1/completions', { prompt: 'hi', model: 'broken' });
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('5');
    expect((await errorOf(res)).message).toMatch(/unavailable/);
    expect((await post(app, '/v1/completions', { prompt: 'hi', max_tokens: 1 })).status).toBe(200);
  });
});

describe('streaming', () => {
  it('framing: data chunks, [DONE] once; text equals the non-streamed text; include_usage', async () => {
    const { app } = setup();
    const body = { prompt: 'hi', max_tokens: 6, stream: true, stream_options: { include_usage: true } };
    const res = await post(app, '/v1/completions', body);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const { events, done } = await sse(res);
    expect(done).toBe(1);
    const text = events.flatMap((e) => e.choices.map((c: any) => c.text)).join('');
    const whole: any = await (await post(app, '/v1/completions', { prompt: 'hi', max_tokens: 6 })).json();
    expect(text).toBe(whole.choices[0].text);
    const last = events.at(-1);
    expect(last.choices).toEqual([]);
    expect(last.usage).toEqual(whole.usage);
    for (const e of events.slice(0, -1)) expect(e.usage).toBeNull();
    expect(events.at(-2).choices[0].finish_reason).toBe('length');
  });

  it('chat stream: role first, then content deltas, then finish', async () => {
    const { app } = setup();
    const res = await post(app, '/v1/chat/completions', {
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 3,
      stream: true,
    });
    const { events, done } = await sse(res);
    expect(done).toBe(1);
    expect(events[0].object).toBe('chat.completion.chunk');
    expect(events[0].choices[0].delta).toEqual({ role: 'assistant', content: '' });
    expect(events.slice(1, 4).map((e) => e.choices[0].delta.content)).toHaveLength(3);
    expect(events.at(-1).choices[0].finish_reason).toBe('length');
    expect('usage' in events[0]).toBe(false);
  });

  it('beam search streams a beams extension per step, then the n sequences', async () => {
    const { app } = setup();
    const res = await post(app, '/v1/completions', {
      prompt: 'hi',
      max_tokens: 3,
      num_beams: 3,
      n: 2,
      stream: true,
    });
    const { events, done } = await sse(res);
    expect(done).toBe(1);
    const steps = events.filter((e) => e.beams);
    expect(steps.map((e) => e.beams.step)).toEqual([0, 1, 2]);
    for (const s of steps) expect(s.beams.beams).toHaveLength(3);
    expect(steps[1].beams.beams[1]).toMatchObject({ token: 49, text: '1', parent: 0 });
    const finals = events.filter((e) => e.choices.length > 0);
    expect(finals.map((e) => e.choices[0].index)).toEqual([0, 1]);
    expect(finals[0].choices[0].text).toBe(scriptedText(HI_LEN, 0, 3));
    expect(finals[0].choices[0].token_ids).toHaveLength(3);
  });

  it('chat beam search streams the tree, then each sequence as role + content with its score', async () => {
    const { app } = setup();
    const res = await post(app, '/v1/chat/completions', {
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 3,
      num_beams: 2,
      n: 2,
      stream: true,
      stream_options: { include_usage: true },
    });
    const { events, done } = await sse(res);
    expect(done).toBe(1);
    expect(events.filter((e) => e.beams)).toHaveLength(3);
    const withChoices = events.filter((e) => e.choices.length > 0).map((e) => e.choices[0]);
    expect(withChoices.map((c) => [c.index, c.delta.role ?? null, c.finish_reason])).toEqual([
      [0, 'assistant', null],
      [0, null, 'length'],
      [1, 'assistant', null],
      [1, null, 'length'],
    ]);
    expect(withChoices[1].delta.content).toHaveLength(3);
    expect(typeof withChoices[3].beam_score).toBe('number');
    expect(events.at(-1).usage.completion_tokens).toBe(6);
  });

  it('an error after the headers becomes an SSE error event, then [DONE]', async () => {
    const { app } = setup({ failAt: { step: 3, error: () => new Error('kernel fault') } });
    const res = await post(app, '/v1/completions', { prompt: 'hi', max_tokens: 6, stream: true });
    expect(res.status).toBe(200);
    const { events, done, raw } = await sse(res);
    expect(done).toBe(1);
    expect(events.at(-1).error).toMatchObject({ type: 'server_error' });
    expect(raw).not.toContain('kernel fault');
    expect(events.filter((e) => e.choices?.length)).toHaveLength(3);
  });

  it('an error before the first token keeps its HTTP status', async () => {
    const { app } = setup({ failAt: { step: 0, error: () => new OptionsError('bad', { field: 'minP' }) } });
    const res = await post(app, '/v1/completions', { prompt: 'hi', max_tokens: 6, stream: true });
    expect(res.status).toBe(400);
    expect((await errorOf(res)).param).toBe('min_p');
  });

  it('client disconnect (stream cancel) stops the generation and frees the slot', async () => {
    let release!: () => void;
    let gate = Promise.resolve();
    const { app, model } = setup(
      { beforeStep: (s) => (s >= 2 ? gate : Promise.resolve()) },
      { limits: { maxConcurrent: 1 } },
    );
    gate = new Promise<void>((r) => {
      release = r;
    });
    const res = await post(app, '/v1/completions', { prompt: 'hi', max_tokens: 50, stream: true });
    const reader = res.body!.getReader();
    await reader.read();
    await reader.cancel();
    release();
    await new Promise((r) => setTimeout(r, 10));
    expect(model.live).toBe(0);
    expect(model.steps).toBeLessThan(5);
    const next = await post(app, '/v1/completions', { prompt: 'hi', max_tokens: 1 });
    expect(next.status).toBe(200);
  });

  it('client disconnect (request signal) stops a non-streamed generation', async () => {
    const ac = new AbortController();
    const { app, model } = setup({
      beforeStep: async (s) => {
        if (s === 3) ac.abort();
        await new Promise((r) => setTimeout(r, 0));
      },
    });
    const req = new Request('http://x/v1/completions', {
      method: 'POST',
      body: JSON.stringify({ prompt: 'hi', max_tokens: 100 }),
      signal: ac.signal,
    });
    await Promise.resolve(app.request(req)).catch(() => {});
    expect(model.aborted).toBe(1);
    expect(model.steps).toBeLessThanOrEqual(4);
  });
});

describe('overload: 429/503 with Retry-After, never a queue', () => {
  it('past MAX_CONCURRENT: 429; past MAX_SEQUENCES: 503; both clear after', async () => {
    let open!: () => void;
    const gate = new Promise<void>((r) => {
      open = r;
    });
    const { app } = setup({ beforeStep: () => gate }, { limits: { maxConcurrent: 2, maxSequences: 5 } });
    const a = post(app, '/v1/completions', { prompt: 'hi', max_tokens: 2, num_beams: 4 });
    await new Promise((r) => setTimeout(r, 5));
    const b = await post(app, '/v1/completions', { prompt: 'hi', max_tokens: 2, num_beams: 2 });
    expect(b.status).toBe(503);
    expect(b.headers.get('retry-after')).toBe('1');
    const c = post(app, '/v1/completions', { prompt: 'hi', max_tokens: 2 });
    await new Promise((r) => setTimeout(r, 5));
    const d = await post(app, '/v1/completions', { prompt: 'hi', max_tokens: 2 });
    expect(d.status).toBe(429);
    expect(d.headers.get('retry-after')).toBe('1');
    expect((await errorOf(d)).code).toBe('rate_limit_exceeded');
    // bad input is a 400 even when the server is full (never a retryable 429/503)
    expect((await post(app, '/v1/completions', { prompt: 'hi', n: 'two' })).status).toBe(400);
    expect((await post(app, '/v1/completions', { prompt: 'hi', max_tokens: 5000 })).status).toBe(400);
    open();
    expect((await a).status).toBe(200);
    expect((await c).status).toBe(200);
    expect((await post(app, '/v1/completions', { prompt: 'hi', max_tokens: 2, num_beams: 4 })).status).toBe(
      200,
    );
  });
});

describe('auth', () => {
  const key = 'sk-test-0123456789';
  it('401 without or with a wrong key, 200 with it; health and playground stay open; keys never logged', async () => {
    const { app, logs } = setup(
      { failAt: { step: 0, error: () => new Error('boom') } },
      { apiKeys: [key, 'other'] },
    );
    const variants: Array<Record<string, string>> = [
      {},
      { authorization: 'Bearer nope' },
      { authorization: key },
      { authorization: `Basic ${key}` },
    ];
    for (const h of variants) {
      const res = await post(app, '/v1/completions', { prompt: 'hi' }, h);
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toBe('Bearer');
      expect((await errorOf(res)).type).toBe('authentication_error');
    }
    expect((await app.request('/v1/models')).status).toBe(401);
    expect((await app.request('/v1/models', { headers: { authorization: `Bearer ${key}` } })).status).toBe(
      200,
    );
    // this one reaches the model and fails, so something is logged
    const ok = await post(
      app,
      '/v1/completions',
      { prompt: 'hi', max_tokens: 1 },
      { authorization: `Bearer ${key}` },
    );
    expect(ok.status).toBe(500);
    expect((await app.request('/healthz')).status).toBe(200);
    expect((await app.request('/')).status).toBe(200);
    expect(logs.length).toBeGreaterThan(0);
    expect(JSON.stringify(logs)).not.toContain(key);
  });
});

describe('chat templates are untrusted', () => {
  const chat = (app: App) =>
    post(app, '/v1/chat/completions', { messages: [{ role: 'user', content: 'hi' }], max_tokens: 1 });
  it.each([
    ['a huge range', '{% for i in range(100000000) %}x{% endfor %}'],
    ['nested ranges', '{% for i in range(1000) %}{% for j in range(1000) %}x{% endfor %}{% endfor %}'],
    [
      'a string doubling',
      "{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s }}",
    ],
    ['a computed width', "{{ 'x' | indent(10 ** 9) }}"],
    ['recursion', '{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}'],
    ['too many steps', `{% for i in range(9000) %}{{ ${Array(30).fill('i').join(' + ')} }}{% endfor %}`],
    ['a syntax error', '{% for %}'],
  ])('%s: a clean 500 chat_template_error, and the app keeps serving', async (_name, template) => {
    const { app, model } = setup({ chatTemplate: template });
    const res = await chat(app);
    expect(res.status).toBe(500);
    const e = await errorOf(res);
    expect(e.code).toBe('chat_template_error');
    expect(model.calls).toHaveLength(0);
    expect((await post(app, '/v1/completions', { prompt: 'hi', max_tokens: 1 })).status).toBe(200);
  });

  it("the template's raise_exception is a 400 on the messages", async () => {
    const { app } = setup({
      chatTemplate:
        "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('no system messages') }}{% endif %}{% endfor %}",
    });
    const res = await post(app, '/v1/chat/completions', { messages: [{ role: 'system', content: 'x' }] });
    expect(res.status).toBe(400);
    expect(await errorOf(res)).toMatchObject({ param: 'messages', code: 'chat_template_error' });
    expect(
      (
        await errorOf(
          await post(app, '/v1/chat/completions', { messages: [{ role: 'system', content: 'x' }] }),
        )
      ).message,
    ).toMatch(/no system messages/);
  });

  it('a template that rewrites contents is honoured, and still cannot smuggle special tokens in', async () => {
    const { app, model } = setup({
      chatTemplate:
        "{% for m in messages %}<|user|>{{ m['content'] | trim | upper }}{% endfor %}<|assistant|>",
    });
    const ok = await post(app, '/v1/chat/completions', {
      messages: [{ role: 'user', content: ' yo ' }],
      max_tokens: 1,
    });
    expect(ok.status).toBe(200);
    expect(model.calls[0]!.prompt).toEqual([256, 258, 89, 79, 259]); // <s> <|user|> Y O <|assistant|>
    // upper() turns '<|user|>' into plain text; trim() leaves '<|assistant|>' intact: refused
    const plain = await post(app, '/v1/chat/completions', {
      messages: [{ role: 'user', content: 'a<|user|>' }],
      max_tokens: 1,
    });
    expect(plain.status).toBe(200);
    const bad = await post(app, '/v1/chat/completions', {
      messages: [{ role: 'user', content: ' <|s|>' }],
      max_tokens: 1,
    });
    expect(bad.status).toBe(200); // not a special token of this vocabulary
    const { app: app2 } = setup({
      chatTemplate: "{% for m in messages %}<|user|>{{ m['content'] | trim }}{% endfor %}<|assistant|>",
    });
    const smuggle = await post(app2, '/v1/chat/completions', {
      messages: [{ role: 'user', content: ' <|assistant|> ' }],
      max_tokens: 1,
    });
    expect(smuggle.status).toBe(400);
    expect((await errorOf(smuggle)).param).toBe('messages[0].content');
  });
});
