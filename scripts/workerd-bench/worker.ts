/**
 * The bench Worker of scripts/bench-workerd.ts: the kernels arrive as CompiledWasm modules (as in
 * worker/index.ts). One isolate holds one group of workloads (scripts/workerd-bench/bench.ts):
 *
 * - `POST /setup?build=auto|simd|relaxed&kind=linear&shapes=1x288x768,…&types=f32,q8_0` (no body)
 * - `POST /setup?build=…&kind=decode&type=q8_0` with the GGUF bytes as the body (dropped after
 *   load: only the weights in WASM memory stay, as in a Worker that reads its model from R2)
 * - `GET /run?name=<workload>&n=<iterations>` → `{ checksum }`
 *
 * Both answer JSON; errors are 500 with the message. Timing happens outside (HTTP round trips):
 * a Worker's clock does not advance while it computes.
 */

import { type Bench, type BuildChoice, createDecodeBench, createLinearBench } from './bench.ts';
import simd from './kernels.wasm';
import relaxed from './kernels-relaxed.wasm';

let bench: Bench | undefined;

const json = (v: unknown, status = 200) =>
  new Response(JSON.stringify(v), { status, headers: { 'content-type': 'application/json' } });

export default {
  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const q = (k: string) => url.searchParams.get(k) ?? '';
    try {
      if (url.pathname === '/setup') {
        const build = (q('build') || 'auto') as BuildChoice;
        if (q('kind') === 'linear') {
          bench = createLinearBench({ simd, relaxed }, build, q('shapes').split(','), q('types').split(','));
        } else {
          const bytes = new Uint8Array(await request.arrayBuffer());
          bench = createDecodeBench({ simd, relaxed }, build, bytes, q('type'));
        }
        return json({
          build: bench.build,
          relaxedAvailable: bench.relaxedAvailable,
          memoryBytes: bench.memoryBytes,
        });
      }
      if (url.pathname === '/run') {
        if (!bench) return json({ error: 'not set up' }, 409);
        return json({ checksum: bench.run(q('name'), Number(q('n'))) });
      }
      return json({ error: 'not found' }, 404);
    } catch (e) {
      return json({ error: String((e as Error)?.stack ?? e) }, 500);
    }
  },
};
