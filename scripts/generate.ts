/**
 * Generates a continuation with a GGUF model from the command line.
 *
 *   npm run generate -- --model FILE.gguf --prompt "text" [--max-tokens N] [--min-tokens N]
 *     [--temperature T] [--top-k K] [--top-p P] [--min-p P] [--repetition-penalty R] [--seed S]
 *     [--beams B] [--length-penalty A] [--early-stopping true|false|never] [--num-return N]
 *     [--no-repeat-ngram N] [--stop STR]... [--ignore-eos] [--chat] [--json]
 *
 * Greedy unless a sampling option is given (temperature 0 or no sampling options = greedy). Text is
 * printed as it is generated; with --beams the search runs first (its progress, the provisional best
 * beam, goes to stderr) and the returned sequences are printed with their scores. `--chat` wraps the
 * prompt as a user message in the model's chat template; an empty prompt means the model's start
 * token alone. `--json` prints one object: the prompt's and the generated token ids, the text, each
 * returned sequence with its score and finish reason, and timings.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { GenerateOptions, GenerateResult } from '../runtime/generate.ts';
import { createRuntime, EdgeLMError } from '../runtime/index.ts';

const args = process.argv.slice(2);
const usage = `usage: npm run generate -- --model FILE.gguf --prompt "text" [--max-tokens N] [--temperature T]
  [--top-k K] [--top-p P] [--min-p P] [--seed S] [--beams B] [--length-penalty A]
  [--early-stopping true|false|never] [--num-return N] [--no-repeat-ngram N] [--stop STR]
  [--min-tokens N] [--repetition-penalty R] [--ignore-eos] [--chat] [--json]`;

const values = new Map<string, string[]>();
const flags = new Set<string>();
const BOOL = new Set(['chat', 'json', 'ignore-eos', 'help']);
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (!a.startsWith('--')) fail(`unexpected argument ${a}`);
  const name = a.slice(2);
  if (BOOL.has(name)) {
    flags.add(name);
    continue;
  }
  if (i + 1 >= args.length) fail(`--${name} needs a value`);
  values.set(name, [...(values.get(name) ?? []), args[++i]]);
}
const KNOWN = new Set([
  'model',
  'prompt',
  'max-tokens',
  'min-tokens',
  'temperature',
  'top-k',
  'top-p',
  'min-p',
  'repetition-penalty',
  'seed',
  'beams',
  'length-penalty',
  'early-stopping',
  'num-return',
  'no-repeat-ngram',
  'stop',
]);
for (const k of values.keys()) if (!KNOWN.has(k)) fail(`unknown flag --${k}`);
if (flags.has('help')) {
  console.log(usage);
  process.exit(0);
}

function fail(msg: string): never {
  console.error(`${msg}\n${usage}`);
  process.exit(2);
}
const str = (k: string) => values.get(k)?.at(-1);
const numeric = (k: string): number | undefined => {
  const v = str(k);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || Number.isNaN(n)) fail(`--${k} must be a number, got ${v}`);
  return n;
};

const modelPath = str('model') ?? fail('--model is required');
const prompt = str('prompt') ?? '';
const json = flags.has('json');

const opts: Partial<GenerateOptions> = {};
const set = <K extends keyof GenerateOptions>(k: K, v: GenerateOptions[K] | undefined) => {
  if (v !== undefined) opts[k] = v;
};
set('maxNewTokens', numeric('max-tokens'));
set('minNewTokens', numeric('min-tokens'));
set('temperature', numeric('temperature'));
set('topK', numeric('top-k'));
set('topP', numeric('top-p'));
set('minP', numeric('min-p'));
set('repetitionPenalty', numeric('repetition-penalty'));
set('seed', numeric('seed'));
set('numBeams', numeric('beams'));
set('lengthPenalty', numeric('length-penalty'));
set('numReturnSequences', numeric('num-return'));
set('noRepeatNgramSize', numeric('no-repeat-ngram'));
set('stop', values.get('stop'));
if (flags.has('ignore-eos')) opts.ignoreEos = true;
const es = str('early-stopping');
if (es !== undefined) {
  if (es !== 'true' && es !== 'false' && es !== 'never')
    fail('--early-stopping must be true, false or never');
  opts.earlyStopping = es === 'never' ? 'never' : es === 'true';
}

const root = join(import.meta.dirname, '..');
const simd = new WebAssembly.Module(readFileSync(join(root, 'build', 'kernels.wasm')));
const relaxed = new WebAssembly.Module(readFileSync(join(root, 'build', 'kernels-relaxed.wasm')));

async function main(): Promise<void> {
  const t0 = performance.now();
  const runtime = createRuntime({ simd, relaxed });
  const beams = opts.numBeams ?? 1;
  const lm = runtime.loadModel(readFileSync(modelPath), { maxSequences: Math.max(1, beams) });
  const loadMs = performance.now() - t0;
  let ids: number[];
  if (flags.has('chat')) ids = lm.chatPromptIds([{ role: 'user', content: prompt }]);
  else if (prompt === '') {
    if (lm.tokenizer.bos === undefined) fail('this model has no start token: give a --prompt');
    ids = [lm.tokenizer.bos];
  } else ids = lm.promptIds(prompt);

  const ac = new AbortController();
  process.once('SIGINT', () => ac.abort());
  let result: GenerateResult | undefined;
  let lastBest = '';
  for await (const ev of lm.generate(ids, { ...opts, signal: ac.signal })) {
    if (ev.type === 'token' && !json && beams === 1) process.stdout.write(ev.text);
    else if (ev.type === 'beams' && !json && ev.beams.length > 0) {
      // provisional best beam, redrawn on one stderr line
      const text = lm.tokenizer
        .decode(ev.beams[0].tokens, { skipSpecial: true, stripLeadingSpace: false })
        .replace(/\s+/g, ' ');
      const line = `[step ${ev.step}] ${text}`.slice(0, (process.stderr.columns ?? 100) - 1);
      if (line !== lastBest && process.stderr.isTTY) process.stderr.write(`\r\x1b[K${line}`);
      lastBest = line;
    } else if (ev.type === 'done') result = ev.result;
  }
  if (!result) throw new Error('generation ended without a result');
  const best = result.sequences[0];
  const { prefillMs, decodeMs } = result.timings;
  if (json) {
    console.log(
      JSON.stringify({
        model: modelPath,
        promptTokens: ids,
        tokens: best.tokens,
        text: best.text,
        finishReason: best.finishReason,
        sequences: result.sequences,
        options: opts,
        usage: { promptTokens: result.promptTokens, completionTokens: result.completionTokens },
        timings: {
          loadMs,
          prefillMs,
          decodeMs,
          decodeTokensPerSecond: decodeMs > 0 ? (best.tokens.length / decodeMs) * 1000 : null,
        },
      }),
    );
    return;
  }
  if (beams > 1) {
    if (process.stderr.isTTY) process.stderr.write('\r\x1b[K');
    result.sequences.forEach((s, i) => {
      console.log(`--- #${i + 1} score ${s.score.toFixed(4)} (${s.finishReason}, ${s.tokens.length} tokens)`);
      console.log(s.text);
    });
  } else process.stdout.write('\n');
  console.error(
    `[${best.finishReason}] prompt ${result.promptTokens} tokens, prefill ${prefillMs.toFixed(1)} ms; ` +
      `${result.completionTokens} tokens in ${decodeMs.toFixed(1)} ms` +
      (decodeMs > 0 ? ` (${((best.tokens.length / decodeMs) * 1000).toFixed(1)} tok/s)` : ''),
  );
}

main().catch((e) => {
  if (e instanceof EdgeLMError) {
    console.error(`${e.name}${e.field ? ` (${e.field})` : ''}: ${e.message}`);
    process.exit(1);
  }
  throw e;
});
