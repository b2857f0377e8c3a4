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
import { mkdirSync, writeFileSync } from 'node:fs';
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
  /** ms from spawn to the first 200 from /healthz */
  readyMs: number;
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
      const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2000) });
      if (res.status === 200) {
        await res.text();
        return { url, proc, readyMs: performance.now() - t0, output: () => out, stop };
      }
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  await stop();
  throw new Error(`wrangler dev was not ready within ${opts.timeoutMs ?? 90_000} ms:\n${out.slice(-4000)}`);
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

async function main() {
  const argv = process.argv.slice(2);
  const arg = (name: string, def: string) => {
    const i = argv.indexOf(`--${name}`);
    const v = i >= 0 ? argv[i + 1] : undefined;
    return v !== undefined && !v.startsWith('--') ? v : def;
  };
  const tokens = Number(arg('tokens', '64'));
  const runs = Number(arg('runs', '3'));
  const jsonOut = argv.includes('--json') ? arg('json', 'bench-results/bench-http.json') : undefined;
  const prompt = 'Once upon a time';
  const dev = await startWranglerDev();
  try {
    const first = await completion(dev.url, { prompt, max_tokens: 1, temperature: 0 });
    const models = (await (await fetch(`${dev.url}/v1/models`)).json()) as any;
    const model = models.data[0];
    const run = async (beams: number) => {
      const body = { prompt, max_tokens: tokens, temperature: 0, ignore_eos: true, num_beams: beams };
      await completion(dev.url, body); // warm-up
      const times: number[] = [];
      let completionTokens = 0;
      let steps = 0;
      for (let i = 0; i < runs; i++) {
        const { ms, j } = await completion(dev.url, body);
        times.push(ms);
        completionTokens = j.usage.completion_tokens;
        steps = beams > 1 ? (j.choices[0].token_ids?.length ?? tokens) : completionTokens;
      }
      const ms = median(times);
      return {
        beams,
        ms,
        steps,
        tokensPerSecond: (steps / ms) * 1000,
        beamTokensPerSecond: ((steps * beams) / ms) * 1000,
      };
    };
    const greedy = await run(1);
    const beam4 = await run(4);
    const result = {
      model: {
        id: model.id,
        context: model.context_length,
        quantization: model.quantization,
        parameters: model.parameters,
      },
      coldStart: { processToHealthzMs: dev.readyMs, firstCompletionMs: first.ms },
      greedy,
      beam4,
      beam4VsGreedyWallRatio: beam4.ms / greedy.ms,
      tokens,
      runs,
      node: process.version,
    };
    console.log(
      `model ${model.id} (${model.quantization}, ${model.parameters} params, context ${model.context_length})`,
    );
    console.log(
      `cold start: wrangler dev up → /healthz 200 in ${dev.readyMs.toFixed(0)} ms; first completion (loads the model) ${first.ms.toFixed(0)} ms`,
    );
    for (const r of [greedy, beam4])
      console.log(
        `${r.beams === 1 ? 'greedy ' : `${r.beams} beams`}: ${r.steps} tokens in ${r.ms.toFixed(0)} ms (median of ${runs}) → ` +
          `${r.tokensPerSecond.toFixed(1)} tok/s` +
          (r.beams > 1 ? `, ${r.beamTokensPerSecond.toFixed(1)} beam-tok/s` : ''),
      );
    console.log(`4 beams cost ${result.beam4VsGreedyWallRatio.toFixed(2)}× the greedy request's wall time`);
    if (jsonOut) {
      mkdirSync(dirname(jsonOut), { recursive: true });
      writeFileSync(jsonOut, `${JSON.stringify(result, null, 2)}\n`);
      console.log(`wrote ${jsonOut}`);
    }
  } finally {
    await dev.stop();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
