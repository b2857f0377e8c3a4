/**
 * llama.cpp in Node, as a peer and a reference: @wllama/wllama driving the compat build of
 * @wllama/wllama-compat (32-bit, SIMD, asyncify; the default build needs 64-bit tables that Node 22
 * rejects). wllama expects a browser: a Web Worker made from a blob URL, `self`, `location`. We give
 * it a `Worker` class over worker_threads that reads the blob's source and runs it behind a prelude
 * mapping postMessage/onmessage onto parentPort.
 * @example
 * const ll = await loadWllama('model.gguf');
 * const out = await ll.complete('Once upon a time', 16, { withIds: true });
 * await ll.exit();
 */

import { resolveObjectURL } from 'node:buffer';
import { openAsBlob } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Worker as NodeWorker } from 'node:worker_threads';

const require = createRequire(import.meta.url);

const PRELUDE = `
const { parentPort } = require('node:worker_threads');
globalThis.self = globalThis;
globalThis.location = { href: 'file:///wllama-worker.js' };
globalThis.postMessage = (msg, transfer) => parentPort.postMessage(msg, transfer);
parentPort.on('message', (data) => { if (typeof globalThis.onmessage === 'function') globalThis.onmessage({ data }); });
`;

class ShimWorker {
  onmessage: ((e: { data: unknown }) => void) | null = null;
  onerror: ((e: unknown) => void) | null = null;
  private w: Promise<NodeWorker>;
  private queue: Array<[unknown, unknown]> = [];
  private real: NodeWorker | null = null;
  constructor(url: string | URL) {
    const href = String(url);
    this.w = (async () => {
      const blob = resolveObjectURL(href);
      if (!blob) throw new Error(`wllama shim: cannot resolve worker URL ${href}`);
      const src = await blob.text();
      const w = new NodeWorker(PRELUDE + src, { eval: true });
      w.on('message', (data) => this.onmessage?.({ data }));
      w.on('error', (e) => this.onerror?.(e));
      this.real = w;
      for (const [m, t] of this.queue) w.postMessage(m, t as any);
      this.queue = [];
      return w;
    })();
  }
  postMessage(msg: unknown, transfer?: unknown) {
    if (this.real) this.real.postMessage(msg, transfer as any);
    else this.queue.push([msg, transfer]);
  }
  terminate() {
    void this.w.then((w) => w.terminate());
  }
  addEventListener(type: string, fn: (e: unknown) => void) {
    if (type === 'message') this.onmessage = fn as any;
    if (type === 'error') this.onerror = fn;
  }
}

export interface WllamaHandle {
  /** greedy completion of `maxTokens` tokens after the prompt tokens; returns ids and timings */
  complete(
    prompt: string,
    maxTokens: number,
    opts?: { withIds?: boolean },
  ): Promise<{
    tokens: number[];
    text: string;
    predictedPerSecond: number;
    promptPerSecond: number;
    promptTokens: number;
  }>;
  exit(): Promise<void>;
}

/** Loads a GGUF file into llama.cpp (one thread, CPU). */
export async function loadWllama(path: string, nCtx = 1024): Promise<WllamaHandle> {
  const g = globalThis as any;
  if (!g.__edgelmWorkerShim) {
    g.Worker = ShimWorker;
    g.self ??= globalThis;
    g.location ??= { href: 'file:///' };
    g.__edgelmWorkerShim = true;
  }
  const wllamaDir = dirname(require.resolve('@wllama/wllama/package.json'));
  const compatDir = dirname(require.resolve('@wllama/wllama-compat/package.json'));
  const { Wllama } = await import('@wllama/wllama');
  const ll = new Wllama(
    { default: join(wllamaDir, 'esm', 'wasm', 'wllama.wasm') } as any,
    {
      cacheManager: {} as any,
      suppressNativeLog: !process.env.WLLAMA_DEBUG,
      logger: process.env.WLLAMA_DEBUG ? console : { debug() {}, log() {}, warn() {}, error: console.error },
    } as any,
  );
  ll.setCompat({
    worker: { code: await readFile(join(compatDir, 'wasm', 'wllama.js'), 'utf8') },
    wasm: join(compatDir, 'wasm', 'wllama.wasm'),
  } as any);
  const blob = await openAsBlob(path);
  await ll.loadModel([blob as any], { n_threads: 1, n_gpu_layers: 0, n_ctx: nCtx } as any);
  // loadModel can resolve although llama.cpp refused the file; fail here, not on the next call
  if (!ll.isModelLoaded()) throw new Error(`llama.cpp could not load ${path}`);
  return {
    async complete(prompt, maxTokens, opts = {}) {
      // the prompt must be text (llama-server's JSON wants a string); token ids come back through
      // logprobs, which we only request when asked (they cost time)
      const res: any = await (ll as any).createCompletion({
        prompt,
        max_tokens: maxTokens,
        temperature: 0,
        ignore_eos: true,
        ...(opts.withIds ? { logprobs: 1 } : {}),
        stream: false,
      });
      const t = res?.timings ?? {};
      const content = res?.choices?.[0]?.logprobs?.content ?? [];
      return {
        tokens: content.map((c: any) => c.id as number),
        text: res?.choices?.[0]?.text ?? '',
        predictedPerSecond: t.predicted_per_second ?? 0,
        promptPerSecond: t.prompt_per_second ?? 0,
        promptTokens: t.prompt_n ?? 0,
      };
    },
    async exit() {
      await ll.exit();
    },
  };
}
