/**
 * edgelm's public API, the same in a Worker, in Node and in a browser. The caller brings the
 * compiled kernels (`WebAssembly.Module`: a Worker imports `edgelm/kernels.wasm`, Node and browsers
 * compile it) and the model's GGUF bytes; edgelm does the rest.
 *
 * @example
 * import { createRuntime } from 'edgelm';
 * const runtime = createRuntime(kernelsModule);
 * const model = runtime.loadModel(ggufBytes);
 * for await (const ev of model.generate('Once upon a time', { maxNewTokens: 32, numBeams: 4 })) {
 *   if (ev.type === 'done') console.log(ev.result.sequences[0].text);
 * }
 */
import { type ChatMessage, chatPromptIds as renderChat } from './chat.ts';
import { OptionsError } from './errors.ts';
import { type GenerateEvent, type GenerateOptions, generate } from './generate.ts';
import { type GGUFFile, parseGGUF } from './gguf.ts';
import { createKernels, detectRelaxedSimd, type Kernels, type KvType } from './kernels.ts';
import { Model, type ModelInfo } from './model.ts';
import { type Tokenizer, tokenizerFromGGUF } from './tokenizer.ts';

export type { ChatMessage } from './chat.ts';
export { chatPromptIds, compileChatTemplate, renderTemplate } from './chat.ts';
export * from './errors.ts';
export type { GenerateEvent, GenerateOptions, GenerateResult } from './generate.ts';
export { resolveOptions } from './generate.ts';
export type { GGUFFile, GGUFMetaValue, GGUFTensor } from './gguf.ts';
export { meta, parseGGUF, writeGGUF } from './gguf.ts';
export type { Kernels, KvType } from './kernels.ts';
export { createKernels, detectRelaxedSimd } from './kernels.ts';
export type { ModelInfo, Sequence } from './model.ts';
export { Model } from './model.ts';
export type { Tokenizer } from './tokenizer.ts';
export { tokenizerFromGGUF } from './tokenizer.ts';

/** Options for `Runtime.loadModel`. */
export interface LoadOptions {
  /** bytes of WASM memory the model may use in all: weights, KV cache, scratch (default 128 MiB) */
  budgetBytes?: number;
  /** cap on the context, below the model's own (smaller KV cache) */
  maxContext?: number;
  /** sequences (beams × concurrent requests) the KV pool must hold at full context */
  maxSequences?: number;
  /** KV blocks in the pool (overrides maxSequences sizing) */
  kvBlocks?: number;
  /**
   * KV cache element type: 'f32' (default, exact) or 'f16' (half the KV memory, so about twice the
   * sequences or context in the same budget; keys/values rounded to the nearest f16, finite values
   * beyond ±65504 clamped; attention still computes in f32). Anything else: OptionsError (`kvType`).
   */
  kvType?: KvType;
}

/** A model ready to generate. */
export interface LoadedModel {
  readonly info: ModelInfo;
  readonly tokenizer: Tokenizer;
  readonly model: Model;
  /**
   * the file's metadata and tensor infos; tensor `data` views are dropped after load, so the
   * model's bytes are not kept alive twice (the weights live in WASM memory)
   */
  readonly file: GGUFFile;
  /** the model's own chat template (`tokenizer.chat_template`), if it has one */
  readonly chatTemplate: string | undefined;
  /** true when the relaxed-SIMD kernels were chosen */
  readonly relaxedSimd: boolean;
  /**
   * true when the quantised products run on the engine's unsigned-byte dot (AVX-VNNI `vpdpbusd`
   * through V8 13+: Node 24, recent workerd and Chrome on such CPUs); same results, faster
   */
  readonly usdot: boolean;
  /** prompt text (tokenized with BOS as the model wants, specials not parsed) or token ids */
  generate(prompt: string | number[], options?: Partial<GenerateOptions>): AsyncGenerator<GenerateEvent>;
  /**
   * renders messages with the model's chat template (or a plain fallback) and tokenizes them:
   * special tokens the template writes are parsed, message contents never are
   */
  chatPromptIds(messages: ChatMessage[]): number[];
  /** prompt ids for text as `generate` would make them */
  promptIds(text: string): number[];
  /**
   * Drops this model: later calls throw. Its WASM memory (which can only grow) is freed when the
   * last reference to the model goes; load a fresh model to get a fresh arena.
   */
  dispose(): void;
}

/** The kernels and the models loaded with them. */
export interface Runtime {
  loadModel(bytes: Uint8Array | ArrayBuffer, options?: LoadOptions): LoadedModel;
}

type KernelModules = WebAssembly.Module | { simd: WebAssembly.Module; relaxed?: WebAssembly.Module };

/**
 * Creates a runtime from the compiled kernels. Pass `{ simd, relaxed }` to let edgelm pick the
 * relaxed-SIMD build when the host validates it (Node 22, workerd, Chrome 114+), else plain SIMD.
 * @example
 * const runtime = createRuntime({ simd: new WebAssembly.Module(simdBytes), relaxed: new WebAssembly.Module(relaxedBytes) });
 */
export function createRuntime(modules: KernelModules): Runtime {
  const pick = (): WebAssembly.Module => {
    if (modules instanceof WebAssembly.Module) return modules;
    if (modules.relaxed && detectRelaxedSimd()) return modules.relaxed;
    return modules.simd;
  };
  return {
    loadModel(bytes, options = {}) {
      const u8 = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
      const file = parseGGUF(u8);
      const tokenizer = tokenizerFromGGUF(file);
      // each model owns one kernels instance: one linear memory, grown once, so a model's
      // arena never holds another model's (or request's) data
      const kernels: Kernels = createKernels(pick());
      const model = Model.load(kernels, file, options);
      const chatTemplate = file.get<string>('tokenizer.chat_template');
      // the weights are in WASM memory now: let go of the views into the caller's bytes
      for (const t of file.tensors) t.data = new Uint8Array(0);
      let disposed = false;
      const live = () => {
        if (disposed) throw new OptionsError('this model was disposed', { hint: 'load it again' });
      };
      const promptIds = (text: string) => {
        live();
        return tokenizer.encode(text, { addBos: tokenizer.addBos });
      };
      return {
        info: model.info,
        tokenizer,
        model,
        file,
        chatTemplate,
        relaxedSimd: kernels.relaxed,
        usdot: kernels.usdot,
        promptIds,
        chatPromptIds(messages) {
          live();
          // template text may write special tokens; the same strings inside a message stay text
          // (a message cannot forge turns); no template: a plain `role: content` fallback
          return renderChat(tokenizer, chatTemplate, messages).ids;
        },
        dispose() {
          disposed = true;
        },
        generate(prompt, opts = {}) {
          live();
          const ids = typeof prompt === 'string' ? promptIds(prompt) : prompt;
          return generate(model, tokenizer, ids, opts);
        },
      };
    },
  };
}
