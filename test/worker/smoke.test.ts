import { SELF } from 'cloudflare:test';
import { expect, it } from 'vitest';

it('healthz answers from inside workerd with the kernels module imported', async () => {
  const res = await SELF.fetch('http://x/healthz');
  expect(res.status).toBe(200);
  expect(await res.json()).toEqual({ ok: true, kernels: true });
});
