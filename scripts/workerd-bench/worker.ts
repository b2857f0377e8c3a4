/**
 * The bench Worker of scripts/bench-workerd.ts (requests: scripts/workerd-bench/handler.ts). The
 * kernels arrive as CompiledWasm modules, as in worker/index.ts.
 */

import { createBenchHandler } from './handler.ts';
import simd from './kernels.wasm';
import relaxed from './kernels-relaxed.wasm';

const handle = createBenchHandler({ simd, relaxed });

export default {
  fetch(request: Request): Promise<Response> {
    return handle(request);
  },
};
