// What the HTTP layer needs from a loaded model. The runtime's LoadedModel satisfies it through
// worker/runtime-model.ts; tests pass a fake. No model maths here.

import type { GenerateOptions } from '../runtime/generate.ts';

/** Generation options as the runtime takes them (runtime/generate.ts). */
export type GenOptions = GenerateOptions;

export type FinishReason = 'stop' | 'length' | 'abort';

export interface GenSequence {
  tokens: number[];
  text: string;
  score: number;
  finishReason: FinishReason;
}

/** The runtime's GenerateEvent. */
export type GenEvent =
  | {
      type: 'token';
      text: string;
      tokenId: number;
      logprob?: number;
      topLogprobs?: Array<{ id: number; text: string; logprob: number }>;
    }
  | { type: 'beams'; step: number; beams: Array<{ tokens: number[]; score: number; parent: number }> }
  | {
      type: 'done';
      result: {
        sequences: GenSequence[];
        promptTokens: number;
        completionTokens: number;
        timings?: { prefillMs: number; decodeMs: number };
      };
    };

/** The tokenizer subset the worker uses. */
export interface TokenizerLike {
  readonly vocabSize: number;
  readonly bos: number | undefined;
  readonly eos: number | undefined;
  readonly addBos: boolean;
  encode(text: string, opts?: { parseSpecial?: boolean; addBos?: boolean }): number[];
  decode(ids: ArrayLike<number>, opts?: { skipSpecial?: boolean; stripLeadingSpace?: boolean }): string;
  isSpecial(id: number): boolean;
}

export interface ModelInfoLike {
  architecture: string;
  vocabSize: number;
  contextLength: number;
  quantization: string;
  parameters?: number;
  memory?: { weights: number; kvCache: number; scratch: number; total: number };
}

/** A model the app can serve. */
export interface ModelHandle {
  readonly info: ModelInfoLike;
  readonly tokenizer: TokenizerLike;
  readonly chatTemplate?: string;
  generate(promptIds: number[], opts: GenOptions): AsyncGenerator<GenEvent>;
}

/** One entry of GET /v1/models. */
export interface ModelListing {
  id: string;
  source: 'bundle' | 'r2';
  status: 'loaded' | 'not_loaded' | 'unavailable';
  info?: ModelInfoLike;
  error?: string;
}

/** Where the app gets its models; throws ApiError (404 unknown, 503 unavailable). */
export interface ModelRegistry {
  readonly defaultId: string;
  list(): ModelListing[];
  get(id: string | undefined): Promise<{ id: string; model: ModelHandle }>;
}
