import { describe, expect, it } from 'vitest';
import { createApp } from '../../worker/app.ts';
import { fakeModel, fakeRegistry, scriptedText } from './helpers/fake-model.ts';

const post = (app: ReturnType<typeof createApp>, path: string, body: unknown) =>
  app.request(path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });

describe('completions', () => {
  it('answers with text', async () => {
    const m = fakeModel();
    const app = createApp({ models: fakeRegistry(m), log: () => {} });
    const res = await post(app, '/v1/completions', { prompt: 'hi', max_tokens: 5 });
    const j: any = await res.json();
    expect(res.status).toBe(200);
    expect(j.choices[0].text).toBe(scriptedText(3, 0, 5));
  });
});
