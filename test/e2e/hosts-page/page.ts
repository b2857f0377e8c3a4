// Browser side of test/e2e/hosts.test.ts, bundled with esbuild and served with index.html: compiles the
// kernels with WebAssembly.compile, fetches the fixture GGUFs and runs the host cases in the page.
import { type HostReport, MODEL_NAMES, type ModelName, runHostCases } from '../../fixtures/hosts/cases.ts';

async function bytes(url: string): Promise<Uint8Array<ArrayBuffer>> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`GET ${url}: ${res.status}`);
  return new Uint8Array(await res.arrayBuffer());
}

async function runHosts(): Promise<HostReport> {
  const [simd, relaxed] = await Promise.all([
    bytes('/kernels.wasm').then((b) => WebAssembly.compile(b)),
    bytes('/kernels-relaxed.wasm').then((b) => WebAssembly.compile(b)),
  ]);
  const ggufs = {} as Record<ModelName, Uint8Array>;
  for (const m of MODEL_NAMES) ggufs[m] = await bytes(`/fixtures/${m}.gguf`);
  return runHostCases(
    `chromium ${navigator.userAgent.match(/Chrom\w+\/[\d.]+/)?.[0] ?? ''}`,
    { simd, relaxed },
    ggufs,
  );
}

(globalThis as unknown as { runHosts: typeof runHosts }).runHosts = runHosts;
(globalThis as unknown as { hostsReady: boolean }).hostsReady = true;
