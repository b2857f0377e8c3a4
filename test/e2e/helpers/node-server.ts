// Serves the Worker's handler from Node's http module (for the browser test): requests become
// fetch Requests with a signal that aborts when the client goes away; response bodies are piped
// back chunk by chunk so SSE streams arrive as they are produced.
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { createRuntime } from '../../../runtime/index.ts';
import { createHandler } from '../../../worker/handler.ts';

const root = join(import.meta.dirname, '../../..');

export interface NodeServer {
  url: string;
  server: Server;
  close: () => Promise<void>;
}

/** Starts the real handler (runtime + bundled default model) on 127.0.0.1 at a free port. */
export async function serveWorker(env: Record<string, unknown> = {}): Promise<NodeServer> {
  const simd = new WebAssembly.Module(readFileSync(join(root, 'build/kernels.wasm')));
  const gguf = new Uint8Array(readFileSync(join(root, 'weights/default.gguf')));
  const handler = createHandler({
    createRuntime: () => createRuntime({ simd }),
    defaultBytes: () => gguf,
    log: () => {},
  });
  const server = createServer(async (req, res) => {
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
    server,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
