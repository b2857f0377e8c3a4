/**
 * Kernel and decode speed inside workerd (local, through Miniflare) against Node, same .wasm, same
 * code (scripts/workerd-bench/bench.ts), same inputs, in the same run.
 *
 *   npx tsx scripts/bench-workerd.ts [--json] [--rounds 12] [--build auto|simd|relaxed|simd,relaxed]
 *        [--shapes 1x288x768,1x768x3072,4x768x3072,1x288x32000] [--types f32,q8_0] [--steps 16]
 *        [--target-ms 40] [--no-linear] [--no-decode] [--no-node-peer]
 *
 * Workloads: `linear` (M×K×N, f32 and Q8_0 weights made inside each host from a fixed seed) and
 * `model.decode` steps on a random 15M-shaped llama (F32 and Q8_0; maxContext 256, maxSequences 8)
 * with 1 sequence (greedy) and 4 (beams4: 4 rows per decode call, each fed its own argmax; no
 * beam re-ranking, which costs little next to the forward), all from a 16-token prompt.
 *
 * Timing: a Worker's clock stands still while it computes, so workerd is timed from outside: the
 * HTTP round trip of a request doing n iterations minus one doing 0, each the best of `rounds`
 * (wall time). Node runs the same function in-process, timed the same way (n minus 0, best of
 * rounds, wall). Workloads and hosts are interleaved within each round, so machine load hits all
 * alike. A third host, Node-bc, is the same handler (scripts/workerd-bench/handler.ts) in a child
 * `node --disable-wasm-trap-handler` (explicit WASM bounds checks) timed over HTTP exactly like workerd
 * (skip it with --no-node-peer). One workerd process (one isolate) per group: linear, f32 model, Q8_0 model; a model's bytes
 * are POSTed once and dropped after load (an isolate holds ≤ 128 MB: weights + KV only).
 *
 * --build simd,relaxed runs both kernel builds in the same run, interleaved (one workerd process per
 * build and group), and adds their time ratio per workload in each host.
 *
 * Prints µs per iteration in workerd and in Node, their ratio, and whether the checksums (sum of
 * outputs / argmax tokens) agree; for decode, beams4/greedy in each host. --json prints the rows;
 * every run writes bench-results/workerd-<date>.json.
 *
 * Local workerd compiles WASM with explicit bounds checks (no trap-handler guard regions): forcing
 * them with MINIFLARE_WORKERD_V8_FLAGS=--wasm-enforce-bounds-checks changes nothing there, while
 * the Node-bc peer (or this whole script run as `node --disable-wasm-trap-handler --import tsx
 * scripts/bench-workerd.ts`) matches workerd within ~10 % on every workload; multi-row linear, hence
 * beams and prefill, is what the checks slow most: 1.2–1.5× in workerd against a default Node.
 * MINIFLARE_WORKERD_V8_FLAGS passes any V8 flags to workerd; both hosts' flags are in the rows.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  type Bench,
  type BuildChoice,
  createDecodeBench,
  createLinearBench,
  type KernelModules,
} from './workerd-bench/bench.ts';
import {
  type BenchWorker,
  processRssMiB,
  type SetupInfo,
  startBenchNode,
  startBenchWorker,
} from './workerd-bench/start.ts';

const args = process.argv.slice(2);
const flag = (name: string) => args.includes(`--${name}`);
const opt = (name: string, def: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? args[i + 1] : def;
};
const json = flag('json');
const rounds = Number(opt('rounds', '12'));
const buildChoices = opt('build', 'auto').split(',') as BuildChoice[];
const shapes = opt('shapes', '1x288x768,1x768x3072,4x768x3072,1x288x32000').split(',');
const types = opt('types', 'f32,q8_0').split(',');
const steps = Number(opt('steps', '16'));
const targetMs = Number(opt('target-ms', '40'));
const withPeer = !flag('no-node-peer');
const PEER_ARGS = ['--disable-wasm-trap-handler'];
/** a bounds-checked Node peer for one group, set up like the workerd one */
async function peerFor(query: string, body?: Uint8Array<ArrayBuffer>): Promise<BenchWorker | undefined> {
  if (!withPeer) return undefined;
  const p = await startBenchNode(PEER_ARGS);
  workers.push(p);
  await p.setup(query, body);
  return p;
}
const log = (s: string) => (json ? console.error(s) : console.log(s));
if (!buildChoices.every((b) => ['auto', 'simd', 'relaxed'].includes(b)))
  throw new Error('--build is auto, simd, relaxed or a comma-separated list of them');

const root = join(import.meta.dirname, '..');
const mods: KernelModules = {
  simd: new WebAssembly.Module(readFileSync(join(root, 'build/kernels.wasm'))),
  relaxed: new WebAssembly.Module(readFileSync(join(root, 'build/kernels-relaxed.wasm'))),
};

