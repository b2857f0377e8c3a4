// KV_TYPE ([vars]): parsed and checked with the other limits, passed to every loadModel, and a
// Worker with KV_TYPE = "f16" serves the same greedy text as the runtime called directly with kvType 'f16'.
import { describe, expect, it } from 'vitest';
import kernels from '../../build/kernels.wasm';
import { createRuntime } from '../../runtime/index.ts';
import defaultModel from '../../weights/default-q8_0.gguf';
import { createHandler } from '../../worker/handler.ts';
import { DEFAULT_LIMITS, limitsFromEnv } from '../../worker/limits.ts';
import type { RuntimeLike } from '../../worker/registry.ts';

describe('KV_TYPE', () => {
  it('defaults to f32, takes "f32" / "f16", and refuses anything else naming the var', () => {
    expect(DEFAULT_LIMITS.kvType).toBe('f32');
    expect(limitsFromEnv({}).kvType).toBe('f32');
    expect(limitsFromEnv({ KV_TYPE: '' }).kvType).toBe('f32');
    expect(limitsFromEnv({ KV_TYPE: 'f16' }).kvType).toBe('f16');
    expect(limitsFromEnv({ KV_TYPE: ' f16 ' }).kvType).toBe('f16');
    expect(limitsFromEnv({ KV_TYPE: 'f32' }).kvType).toBe('f32');
    for (const bad of ['f8', 'F16', 'bf16', 'q8_0', '16']) {
      expect(() => limitsFromEnv({ KV_TYPE: bad })).toThrow(/KV_TYPE/);
    }
  });

  it('a Worker with KV_TYPE "f16" loads its model with kvType f16 and serves what the runtime gives directly', async () => {
    const seen: unknown[] = [];
    const h = createHandler({
      createRuntime: () => {
        const rt = createRuntime({ simd: kernels });
        const wrapped: RuntimeLike = {
          loadModel: (bytes, opts) => {
            seen.push(opts?.kvType);
            return rt.loadModel(bytes, opts);
          },
        };
        return wrapped;
      },
      defaultBytes: () => new Uint8Array(defaultModel),
      log: () => {},
    });
    const vars = { KV_TYPE: 'f16', MAX_CONTEXT: '256', MAX_SEQUENCES: '4' };
    const res = await h.fetch(
      new Request('http://x/v1/completions', {
        method: 'POST',
        body: JSON.stringify({ prompt: 'Once upon a time', max_tokens: 12, temperature: 0 }),
      }),
      vars,
    );
    expect(res.status).toBe(200);
    const text = ((await res.json()) as any).choices[0].text as string;
    expect(seen).toEqual(['f16']);
    const ref = createRuntime({ simd: kernels }).loadModel(new Uint8Array(defaultModel), {
      budgetBytes: DEFAULT_LIMITS.modelBudgetBytes,
      maxContext: 256,
      maxSequences: 4,
      kvType: 'f16',
    });
    expect(ref.info.kvType).toBe('f16');
    let want = '';
    for await (const ev of ref.generate(ref.promptIds('Once upon a time'), {
      maxNewTokens: 12,
      temperature: 0,
    }))
      if (ev.type === 'done') want = ev.result.sequences[0].text;
    expect(text).toBe(want);
  });

  it('a bad KV_TYPE fails the Worker loudly instead of serving with a default', async () => {
    const h = createHandler({
      createRuntime: () => createRuntime({ simd: kernels }),
      defaultBytes: () => new Uint8Array(defaultModel),
      log: () => {},
    });
    await expect(h.fetch(new Request('http://x/healthz'), { KV_TYPE: 'f8' })).rejects.toThrow(/KV_TYPE/);
  });
});
