// The Workers entry: the kernels arrive as compiled WebAssembly.Modules and the default model as
// an ArrayBuffer (wrangler.toml's CompiledWasm and Data rules); nothing is loaded until the first
// request, so the global scope starts at once. The default model ships as its Q8_0 file: the same
// held-out exact match and perplexity as the f32 one (weights/MODEL_CARD.md), a quarter of the
// bytes in the bundle and in the isolate, and faster quantised kernels.

import kernels from '../build/kernels.wasm';
import kernelsRelaxed from '../build/kernels-relaxed.wasm';
import { createRuntime } from '../runtime/index.ts';
import defaultModel from '../weights/default-q8_0.gguf';
import { createHandler } from './handler.ts';

const handler = createHandler({
  createRuntime: () => createRuntime({ simd: kernels, relaxed: kernelsRelaxed }),
  defaultBytes: () => new Uint8Array(defaultModel),
});

export default {
  fetch: (request: Request, env: Record<string, unknown>, ctx: unknown) => handler.fetch(request, env, ctx),
};
