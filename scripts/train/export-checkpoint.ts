/**
 * `tsx scripts/train/export-checkpoint.ts --config <file> --out <path.gguf> [--dir checkpoints/<name>]`
 *
 * Writes the parameters of a checkpoint (mid-run or final) as an F32 GGUF, so `npm run eval` can
 * judge a run while it is still going. A pretraining checkpoint gets the chat-marker rows added
 * (mean of the old rows), as at the start of instruction tuning. The edgelm.train.* figures are
 * the checkpoint's; val_loss is the last one measured (NaN when none yet).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { meta } from '../../runtime/gguf.ts';
import { loadConfig } from './config.ts';
import { buildCorpus } from './data.ts';
import { modelGGUF } from './export.ts';
import { growVocab, paramLayout } from './model.ts';

const { values } = parseArgs({
  options: { config: { type: 'string' }, out: { type: 'string' }, dir: { type: 'string' } },
});
if (!values.config || !values.out)
  throw new Error('usage: --config <file> --out <path.gguf> [--dir <checkpoint dir>]');
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const cfg = loadConfig(values.config);
const dir = values.dir ?? join(root, 'checkpoints', cfg.name);
const state = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8'));
const b = readFileSync(join(dir, 'state.bin'));
const blob = new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
const corpus = buildCorpus(cfg);
const vocab = state.phase === 'pretrain' ? corpus.pretrainVocab : corpus.finalVocab;
const mc = { ...cfg.model, vocabSize: vocab };
if (paramLayout(mc).total !== state.nParams)
  throw new Error(`checkpoint holds ${state.nParams} parameters, config says ${paramLayout(mc).total}`);
let params: Float32Array = blob.slice(0, state.nParams);
if (vocab !== corpus.finalVocab) params = growVocab(mc, params, corpus.finalVocab);
const bytes = modelGGUF(
  { ...mc, vocabSize: corpus.finalVocab },
  params,
  corpus.tokenizerKv,
  {
    steps: state.pretrainSteps + (state.phase === 'instruct' ? state.step : 0),
    tokens: state.tokens,
    wallSeconds: state.wallSeconds,
    valLoss: state.valLoss ?? Number.NaN,
  },
  {
    type: 'f32',
    name: `${cfg.out.modelName} (${state.phase} step ${state.step})`,
    extra: [
      ['edgelm.train.seed', meta.u32(cfg.seed)],
      ['edgelm.train.config', meta.str(JSON.stringify(cfg))],
    ],
  },
);
writeFileSync(values.out, bytes);
console.log(`wrote ${values.out}: ${state.phase} step ${state.step}, ${(bytes.length / 1e6).toFixed(2)} MB`);
