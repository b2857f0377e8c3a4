// A scripted model for testing the HTTP layer: a byte-level tokenizer with a few special tokens,
// and a generate() whose output is a known function of the prompt and options. It records what it
// was asked, can fail at a chosen step, and can pause between steps so tests can cancel mid-stream.
import { AbortError, OptionsError } from '../../../runtime/errors.ts';
import { ApiError } from '../../../worker/errors.ts';
import type {
  GenEvent,
  GenOptions,
  ModelHandle,
  ModelListing,
  ModelRegistry,
  TokenizerLike,
} from '../../../worker/model-handle.ts';

export const SPECIALS = ['<s>', '</s>', '<|user|>', '<|assistant|>'];
export const BOS = 256;
export const EOS = 257;

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Byte tokens 0..255, then the specials. */
export function byteTokenizer(): TokenizerLike {
  return {
    vocabSize: 256 + SPECIALS.length,
    bos: BOS,
    eos: EOS,
    addBos: true,
    encode(text, opts = {}) {
      const ids: number[] = [];
      if (opts.addBos ?? true) ids.push(BOS);
      let i = 0;
      let plainStart = 0;
      const flush = (end: number) => {
        for (const b of enc.encode(text.slice(plainStart, end))) ids.push(b);
      };
      while (i < text.length) {
        const s = opts.parseSpecial ? SPECIALS.findIndex((sp) => text.startsWith(sp, i)) : -1;
        if (s >= 0) {
          flush(i);
          ids.push(256 + s);
          i += SPECIALS[s]!.length;
          plainStart = i;
        } else i++;
      }
      flush(text.length);
      return ids;
    },
    decode(ids, opts = {}) {
      let out = '';
      let bytes: number[] = [];
      for (const id of Array.from(ids)) {
        if (id < 256) bytes.push(id);
        else {
          out += dec.decode(new Uint8Array(bytes));
          bytes = [];
          if (!opts.skipSpecial) out += SPECIALS[id - 256] ?? '';
        }
      }
      return out + dec.decode(new Uint8Array(bytes));
    },
    isSpecial: (id) => id >= 256,
  };
}

export interface FakeOptions {
  contextLength?: number;
  chatTemplate?: string;
  /** throw this at the given decode step (0-based) */
  failAt?: { step: number; error: () => Error };
  /** awaited before every step; lets a test hold generation */
  beforeStep?: (step: number) => Promise<void>;
  /** emit EOS after this many tokens (otherwise run to maxNewTokens) */
  eosAfter?: number;
}

export interface FakeModel extends ModelHandle {
  calls: Array<{ prompt: number[]; opts: GenOptions }>;
  steps: number;
  aborted: number;
  live: number;
}

// the text the fake produces: letters chosen by the prompt length, seed and choice
export function scriptedText(promptLength: number, seed: number, n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += String.fromCharCode(97 + ((promptLength + seed + i) % 26));
  return s;
}

/** A scripted ModelHandle. */
export function fakeModel(o: FakeOptions = {}): FakeModel {
  const tok = byteTokenizer();
  const model: FakeModel = {
    info: {
      architecture: 'llama',
      vocabSize: tok.vocabSize,
      contextLength: o.contextLength ?? 256,
      quantization: 'f32',
      parameters: 1000,
    },
    tokenizer: tok,
    chatTemplate: o.chatTemplate,
    calls: [],
    steps: 0,
    aborted: 0,
    live: 0,
    async *generate(prompt: number[], opts: GenOptions): AsyncGenerator<GenEvent> {
      model.calls.push({ prompt: prompt.slice(), opts: { ...opts } });
      if (opts.temperature !== undefined && opts.temperature < 0)
        throw new OptionsError('negative', { field: 'temperature' });
      const max = opts.maxNewTokens ?? 16;
      const beams = opts.numBeams ?? 1;
      const target = scriptedText(prompt.length, opts.seed ?? 0, max);
      const stopAt = o.eosAfter ?? Number.POSITIVE_INFINITY;
      model.live++;
      try {
        const out: number[] = [];
        let text = '';
        let finish: 'stop' | 'length' = 'length';
        for (let step = 0; step < max; step++) {
          if (o.beforeStep) await o.beforeStep(step);
          if (opts.signal?.aborted) {
            model.aborted++;
            throw new AbortError();
          }
          if (o.failAt && o.failAt.step === step) throw o.failAt.error();
          model.steps++;
          if (step >= stopAt) {
            finish = 'stop';
            break;
          }
          const id = target.charCodeAt(step);
          out.push(id);
          const piece = String.fromCharCode(id);
          text += piece;
          if (opts.stop?.some((s) => text.endsWith(s))) {
            const s = opts.stop.find((x) => text.endsWith(x))!;
            text = text.slice(0, -s.length);
            finish = 'stop';
            break;
          }
          if (beams > 1) {
            yield {
              type: 'beams',
              step,
              beams: Array.from({ length: beams }, (_, b) => ({
                tokens: [...out.slice(0, -1), b === 0 ? id : 48 + b],
                score: -step - b,
                parent: step === 0 ? -1 : b === 0 ? 0 : b - 1,
              })),
            };
          } else {
            const ev: GenEvent = { type: 'token', text: piece, tokenId: id };
            if (opts.logprobs) {
              ev.logprob = -0.5;
              ev.topLogprobs = Array.from({ length: opts.topLogprobs ?? 0 }, (_, k) => ({
                id: id + k,
                text: String.fromCharCode(id + k),
                logprob: -0.5 - k,
              }));
            }
            yield ev;
          }
        }
        const n = beams > 1 ? (opts.numReturnSequences ?? 1) : 1;
        yield {
          type: 'done',
          result: {
            sequences: Array.from({ length: n }, (_, j) => ({
              tokens: j === 0 ? out : [...out.slice(0, -1), 48 + j],
              text: j === 0 ? text : text.slice(0, -1) + String.fromCharCode(48 + j),
              score: -j,
              finishReason: finish,
            })),
            promptTokens: prompt.length,
            completionTokens: out.length * n,
            timings: { prefillMs: 0, decodeMs: 0 },
          },
        };
      } finally {
        model.live--;
      }
    },
  };
  return model;
}

/** A registry serving one model under `id`, plus an `unavailable` id that always 503s. */
export function fakeRegistry(model: ModelHandle, id = 'fake'): ModelRegistry {
  return {
    defaultId: id,
    list: (): ModelListing[] => [
      { id, source: 'bundle', status: 'loaded', info: model.info },
      { id: 'broken', source: 'r2', status: 'unavailable', error: 'object missing' },
    ],
    async get(want) {
      if (want === undefined || want === id) return { id, model };
      if (want === 'broken')
        throw new ApiError(503, 'model "broken" is unavailable: object missing', {
          code: 'model_unavailable',
          retryAfter: 5,
        });
      throw new ApiError(404, `model ${JSON.stringify(want)} does not exist`, {
        code: 'model_not_found',
        param: 'model',
      });
    },
  };
}
