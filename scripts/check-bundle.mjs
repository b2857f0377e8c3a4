// Bundles the Worker with `wrangler deploy --dry-run` and checks its size against the Workers limits:
// 64 MiB uncompressed (since September 2026); 10 MiB gzip on the paid plan, 3 MiB on the free plan.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

const out = 'dist/worker-bundle';
rmSync(out, { recursive: true, force: true });
execFileSync('npx', ['wrangler', 'deploy', '--dry-run', '--outdir', out], {
  stdio: ['ignore', 'inherit', 'inherit'],
  env: { ...process.env, WRANGLER_SEND_METRICS: 'false' },
});
let raw = 0;
let gz = 0;
const walk = (d) => {
  for (const e of readdirSync(d, { withFileTypes: true })) {
    const p = join(d, e.name);
    if (e.isDirectory()) walk(p);
    else if (!p.endsWith('.map')) {
      raw += statSync(p).size;
      gz += gzipSync(readFileSync(p)).length;
    }
  }
};
walk(out);
const MiB = 1024 * 1024;
const limits = { uncompressed: 64 * MiB, gzipPaid: 10 * MiB, gzipFree: 3 * MiB };
console.log(
  `bundle: ${(raw / MiB).toFixed(2)} MiB uncompressed (limit 64 MiB), ${(gz / MiB).toFixed(2)} MiB gzip ` +
    `(limits: 10 MiB paid, 3 MiB free plan)${gz > limits.gzipFree ? ' — over the free plan' : ''}`,
);
if (raw > limits.uncompressed || gz > limits.gzipPaid) {
  console.error('bundle is over the Workers size limit');
  process.exit(1);
}
