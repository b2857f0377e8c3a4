/**
 * `npm run train -- --config <file> [--fresh] [--restart-instruct] [--stop-after N]`
 *
 * Trains a llama-architecture model on our WASM kernels: BPE tokenizer on SOTU text, pretraining,
 * then instruction tuning with <|user|>, <|assistant|>, <|end|> added to the vocabulary; writes
 * F32 and Q8_0 GGUFs. Progress lines: step, loss, learning rate, gradient norm, tokens/s, ETA.
 * Resumes from checkpoints/<name>/ when one exists (same config); --fresh starts over.
 * Config fields and their defaults: scripts/train/config.ts; examples in configs/train/.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadConfig } from './train/config.ts';
import { runTraining } from './train/loop.ts';

const { values } = parseArgs({
  options: {
    config: { type: 'string', default: 'configs/train/default.json' },
    fresh: { type: 'boolean', default: false },
    'restart-instruct': { type: 'boolean', default: false },
    'stop-after': { type: 'string' },
  },
});
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cfg = loadConfig(values.config as string);
const t0 = Date.now();
const log = (s: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${s}`);
log(
  `config ${values.config}: ${JSON.stringify(cfg.model)}, bpe ${cfg.tokenizer.bpeVocab}, threads ${cfg.threads}`,
);
const r = await runTraining(cfg, {
  root,
  fresh: values.fresh,
  restartInstruct: values['restart-instruct'],
  stopAfter: values['stop-after'] ? Number(values['stop-after']) : undefined,
  log,
});
log(
  `done in ${((Date.now() - t0) / 1000).toFixed(0)} s: ${JSON.stringify(r.stats)}${r.files.length ? `; files ${r.files.join(', ')}` : ''}`,
);
