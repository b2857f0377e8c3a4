// Measures the Worker from outside, over HTTP, against a real `wrangler dev` on 127.0.0.1: the
// cold start (process start → first /healthz, and the first completion, which loads the model),
// then greedy and 4-beam decoding throughput, each over several runs, median reported.
//
//   npx tsx scripts/bench-http.ts [--tokens 64] [--runs 3] [--json out.json]
//
// Tokens/s counts completion tokens (for beam search: steps × 1, i.e. the returned best sequence's
// length, and also beam-tokens/s = steps × beams), divided by the wall time of the whole request
// (prefill included). A greedy peer is the same request with 1 beam, so the 4-beam figure is also
// printed as a ratio against it.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';

const root = join(import.meta.dirname, '..');

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

export interface WranglerDev {
  url: string;
  proc: ChildProcess;
  /** ms from spawn to the app's first answer (GET /v1/models, which loads nothing) */
  upMs: number;
  /** ms from spawn to /healthz 200 (model loaded) */
  readyMs: number;
  /** ms of that first successful /healthz request alone (the isolate's cold start: it loads the model) */
  firstHealthzMs: number;
  output: () => string;
  stop: () => Promise<void>;
}

/**
 * Starts `wrangler dev` on 127.0.0.1 at a free port (and a free inspector port), waits for
 * /healthz, and returns a handle whose stop() ends the process group. Throws (after stopping it)
 * if it is not up within `timeoutMs`.
 * @example
 * const dev = await startWranglerDev(); await fetch(`${dev.url}/healthz`); await dev.stop();
 */
