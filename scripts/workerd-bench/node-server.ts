/**
 * The bench Worker's handler (scripts/workerd-bench/handler.ts) served by Node's http module on
 * 127.0.0.1 at a free port, printed as `PORT <n>` on stdout: a Node peer timed exactly like workerd
 * (HTTP round trips, CPU from /proc), e.g. run with --disable-wasm-trap-handler (bounds-checked WASM,
 * as workerd compiles it).
 *
 *   node --disable-wasm-trap-handler --import tsx scripts/workerd-bench/node-server.ts
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { createBenchHandler } from './handler.ts';

const root = join(import.meta.dirname, '..', '..');
const handle = createBenchHandler({
  simd: new WebAssembly.Module(readFileSync(join(root, 'build/kernels.wasm'))),
  relaxed: new WebAssembly.Module(readFileSync(join(root, 'build/kernels-relaxed.wasm'))),
});

const server = createServer(async (req, res) => {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const body = chunks.length ? new Uint8Array(Buffer.concat(chunks)) : undefined;
  const r = await handle(
    new Request(`http://127.0.0.1${req.url}`, {
      method: req.method,
      body: req.method === 'POST' ? body : undefined,
    }),
  );
  res.writeHead(r.status, { 'content-type': 'application/json' });
  res.end(await r.text());
});
server.listen(0, '127.0.0.1', () => {
  const a = server.address();
  console.log(`PORT ${typeof a === 'object' && a ? a.port : 0}`);
});
