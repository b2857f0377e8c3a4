/**
 * The bench Worker's request handler (host-neutral: workerd runs it as scripts/workerd-bench/worker.ts,
 * Node behind node:http as scripts/workerd-bench/node-server.ts). One handler holds one group of
 * workloads (scripts/workerd-bench/bench.ts):
 *
 * - `POST /setup?build=auto|simd|relaxed&kind=linear&shapes=1x288x768,…&types=f32,q8_0` (no body)
 * - `POST /setup?build=…&kind=decode&type=q8_0` with the GGUF bytes as the body (dropped after
 *   load: only the weights in WASM memory stay, as in a Worker that reads its model from R2)
 * - `GET /run?name=<workload>&n=<iterations>` → `{ checksum }`
 *
 * Both answer JSON; errors are 500 with the message. Timing happens outside (HTTP round trips):
 * a Worker's clock does not advance while it computes.
 * @example
 * const handle = createBenchHandler({ simd, relaxed }); await handle(new Request('http://x/run?name=…&n=1'));
 */
import {
  type Bench,
  type BuildChoice,
  createDecodeBench,
  createLinearBench,
  type KernelModules,
} from './bench.ts';

const json = (v: unknown, status = 200) =>
  new Response(JSON.stringify(v), { status, headers: { 'content-type': 'application/json' } });

export function createBenchHandler(mods: KernelModules): (request: Request) => Promise<Response> {
  let bench: Bench | undefined;
  return async (request) => {
    const url = new URL(request.url);
    const q = (k: string) => url.searchParams.get(k) ?? '';
    try {
      if (url.pathname === '/setup') {
        const build = (q('build') || 'auto') as BuildChoice;
        if (q('kind') === 'linear') {
          bench = createLinearBench(mods, build, q('shapes').split(','), q('types').split(','));
        } else {
          const bytes = new Uint8Array(await request.arrayBuffer());
          bench = createDecodeBench(mods, build, bytes, q('type'));
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
  };
}
