import { Hono } from 'hono';
import kernelsModule from '../build/kernels.wasm';

const app = new Hono();
app.get('/healthz', (c) => c.json({ ok: true, kernels: kernelsModule instanceof WebAssembly.Module }));
export default app;
