// The same GGUF gives the same results in every host. Here: Node re-checks the committed expectations
// (test/fixtures/hosts/expected.json, written by make.ts), then headless Chromium (Debian's, driven by
// playwright-core) runs the same cases from a page served on 127.0.0.1 — runtime/index.ts bundled for
// the browser with esbuild, the kernels compiled in the page with WebAssembly.compile — and must agree
// with the committed values and, bit for bit, with Node's run. workerd too: test/worker/hosts.test.ts
// checks the committed values in the vitest workers project; here the same cases bundled for a Miniflare
// worker are compared bit for bit with this run's Node results.
// Cases and tolerances: test/fixtures/hosts/cases.ts.
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { convertV4MiniflareOptions, Miniflare } from 'miniflare';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  diffLive,
  diffReport,
  type Expected,
  type HostReport,
  MODEL_NAMES,
  type ModelName,
  runHostCases,
  summarize,
} from '../fixtures/hosts/cases.ts';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const fixtures = join(root, 'test', 'fixtures', 'hosts');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

const expected: Expected = JSON.parse(readFileSync(join(fixtures, 'expected.json'), 'utf8'));
const ggufs = Object.fromEntries(
  MODEL_NAMES.map((m) => [m, new Uint8Array(readFileSync(join(fixtures, `${m}.gguf`)))]),
) as Record<ModelName, Uint8Array>;
const wasm = {
  simd: readFileSync(join(root, 'build', 'kernels.wasm')),
  relaxed: readFileSync(join(root, 'build', 'kernels-relaxed.wasm')),
};

/** rejects after `ms` with a message naming the step (every wait in this file is bounded) */
function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

let nodeReport: HostReport;

describe('Node', () => {
  beforeAll(async () => {
    nodeReport = await runHostCases(
      `node ${process.version}`,
      { simd: new WebAssembly.Module(wasm.simd), relaxed: new WebAssembly.Module(wasm.relaxed) },
      ggufs,
    );
  });

  it('still produces the committed expectations (greedy, seeded sampling, beams; both kernels builds)', () => {
    expect(expected.runs).toHaveLength(MODEL_NAMES.length * 3);
    expect(nodeReport.relaxedAvailable).toBe(true); // Node 22 validates relaxed SIMD
    expect(diffReport(expected, nodeReport)).toEqual([]);
  });

  it('the comparison can fail: a changed token, a moved score and a changed hash are reported', () => {
    const tampered: Expected = structuredClone(expected);
    tampered.runs[0]!.sequences[0]!.tokens[5]! += 1;
    tampered.runs[2]!.sequences[1]!.score += 2e-4;
    expect(diffReport(tampered, nodeReport)).toHaveLength(4); // tokens + score, simd and relaxed builds
    const other: HostReport = structuredClone(nodeReport);
    other.host = 'other';
    other.forwards[0]!.hash = '00000000';
    other.runs[1]!.sequences[0]!.score += 2e-5;
    expect(diffLive(nodeReport, other)).toHaveLength(2);
  });
});

