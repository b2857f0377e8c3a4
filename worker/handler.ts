// The Worker's fetch handler around the app: per-isolate state built on first request from env,
// rebuilt (fresh WASM state, fresh admission counters) when a previous request was killed
// mid-step. worker/index.ts wires it to the bundled kernels and weights.
import { type AppDeps, createApp } from './app.ts';
import { parseApiKeys } from './auth.ts';
import { limitsFromEnv } from './limits.ts';
import { type BucketLike, type RuntimeLike, RuntimeRegistry } from './registry.ts';

/** What the handler is built from (the parts that differ between the Worker and tests). */
export interface HandlerDeps {
  createRuntime: () => RuntimeLike;
  defaultBytes: () => Uint8Array;
  defaultId?: string;
  log?: AppDeps['log'];
}

interface State {
  registry: RuntimeRegistry;
  app: ReturnType<typeof createApp>;
}

/**
 * Makes the Worker's fetch handler. State (limits, models, the app) is built from the first
 * request's env and kept for the isolate's life; `rebuilds` counts how often a killed request
 * forced fresh WASM state.
 * @example
 * const h = createHandler({ createRuntime: () => createRuntime(kernels), defaultBytes: () => new Uint8Array(gguf) });
 * export default { fetch: h.fetch };
 */
export function createHandler(deps: HandlerDeps) {
  let state: State | undefined;
  const log = deps.log ?? ((e: Record<string, unknown>) => console.log(JSON.stringify(e)));
  const handler = {
    rebuilds: 0,
    state: () => state,
    async fetch(request: Request, env: Record<string, unknown>, ctx?: unknown): Promise<Response> {
      if (state && (await state.registry.inflight.stale())) {
        handler.rebuilds++;
        log({
          level: 'warn',
          event: 'rebuild',
          reason: 'a generation step never finished (request killed?)',
        });
        state = undefined;
      }
      state ??= build(env);
      return state.app.fetch(request, env, ctx as never);
    },
  };
  function build(env: Record<string, unknown>): State {
    const limits = limitsFromEnv(env);
    const modelKey = typeof env.MODEL_KEY === 'string' && env.MODEL_KEY !== '' ? env.MODEL_KEY : undefined;
    const registry = new RuntimeRegistry({
      createRuntime: deps.createRuntime,
      defaultBytes: deps.defaultBytes,
      defaultId:
        deps.defaultId ??
        (typeof env.DEFAULT_MODEL_ID === 'string' && env.DEFAULT_MODEL_ID
          ? env.DEFAULT_MODEL_ID
          : 'edgelm-default'),
      bucket: env.MODEL_BUCKET as BucketLike | undefined,
      modelKey,
      limits,
      log,
    });
    const app = createApp({ models: registry, limits, apiKeys: parseApiKeys(env.API_KEYS), log });
    return { registry, app };
  }
  return handler;
}
