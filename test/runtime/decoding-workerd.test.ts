// A seeded sampled run gives identical tokens and text in Node and in workerd: the same fixture
// (test/helpers/decoding-fixture.ts) is bundled with esbuild, run in a Miniflare worker, and compared
// with the Node run. Token ids, texts and finish reasons must be identical; log-probabilities and
// scores agree within 1e-12 relative, not bit for bit: Math.exp/log/cos/pow differ in the last ulp
// between Node 22's V8 and workerd's (measured on 2–10 % of inputs), and TinyLM's forward uses them.
// The PRNG is integer-only and identical (see the golden values in decoding.test.ts).
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { convertV4MiniflareOptions, Miniflare } from 'miniflare';
import { expect, it } from 'vitest';
import { decodingFixture } from '../helpers/decoding-fixture.ts';

const here = dirname(fileURLToPath(import.meta.url));

it('seeded sampling and beam search: Node and workerd give identical results', async () => {
  const bundle = await build({
    stdin: {
      contents: `import { decodingFixture } from '../helpers/decoding-fixture.ts';
        export default { async fetch() { return new Response(JSON.stringify(await decodingFixture())); } };`,
      resolveDir: here,
      loader: 'ts',
    },
    bundle: true,
    format: 'esm',
    write: false,
    platform: 'neutral',
    logLevel: 'silent',
  });
  const mf = new Miniflare(
    convertV4MiniflareOptions({
      modules: true,
      script: bundle.outputFiles[0].text,
      compatibilityDate: '2026-01-01',
    }),
  );
  try {
    const res = await mf.dispatchFetch('http://localhost/');
    const inWorkerd = JSON.parse(await res.text());
    const inNode = JSON.parse(JSON.stringify(await decodingFixture()));
    expect(inWorkerd.length).toBeGreaterThan(50);
    expect(inWorkerd.length).toBe(inNode.length);
    const close = (a: unknown, b: unknown): boolean => {
      if (typeof a === 'number' && typeof b === 'number') {
        return Number.isInteger(a) ? a === b : Math.abs(a - b) <= 1e-12 * Math.max(1, Math.abs(a));
      }
      if (Array.isArray(a) && Array.isArray(b))
        return a.length === b.length && a.every((x, i) => close(x, b[i]));
      if (a && b && typeof a === 'object' && typeof b === 'object') {
        const ka = Object.keys(a).sort();
        return (
          JSON.stringify(ka) === JSON.stringify(Object.keys(b).sort()) &&
          ka.every((k) => close((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]))
        );
      }
      return a === b;
    };
    for (let i = 0; i < inNode.length; i++) {
      expect(close(inNode[i], inWorkerd[i]), JSON.stringify([i, inNode[i], inWorkerd[i]])).toBe(true);
    }
  } finally {
    await mf.dispose();
  }
});
