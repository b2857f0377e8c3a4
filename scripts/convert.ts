/**
 * `npm run convert`: brings llama2.c, Hugging Face and GGUF checkpoints to GGUF.
 *
 *   npm run convert -- --from llama2c --model stories15M.bin --tokenizer tokenizer.bin --out m.gguf [--type q8_0]
 *   npm run convert -- --from hf --dir ./TinyLlama --out m.gguf [--type f16]
 *   npm run convert -- --from gguf --model m.gguf --out m-q4.gguf --type q4_0
 *
 * --type f32|f16|q8_0|q4_0 (default f32): 2-D weights take it (a matrix whose rows are not a
 * multiple of 32 falls back to f16); norms, biases and learned positions stay f32.
 * The output is written under a temporary name and renamed at the end: a failed run leaves nothing.
 * Bad input prints one line naming the file and the problem, and exits 1.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { SingleBar } from 'cli-progress';
import { EdgeLMError } from '../runtime/errors.ts';
import { fromF32, GGMLType, ggmlTypeName, QK } from '../runtime/ggml.ts';
import { type GGUFMetaValue, meta, parseGGUF, writeGGUF } from '../runtime/gguf.ts';
import { openGGUFSource, openHuggingFace, openLlama2c, type Source } from './convert/sources.ts';

const TYPES: Record<string, number> = {
  f32: GGMLType.F32,
  f16: GGMLType.F16,
  q8_0: GGMLType.Q8_0,
  q4_0: GGMLType.Q4_0,
};
// GGUF general.file_type (llama_ftype): all f32 0, mostly f16 1, mostly q4_0 2, mostly q8_0 7
const FILE_TYPE: Record<string, number> = { f32: 0, f16: 1, q4_0: 2, q8_0: 7 };

export interface ConvertOptions {
  from: 'llama2c' | 'hf' | 'gguf';
  model?: string;
  tokenizer?: string;
  dir?: string;
  out: string;
  type?: string;
  quiet?: boolean;
}

export interface ConvertSummary {
  architecture: string;
  parameters: number;
  tensorTypes: Record<string, number>;
  bytesIn: number;
  bytesOut: number;
  sha256: string;
  out: string;
}

class UsageError extends Error {}

/**
 * Converts one checkpoint to GGUF (see the file's header for the sources).
 * @example
 * convert({ from: 'llama2c', model: 'stories15M.bin', tokenizer: 'tokenizer.bin', out: 's.gguf', type: 'q8_0' });
 */
export function convert(o: ConvertOptions): ConvertSummary {
  const type = o.type ?? 'f32';
  const outType = TYPES[type];
  if (outType === undefined) throw new UsageError(`--type ${type}: use one of f32, f16, q8_0, q4_0`);
  let src: Source;
  if (o.from === 'llama2c') {
    if (!o.model || !o.tokenizer)
      throw new UsageError('--from llama2c needs --model M.bin and --tokenizer tokenizer.bin');
    src = openLlama2c(o.model, o.tokenizer);
  } else if (o.from === 'hf') {
    if (!o.dir) throw new UsageError('--from hf needs --dir D');
    src = openHuggingFace(o.dir);
  } else if (o.from === 'gguf') {
    if (!o.model) throw new UsageError('--from gguf needs --model M.gguf');
    const bytes = new Uint8Array(readFileSync(o.model));
    src = openGGUFSource(parseGGUF(bytes), bytes.length);
  } else throw new UsageError(`--from ${o.from}: use llama2c, hf or gguf`);

  const tmp = `${o.out}.tmp-${process.pid}`;
  const bar = o.quiet
    ? undefined
    : new SingleBar({ format: 'converting [{bar}] {value}/{total} tensors {name}' });
  try {
    bar?.start(src.tensors.length, 0, { name: '' });
    const tensors: Array<{ name: string; dims: number[]; type: number; data: Uint8Array }> = [];
    const tensorTypes: Record<string, number> = {};
    let parameters = 0;
    for (const t of src.tensors) {
      const f = t.read();
      const n = t.dims.reduce((a, b) => a * b, 1);
      if (f.length !== n)
        throw new EdgeLMError('invalid_format', `${t.name}: read ${f.length} values, expected ${n}`);
      let ty = t.quantizable ? outType : GGMLType.F32;
      if ((ty === GGMLType.Q8_0 || ty === GGMLType.Q4_0) && t.dims[0] % QK !== 0) ty = GGMLType.F16;
      tensors.push({ name: t.name, dims: t.dims, type: ty, data: fromF32(ty, f) });
      tensorTypes[ggmlTypeName(ty)] = (tensorTypes[ggmlTypeName(ty)] ?? 0) + 1;
      parameters += n;
      bar?.increment(1, { name: t.name });
    }
    bar?.stop();
    const metadata: Array<[string, GGUFMetaValue]> = [
      ...src.metadata,
      ['general.file_type', meta.u32(FILE_TYPE[type])],
    ];
    const bytes = writeGGUF(metadata, tensors);
    // the output must read back through our own checked parser before it gets its name
    parseGGUF(bytes);
    writeFileSync(tmp, bytes);
    renameSync(tmp, o.out);
    return {
      architecture: src.architecture,
      parameters,
      tensorTypes,
      bytesIn: src.bytesIn,
      bytesOut: bytes.length,
      sha256: createHash('sha256').update(bytes).digest('hex'),
      out: o.out,
    };
  } catch (e) {
    bar?.stop();
    if (existsSync(tmp)) rmSync(tmp);
    throw e;
  } finally {
    src.close();
  }
}

function parseArgs(argv: string[]): ConvertOptions {
  const o: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new UsageError(`unexpected argument ${a}`);
    const k = a.slice(2);
    if (!['from', 'model', 'tokenizer', 'dir', 'out', 'type'].includes(k) && k !== 'quiet')
      throw new UsageError(`unknown option --${k}`);
    if (k === 'quiet') o.quiet = 'true';
    else {
      const v = argv[++i];
      if (v === undefined || v.startsWith('--')) throw new UsageError(`--${k} needs a value`);
      o[k] = v;
    }
  }
  if (!o.from) throw new UsageError('--from llama2c|hf|gguf is required');
  if (!o.out) throw new UsageError('--out FILE.gguf is required');
  return { ...(o as any), quiet: o.quiet === 'true' };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  try {
    const s = convert(parseArgs(process.argv.slice(2)));
    const MiB = (n: number) => `${(n / 2 ** 20).toFixed(2)} MiB`;
    console.log(
      [
        `architecture: ${s.architecture}`,
        `parameters:   ${s.parameters.toLocaleString('en')}`,
        `tensor types: ${Object.entries(s.tensorTypes)
          .map(([k, v]) => `${v} ${k}`)
          .join(', ')}`,
        `bytes in:     ${MiB(s.bytesIn)}`,
        `bytes out:    ${MiB(s.bytesOut)}`,
        `sha256:       ${s.sha256}`,
        `wrote ${s.out}`,
      ].join('\n'),
    );
  } catch (e) {
    const msg =
      e instanceof EdgeLMError || e instanceof UsageError
        ? e.message
        : `unexpected error: ${(e as Error).message}`;
    console.error(`convert: ${msg}`);
    process.exit(1);
  }
}
