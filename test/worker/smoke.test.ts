import { SELF } from 'cloudflare:test';
import { expect, it } from 'vitest';

it('healthz answers from inside workerd with the bundled default model listed', async () => {
  const res = await SELF.fetch('http://x/healthz');
  expect(res.status).toBe(200);
  const j = (await res.json()) as { ok: boolean; default_model: string };
  expect(j.ok).toBe(true);
  expect(j.default_model).toBe('edgelm-default');
});
