import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';

it('add kernel matches a float64 reference (tolerance 1e-6 relative)', async () => {
  const mod = new WebAssembly.Module(readFileSync('build/kernels.wasm'));
  const inst = new WebAssembly.Instance(mod, { env: { abort() {} } });
  const e = inst.exports as any;
  const mem = e.memory as WebAssembly.Memory;
  mem.grow(1);
  const base = (e.heapBase() + 15) & ~15;
  const n = 7;
  const f = new Float32Array(mem.buffer);
  const a = base >> 2;
  for (let i = 0; i < n; i++) {
    f[a + i] = i * 0.5;
    f[a + 16 + i] = 1 - i;
  }
  e.add(base + 128, base, base + 64, n);
  for (let i = 0; i < n; i++) expect(Math.abs(f[a + 32 + i] - (i * 0.5 + 1 - i))).toBeLessThanOrEqual(1e-6);
});
