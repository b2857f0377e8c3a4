// Compiles assembly/ into build/*.wasm with asc, skipping outputs newer than every source.
// Builds: kernels.wasm (SIMD128), kernels-relaxed.wasm (SIMD128 + relaxed SIMD),
// train.wasm (backward kernels for scripts/train, kept out of the Worker's module).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const asc = join(root, 'node_modules', '.bin', 'asc');
const common = ['-O3', '--runtime', 'stub', '--noAssert', '--enable', 'simd', '--converge'];
const builds = [
  { entry: 'assembly/index.ts', out: 'build/kernels.wasm', flags: [] },
  { entry: 'assembly/index.ts', out: 'build/kernels-relaxed.wasm', flags: ['--enable', 'relaxed-simd'] },
  { entry: 'assembly/train/index.ts', out: 'build/train.wasm', flags: ['--enable', 'relaxed-simd'] },
];

function newestSource(dir) {
  let t = 0;
  for (const name of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, name.name);
    t = Math.max(t, name.isDirectory() ? newestSource(p) : statSync(p).mtimeMs);
  }
  return t;
}

mkdirSync(join(root, 'build'), { recursive: true });
const srcTime = Math.max(
  newestSource(join(root, 'assembly')),
  statSync(import.meta.filename ?? fileURLToPath(import.meta.url)).mtimeMs,
);
for (const b of builds) {
  if (!existsSync(join(root, b.entry))) continue;
  const out = join(root, b.out);
  if (existsSync(out) && statSync(out).mtimeMs > srcTime && !process.argv.includes('--force')) continue;
  const t0 = Date.now();
  execFileSync(asc, [b.entry, '-o', b.out, ...common, ...b.flags], { cwd: root, stdio: 'inherit' });
  console.error(`built ${b.out} (${statSync(out).size} bytes, ${Date.now() - t0} ms)`);
}