interface Workload {
  name: string;
  build: BuildChoice;
  worker: BenchWorker;
  node: Bench;
  /** the same handler in a child Node with --disable-wasm-trap-handler, over HTTP (unless --no-node-peer) */
  peer?: BenchWorker;
  n: number;
  workerdBuild: string;
}

interface Row {
  workload: string;
  /** the --build choice ('auto' lets each host pick, as createRuntime does) */
  buildChoice: string;
  n: number;
  workerdBuild: string;
  nodeBuild: string;
  /** wall: best round trip of n minus best of 0, per iteration */
  workerdUs: number;
  nodeUs: number;
  ratio: number;
  /** CPU time (workerd: its process's threads, from /proc; Node: process.cpuUsage), same scheme */
  workerdCpuUs: number;
  nodeCpuUs: number;
  cpuRatio: number;
  checksumWorkerd: number;
  checksumNode: number;
  checksumMatch: boolean;
  /** the bounds-checked Node peer (node --disable-wasm-trap-handler, over HTTP like workerd) */
  peerUs?: number;
  peerCpuUs?: number;
  /** workerd over the bounds-checked Node peer */
  ratioToPeer?: number;
  cpuRatioToPeer?: number;
  checksumPeer?: number;
  beamsOverGreedyWorkerd?: number;
  beamsOverGreedyNode?: number;
  beamsOverGreedyWorkerdCpu?: number;
  beamsOverGreedyNodeCpu?: number;
  /** Node's execArgv and workerd's V8 flags (MINIFLARE_WORKERD_V8_FLAGS) in this run */
  nodeFlags: string;
  workerdV8Flags: string;
}