describe('headless Chromium', () => {
  let server: Server | undefined;
  let browser: Browser | undefined;
  let origin = '';

  beforeAll(async () => {
    const bundle = await build({
      entryPoints: [join(here, 'hosts-page', 'page.ts')],
      bundle: true,
      format: 'esm',
      platform: 'browser',
      target: 'chrome114',
      write: false,
      logLevel: 'silent',
    });
    const files = new Map<string, [string, Uint8Array | string]>([
      ['/', ['text/html', readFileSync(join(here, 'hosts-page', 'index.html'))]],
      ['/page.js', ['text/javascript', bundle.outputFiles[0]!.text]],
      ['/kernels.wasm', ['application/wasm', wasm.simd]],
      ['/kernels-relaxed.wasm', ['application/wasm', wasm.relaxed]],
      ...MODEL_NAMES.map((m): [string, [string, Uint8Array]] => [
        `/fixtures/${m}.gguf`,
        ['application/octet-stream', ggufs[m]],
      ]),
    ]);
    server = createServer((req, res) => {
      const f = files.get(req.url ?? '');
      if (!f) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-type': f[0], 'cache-control': 'no-store' }).end(f[1]);
    });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    if (!existsSync(CHROMIUM))
      throw new Error(
        `${CHROMIUM} is missing: apt-get install -y chromium (.ci/run does), or set CHROMIUM_PATH`,
      );
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      timeout: 30_000,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--no-first-run',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  }, 60_000);

  afterAll(async () => {
    await browser?.close().catch(() => {});
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  });

  it('gives the committed results, and bit-identical forwards and equal scores to Node in this run', async () => {
    const page = await browser!.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    page.setDefaultTimeout(20_000);
    await page.goto(origin, { timeout: 20_000 });
    await page.waitForFunction(() => (globalThis as { hostsReady?: boolean }).hostsReady === true);
    const report = await within(
      60_000,
      'runHosts() in Chromium',
      page.evaluate(() => (globalThis as unknown as { runHosts(): Promise<HostReport> }).runHosts()),
    );
    expect(pageErrors).toEqual([]);
    expect(report.host).toMatch(/^chromium Chrom/);
    // Chrome 114+ validates relaxed SIMD: both builds ran in the page
    expect(report.relaxedAvailable).toBe(true);
    console.info(summarize(nodeReport, report));
    expect(diffReport(expected, report)).toEqual([]);
    expect(diffLive(nodeReport, report)).toEqual([]);
  }, 90_000);
});

describe('workerd (Miniflare, this run)', () => {
  it('gives the committed results, and bit-identical forwards and equal scores to Node in this run', async () => {
    // the fixtures and kernels arrive as Data / CompiledWasm modules, as in a deployed Worker
    const entry = [
      "import simd from './kernels.wasm';",
      "import relaxed from './kernels-relaxed.wasm';",
      ...MODEL_NAMES.map((m, i) => `import m${i} from './${m}.gguf';`),
      `import { runHostCases } from ${JSON.stringify(join(fixtures, 'cases.ts'))};`,
      `const ggufs = { ${MODEL_NAMES.map((m, i) => `'${m}': new Uint8Array(m${i})`).join(', ')} };`,
      "export default { async fetch() { return Response.json(await runHostCases('workerd', { simd, relaxed }, ggufs)); } };",
    ].join('\n');
    const bundle = await build({
      stdin: { contents: entry, resolveDir: here, loader: 'ts' },
      bundle: true,
      format: 'esm',
      platform: 'neutral',
      external: ['*.wasm', '*.gguf'],
      write: false,
      logLevel: 'silent',
    });
    const u8 = (b: Uint8Array) => new Uint8Array(b) as Uint8Array<ArrayBuffer>;
    const mf = new Miniflare(
      convertV4MiniflareOptions({
        modulesRoot: '/hosts',
        modules: [
          { type: 'ESModule', path: '/hosts/index.mjs', contents: bundle.outputFiles[0]!.text },
          { type: 'CompiledWasm', path: '/hosts/kernels.wasm', contents: u8(wasm.simd) },
          { type: 'CompiledWasm', path: '/hosts/kernels-relaxed.wasm', contents: u8(wasm.relaxed) },
          ...MODEL_NAMES.map((m) => ({
            type: 'Data' as const,
            path: `/hosts/${m}.gguf`,
            contents: u8(ggufs[m]),
          })),
        ],
        compatibilityDate: '2026-05-01',
      }),
    );
    try {
      const res = await within(60_000, 'the Miniflare worker', mf.dispatchFetch('http://localhost/'));
      const text = await res.text();
      expect(res.status, text.slice(0, 500)).toBe(200);
      const report = JSON.parse(text) as HostReport;
      expect(report.relaxedAvailable).toBe(true);
      console.info(summarize(nodeReport, report));
      expect(diffReport(expected, report)).toEqual([]);
      expect(diffLive(nodeReport, report)).toEqual([]);
    } finally {
      await mf.dispose();
    }
  }, 90_000);
});
