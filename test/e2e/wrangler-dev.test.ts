// The real `wrangler dev` process on 127.0.0.1 at a free port: start, request, stream, stop.
// Bounded: startup waits at most 90 s, each request has a timeout, and the process group is
// stopped in afterAll whatever happened.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWranglerDev, type WranglerDev } from '../../scripts/bench-http.ts';

let dev: WranglerDev;
beforeAll(async () => {
  dev = await startWranglerDev({ timeoutMs: 90_000 });
}, 100_000);
afterAll(async () => {
  await dev?.stop();
});

const post = (path: string, body: unknown) =>
  fetch(`${dev.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  });

describe('wrangler dev', () => {
  it('serves healthz, models, a completion and a chat completion', async () => {
    const health = (await (await fetch(`${dev.url}/healthz`)).json()) as any;
    expect(health.ok).toBe(true);
    const res = await post('/v1/completions', { prompt: 'Once upon a time', max_tokens: 8, temperature: 0 });
    expect(res.status).toBe(200);
    const j = (await res.json()) as any;
    expect(j.choices[0].finish_reason).toMatch(/stop|length/);
    expect(j.usage.completion_tokens).toBeGreaterThan(0);
    const chat = await post('/v1/chat/completions', {
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 4,
    });
    expect(chat.status).toBe(200);
    const models = (await (await fetch(`${dev.url}/v1/models`)).json()) as any;
    expect(models.data[0].status).toBe('loaded');
  });

  it('streams server-sent events ending in one [DONE], text equal to the non-streamed answer', async () => {
    const body = { prompt: 'The', max_tokens: 10, temperature: 0 };
    const whole = (await (await post('/v1/completions', body)).json()) as any;
    const res = await post('/v1/completions', { ...body, stream: true });
    expect(res.headers.get('content-type')).toMatch(/text\/event-stream/);
    const raw = await res.text();
    const blocks = raw.split('\n\n').filter(Boolean);
    expect(blocks.filter((b) => b === 'data: [DONE]')).toHaveLength(1);
    expect(blocks.at(-1)).toBe('data: [DONE]');
    const text = blocks
      .slice(0, -1)
      .map((b) => JSON.parse(b.slice(6)))
      .flatMap((e) => e.choices.map((c: any) => c.text))
      .join('');
    expect(text).toBe(whole.choices[0].text);
  });

  it('answers bad input with 400 and a too-large body with 413', async () => {
    const bad = await post('/v1/completions', { prompt: 'x', max_tokens: 'many' });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as any).error.param).toBe('max_tokens');
    const big = await post('/v1/completions', { prompt: 'x'.repeat(2 << 20) });
    expect(big.status).toBe(413);
  });

  it('concurrent requests (greedy, sampled, beams, streamed) each get their answer alone', async () => {
    const bodies = [
      { prompt: 'Once upon a time', max_tokens: 24, temperature: 0 },
      { prompt: 'The cat', max_tokens: 24, temperature: 0.9, seed: 3 },
      { prompt: 'In the', max_tokens: 16, num_beams: 4, n: 2 },
      { prompt: 'Hello', max_tokens: 24, temperature: 0, stream: true },
    ];
    const answer = async (body: Record<string, unknown>) => {
      const res = await post('/v1/completions', body);
      expect(res.status).toBe(200);
      const raw = await res.text();
      if (!body.stream) return ((JSON.parse(raw) as any).choices as any[]).map((c) => c.text);
      const chunks = raw.split('\n\n').filter((b) => b.startsWith('data: {'));
      return [chunks.flatMap((b) => JSON.parse(b.slice(6)).choices.map((c: any) => c.text)).join('')];
    };
    const alone: string[][] = [];
    for (const b of bodies) alone.push(await answer(b));
    expect(await Promise.all(bodies.map(answer))).toEqual(alone);
  });

  it('stops cleanly', async () => {
    await dev.stop();
    await expect(fetch(`${dev.url}/healthz`, { signal: AbortSignal.timeout(2000) })).rejects.toThrow();
  });
});