export async function startWranglerDev(
  opts: { timeoutMs?: number; vars?: Record<string, string> } = {},
): Promise<WranglerDev> {
  const port = await freePort();
  const inspector = await freePort();
  const args = ['dev', '--ip', '127.0.0.1', '--port', String(port), '--inspector-port', String(inspector)];
  for (const [k, v] of Object.entries(opts.vars ?? {})) args.push('--var', `${k}:${v}`);
  const t0 = performance.now();
  const proc = spawn(join(root, 'node_modules/.bin/wrangler'), args, {
    cwd: root,
    env: { ...process.env, WRANGLER_SEND_METRICS: 'false', CI: '1', NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let out = '';
  proc.stdout?.on('data', (d) => {
    out += d;
  });
  proc.stderr?.on('data', (d) => {
    out += d;
  });
  let exited = false;
  proc.once('exit', () => {
    exited = true;
  });
  const stop = async () => {
    if (exited || proc.pid === undefined) return;
    const gone = new Promise<void>((r) => proc.once('exit', () => r()));
    try {
      process.kill(-proc.pid, 'SIGTERM');
    } catch {
      // already gone
    }
    const t = setTimeout(() => {
      try {
        process.kill(-proc.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    }, 5000);
    await gone;
    clearTimeout(t);
  };
  const url = `http://127.0.0.1:${port}`;
  const deadline = t0 + (opts.timeoutMs ?? 90_000);
  while (performance.now() < deadline) {
    if (exited) throw new Error(`wrangler dev exited before it was ready:\n${out.slice(-4000)}`);
    try {
      // up: any answer from the app (GET /v1/models does not load the model)
      const up = await fetch(`${url}/v1/models`, { signal: AbortSignal.timeout(30_000) });
      await up.text();
      if (up.status === 200 || up.status === 401) {
        const upMs = performance.now() - t0;
        const tReq = performance.now();
        const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(60_000) });
        await res.text();
        if (res.status !== 200) throw new Error(`/healthz answered ${res.status}`);
        const now = performance.now();
        return { url, proc, upMs, readyMs: now - t0, firstHealthzMs: now - tReq, output: () => out, stop };
      }
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  await stop();
  throw new Error(`wrangler dev was not ready within ${opts.timeoutMs ?? 90_000} ms:\n${out.slice(-4000)}`);
}

/**
 * Serves the Worker's handler (real runtime, bundled default model) from Node's http module on
 * 127.0.0.1 at a free port: the same app as in workerd, as a peer for measurements and for the
 * browser test. Request bodies are read whole; responses are piped chunk by chunk (SSE arrives as
 * produced); a client that goes away aborts the request's signal and cancels the body.
 * @example
 * const s = await serveWorkerInNode(); await fetch(`${s.url}/healthz`); await s.close();
 */
export async function serveWorkerInNode(
  env: Record<string, unknown> = {},
): Promise<{ url: string; close: () => Promise<void> }> {
  const { createRuntime } = await import('../runtime/index.ts');
  const { createHandler } = await import('../worker/handler.ts');
  const simd = new WebAssembly.Module(readFileSync(join(root, 'build/kernels.wasm')));
  const relaxed = new WebAssembly.Module(readFileSync(join(root, 'build/kernels-relaxed.wasm')));
  const gguf = new Uint8Array(readFileSync(join(root, 'weights/default.gguf')));
  const handler = createHandler({
    createRuntime: () => createRuntime({ simd, relaxed }),
    defaultBytes: () => gguf,
    log: () => {},
  });
  const server = createHttpServer(async (req, res) => {
    const ac = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) ac.abort();
    });
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const headers = new Headers();
    for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string') headers.set(k, v);
    const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
    const request = new Request(`http://127.0.0.1${req.url}`, {
      method: req.method,
      headers,
      body: hasBody ? Buffer.concat(chunks) : undefined,
      signal: ac.signal,
    });
    const response = await handler.fetch(request, env);
    res.writeHead(response.status, Object.fromEntries(response.headers));
    if (!response.body) return void res.end();
    const reader = response.body.getReader();
    ac.signal.addEventListener('abort', () => void reader.cancel().catch(() => {}));
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        res.write(value);
      }
    } catch {
      // client gone
    }
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

async function completion(url: string, body: Record<string, unknown>) {
  const t0 = performance.now();
  const res = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const j = (await res.json()) as any;
  const ms = performance.now() - t0;
  if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${JSON.stringify(j)}`);
  return { ms, j };
}

const median = (xs: number[]) => {
  const s = xs.slice().sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

interface Figure {
  beams: number;
  ms: number;
  steps: number;
  tokensPerSecond: number;
  beamTokensPerSecond: number;
}

// greedy and 4-beam requests interleaved (so load on the machine hits both alike), median per kind
async function measure(
  url: string,
  prompt: string,
  tokens: number,
  runs: number,
): Promise<Record<1 | 4, Figure>> {
  const times: Record<number, number[]> = { 1: [], 4: [] };
  const steps: Record<number, number> = { 1: 0, 4: 0 };
  const body = (beams: number) => ({
    prompt,
    max_tokens: tokens,
    temperature: 0,
    ignore_eos: true,
    num_beams: beams,
  });
  for (const beams of [1, 4]) await completion(url, body(beams)); // warm-up
  for (let i = 0; i < runs; i++) {
    for (const beams of [1, 4]) {
      const { ms, j } = await completion(url, body(beams));
      times[beams]!.push(ms);
      steps[beams] = beams > 1 ? (j.choices[0].token_ids?.length ?? tokens) : j.usage.completion_tokens;
    }
  }
  const fig = (beams: 1 | 4): Figure => {
    const ms = median(times[beams]!);
    const n = steps[beams]!;
    return {
      beams,
      ms,
      steps: n,
      tokensPerSecond: (n / ms) * 1000,
      beamTokensPerSecond: ((n * beams) / ms) * 1000,
    };
  };
  return { 1: fig(1), 4: fig(4) };
}

async function main() {
  const argv = process.argv.slice(2);
  const arg = (name: string, def: string) => {
    const i = argv.indexOf(`--${name}`);
    const v = i >= 0 ? argv[i + 1] : undefined;
    return v !== undefined && !v.startsWith('--') ? v : def;
  };
  const tokens = Number(arg('tokens', '64'));
  const runs = Number(arg('runs', '5'));
  const jsonOut = argv.includes('--json') ? arg('json', 'bench-results/bench-http.json') : undefined;
  const prompt = 'Once upon a time';
  const dev = await startWranglerDev();
  let result: Record<string, unknown>;
  try {
    const first = await completion(dev.url, { prompt, max_tokens: 1, temperature: 0 });
    const models = (await (await fetch(`${dev.url}/v1/models`)).json()) as any;
    const model = models.data[0];
    const workerd = await measure(dev.url, prompt, tokens, runs);
    await dev.stop();
    // the peer: the same handler and model served from Node, measured right after
    const node = await serveWorkerInNode();
    let peer: Record<1 | 4, Figure>;
    try {
      peer = await measure(node.url, prompt, tokens, runs);
    } finally {
      await node.close();
    }
    result = {
      model: {
        id: model.id,
        context: model.context_length,
        quantization: model.quantization,
        parameters: model.parameters,
      },
      coldStart: {
        processToHealthzMs: dev.readyMs,
        firstHealthzRequestMs: dev.firstHealthzMs,
        firstCompletionMs: first.ms,
      },
      workerd: { greedy: workerd[1], beam4: workerd[4], beam4VsGreedyWall: workerd[4].ms / workerd[1].ms },
      nodePeer: { greedy: peer[1], beam4: peer[4], beam4VsGreedyWall: peer[4].ms / peer[1].ms },
      workerdVsNodeTokensPerSecond: {
        greedy: workerd[1].tokensPerSecond / peer[1].tokensPerSecond,
        beam4: workerd[4].tokensPerSecond / peer[4].tokensPerSecond,
      },
      tokens,
      runs,
      node: process.version,
    };
    console.log(
      `model ${model.id} (${model.quantization}, ${model.parameters} params, context ${model.context_length})`,
    );
    console.log(
      `cold start: spawn wrangler dev → app answers ${dev.upMs.toFixed(0)} ms (wrangler's own start); ` +
        `then the first /healthz (loads the model in the isolate) ${dev.firstHealthzMs.toFixed(0)} ms; ` +
        `first completion after it ${first.ms.toFixed(0)} ms`,
    );
    for (const [where, f] of [
      ['wrangler dev', workerd],
      ['node peer   ', peer],
    ] as const) {
      for (const r of [f[1], f[4]])
        console.log(
          `${where} ${r.beams === 1 ? 'greedy ' : `${r.beams} beams`}: ${r.steps} tokens in ${r.ms.toFixed(0)} ms ` +
            `(median of ${runs}, whole request) → ${r.tokensPerSecond.toFixed(1)} tok/s` +
            (r.beams > 1
              ? ` (${r.beamTokensPerSecond.toFixed(1)} beam-tok/s), ${(f[4].ms / f[1].ms).toFixed(2)}× greedy's time`
              : ''),
        );
    }
    const ratio = result.workerdVsNodeTokensPerSecond as { greedy: number; beam4: number };
    console.log(
      `workerd / node tokens/s: greedy ${ratio.greedy.toFixed(2)}, 4 beams ${ratio.beam4.toFixed(2)}`,
    );
  } finally {
    await dev.stop();
  }
  if (jsonOut) {
    mkdirSync(dirname(jsonOut), { recursive: true });
    writeFileSync(jsonOut, `${JSON.stringify(result, null, 2)}\n`);
    console.log(`wrote ${jsonOut}`);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