const workers: BenchWorker[] = [];
const workloads: Workload[] = [];
const setups: Array<{ group: string; pid: number | undefined; rss0: number } & SetupInfo> = [];
const t0 = performance.now();
try {
  for (const buildChoice of buildChoices) {
    if (!flag('no-linear')) {
      const w = await startBenchWorker();
      workers.push(w);
      const q = `build=${buildChoice}&kind=linear&shapes=${shapes.join(',')}&types=${types.join(',')}`;
      const rss0 = processRssMiB(w.pid).rss;
      const info = await w.setup(q);
      setups.push({ group: `${buildChoice}:linear`, pid: w.pid, rss0, ...info });
      const node = createLinearBench(mods, buildChoice, shapes, types);
      const peer = await peerFor(q);
      for (const s of shapes)
        for (const t of types) {
          const name = `linear:${t}:${s}`;
          // n from Node's speed: a request of ~targetMs; the same n in both hosts
          node.run(name, 3);
          let per = Infinity;
          for (let i = 0; i < 5; i++) {
            const c0 = performance.now();
            node.run(name, 10);
            per = Math.min(per, (performance.now() - c0) / 10);
          }
          const n = Math.max(2, Math.min(20_000, Math.round(targetMs / Math.max(per, 1e-3))));
          workloads.push({ name, build: buildChoice, worker: w, node, peer, n, workerdBuild: info.build });
        }
    }
    if (!flag('no-decode')) {
      const { randomLlamaGGUF, SHAPES } = await import('./lib/random-llama.ts');
      for (const t of types) {
        const p = join(root, 'bench-results', 'models', `random-15M-${t}.gguf`);
        if (!existsSync(p)) {
          mkdirSync(join(root, 'bench-results', 'models'), { recursive: true });
          log(`writing ${p} ...`);
          writeFileSync(p, randomLlamaGGUF(SHAPES['15M'], t, 7, 1));
        }
        const bytes = new Uint8Array(readFileSync(p)) as Uint8Array<ArrayBuffer>;
        const w = await startBenchWorker();
        workers.push(w);
        const rss0 = processRssMiB(w.pid).rss;
        const q = `build=${buildChoice}&kind=decode&type=${t}`;
        const info = await w.setup(q, bytes);
        setups.push({ group: `${buildChoice}:decode:${t}`, pid: w.pid, rss0, ...info });
        const node = createDecodeBench(mods, buildChoice, bytes, t);
        const peer = await peerFor(q, bytes);
        for (const mode of ['greedy', 'beams4'])
          workloads.push({
            name: `decode:${t}:${mode}`,
            build: buildChoice,
            worker: w,
            node,
            peer,
            n: steps,
            workerdBuild: info.build,
          });
      }
    }
  }
  log(`workerd up and set up in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  for (const s of setups) {
    const m = processRssMiB(s.pid);
    log(
      `  ${s.group.padEnd(18)} workerd build ${s.build} (relaxed SIMD validates: ${s.relaxedAvailable}), WASM memory ${(s.memoryBytes / 2 ** 20).toFixed(1)} MiB, workerd process RSS +${(m.rss - s.rss0).toFixed(0)} MiB over its idle ${s.rss0.toFixed(0)} (peak +${(m.peak - s.rss0).toFixed(0)})`,
    );
  }

  // warm-up (JIT tier-up in both hosts)
  for (const wl of workloads) {
    for (let i = 0; i < 2; i++) {
      await wl.worker.run(wl.name, wl.n);
      wl.node.run(wl.name, wl.n);
      await wl.peer?.run(wl.name, wl.n);
    }
  }

  type Best = Record<
    | 'wN'
    | 'w0'
    | 'nN'
    | 'n0'
    | 'wcN'
    | 'wc0'
    | 'ncN'
    | 'nc0'
    | 'pN'
    | 'p0'
    | 'pcN'
    | 'pc0'
    | 'cw'
    | 'cn'
    | 'cp',
    number
  >;
  const best = new Map<string, Best>();
  for (const wl of workloads)
    best.set(`${wl.build}|${wl.name}`, {
      wN: Infinity,
      w0: Infinity,
      nN: Infinity,
      n0: Infinity,
      wcN: Infinity,
      wc0: Infinity,
      ncN: Infinity,
      nc0: Infinity,
      pN: Infinity,
      p0: Infinity,
      pcN: Infinity,
      pc0: Infinity,
      cw: NaN,
      cn: NaN,
      cp: NaN,
    });
  const cpuMs = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  };
  const nodeTime = (b: Bench, name: string, n: number) => {
    const c0 = cpuMs();
    const s = performance.now();
    const c = b.run(name, n);
    const ms = performance.now() - s;
    return { checksum: c, ms, cpuMs: cpuMs() - c0 };
  };
  for (let r = 0; r < rounds; r++) {
    for (const wl of workloads) {
      const b = best.get(`${wl.build}|${wl.name}`)!;
      // alternate the order of the n and 0 requests between rounds
      const order = r % 2 === 0 ? [wl.n, 0] : [0, wl.n];
      for (const n of order) {
        const w = await wl.worker.run(wl.name, n);
        const nd = nodeTime(wl.node, wl.name, n);
        const pr = wl.peer ? await wl.peer.run(wl.name, n) : undefined;
        if (pr && n === 0) {
          b.p0 = Math.min(b.p0, pr.ms);
          b.pc0 = Math.min(b.pc0, pr.cpuMs);
        } else if (pr) {
          b.pN = Math.min(b.pN, pr.ms);
          b.pcN = Math.min(b.pcN, pr.cpuMs);
          b.cp = pr.checksum;
        }
        if (n === 0) {
          b.w0 = Math.min(b.w0, w.ms);
          b.n0 = Math.min(b.n0, nd.ms);
          b.wc0 = Math.min(b.wc0, w.cpuMs);
          b.nc0 = Math.min(b.nc0, nd.cpuMs);
        } else {
          b.wN = Math.min(b.wN, w.ms);
          b.nN = Math.min(b.nN, nd.ms);
          b.wcN = Math.min(b.wcN, w.cpuMs);
          b.ncN = Math.min(b.ncN, nd.cpuMs);
          b.cw = w.checksum;
          b.cn = nd.checksum;
        }
      }
    }
  }

  const rows: Row[] = [];
  for (const wl of workloads) {
    const b = best.get(`${wl.build}|${wl.name}`)!;
    const workerdUs = ((b.wN - b.w0) / wl.n) * 1000;
    const nodeUs = ((b.nN - b.n0) / wl.n) * 1000;
    const workerdCpuUs = ((b.wcN - b.wc0) / wl.n) * 1000;
    const nodeCpuUs = ((b.ncN - b.nc0) / wl.n) * 1000;
    const peerUs = ((b.pN - b.p0) / wl.n) * 1000;
    const peerCpuUs = ((b.pcN - b.pc0) / wl.n) * 1000;
    const peer = wl.peer
      ? {
          peerUs: +peerUs.toFixed(1),
          peerCpuUs: +peerCpuUs.toFixed(1),
          ratioToPeer: +(workerdUs / peerUs).toFixed(2),
          cpuRatioToPeer: +(workerdCpuUs / peerCpuUs).toFixed(2),
          checksumPeer: b.cp,
        }
      : {};
    rows.push({
      workload: wl.name,
      buildChoice: wl.build,
      n: wl.n,
      workerdBuild: wl.workerdBuild,
      nodeBuild: wl.node.build,
      workerdUs: +workerdUs.toFixed(1),
      nodeUs: +nodeUs.toFixed(1),
      ratio: +(workerdUs / nodeUs).toFixed(2),
      workerdCpuUs: +workerdCpuUs.toFixed(1),
      nodeCpuUs: +nodeCpuUs.toFixed(1),
      cpuRatio: +(workerdCpuUs / nodeCpuUs).toFixed(2),
      checksumWorkerd: b.cw,
      checksumNode: b.cn,
      checksumMatch: b.cw === b.cn && (!wl.peer || b.cp === b.cn),
      ...peer,
      nodeFlags: process.execArgv
        .filter((a) => a.startsWith('--') && !/tsx|^--(require|import|loader|experimental-loader)$/.test(a))
        .join(' '),
      workerdV8Flags: process.env.MINIFLARE_WORKERD_V8_FLAGS ?? '',
    });
  }
  for (const bc of buildChoices)
    for (const t of types) {
      const g = rows.find((x) => x.buildChoice === bc && x.workload === `decode:${t}:greedy`);
      const b4 = rows.find((x) => x.buildChoice === bc && x.workload === `decode:${t}:beams4`);
      if (g && b4) {
        b4.beamsOverGreedyWorkerd = +(b4.workerdUs / g.workerdUs).toFixed(2);
        b4.beamsOverGreedyNode = +(b4.nodeUs / g.nodeUs).toFixed(2);
        b4.beamsOverGreedyWorkerdCpu = +(b4.workerdCpuUs / g.workerdCpuUs).toFixed(2);
        b4.beamsOverGreedyNodeCpu = +(b4.nodeCpuUs / g.nodeCpuUs).toFixed(2);
      }
    }

  const f = (v: number | undefined, w: number) => (v === undefined ? '—' : v.toFixed(1)).padStart(w);
  const x = (v: number | undefined, w: number) => (v === undefined ? '—' : `${v.toFixed(2)}×`).padStart(w);
  const lines = [
    '',
    'Node = this process (trap-handler bounds checks, the default); Node-bc = a child `node --disable-wasm-trap-handler`',
    '(explicit bounds checks), timed over HTTP like workerd. w/… = workerd time over that host.',
    '                                       ------------------- wall -------------------   ------------------- CPU --------------------',
    'workload                   n  build    workerd µs   Node µs Node-bc µs  w/Node  w/bc  workerd µs   Node µs Node-bc µs  w/Node  w/bc  checksums',
  ];
  for (const r of rows)
    lines.push(
      `${r.workload.padEnd(22)} ${String(r.n).padStart(5)}  ${(r.workerdBuild === r.nodeBuild ? r.workerdBuild : `${r.workerdBuild}/${r.nodeBuild}`).padEnd(7)} ${f(r.workerdUs, 10)} ${f(r.nodeUs, 9)} ${f(r.peerUs, 10)} ${x(r.ratio, 7)} ${x(r.ratioToPeer, 5)}  ${f(r.workerdCpuUs, 10)} ${f(r.nodeCpuUs, 9)} ${f(r.peerCpuUs, 10)} ${x(r.cpuRatio, 7)} ${x(r.cpuRatioToPeer, 5)}  ${r.checksumMatch ? 'equal' : `DIFFER (${r.checksumWorkerd} / ${r.checksumNode} / ${r.checksumPeer})`}`,
    );
  for (const r of rows)
    if (r.beamsOverGreedyWorkerd !== undefined)
      lines.push(
        `${r.workload.replace(':beams4', '')} (${r.workerdBuild}): beams4/greedy per step  wall: workerd ×${r.beamsOverGreedyWorkerd}  Node ×${r.beamsOverGreedyNode}   CPU: workerd ×${r.beamsOverGreedyWorkerdCpu}  Node ×${r.beamsOverGreedyNodeCpu}`,
      );
  // both builds in this run: plain SIMD time over relaxed, per workload and host
  for (const r of rows.filter((x) => x.workerdBuild === 'relaxed')) {
    const p = rows.find(
      (x) => x.workload === r.workload && x.workerdBuild === 'simd' && x.nodeBuild === 'simd',
    );
    if (p && r.nodeBuild === 'relaxed')
      lines.push(
        `${r.workload.padEnd(26)} simd/relaxed time  workerd ×${(p.workerdUs / r.workerdUs).toFixed(2)}  Node ×${(p.nodeUs / r.nodeUs).toFixed(2)}`,
      );
  }
  const flags = rows[0]
    ? `; Node flags: '${rows[0].nodeFlags}', workerd V8 flags: '${rows[0].workerdV8Flags}'`
    : '';
  lines.push(
    `(${rounds} rounds, best round trip of n minus best of 0 iterations; whole run ${((performance.now() - t0) / 1000).toFixed(0)} s${flags})`,
  );
  log(lines.join('\n'));
  mkdirSync(join(root, 'bench-results'), { recursive: true });
  const out = join(root, 'bench-results', `workerd-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(out, JSON.stringify(rows, null, 2));
  if (json) console.log(JSON.stringify(rows));
  else log(`wrote ${out}`);
} finally {
  for (const w of workers) await w.dispose();
}
process.exit(0);
